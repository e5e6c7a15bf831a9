// Package reliability proves faciofs keeps its promises under faults,
// hostile input and stress: nothing lost (every fsynced byte survives),
// nothing leaked (no value at rest, none to the agent), fail closed.
//
// Every test drives the real faciofs binary on a real FUSE mount and
// needs root and /dev/fuse; without them the tests skip and say why.
// FACIOFS_STRESS=long runs the soak versions (1 GiB files, minutes of
// stress); the default keeps the whole package around two minutes.
//
// The test binary doubles as its helper programs (writers, readers): run
// with FACIOFS_REL_ROLE set, it plays that role instead of testing. A copy
// of it at another inode is the consumer the policy names.
//
// Every value below is fake. Failure messages pass through redact.
package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faciofs/faciofs/internal/leakcheck"
	"github.com/faciofs/faciofs/internal/testkit"
)

const (
	masterPassword = "FAKE-master-pw-rel-0001"
	agentUID       = 4303
	readyPrefix    = "faciofs: serving"
	cmdTimeout     = 120 * time.Second
	roleEnv        = "FACIOFS_REL_ROLE"
)

// creds are the fake credentials of the template store.
var creds = map[string]string{
	"REL_A":    "FAKE-rel-alpha-0001",
	"REL_B":    "FAKE-rel-beta-0002-" + strings.Repeat("qrs", 20),
	"REL_JSON": `FAKE-rel-json-0003-"q"\z`,
	// 128 characters: the longest name the grammar allows.
	strings.Repeat("N", 128): "FAKE-rel-longname-0004",
}

var (
	workDir, binDir string
	faciofsBin      string
	consumerBin     string // a copy of the test binary: the consumer
	helperBin       string // another copy: a non-consumer helper
	templateStore   string
	setupErr        error
	skipReason      string
)

func long() bool { return os.Getenv("FACIOFS_STRESS") == "long" }

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	code := func() int {
		if skipReason = testkit.CannotMount(); skipReason != "" {
			return m.Run()
		}
		var err error
		workDir, err = os.MkdirTemp("", "faciofs-rel-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(workDir)
		setupErr = setup()
		return m.Run()
	}()
	os.Exit(code)
}

func setup() error {
	if err := os.Chmod(workDir, 0o755); err != nil {
		return err
	}
	binDir = filepath.Join(workDir, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		return err
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	// The daemon is built with the race detector: the stress and fault
	// tests double as race tests of the daemon itself.
	build := exec.Command(gobin, "build", "-race", "-o", binDir+"/", "../cmd/faciofs")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building faciofs: %v", err)
	}
	faciofsBin = filepath.Join(binDir, "faciofs")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	consumerBin = filepath.Join(binDir, "consumer")
	helperBin = filepath.Join(binDir, "helper")
	for _, dst := range []string{consumerBin, helperBin} {
		if err := copyFile(self, dst, 0o755); err != nil {
			return err
		}
	}

	priv := filepath.Join(workDir, "template")
	if err := os.Mkdir(priv, 0o700); err != nil {
		return err
	}
	templateStore = filepath.Join(priv, "store.db")
	pw := filepath.Join(priv, "pw")
	if err := os.WriteFile(pw, []byte(masterPassword+"\n"), 0o600); err != nil {
		return err
	}
	run := func(stdin string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		c := exec.CommandContext(ctx, faciofsBin, append([]string{"--store", templateStore, "--password-file", pw}, args...)...)
		c.Env = baseEnv(priv)
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("faciofs %s: %v: %s", args[0], err, redact(string(out)))
		}
		return nil
	}
	if err := run("", "init"); err != nil {
		return err
	}
	names := make([]string, 0, len(creds))
	for n := range creds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := run(creds[n]+"\n", "secret", "set", n); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func baseEnv(home string) []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + home, "LC_ALL=C.UTF-8", "GORACE=atexit_sleep_ms=0"}
}

func requireSetup(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ---- leak detection --------------------------------------------------------

// leaks are the fake credentials and the master password in every form an
// observer could recognise (internal/leakcheck).
var leaks = leakcheck.New(func() map[string]string {
	m := map[string]string{"the master password": masterPassword}
	for k, v := range creds {
		m[k] = v
	}
	return m
}())

// findLeak names the first fake credential found in data, in any form.
func findLeak(data []byte) string { return leaks.Find(data) }

// redact replaces every fake value and its encodings with a marker.
func redact(s string) string { return leaks.Redact(s) }

// The shared test pieces (internal/testkit, internal/leakcheck) under the
// names this suite uses.
type syncBuffer = testkit.SyncBuffer

var eventually = testkit.Eventually

func stale(path string) bool { return testkit.Stale(path) }

func mounted(path string) bool {
	m, _ := testkit.Mounted(path)
	return m
}

// noLeak fails if data holds any fake value in any form, naming the
// credential, never the value.
func noLeak(t *testing.T, where string, data []byte) {
	t.Helper()
	leaks.Check(t, where, data)
}

// noLeakTree checks every regular file under dir but the test's own
// password file.
func noLeakTree(t *testing.T, dir string) {
	t.Helper()
	leaks.CheckTree(t, dir, "pw")
}

func ph(name string) string { return "${credentials." + name + "}" }

// ---- a mount ---------------------------------------------------------------

// env is one test's layout:
//
//	dir/         0755
//	  mnt/             the mount
//	  private/   0700  root only: backing/ (owned by the agent), store.db,
//	                   audit/, pw, policy.yaml, daemon.log
type env struct {
	t                           *testing.T
	dir, priv, mnt, backing     string
	exp                         string // 0700, root only: expected resolved views (not scanned for values)
	store, pwFile, policy, logf string
}

// daemon is one running `faciofs mount`.
type daemon struct {
	e      *env
	cmd    *exec.Cmd
	stdout syncBuffer
	done   chan struct{}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireSetup(t)
	dir, err := os.MkdirTemp(workDir, strings.ReplaceAll(t.Name(), "/", "_")+"-")
	must(t, err)
	e := &env{t: t, dir: dir, priv: filepath.Join(dir, "private"), mnt: filepath.Join(dir, "mnt")}
	e.backing = filepath.Join(e.priv, "backing")
	e.store = filepath.Join(e.priv, "store.db")
	e.pwFile = filepath.Join(e.priv, "pw")
	e.policy = filepath.Join(e.priv, "policy.yaml")
	e.logf = filepath.Join(e.priv, "daemon.log")
	must(t, os.Chmod(dir, 0o755))
	must(t, os.Mkdir(e.priv, 0o700))
	e.exp = filepath.Join(dir, "expect")
	must(t, os.Mkdir(e.exp, 0o700))
	must(t, os.Mkdir(e.mnt, 0o755))
	must(t, os.Mkdir(e.backing, 0o755))
	must(t, os.Chown(e.backing, agentUID, agentUID))
	must(t, os.WriteFile(e.pwFile, []byte(masterPassword+"\n"), 0o600))
	must(t, copyFile(templateStore, e.store, 0o600))
	must(t, os.WriteFile(e.policy, []byte(defaultPolicy()), 0o600))
	// Last cleanup to run: nothing may stay mounted, no value may be at rest.
	t.Cleanup(func() {
		if mounted(e.mnt) {
			_ = syscall.Unmount(e.mnt, syscall.MNT_DETACH)
		}
		noLeakTree(t, e.priv)
	})
	return e
}

// defaultPolicy: the agent uid is an agent; the consumer copy of the test
// binary reads every credential on every path.
func defaultPolicy() string {
	return fmt.Sprintf(`version: 1
agents:
  - uid: %d
consumers:
  - name: rel
    match:
      exe: [%s]
    credentials: ["*"]
    paths: ["**"]
`, agentUID, consumerBin)
}

// start mounts and waits for the ready line; cleanup stops the daemon and
// checks its output and log for values and panics.
func (e *env) start(extra ...string) *daemon {
	t := e.t
	t.Helper()
	d := e.spawn(extra...)
	deadline := time.Now().Add(cmdTimeout)
	for !strings.Contains(d.stdout.String(), readyPrefix) {
		select {
		case <-d.done:
			t.Fatalf("faciofs mount exited: %s; log: %s", redact(d.stdout.String()), redact(e.log()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("faciofs mount not ready after %v; log: %s", cmdTimeout, redact(e.log()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// spawn starts `faciofs mount` without waiting.
func (e *env) spawn(extra ...string) *daemon {
	t := e.t
	t.Helper()
	logFile, err := os.OpenFile(e.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	must(t, err)
	defer logFile.Close()
	args := append([]string{"--store", e.store, "--password-file", e.pwFile, "mount", "--verbose", "--policy", e.policy}, extra...)
	args = append(args, e.backing, e.mnt)
	c := exec.Command(faciofsBin, args...)
	c.Env = baseEnv(e.priv)
	c.Dir = e.priv
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	d := &daemon{e: e, cmd: c, done: make(chan struct{})}
	c.Stdout, c.Stderr = &d.stdout, logFile
	must(t, c.Start())
	go func() { _ = c.Wait(); close(d.done) }()
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) exited(within time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(within):
		return false
	}
}

func (d *daemon) exitCode() int { return d.cmd.ProcessState.ExitCode() }

func (d *daemon) signal(s syscall.Signal) { _ = d.cmd.Process.Signal(s) }

func (d *daemon) stop() {
	t := d.e.t
	select {
	case <-d.done:
	default:
		d.signal(syscall.SIGTERM)
		if !d.exited(20 * time.Second) {
			d.signal(syscall.SIGTERM)
			if !d.exited(10 * time.Second) {
				_ = d.cmd.Process.Kill()
				<-d.done
				t.Errorf("faciofs mount (pid %d) did not stop on two SIGTERMs; killed", d.pid())
			}
		}
	}
	if mounted(d.e.mnt) {
		_ = syscall.Unmount(d.e.mnt, syscall.MNT_DETACH)
	}
	log := d.e.log()
	noLeak(t, "stdout of faciofs mount", []byte(d.stdout.String()))
	noLeak(t, "the daemon's log", []byte(log))
	if strings.Contains(log, "panic") || strings.Contains(log, "DATA RACE") {
		t.Errorf("the daemon's log shows a panic or a race: %s", redact(log))
	}
}

func (e *env) log() string {
	b, _ := os.ReadFile(e.logf)
	return string(b)
}

// faciofs runs a CLI command against this env's store.
func (e *env) faciofs(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, faciofsBin, append([]string{"--store", e.store, "--password-file", e.pwFile}, args...)...)
	c.Env = baseEnv(e.priv)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		e.t.Fatalf("faciofs %s: timed out", strings.Join(args, " "))
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		e.t.Fatalf("faciofs %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// ---- helper processes ------------------------------------------------------

type who int

const (
	asRoot     who = iota // the helper copy as root: neither agent nor consumer
	asAgent               // the helper copy as the agent uid
	asConsumer            // the consumer copy as root
)

func (w who) String() string { return [...]string{"root", "agent", "consumer"}[w] }

// helper builds a command running the test binary in a role.
func helper(ctx context.Context, w who, role string, args ...string) *exec.Cmd {
	bin := helperBin
	if w == asConsumer {
		bin = consumerBin
	}
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = append(baseEnv("/"), roleEnv+"="+role)
	c.Dir = "/"
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if w == asAgent {
		a.Credential = &syscall.Credential{Uid: agentUID, Gid: agentUID, NoSetGroups: true}
	}
	c.SysProcAttr = a
	return c
}

type ran struct {
	stdout, stderr string
	code           int
}

// runHelper runs a role to completion (bounded by cmdTimeout).
func runHelper(t *testing.T, w who, role string, args ...string) ran {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := helper(ctx, w, role, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	r := ran{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("helper %s %v as %v: timed out", role, args, w)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("helper %s as %v: %v", role, w, err)
	}
	return r
}

// readAs reads a whole file as w; it returns the bytes and the error text.
func readAs(t *testing.T, w who, path string) (string, string) {
	t.Helper()
	r := runHelper(t, w, "cat", path)
	if r.code != 0 {
		return r.stdout, strings.TrimSpace(r.stderr)
	}
	return r.stdout, ""
}

// fdCount and threads of a process, from /proc.
func fdCount(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

func threads(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}
