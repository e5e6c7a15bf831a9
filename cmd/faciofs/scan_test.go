package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
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

// TestScanThroughMount: with a mount running, scan asks it (no password
// needed), finds exactly what the password path finds, batches more files
// than one request carries, and each request leaves one audit record
// naming what was found and never the value.
func TestScanThroughMount(t *testing.T) {
	e := newEnv(t, true)
	ws := scanTree(t, e)
	want := e.run("", "scan", ws) // the password path, before the mount
	// More files than control.MaxFiles, so the scan takes several
	// requests; one of them at the end holds the value.
	many := filepath.Join(ws, "many")
	if err := os.Mkdir(many, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 70 {
		writeFile(t, filepath.Join(many, fmt.Sprintf("f%03d", i)), "clean\n", 0o644)
	}
	writeFile(t, filepath.Join(many, "z-last"), "\n\nid="+hex.EncodeToString([]byte(valX))+"\n", 0o644)

	backing, mnt := e.mkdirs()
	d := e.startMount(mnt, backing)
	d.ready()
	e.pwFile = ""
	r := e.run("", "scan", ws)
	if r.code != exitProblem {
		t.Fatalf("scan through the mount: exit %d; stderr %s", r.code, redact(r.stderr))
	}
	wantOut := want.stdout + filepath.Join(many, "z-last") + ":3: X (hex)\n"
	if sorted(r.stdout) != sorted(wantOut) {
		t.Errorf("scan through the mount:\n%s\nwant:\n%s", redact(r.stdout), redact(wantOut))
	}
	if !strings.Contains(r.stderr, "found 4 ") {
		t.Errorf("stderr: %s", redact(r.stderr))
	}
	a := e.ok("", "audit", "--event", "scan", "--json")
	if n := strings.Count(a.stdout, `"event":"scan"`); n < 2 {
		t.Errorf("%d scan records for %d files, want one a request (at least 2):\n%s", n, 75, a.stdout)
	}
	if !strings.Contains(a.stdout, `"X"`) {
		t.Errorf("scan records do not name the credential found:\n%s", a.stdout)
	}
	noLeakTree(t, filepath.Dir(e.store))

	clean := filepath.Join(e.dir, "clean")
	writeFile(t, clean, "nothing\n", 0o644)
	if r := e.ok("", "scan", clean); !strings.Contains(r.stdout, "no stored value") {
		t.Errorf("clean scan through the mount: %q", r.stdout)
	}
}

func sorted(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
