package leakcheck

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindsEveryForm(t *testing.T) {
	const v = "FAKE-sk-test-0001-xyz/+\"q&long-enough"
	s := New(map[string]string{"K": v})
	for label, text := range map[string]string{
		"raw":            "x" + v + "y",
		"base64 at 0":    base64.StdEncoding.EncodeToString([]byte(v)),
		"base64 raw url": base64.RawURLEncoding.EncodeToString([]byte(v)),
		"hex upper":      strings.ToUpper(hex.EncodeToString([]byte(v))),
		"json":           `"FAKE-sk-test-0001-xyz/+\"q\u0026long-enough"`,
		"partial":        "…" + v[9:27] + "…", // any 18 bytes hold a whole window
	} {
		if s.Find([]byte(text)) == "" {
			t.Errorf("%s: not found", label)
		}
	}
	if got := s.Find([]byte("nothing secret here at all")); got != "" {
		t.Errorf("clean text: %s", got)
	}
	if r := s.Redact("a " + v + " b"); strings.Contains(r, "FAKE") {
		t.Errorf("Redact left part of the value: %q", r)
	}
}

// TestFindInFileAtWindowEdges: a value straddling every window boundary,
// or at the very end, of a file larger than one window is found; a clean
// file is clean.
func TestFindInFileAtWindowEdges(t *testing.T) {
	const v = "FAKE-edge-value-01" // short: no 12-byte window forms
	s := New(map[string]string{"K": v})
	dir := t.TempDir()
	// Windows are 1 MiB plus the overlap (the longest form), so reads
	// end at these offsets.
	w := 1 << 20
	for _, f := range s {
		w = max(w, 1<<20+len(f.Text))
	}
	for _, at := range []int{0, w - 5, w - len(v)/2, w + 1<<20 - 3, 3<<20 - len(v)} {
		b := bytes.Repeat([]byte{'.'}, 3<<20)
		copy(b[at:], v)
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := s.FindInFile(p); err != nil || got != "K (raw)" {
			t.Errorf("value at %d: FindInFile = %q, %v", at, got, err)
		}
	}
	clean := filepath.Join(dir, "clean")
	if err := os.WriteFile(clean, bytes.Repeat([]byte("x"), 3<<20+7), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FindInFile(clean); err != nil || got != "" {
		t.Errorf("clean file: %q, %v", got, err)
	}
}

// recorder is a testing.TB that keeps what Errorf says.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestCheckTree: a leak in a nested file is reported with its path and
// the credential's name, never the value.
func TestCheckTree(t *testing.T) {
	const v = "FAKE-tree-value-0002"
	s := New(map[string]string{"K": v})
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "a", "clean"), []byte("nothing"), 0o600)
	os.WriteFile(filepath.Join(dir, "a", "b", "leaky"), []byte("x="+v), 0o600)
	r := &recorder{TB: t}
	s.CheckTree(r, dir)
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], filepath.Join("a", "b", "leaky")) || !strings.Contains(r.errs[0], "K (raw)") {
		t.Errorf("CheckTree reported %q", r.errs)
	}
	for _, e := range r.errs {
		if strings.Contains(e, v) {
			t.Errorf("CheckTree's message holds the value")
		}
	}
}

// TestCheckTreeExcept: a file named in except is not checked; one of the
// same name elsewhere in the tree is not either (names, not paths).
func TestCheckTreeExcept(t *testing.T) {
	const v = "FAKE-tree-value-0003"
	s := New(map[string]string{"K": v})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw"), []byte(v), 0o600)
	os.WriteFile(filepath.Join(dir, "other"), []byte(v), 0o600)
	r := &recorder{TB: t}
	s.CheckTree(r, dir, "pw")
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "other") {
		t.Errorf("CheckTree with except pw reported %q", r.errs)
	}
}
