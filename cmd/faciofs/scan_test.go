package main

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/faciofs/faciofs/store"
)

// scanTree makes a workspace with valX in several forms, a symlink to a
// file holding it, and clean files.
func scanTree(t *testing.T, e *env) string {
	t.Helper()
	ws := filepath.Join(e.dir, "ws")
	for _, d := range []string{"ws/sub/deeper", "outside"} {
		if err := os.MkdirAll(filepath.Join(e.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(ws, "clean.txt"), "nothing\nhere\n", 0o644)
	writeFile(t, filepath.Join(ws, "config.env"), "A=1\nB=2\nTOKEN="+valX+"\n", 0o644)
	writeFile(t, filepath.Join(ws, "sub", "b64.txt"), "x\n"+base64.StdEncoding.EncodeToString([]byte("ab"+valX+"cd"))+"\n", 0o644)
	writeFile(t, filepath.Join(ws, "sub", "deeper", "hex.bin"), "\x00\x01\n\n\n"+strings.ToUpper(hex.EncodeToString([]byte(valX))), 0o644)
	writeFile(t, filepath.Join(e.dir, "outside", "leak"), valX, 0o644)
	if err := os.Symlink(filepath.Join(e.dir, "outside", "leak"), filepath.Join(ws, "link")); err != nil {
		t.Fatal(err)
	}
	return ws
}

func TestScanFindsForms(t *testing.T) {
	e := newEnv(t, true)
	ws := scanTree(t, e)
	r := e.run("", "scan", ws)
	if r.code != exitProblem {
		t.Fatalf("scan with hits: exit %d, want 1; stderr %s", r.code, redact(r.stderr))
	}
	got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	sort.Strings(got)
	want := []string{
		filepath.Join(ws, "config.env") + ":3: X (raw)",
		filepath.Join(ws, "sub", "b64.txt") + ":2: X (base64 at offset 2)",
		filepath.Join(ws, "sub", "deeper", "hex.bin") + ":4: X (HEX)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("scan output:\n%s\nwant:\n%s", redact(r.stdout), strings.Join(want, "\n"))
	}
	if !strings.Contains(r.stderr, "found 3 ") || strings.Contains(r.stderr, "link") {
		t.Errorf("stderr: %s", redact(r.stderr))
	}
}

func TestScanClean(t *testing.T) {
	e := newEnv(t, true)
	ws := filepath.Join(e.dir, "clean")
	if err := os.MkdirAll(filepath.Join(ws, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ws, "d", "f"), "no values\n", 0o644)
	r := e.ok("", "scan", ws, filepath.Join(ws, "d", "f"))
	if !strings.Contains(r.stdout, "no stored value") {
		t.Errorf("clean scan stdout: %q", r.stdout)
	}
}

func TestScanUsage(t *testing.T) {
	e := newEnv(t, true)
	e.fail(exitUsage, "", []string{"scan"})
	e.fail(exitUsage, "", []string{"scan", filepath.Join(e.dir, "missing")}, "missing")
	// No password source: a usage error, not a hang.
	e.pwFile = ""
	e.fail(exitUsage, "", []string{"scan", e.dir}, "password")
}

func TestScanWrongPassword(t *testing.T) {
	e := newEnv(t, true)
	writeFile(t, e.pwFile, "FAKE-wrong-pw\n", 0o600)
	r := e.run("", "scan", e.dir)
	if r.code == 0 || r.code == exitProblem || r.stdout != "" {
		t.Errorf("wrong password: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestScanWhileLocked: another process (a mount) holds the store; scan
// unlocks a private copy and leaves the store as it was.
func TestScanWhileLocked(t *testing.T) {
	e := newEnv(t, true)
	ws := scanTree(t, e)
	s, err := store.Open(e.store, store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := e.run("", "scan", filepath.Join(ws, "config.env"))
	if r.code != exitProblem || !strings.Contains(r.stdout, "config.env:3: X (raw)") {
		t.Errorf("scan while locked: exit %d, stdout %s, stderr %s", r.code, redact(r.stdout), redact(r.stderr))
	}
}
