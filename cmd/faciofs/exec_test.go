package main

// End-to-end tests of `faciofs exec` against a real mount: the daemon
// starts the child with the exposed credentials in its environment, and
// everything the child prints reaches the caller with every stored value
// (and its base64, hex and URL-encoded forms) replaced by [REDACTED:NAME];
// stdin, the working directory and the environment are the caller's;
// signals pass on; the exit status comes back; refusals run nothing; the
// audit records both ends and holds no value.
//
// The children are sh and python3 one-liners. A child that must be found
// again (to signal it, or to see that it is gone) writes its pid into a
// file and runs a command line holding a unique tag.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// valU is a value whose URL encoding differs from it (valX and valY are
// all unreserved characters), and 22 bytes long, so that its base64 has
// padding (valX and valY have 21 bytes: none).
const valU = "FAKE-pw/0008 &?=+:@~u!"

const marker = "[REDACTED:%s]"

func redacted(name string) string { return fmt.Sprintf(marker, name) }

// execTemplate is a store holding X=valX, Y=valY and U=valU, made once
// (every secret set costs an argon2id derivation) next to the template
// store, and removed with it by TestMain.
var execTemplate = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(filepath.Dir(filepath.Dir(templateStore)), "exec-template")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	st := filepath.Join(dir, "store.db")
	b, err := os.ReadFile(templateStore)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(st, b, 0o600); err != nil {
		return "", err
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		return "", err
	}
	environ := append(cleanEnviron(), "HOME="+dir, "FACIOFS_STORE="+st, "FACIOFS_PASSWORD_FILE="+pw)
	for _, s := range []struct{ name, value string }{{"Y", valY}, {"U", valU}} {
		r, err := runBin(environ, dir, s.value+"\n", "secret", "set", s.name)
		if err != nil || r.code != 0 {
			return "", fmt.Errorf("secret set %s: %v: exit %d: %s", s.name, err, r.code, redact(r.stderr))
		}
	}
	return st, nil
})

// execPolicy is a policy that lets exec expose X, U and NOPE (which is
// not set). Y is stored but not exposable.
const execPolicy = "version: 1\nexec:\n  expose: [X, U, NOPE]\n"

// newExecEnv is an env whose store holds X, Y and U.
func newExecEnv(t *testing.T) *env {
	t.Helper()
	st, err := execTemplate()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, true)
	writeFile(t, e.store, string(readFile(t, st)), 0o600)
	return e
}

// startExecMount starts a mount of a store holding X, Y and U with policy
// as its policy file ("" for none) and waits until it serves.
func startExecMount(t *testing.T, policy string) (*env, *mountProc) {
	t.Helper()
	e := newExecEnv(t)
	backing, mnt := e.mkdirs()
	var args []string
	if policy != "" {
		p := filepath.Join(e.dir, "policy.yaml")
		writeFile(t, p, policy, 0o600)
		args = append(args, "--policy", p)
	}
	d := e.startMount(mnt, append(args, backing)...)
	d.ready()
	t.Cleanup(func() { noLeak(t, "stderr of faciofs mount", []byte(d.stderr.String())) })
	return e, d
}

// withEnv is environ with the entries of kv set (replacing those of the
// same name).
func withEnv(environ []string, kv ...string) []string {
	out := append([]string(nil), environ...)
	for _, s := range kv {
		name, _, _ := strings.Cut(s, "=")
		kept := out[:0]
		for _, o := range out {
			if n, _, _ := strings.Cut(o, "="); n != name {
				kept = append(kept, o)
			}
		}
		out = append(kept, s)
	}
	return out
}

// execIn runs `faciofs exec ARGS...` in dir, with kv set in the env's
// environment and stdin, and checks that neither output holds a value.
func (e *env) execIn(t *testing.T, dir string, kv []string, stdin string, args ...string) result {
	t.Helper()
	argv := append([]string{"exec"}, args...)
	r, err := runBin(withEnv(e.environ(), kv...), dir, stdin, argv...)
	desc := redact("faciofs " + strings.Join(argv, " "))
	if err != nil {
		t.Fatalf("%s: %v; stderr: %s", desc, err, redact(r.stderr))
	}
	noLeak(t, "stdout of "+desc, []byte(r.stdout))
	noLeak(t, "stderr of "+desc, []byte(r.stderr))
	noPanic(t, desc, r.stderr)
	return r
}

func (e *env) execRun(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return e.execIn(t, e.dir, nil, stdin, args...)
}

// execFail runs an exec that faciofs itself must fail with code and one
// error line holding every part of want.
func (e *env) execFail(t *testing.T, code int, args []string, want ...string) {
	t.Helper()
	r := e.execRun(t, "", args...)
	r.stdout, r.stderr = redact(r.stdout), redact(r.stderr)
	wantErrLine(t, "faciofs exec "+strings.Join(args, " "), r, code, want...)
}

// touchChild is a command that would create path if it ever ran.
func touchChild(path string) []string { return []string{"sh", "-c", `: > "$1"`, "sh", path} }

func notCreated(t *testing.T, what, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s: the child ran (it made %s: %v)", what, path, err)
	}
}

// execRecords returns the audit records of event (exec.start, exec.end).
// It uses its own t: auditLines belongs to the env's.
func (e *env) execRecords(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	te := *e
	te.t = t
	return te.auditLines(args...)
}

func creds(m map[string]any) string { return fmt.Sprint(m["credentials"]) }

// pyForms is a python3 function forms(v) listing the encodings a child
// prints: each (label, bytes).
const pyForms = `
import base64, binascii, re, urllib.parse
def forms(v):
    b = base64
    tail = b"-more-bytes-after"
    url = urllib.parse.quote(v, safe="").encode()
    return [
        ("raw", v),
        ("base64-std", b.standard_b64encode(v)),
        ("base64-std-unpadded", b.standard_b64encode(v).rstrip(b"=")),
        ("base64-url", b.urlsafe_b64encode(v)),
        ("base64-url-unpadded", b.urlsafe_b64encode(v).rstrip(b"=")),
        ("base64-std-at-1-end", b.standard_b64encode(b"x" + v)),
        ("base64-std-at-2-end", b.standard_b64encode(b"xy" + v)),
        ("base64-url-at-1-end", b.urlsafe_b64encode(b"x" + v).rstrip(b"=")),
        ("base64-url-at-2-end", b.urlsafe_b64encode(b"xy" + v)),
        ("base64-std-at-1-inside", b.standard_b64encode(b"x" + v + tail)),
        ("base64-std-at-2-inside", b.standard_b64encode(b"xy" + v + tail)),
        ("base64-url-at-1-inside", b.urlsafe_b64encode(b"x" + v + tail)),
        ("base64-url-at-2-inside", b.urlsafe_b64encode(b"xy" + v + tail)),
        ("hex-lower", binascii.hexlify(v)),
        ("hex-upper", binascii.hexlify(v).upper()),
        ("url", url),
        ("url-lower-hex", re.sub(rb"%[0-9A-F]{2}", lambda m: m.group(0).lower(), url)),
    ]
`

// numForms is the number of forms pyForms lists.
const numForms = 17

// whole are the labels of forms that encode the value alone: the line is
// the marker and nothing else. The others keep the characters that mix
// value bits with their neighbours' (and the neighbours' own).
var whole = map[string]bool{"raw": true, "base64-std": true, "base64-std-unpadded": true, "base64-url": true,
	"base64-url-unpadded": true, "hex-lower": true, "hex-upper": true, "url": true, "url-lower-hex": true}

// checkFormLines checks out, the output of lines "LABEL NAME: FORM" for
// each form of each name: every line is there, in order, with its form
// replaced by the marker.
func checkFormLines(t *testing.T, where, out string, names ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	labels := []string{"raw", "base64-std", "base64-std-unpadded", "base64-url", "base64-url-unpadded",
		"base64-std-at-1-end", "base64-std-at-2-end", "base64-url-at-1-end", "base64-url-at-2-end",
		"base64-std-at-1-inside", "base64-std-at-2-inside", "base64-url-at-1-inside", "base64-url-at-2-inside",
		"hex-lower", "hex-upper", "url", "url-lower-hex"}
	if len(labels) != numForms || len(lines) != len(names)*numForms {
		t.Fatalf("%s: %d lines, want %d: %q", where, len(lines), len(names)*numForms, redact(out))
	}
	i := 0
	for _, name := range names {
		for _, label := range labels {
			ln := lines[i]
			i++
			prefix := label + " " + name + ": "
			rest, ok := strings.CutPrefix(ln, prefix)
			switch {
			case !ok:
				t.Errorf("%s: line %d is %q, want it to start %q", where, i, redact(ln), prefix)
			case whole[label] && rest != redacted(name):
				t.Errorf("%s: %s of %s came out as %q, want just %s", where, label, name, redact(rest), redacted(name))
			case strings.Count(rest, redacted(name)) != 1:
				t.Errorf("%s: %s of %s came out as %q, want one %s", where, label, name, redact(rest), redacted(name))
			case len(rest) > len(redacted(name))+32:
				t.Errorf("%s: %s of %s came out as %q: too much left around the marker", where, label, name, redact(rest))
			}
		}
	}
}

// TestExecRedactsForms: a child prints two exposed values (X, U) on
// stdout and a stored but unexposed one (Y, read from a file) on stderr,
// each raw and in every base64, hex and URL form; the caller gets only the
// markers, and the child's exit status 3.
func TestExecRedactsForms(t *testing.T) {
	t.Parallel()
	e, _ := startExecMount(t, execPolicy)
	yFile := filepath.Join(t.TempDir(), "y")
	writeFile(t, yFile, valY, 0o600)
	script := pyForms + `
import os, sys
def show(out, name, v):
    for label, f in forms(v):
        out.write(label.encode() + b" " + name.encode() + b": " + f + b"\n")
show(sys.stdout.buffer, "X", os.environb[b"X"])
show(sys.stdout.buffer, "U", os.environb[b"U"])
show(sys.stderr.buffer, "Y", open(sys.argv[1], "rb").read())
sys.exit(3)
`
	r := e.execRun(t, "", "--expose", "X,U", "--", "python3", "-c", script, yFile)
	if r.code != 3 {
		t.Errorf("exit %d, want the child's 3; stderr: %s", r.code, redact(r.stderr))
	}
	checkFormLines(t, "stdout", r.stdout, "X", "U")
	checkFormLines(t, "stderr", r.stderr, "Y")

	// --expose given twice works as a list too.
	r = e.execRun(t, "", "--expose", "X", "--expose", "U", "--", "sh", "-c", `printf '%s|%s\n' "$X" "$U"`)
	if want := redacted("X") + "|" + redacted("U") + "\n"; r.code != 0 || r.stdout != want {
		t.Errorf("two --expose: exit %d, stdout %q, want %q", r.code, redact(r.stdout), want)
	}
}

// TestExecRedactsOtherURLEncodings: the other common URL encodings of a
// value must not pass either: application/x-www-form-urlencoded (Go's
// url.QueryEscape, Python's quote_plus and urlencode: space as '+'), and
// path encodings that keep '/' (Python's quote() default) or the
// sub-delimiters & = + : @ (Go's url.PathEscape) as they are: what a child
// printing a query string or a URL it built shows.
func TestExecRedactsOtherURLEncodings(t *testing.T) {
	t.Parallel()
	e, _ := startExecMount(t, execPolicy)
	script := `
import os, sys, urllib.parse as u
v = os.environ["U"]
print("form: " + u.quote_plus(v, safe=""))
print("query: " + u.urlencode({"password": v}))
print("path: " + u.quote(v))
print("path-subdelims: " + u.quote(v, safe="&=+:@"))
`
	r := e.execRun(t, "", "--expose", "U", "--", "python3", "-c", script)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, redact(r.stderr))
	}
	// The line is not printed: a form leakcheck does not know would show
	// through redact.
	for _, ln := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if label, _, _ := strings.Cut(ln, ":"); !strings.Contains(ln, redacted("U")) {
			t.Errorf("the %q URL encoding of an exposed value passes the redactor", label)
		}
	}
}

// TestExecStreaming: the value arrives one byte per write with pauses, and
// inside binary noise (NULs, every byte value) written in small and large
// writes; the caller gets exactly the noise, in order, with the value
// replaced. A near miss (the value's first bytes, then something else)
// passes unchanged.
func TestExecStreaming(t *testing.T) {
	t.Parallel()
	e, _ := startExecMount(t, execPolicy)
	rng := rand.New(rand.NewPCG(7, 11))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
			if i%7 == 0 {
				b[i] = 0
			}
		}
		// NULs right next to the value, so that no neighbour makes a
		// longer form of it (quotes around it are its shell form).
		b[0], b[n-1] = 0, 0
		return b
	}
	dir := t.TempDir()
	pre, post, bulk := noise(40), noise(40), noise(10000)
	for name, b := range map[string][]byte{"pre": pre, "post": post, "bulk": bulk} {
		writeFile(t, filepath.Join(dir, name), string(b), 0o600)
	}
	nearMiss := valX[:10] + "?"
	script := `
import os, sys, time
d = sys.argv[1]
pre, post, bulk = (open(os.path.join(d, n), "rb").read() for n in ("pre", "post", "bulk"))
v = os.environb[b"X"]
def slow(fd, data):
    for i in range(len(data)):
        os.write(fd, data[i:i+1])
        time.sleep(0.01)
os.write(1, bulk)
slow(1, pre + v + post)
os.write(1, bulk)
os.write(1, pre + v + post + v + v)
slow(1, v[:10] + b"?")
os.write(1, bulk[:3000])
slow(2, pre[-5:] + v + post[:5])
`
	start := time.Now()
	r := e.execRun(t, "", "--expose", "X", "--", "python3", "-c", script, dir)
	t.Logf("the slow child took %v", time.Since(start))
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, redact(r.stderr))
	}
	m := redacted("X")
	want := string(bulk) + string(pre) + m + string(post) + string(bulk) + string(pre) + m + string(post) + m + m + nearMiss + string(bulk[:3000])
	sameBytes(t, "stdout", r.stdout, want)
	sameBytes(t, "stderr", r.stderr, string(pre[35:])+m+string(post[:5]))
}

// sameBytes compares got with want, showing where they first differ.
func sameBytes(t *testing.T, what, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	ctx := func(s string) string { return redact(s[max(i-20, 0):min(i+40, len(s))]) }
	t.Errorf("%s: %d bytes, want %d; first difference at byte %d: got %q, want %q", what, len(got), len(want), i, ctx(got), ctx(want))
}

// TestExecRefused: a name outside exec.expose (alone or with an allowed
// one), an allowed name that is not set, a mount without a policy and no
// mount at all: exit 125, one line naming the reason, the child never
// ran, and the mount audits a denied exec.start.
func TestExecRefused(t *testing.T) {
	t.Parallel()
	e, _ := startExecMount(t, execPolicy)
	dir := t.TempDir()
	cases := []struct {
		name   string
		expose string
		want   []string
		creds  string
	}{
		{"not exposable", "Y", []string{"exec refused", "Y", "exec.expose"}, "[Y]"},
		{"one of two not exposable", "X,Y", []string{"exec refused", "Y", "exec.expose"}, "[X Y]"},
		{"not set", "NOPE", []string{"exec refused", "NOPE", "not set"}, "[NOPE]"},
	}
	for i, c := range cases {
		mark := filepath.Join(dir, fmt.Sprint("ran-", i))
		e.execFail(t, exitExecFailed, append([]string{"--expose", c.expose, "--"}, touchChild(mark)...), c.want...)
		notCreated(t, c.name, mark)
	}
	denied := map[string]map[string]any{}
	for _, m := range e.execRecords(t, "--event", "exec.start") {
		if m["outcome"] != "denied" {
			t.Errorf("a refused exec left an exec.start with outcome %v: %v", m["outcome"], redact(fmt.Sprint(m)))
			continue
		}
		denied[creds(m)] = m
	}
	for _, c := range cases {
		m := denied[c.creds]
		if m == nil {
			t.Errorf("%s: no denied exec.start record naming %s", c.name, c.creds)
			continue
		}
		if d := fmt.Sprint(m["detail"]); !strings.Contains(d, "sh -c") || !strings.Contains(d, c.want[2]) {
			t.Errorf("%s: exec.start detail %q does not give the command and the reason", c.name, redact(d))
		}
	}
	if got := e.execRecords(t, "--event", "exec.end"); len(got) != 0 {
		t.Errorf("refused execs left %d exec.end records", len(got))
	}

	// A mount without a policy exposes nothing.
	e2, _ := startExecMount(t, "")
	mark := filepath.Join(dir, "ran-no-policy")
	e2.execFail(t, exitExecFailed, append([]string{"--expose", "X", "--"}, touchChild(mark)...), "exec refused", "no policy")
	notCreated(t, "no policy", mark)
	if got := e2.execRecords(t, "--event", "exec.start"); len(got) != 1 || got[0]["outcome"] != "denied" || creds(got[0]) != "[X]" {
		t.Errorf("no policy: exec.start records %v, want one denied for [X]", redact(fmt.Sprint(got)))
	}

	// Without a mount there is nobody to ask.
	e3 := newExecEnv(t)
	mark = filepath.Join(dir, "ran-no-mount")
	e3.execFail(t, exitExecFailed, append([]string{"--expose", "X", "--"}, touchChild(mark)...), "running mount", "nothing was run")
	notCreated(t, "no mount", mark)
}

// TestExecExitCodes: the child's status passes through (0, 42, 128+N for
// a signal); faciofs's own failures are 127 (not found), 126 (cannot
// run) and 2 (usage), each one line, with nothing run.
func TestExecExitCodes(t *testing.T) {
	t.Parallel()
	e, _ := startExecMount(t, execPolicy)
	dir := t.TempDir()
	noExec := filepath.Join(dir, "not-executable.sh")
	writeFile(t, noExec, "#!/bin/sh\n: > \"$0.ran\"\n", 0o644)

	for _, c := range []struct {
		name string
		argv []string
		code int
		out  string
	}{
		{"success", []string{"true"}, 0, ""},
		{"exit 42", []string{"sh", "-c", `echo "$X"; exit 42`}, 42, redacted("X") + "\n"},
		{"killed by SIGUSR1", []string{"sh", "-c", `kill -USR1 $$`}, 128 + int(syscall.SIGUSR1), ""},
	} {
		r := e.execRun(t, "", append([]string{"--expose", "X", "--"}, c.argv...)...)
		if r.code != c.code || r.stdout != c.out || r.stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, stdout %q and nothing on stderr",
				c.name, r.code, redact(r.stdout), redact(r.stderr), c.code, c.out)
		}
	}

	e.execFail(t, exitExecNotFound, []string{"--expose", "X", "--", "faciofs-test-no-such-command"}, "not found")
	e.execFail(t, exitExecNotFound, []string{"--expose", "X", "--", filepath.Join(dir, "missing")}, "not found")
	e.execFail(t, exitExecCannot, []string{"--expose", "X", "--", noExec}, "cannot run")
	notCreated(t, "not executable", noExec+".ran")
	e.execFail(t, exitExecCannot, []string{"--expose", "X", "--", dir}, "cannot run")

	mark := filepath.Join(dir, "ran")
	e.execFail(t, exitUsage, append([]string{"--"}, touchChild(mark)...), "--expose")
	e.execFail(t, exitUsage, touchChild(mark), "--expose")
	e.execFail(t, exitUsage, []string{"--expose", "X"})
	e.execFail(t, exitUsage, []string{"--expose", "X", "--"})
	e.execFail(t, exitUsage, append([]string{"--expose", "X,X", "--"}, touchChild(mark)...), "twice")
	notCreated(t, "usage errors", mark)

	// Not-found and cannot-run are audited as a start that failed; usage
	// errors never reach the audit.
	var failed int
	for _, m := range e.execRecords(t, "--event", "exec.end") {
		if m["outcome"] == "failed" {
			failed++
		}
	}
	if failed != 4 {
		t.Errorf("%d exec.end records with outcome failed, want 4 (two not found, two cannot run)", failed)
	}
}

// execProc is a `faciofs exec` running in the background, its stdout and
// stderr in files.
type execProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	out, err string
	done     chan struct{}
}

func (e *env) startExec(t *testing.T, args ...string) *execProc {
	t.Helper()
	dir := t.TempDir()
	p := &execProc{t: t, out: filepath.Join(dir, "stdout"), err: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	outF, err := os.Create(p.out)
	if err != nil {
		t.Fatal(err)
	}
	defer outF.Close()
	errF, err := os.Create(p.err)
	if err != nil {
		t.Fatal(err)
	}
	defer errF.Close()
	c := exec.Command(bin, append([]string{"exec"}, args...)...)
	c.Env, c.Dir = e.environ(), e.dir
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Stdout, c.Stderr = outF, errF // files: Wait does not wait for the daemon's copies
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = c
	go func() { _ = c.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		<-p.done
		for _, f := range []string{p.out, p.err} {
			noLeak(t, "output of faciofs exec", readFile(t, f))
		}
	})
	return p
}

func (p *execProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to faciofs exec: %v", sig, err)
	}
}

// wait waits for faciofs exec to end and returns its exit code (-1 for a
// signal).
func (p *execProc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(cmdTimeout):
		p.t.Fatalf("faciofs exec did not end within %v", cmdTimeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *execProc) stderr() string { return string(readFile(p.t, p.err)) }

var tagSeq atomic.Int64

// uniqueTag is a sleep duration no other process uses.
func uniqueTag() string {
	return fmt.Sprintf("%d.%06d%03d", 300+tagSeq.Add(1), os.Getpid()%1000000, time.Now().UnixNano()%1000)
}

// alive says whether pid is a live process whose command line holds tag.
func alive(pid int, tag string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(tag))
}

// waitChild waits until the child has written its pid to pidFile and
// runs a command line holding tag; a cleanup kills it if it outlives the
// test.
func waitChild(t *testing.T, p *execProc, pidFile, tag string) int {
	t.Helper()
	pid := 0
	ok := eventually(cmdTimeout, func() bool {
		b, err := os.ReadFile(pidFile)
		if err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		select {
		case <-p.done:
			return true
		default:
		}
		return pid > 0 && alive(pid, tag)
	})
	if !ok || pid <= 0 || !alive(pid, tag) {
		exited := false
		select {
		case <-p.done:
			exited = true
		default:
		}
		t.Fatalf("the child did not start (faciofs exec exited: %v); stderr: %s", exited, redact(p.stderr()))
	}
	t.Cleanup(func() {
		if alive(pid, tag) {
			t.Errorf("the child (pid %d) outlived the test; killing it", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return pid
}

// sleepChild is a child that writes its pid to pidFile, ignores SIGTERM
// if ignoreTerm, and sleeps for tag seconds.
func sleepChild(pidFile, tag string, ignoreTerm bool) []string {
	script := `echo $$ > "$1.tmp" && mv "$1.tmp" "$1" && exec sleep "$2"`
	if ignoreTerm {
		script = `trap "" TERM; ` + script
	}
	return []string{"sh", "-c", script, "sh", pidFile, tag}
}

// TestExecSignals: signals sent to `faciofs exec` reach the child; a
// caller that is killed takes its child down (SIGTERM, and SIGKILL after 5
// seconds for a child that ignores SIGTERM); exec.end says how each ended.
func TestExecSignals(t *testing.T) {
	t.Parallel()
	e, _ := startExecMount(t, execPolicy)

	t.Run("SIGINT kills the child", func(t *testing.T) {
		t.Parallel()
		pidFile, tag := filepath.Join(t.TempDir(), "pid"), uniqueTag()
		p := e.startExec(t, append([]string{"--expose", "X", "--"}, sleepChild(pidFile, tag, false)...)...)
		pid := waitChild(t, p, pidFile, tag)
		p.signal(syscall.SIGINT)
		if code := p.wait(); code != 128+int(syscall.SIGINT) {
			t.Errorf("exit %d, want 130 (the child died of SIGINT); stderr %s", code, redact(p.stderr()))
		}
		if s := p.stderr(); s != "" {
			t.Errorf("stderr %q, want nothing (the status speaks)", redact(s))
		}
		if alive(pid, tag) {
			t.Error("the child is still alive after faciofs exec returned")
		}
	})

	t.Run("caught signals and SIGTERM trapped", func(t *testing.T) {
		t.Parallel()
		pidFile, tag := filepath.Join(t.TempDir(), "pid"), uniqueTag()
		script := `
import os, signal, sys, time
pid_file, tag = sys.argv[1], sys.argv[2]
def note(sig, frame):
    with open(pid_file + ".log", "a") as f:
        f.write(signal.Signals(sig).name + "\n")
for s in (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
    signal.signal(s, note)
signal.signal(signal.SIGTERM, lambda *a: os._exit(7))
with open(pid_file + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pid_file + ".tmp", pid_file)
while True:
    time.sleep(1)
`
		p := e.startExec(t, "--expose", "X", "--", "python3", "-c", script, pidFile, tag)
		waitChild(t, p, pidFile, tag)
		for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH} {
			p.signal(sig)
			name := unix.SignalName(sig)
			if !eventually(10*time.Second, func() bool {
				b, _ := os.ReadFile(pidFile + ".log")
				return strings.Contains(string(b), name+"\n")
			}) {
				t.Errorf("%s sent to faciofs exec did not reach the child", name)
			}
		}
		p.signal(syscall.SIGTERM)
		if code := p.wait(); code != 7 {
			t.Errorf("exit %d, want 7 (the child's SIGTERM handler); stderr %s", code, redact(p.stderr()))
		}
	})

	t.Run("caller killed", func(t *testing.T) {
		t.Parallel()
		pidFile, tag := filepath.Join(t.TempDir(), "pid"), uniqueTag()
		p := e.startExec(t, append([]string{"--expose", "X", "--"}, sleepChild(pidFile, tag, false)...)...)
		pid := waitChild(t, p, pidFile, tag)
		start := time.Now()
		p.signal(syscall.SIGKILL)
		if !eventually(10*time.Second, func() bool { return !alive(pid, tag) }) {
			t.Errorf("the child (pid %d) is still alive 10 s after faciofs exec was killed", pid)
		}
		t.Logf("the child was gone %v after the caller's SIGKILL", time.Since(start).Round(time.Millisecond))
	})

	t.Run("caller killed, child ignores SIGTERM", func(t *testing.T) {
		t.Parallel()
		pidFile, tag := filepath.Join(t.TempDir(), "pid"), uniqueTag()
		p := e.startExec(t, append([]string{"--expose", "X", "--"}, sleepChild(pidFile, tag, true)...)...)
		pid := waitChild(t, p, pidFile, tag)
		start := time.Now()
		p.signal(syscall.SIGKILL)
		if !eventually(20*time.Second, func() bool { return !alive(pid, tag) }) {
			t.Errorf("the child (pid %d) ignoring SIGTERM is still alive 20 s after faciofs exec was killed", pid)
		}
		took := time.Since(start)
		t.Logf("the child ignoring SIGTERM was gone %v after the caller's SIGKILL", took.Round(time.Millisecond))
		if took < 3*time.Second {
			t.Errorf("the child ignoring SIGTERM died after %v: it did not get its grace period", took)
		}
	})

	// After all four: exec.end says how each child ended. The daemon
	// writes it once the child is reaped, a moment after it is gone.
	t.Cleanup(func() {
		want := []string{"killed by SIGINT, 0 redactions", "exit status 7, 0 redactions",
			"killed by SIGTERM, 0 redactions", "killed by SIGKILL, 0 redactions"}
		var details []string
		eventually(15*time.Second, func() bool {
			details = details[:0]
			for _, m := range e.execRecords(t, "--event", "exec.end") {
				details = append(details, fmt.Sprint(m["detail"]))
			}
			return len(details) >= len(want)
		})
		for _, w := range want {
			found := false
			for _, d := range details {
				found = found || d == w
			}
			if !found {
				t.Errorf("no exec.end record %q; have %q", w, details)
			}
		}
	})
}

// TestExecStdinCwdEnv: the child reads the caller's stdin, runs in the
// caller's working directory, finds commands in the caller's PATH (and a
// relative ./command in that directory), sees the caller's environment,
// and sees the stored value of an exposed name even where the caller's
// environment has another value under that name.
func TestExecStdinCwdEnv(t *testing.T) {
	t.Parallel()
	e, _ := startExecMount(t, execPolicy)

	in := "line one\n" + valX + "\nline three\n"
	r := e.execRun(t, in, "--expose", "X", "--", "cat")
	if want := "line one\n" + redacted("X") + "\nline three\n"; r.code != 0 || r.stdout != want {
		t.Errorf("stdin through cat: exit %d, stdout %q, want %q", r.code, redact(r.stdout), want)
	}
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	r = e.execRun(t, big+valU, "--expose", "X", "--", "cat")
	if r.code != 0 {
		t.Errorf("1 MiB through cat: exit %d", r.code)
	}
	sameBytes(t, "1 MiB of stdin through cat", r.stdout, big+redacted("U"))

	work := filepath.Join(e.dir, "work dir", "sub")
	bindir := filepath.Join(e.dir, "bin")
	for _, d := range []string{work, bindir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(bindir, "faciofs-test-tool"), "#!/bin/sh\necho \"tool in $(pwd)\"\n", 0o755)
	writeFile(t, filepath.Join(work, "local.sh"), "#!/bin/sh\necho \"local $EXTRA_VAR\"\n", 0o755)
	kv := []string{"EXTRA_VAR=FAKE-not-secret-extra", "X=FAKE-caller-decoy-0010", "PATH=" + bindir + ":" + os.Getenv("PATH")}
	script := `
import hashlib, os
print(os.getcwd())
print(os.environ.get("EXTRA_VAR"))
print(hashlib.sha256(os.environb[b"X"]).hexdigest())
print("U" in os.environ, "Y" in os.environ)
`
	r = e.execIn(t, work, kv, "", "--expose", "X", "--", "python3", "-c", script)
	sum := sha256.Sum256([]byte(valX))
	want := work + "\nFAKE-not-secret-extra\n" + hex.EncodeToString(sum[:]) + "\nFalse False\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("cwd and environment: exit %d, stdout %q, want %q; stderr %s", r.code, redact(r.stdout), want, redact(r.stderr))
	}
	r = e.execIn(t, work, kv, "", "--expose", "X", "--", "faciofs-test-tool")
	if want := "tool in " + work + "\n"; r.code != 0 || r.stdout != want {
		t.Errorf("command from the caller's PATH: exit %d, stdout %q, want %q; stderr %s", r.code, r.stdout, want, redact(r.stderr))
	}
	r = e.execIn(t, work, kv, "", "--expose", "X", "--", "./local.sh")
	if want := "local FAKE-not-secret-extra\n"; r.code != 0 || r.stdout != want {
		t.Errorf("./local.sh in the caller's directory: exit %d, stdout %q, want %q; stderr %s", r.code, r.stdout, want, redact(r.stderr))
	}
}

// periodic checks, as a stream arrives, that it is pattern repeated.
type periodic struct {
	pattern []byte
	n       int64 // bytes seen
	bad     int64 // offset of the first wrong byte, -1 if none
}

func (c *periodic) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.bad < 0 {
		off := int(c.n % int64(len(c.pattern)))
		k := min(len(p), len(c.pattern)-off)
		if !bytes.Equal(p[:k], c.pattern[off:off+k]) {
			i := 0
			for p[i] == c.pattern[off+i] {
				i++
			}
			c.bad = c.n + int64(i)
		}
		c.n += int64(k)
		p = p[k:]
	}
	if c.bad >= 0 {
		c.n += int64(len(p))
	}
	return n, nil
}

// TestExecFlood: a child writes 256 MiB (32 MiB with -short) of binary
// blocks with X after every 64 KiB on stdout, and U after every 64 blocks
// on stderr; all of it arrives, byte for byte, with every value replaced.
func TestExecFlood(t *testing.T) {
	t.Parallel()
	e, _ := startExecMount(t, execPolicy)
	blocks := 4096 // of 64 KiB: 256 MiB
	if testing.Short() {
		blocks = 512
	}
	script := `
import os, sys
n = int(sys.argv[1])
x, u = os.environb[b"X"], os.environb[b"U"]
block = bytes(range(256)) * 256
out, err = sys.stdout.buffer, sys.stderr.buffer
for i in range(n):
    out.write(block)
    out.write(x)
    if i % 64 == 63:
        err.write(u + b"\n")
out.flush()
err.flush()
`
	block := bytes.Repeat(func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), 256)
	stdout := &periodic{pattern: append(append([]byte(nil), block...), redacted("X")...), bad: -1}
	stderr := &periodic{pattern: []byte(redacted("U") + "\n"), bad: -1}
	c := exec.Command(bin, "exec", "--expose", "X,U", "--", "python3", "-c", script, strconv.Itoa(blocks))
	c.Env, c.Dir = e.environ(), e.dir
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Stdout, c.Stderr = stdout, stderr
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(cmdTimeout, func() { _ = c.Process.Kill() })
	err := c.Wait()
	timer.Stop()
	elapsed := time.Since(start)
	if err != nil {
		t.Errorf("faciofs exec: %v", err)
	}
	wantOut := int64(blocks) * int64(len(stdout.pattern))
	if stdout.bad >= 0 || stdout.n != wantOut {
		t.Errorf("stdout: %d bytes, want %d; first wrong byte at %d", stdout.n, wantOut, stdout.bad)
	}
	if wantErr := int64(blocks/64) * int64(len(stderr.pattern)); stderr.bad >= 0 || stderr.n != wantErr {
		t.Errorf("stderr: %d bytes, want %d; first wrong byte at %d", stderr.n, wantErr, stderr.bad)
	}
	in := float64(blocks) * float64(len(block)+len(valX))
	t.Logf("flood: %d MiB through faciofs exec in %v: %.0f MB/s (%d redactions)",
		int(in)>>20, elapsed.Round(time.Millisecond), in/elapsed.Seconds()/1e6, blocks+blocks/64)

	// The same child writing to the same checks without faciofs, for scale.
	var n atomic.Int64
	direct := exec.Command("python3", "-c", script, strconv.Itoa(blocks))
	direct.Env = withEnv(e.environ(), "X="+valX, "U="+valU)
	direct.Stdout, direct.Stderr = countWriter{&n}, io.Discard
	start = time.Now()
	if err := direct.Run(); err != nil {
		t.Errorf("the child alone: %v", err)
	}
	d := time.Since(start)
	t.Logf("flood: the child alone into a pipe: %.0f MB/s", float64(n.Load())/d.Seconds()/1e6)

	if m := e.execRecords(t, "--event", "exec.end"); len(m) != 1 || fmt.Sprint(m[0]["detail"]) != fmt.Sprintf("exit status 0, %d redactions", blocks+blocks/64) {
		t.Errorf("exec.end after the flood: %v", redact(fmt.Sprint(m)))
	}
}

type countWriter struct{ n *atomic.Int64 }

func (w countWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// TestExecAudit: exec.start (outcome ok, the exposed names, the command
// line with values in it redacted) and exec.end (the status and the
// number of redactions) are in the audit; no file under the store's
// directory holds a value; the chain verifies.
func TestExecAudit(t *testing.T) {
	t.Parallel()
	e, d := startExecMount(t, execPolicy)
	// The command line holds Y's value: the child echoes it; the audit
	// keeps the command line without it.
	r := e.execRun(t, "", "--expose", "X,U", "--", "sh", "-c", `printf '%s\n' "$X" "$1" "$U"; exit 5`, "faciofs-audit-test", valY)
	if want := redacted("X") + "\n" + redacted("Y") + "\n" + redacted("U") + "\n"; r.code != 5 || r.stdout != want {
		t.Errorf("exit %d, stdout %q; want 5 and %q", r.code, redact(r.stdout), want)
	}
	starts := e.execRecords(t, "--event", "exec.start")
	ends := e.execRecords(t, "--event", "exec.end")
	if len(starts) != 1 || len(ends) != 1 {
		t.Fatalf("%d exec.start and %d exec.end records, want one each", len(starts), len(ends))
	}
	s, end := starts[0], ends[0]
	if s["outcome"] != "ok" || creds(s) != "[X U]" || !strings.Contains(fmt.Sprint(s["detail"]), "sh -c printf") || !strings.Contains(fmt.Sprint(s["detail"]), "faciofs-audit-test") {
		t.Errorf("exec.start: %v", redact(fmt.Sprint(s)))
	}
	if end["outcome"] != "ok" || creds(end) != "[X U]" || end["detail"] != "exit status 5, 3 redactions" {
		t.Errorf("exec.end: %v; want outcome ok, [X U], \"exit status 5, 3 redactions\"", redact(fmt.Sprint(end)))
	}
	for _, m := range []map[string]any{s, end} {
		if pid, _ := actorField(m, "pid").(float64); pid <= 0 || actorField(m, "uid") != float64(os.Getuid()) {
			t.Errorf("%v record without the caller's pid and uid: %v", m["event"], redact(fmt.Sprint(m["actor"])))
		}
	}
	if got := e.execRecords(t, "--event", "exec.start", "--key", "U"); len(got) != 1 {
		t.Errorf("audit --event exec.start --key U: %d records", len(got))
	}
	if got := e.execRecords(t, "--event", "exec.start", "--key", "Y"); len(got) != 0 {
		t.Errorf("audit --key Y finds %d exec.start records: Y was on the command line, not exposed", len(got))
	}
	table := e.ok("", "audit", "--event", "exec.end").stdout
	if !strings.Contains(table, "exec.end") || !strings.Contains(table, "X,U") {
		t.Errorf("audit table: %s", redact(table))
	}
	e.ok("", "audit", "verify")
	noLeakTree(t, filepath.Dir(e.store))
	noLeak(t, "stderr of faciofs mount", []byte(d.stderr.String()))
}

// TestExecAuditCommandLineForms: the command line an exec.start record
// keeps must hold no encoded form of a value either (invariants 2 and 5:
// the audit log holds nothing derived from a value): a caller that passes
// a token hex- or base64-encoded on the command line does not get it
// written to disk.
func TestExecAuditCommandLineForms(t *testing.T) {
	t.Parallel()
	e, _ := startExecMount(t, execPolicy)
	args := []string{
		hex.EncodeToString([]byte(valX)),
		base64.StdEncoding.EncodeToString([]byte("x" + valX)),
		base64.URLEncoding.EncodeToString([]byte("Authorization: Basic " + valU)),
	}
	r := e.execRun(t, "", append([]string{"--expose", "X", "--", "echo"}, args...)...)
	if r.code != 0 || strings.Count(r.stdout, "[REDACTED:") != 3 {
		t.Errorf("exit %d, stdout %q; want 0 and three markers", r.code, redact(r.stdout))
	}
	noLeakTree(t, filepath.Join(filepath.Dir(e.store), "audit"))
	s := e.execRecords(t, "--event", "exec.start")
	if len(s) != 1 || !strings.HasPrefix(fmt.Sprint(s[0]["detail"]), "echo ") || strings.Count(fmt.Sprint(s[0]["detail"]), "REDACTED:") != 3 {
		t.Errorf("exec.start: %v; want the command line with three [REDACTED:NAME]", redact(fmt.Sprint(s)))
	}
}

// TestExecQuickChildren: many children that end at once, started by
// callers running side by side: each caller gets its child's status and
// output, never an error about the mount. (A child that ends before the
// daemon has told the caller that it started is the case to cover.)
func TestExecQuickChildren(t *testing.T) {
	t.Parallel()
	e, _ := startExecMount(t, execPolicy)
	const workers, runs = 4, 100
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range runs {
				r, err := runBin(e.environ(), e.dir, "", "exec", "--expose", "X", "--", "sh", "-c", `echo "$X"; exit 42`)
				outcome := "ok"
				switch {
				case err != nil:
					outcome = err.Error()
				case r.code != 42 || r.stdout != redacted("X")+"\n" || r.stderr != "":
					outcome = fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, redact(r.stdout), redact(r.stderr))
				}
				mu.Lock()
				counts[outcome]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for outcome, n := range counts {
		if outcome != "ok" {
			t.Errorf("%d of %d quick children: %s (want exit 42, the marker, nothing on stderr)", n, workers*runs, outcome)
		}
	}
	t.Logf("%d quick children: %v", workers*runs, counts)
}
