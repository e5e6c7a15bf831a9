package main

// Black-box tests of the faciofs command. TestMain builds the binary once;
// every test runs it with exec.Command in its own temporary directory, with
// its own store ($FACIOFS_STORE) and a 0600 password file. The fake values
// below must never appear in any output of any command, in the store file or
// in a backing directory; failure messages pass everything through redact so
// that they never print one either.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faciofs/faciofs/internal/leakcheck"
	"github.com/faciofs/faciofs/internal/testkit"
)

const (
	password    = "FAKE-master-pw-0001"
	newPassword = "FAKE-master-pw-0002"
	valX        = "FAKE-sk-test-0001-xyz" // in the template store as X
	valY        = "FAKE-sk-test-0002-abc"
	valX2       = "FAKE-sk-test-0003-rot" // X after a replace
	valArgv     = "FAKE-argv-0004-qqq"    // given on argv, must not be echoed
	valLocked   = "FAKE-locked-0005-zzz"  // piped while the store is locked
	bigUnit     = "FAKE-big-0006-"        // repeated to build values near 64 KiB
	readyPrefix = "faciofs: serving"
	cmdTimeout  = 120 * time.Second // one command, on a heavily loaded machine
)

// secrets are checked for (with their encodings) in every output.
var secrets = []string{password, newPassword, valX, valY, valX2, valArgv, valLocked, bigUnit, valU}

var (
	bin           string // the faciofs binary under test
	templateStore string // a store with password and X=valX
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "faciofs-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "faciofs")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	build := exec.Command(gobin, "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building faciofs:", err)
		return 1
	}

	// One store, made once and copied by the tests that need one: every
	// init and unlock costs an argon2id derivation.
	tdir := filepath.Join(dir, "template")
	if err := os.Mkdir(tdir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	templateStore = filepath.Join(tdir, "store.db")
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	environ := append(cleanEnviron(), "HOME="+dir, "FACIOFS_STORE="+templateStore, "FACIOFS_PASSWORD_FILE="+pw)
	for _, step := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"init"}},
		{valX + "\n", []string{"secret", "set", "X"}},
	} {
		r, err := runBin(environ, dir, step.stdin, step.args...)
		if err != nil || r.code != 0 {
			fmt.Fprintf(os.Stderr, "making the template store: %v: exit %d: %s\n", err, r.code, redact(r.stderr))
			return 1
		}
	}
	return m.Run()
}

// cleanEnviron is the test's environment without anything that would
// change where faciofs looks for its store or password.
func cleanEnviron() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "FACIOFS_"), k == "CREDENTIALS_DIRECTORY", k == "XDG_DATA_HOME", k == "HOME":
			continue
		}
		out = append(out, kv)
	}
	return out
}

type result struct {
	stdout, stderr string
	code           int
}

func runBin(environ []string, dir, stdin string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = environ
	c.Dir = dir
	// No controlling terminal: a prompt must never wait for a human.
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
		err = nil
	case ctx.Err() != nil:
		err = fmt.Errorf("timed out after %v", cmdTimeout)
	}
	return r, err
}

// env is one test's private world: a directory, a store path and a
// password file.
type env struct {
	t      *testing.T
	dir    string
	store  string
	pwFile string // exported as $FACIOFS_PASSWORD_FILE unless empty
}

// newEnv makes an environment; with template, the store is a copy of the
// template store (password `password`, X=valX).
func newEnv(t *testing.T, template bool) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, store: filepath.Join(dir, "data", "store.db"), pwFile: filepath.Join(dir, "pw")}
	writeFile(t, e.pwFile, password+"\n", 0o600)
	if template {
		if err := os.Mkdir(filepath.Dir(e.store), 0o700); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(templateStore)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, e.store, string(b), 0o600)
	}
	return e
}

func (e *env) environ() []string {
	out := append(cleanEnviron(), "HOME="+filepath.Join(e.dir, "home"), "FACIOFS_STORE="+e.store)
	if e.pwFile != "" {
		out = append(out, "FACIOFS_PASSWORD_FILE="+e.pwFile)
	}
	return out
}

// run runs faciofs with stdin and args and checks that no fake value is in
// its output.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	r, err := runBin(e.environ(), e.dir, stdin, args...)
	desc := redact("faciofs " + strings.Join(args, " "))
	if err != nil {
		e.t.Fatalf("%s: %v; stderr: %s", desc, err, redact(r.stderr))
	}
	noLeak(e.t, "stdout of "+desc, []byte(r.stdout))
	noLeak(e.t, "stderr of "+desc, []byte(r.stderr))
	noPanic(e.t, desc, r.stderr)
	return r
}

// ok runs a command that must succeed.
func (e *env) ok(stdin string, args ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("faciofs %s: exit %d, want 0; stderr: %s", redact(strings.Join(args, " ")), r.code, redact(r.stderr))
	}
	return r
}

// fail runs a command that must fail with code and one error line holding
// every part of want.
func (e *env) fail(code int, stdin string, args []string, want ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	wantErrLine(e.t, "faciofs "+strings.Join(args, " "), r, code, want...)
	return r
}

// wantErrLine checks the §6 error contract: the exit code, nothing on
// stdout, and exactly one line on stderr, starting "faciofs: ".
func wantErrLine(t *testing.T, desc string, r result, code int, want ...string) {
	t.Helper()
	desc = redact(desc)
	if r.code != code {
		t.Errorf("%s: exit %d, want %d; stderr: %s", desc, r.code, code, redact(r.stderr))
	}
	if r.stdout != "" {
		t.Errorf("%s: failed but printed on stdout: %s", desc, redact(r.stdout))
	}
	if !strings.HasPrefix(r.stderr, "faciofs: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("%s: stderr is not one line starting \"faciofs: \": %q", desc, redact(r.stderr))
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("%s: stderr %q does not mention %q", desc, redact(r.stderr), w)
		}
	}
}

func noPanic(t *testing.T, desc, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Errorf("%s: stderr shows a panic or stack trace: %s", redact(desc), truncate(redact(stderr), 2000))
	}
}

// leaks are the fake secrets in every form an observer could recognise
// (internal/leakcheck), named by their place in secrets.
var leaks = leakcheck.New(func() map[string]string {
	m := map[string]string{}
	for i, v := range secrets {
		m[fmt.Sprintf("fake secret #%d", i)] = v
	}
	return m
}())

// redact replaces every fake value and its encodings with a marker, for
// printing command lines and outputs in failure messages.
func redact(s string) string { return leaks.Redact(s) }

// The shared test pieces (internal/testkit, internal/leakcheck) under the
// names this suite uses.
type syncBuffer = testkit.SyncBuffer

var eventually = testkit.Eventually

// noLeak fails if data holds a fake value or one of its encodings, naming
// the credential, never the value.
func noLeak(t *testing.T, where string, data []byte) {
	t.Helper()
	leaks.Check(t, where, data)
}

// noLeakTree checks every regular file under dir.
func noLeakTree(t *testing.T, dir string) {
	t.Helper()
	leaks.CheckTree(t, dir)
}

func stale(path string) bool { return testkit.Stale(path) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unchanged fails if the file at path no longer holds before.
func unchanged(t *testing.T, what, path string, before []byte) {
	t.Helper()
	after, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: store: %v", what, err)
		return
	}
	if !bytes.Equal(before, after) {
		t.Errorf("%s changed the store file", redact(what))
	}
}

// knownBug fails the test with the description of a defect the tests
// found in non-test code (kept as a name for what these checks guard).
func knownBug(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Error("BUG: " + fmt.Sprintf(format, args...))
}

// mounted reports whether path is a mount point in /proc/self/mounts.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	m, err := testkit.Mounted(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mountProc is a `faciofs mount` running in the background.
type mountProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mnt    string
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	werr   error
}

// startMount starts `faciofs mount ARGS... MNT` (the mountpoint last) and
// registers a cleanup that kills it and removes its mount whatever happens.
func (e *env) startMount(mnt string, args ...string) *mountProc {
	e.t.Helper()
	argv := append(append([]string{"mount"}, args...), mnt)
	c := exec.Command(bin, argv...)
	c.Env = e.environ()
	c.Dir = e.dir
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	d := &mountProc{t: e.t, cmd: c, mnt: mnt, done: make(chan struct{})}
	c.Stdout, c.Stderr = &d.stdout, &d.stderr
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		d.werr = c.Wait()
		close(d.done)
	}()
	e.t.Cleanup(d.cleanup)
	return d
}

func (d *mountProc) cleanup() {
	if !d.exited(0) {
		_ = d.cmd.Process.Kill()
		if !d.exited(15 * time.Second) {
			d.t.Errorf("faciofs mount (pid %d) did not die after SIGKILL", d.cmd.Process.Pid)
		}
	}
	if mounted(d.t, d.mnt) || stale(d.mnt) {
		if err := syscall.Unmount(d.mnt, syscall.MNT_DETACH); err != nil {
			d.t.Errorf("cleanup: umount -l %s: %v", d.mnt, err)
		}
	}
	d.checkOutput()
}

func (d *mountProc) checkOutput() {
	d.t.Helper()
	noLeak(d.t, "stdout of faciofs mount", []byte(d.stdout.String()))
	noLeak(d.t, "stderr of faciofs mount", []byte(d.stderr.String()))
	noPanic(d.t, "faciofs mount", d.stderr.String())
}

// ready waits for the ready line; the daemon must not have exited.
func (d *mountProc) ready() {
	d.t.Helper()
	ok := eventually(cmdTimeout, func() bool {
		return strings.Contains(d.stdout.String(), readyPrefix) || d.exited(0)
	})
	if !ok || !strings.Contains(d.stdout.String(), readyPrefix) {
		d.t.Fatalf("faciofs mount not ready (exited: %v); stdout: %s; stderr: %s",
			d.exited(0), redact(d.stdout.String()), redact(d.stderr.String()))
	}
	if !mounted(d.t, d.mnt) {
		d.t.Fatalf("faciofs mount says it is serving but %s is not in /proc/mounts", d.mnt)
	}
}

func (d *mountProc) pid() int { return d.cmd.Process.Pid }

func (d *mountProc) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v: %v", sig, err)
	}
}

// exited waits up to d for the process to exit.
func (d *mountProc) exited(timeout time.Duration) bool {
	if timeout <= 0 {
		select {
		case <-d.done:
			return true
		default:
			return false
		}
	}
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// exitCode is the exit code of an exited daemon, -1 for a signal.
func (d *mountProc) exitCode() int {
	<-d.done
	return d.cmd.ProcessState.ExitCode()
}

// startHolder starts `sleep` that keeps the mount busy: with its working
// directory at dir or with file open as its stdin. It is killed at cleanup.
func startHolder(t *testing.T, dir string, file *os.File) *exec.Cmd {
	t.Helper()
	c := exec.Command("sleep", "600")
	c.Dir = dir
	if file != nil {
		c.Stdin = file
	}
	c.Stdout, c.Stderr = io.Discard, io.Discard
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		<-done
	})
	return c
}

// consumerExe copies cat to a private path, for a policy to name.
func consumerExe(t *testing.T, dir string) string {
	t.Helper()
	src, err := exec.LookPath("cat")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "consumer-cat")
	writeFile(t, p, string(readFile(t, src)), 0o755)
	return p
}

// consumerPolicy writes a policy under which exe is a consumer of X and Y
// on every path.
func consumerPolicy(t *testing.T, dir, exe string) string {
	t.Helper()
	p := filepath.Join(dir, "policy.yaml")
	writeFile(t, p, fmt.Sprintf(`version: 1
consumers:
  - name: test-consumer
    match:
      exe: [%s]
    credentials: [X, Y]
    paths: ["**"]
`, exe), 0o600)
	return p
}

// readAs runs exe (a cat) on path and returns what it read.
func readAs(t *testing.T, exe, path string) string {
	t.Helper()
	var out, errb bytes.Buffer
	c := exec.Command(exe, path)
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("%s %s: %v: %s", exe, path, err, redact(errb.String()))
	}
	return out.String()
}

// mkdirs makes backing and mountpoint directories under the env.
func (e *env) mkdirs() (backing, mnt string) {
	e.t.Helper()
	backing, mnt = filepath.Join(e.dir, "backing"), filepath.Join(e.dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			e.t.Fatal(err)
		}
	}
	return backing, mnt
}
