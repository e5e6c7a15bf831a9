// Package integration proves faciofs end to end: the real faciofs binary,
// a real policy file, real consumers (psql against a real PostgreSQL,
// docker-compose, curl, an MCP client and server, Python, Node and Go
// config loaders) and an adversarial suite that plays the agent under its
// own uid.
//
// Everything runs as root (mounting, starting processes under other uids);
// without root or /dev/fuse every test skips and says why. Programs a test
// needs and cannot find (psql, docker-compose, curl, node, python3) fail the
// test: .ci/run installs them.
//
// Every value below is fake. Failure messages pass everything through
// redact, so that they never print one.
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faciofs/faciofs/internal/leakcheck"
	"github.com/faciofs/faciofs/internal/testkit"
)

const (
	masterPassword = "FAKE-master-pw-it-0001"
	agentUID       = 4302 // the agent's own uid in every test
	readyPrefix    = "faciofs: serving"
	cmdTimeout     = 120 * time.Second
	roleEnv        = "FACIOFS_IT_ROLE" // the test binary runs as a helper program
)

// creds are the fake credentials of the template store.
var creds = map[string]string{
	"PGPASSWORD":     "FAKE-pg-pass-0001",
	"PG_WRONG":       "FAKE-pg-wrong-0002",
	"API_TOKEN":      "FAKE-api-token-0003-abcdef",
	"OPENAI_API_KEY": `FAKE-sk-openai-0004-"q"\z`, // a quote and a backslash: |json must escape them
	"DB_PASSWORD":    "FAKE-compose-db-0005",
	// Loader values: one much longer and one much shorter than its
	// placeholder, so that resolved and raw sizes differ both ways.
	"LOADER_LONG":  "FAKE-loader-long-0006-" + strings.Repeat("abcdefghij", 8),
	"LOADER_SHORT": "FAKE-s06",
	"ADV_A":        "FAKE-adv-alpha-0007",
	"ADV_B":        "FAKE-adv-beta-0008-" + strings.Repeat("xyz", 30),
}

var (
	workDir       string // world-traversable (0755) root of everything
	binDir        string // 0755: faciofs, helper programs, probe copies
	faciofsBin    string
	templateStore string
	setupErr      error  // TestMain could not prepare: tests fail with it
	skipReason    string // not root, no /dev/fuse: tests skip with it
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	code := func() int {
		if skipReason = testkit.CannotMount(); skipReason != "" {
			return m.Run()
		}
		var err error
		workDir, err = os.MkdirTemp("", "faciofs-it-")
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
	build := exec.Command(gobin, "build", "-o", binDir+"/", "../cmd/faciofs", "./cmd/mcphost", "./cmd/mcpenvcheck")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building faciofs and helpers: %v", err)
	}
	faciofsBin = filepath.Join(binDir, "faciofs")

	// One store with every fake credential, copied by each test: every
	// unlock costs an argon2id derivation.
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
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
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

// baseEnv is a minimal environment for the programs the tests start.
func baseEnv(home string) []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + home, "LC_ALL=C.UTF-8", "GORACE=atexit_sleep_ms=0"}
}

// requireSetup skips (not root, no FUSE) or fails (setup error) the test.
func requireSetup(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// need returns the path of a program the test cannot do without.
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (apt-get install it; .ci/run does): %v", name, err)
	}
	return p
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

// redact replaces every fake value and its encodings with a marker.
func redact(s string) string { return leaks.Redact(s) }

// The shared test pieces (internal/testkit, internal/leakcheck) under the
// names this suite uses.
type syncBuffer = testkit.SyncBuffer

// noLeak fails if data holds any fake value in any form. It names the
// credential, never the value.
func noLeak(t *testing.T, where string, data []byte) {
	t.Helper()
	leaks.Check(t, where, data)
}

// noLeakTree checks every regular file under dir.
func noLeakTree(t *testing.T, dir string) {
	t.Helper()
	leaks.CheckTree(t, dir)
}

// ph is the placeholder of a credential.
func ph(name string) string { return "${credentials." + name + "}" }

// ---- a mount ---------------------------------------------------------------

// mount is one running `faciofs mount` with its own store copy, policy,
// backing directory and log, laid out as a careful deployment would:
//
//	dir/          0755  (world-traversable)
//	  mnt/              the mount; the agent's workspace
//	  bin/        0755  per-test programs (consumer copies)
//	  private/    0700  root only
//	    backing/        BACKING (owned by the agent uid so that it can
//	                    create files through the mount; unreachable by
//	                    path for the agent since private/ is 0700)
//	    store.db, pw, policy.yaml, daemon.log
type mount struct {
	t                           *testing.T
	dir, priv, bin              string
	mnt, backing                string
	store, pwFile, policy, logf string
	cmd                         *exec.Cmd
	stdout                      syncBuffer
	done                        chan struct{}
}

// newMount lays out the directories; start mounts with a policy.
func newMount(t *testing.T) *mount {
	t.Helper()
	requireSetup(t)
	dir, err := os.MkdirTemp(workDir, strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	m := &mount{t: t, dir: dir, priv: filepath.Join(dir, "private"), bin: filepath.Join(dir, "bin"), mnt: filepath.Join(dir, "mnt")}
	m.backing = filepath.Join(m.priv, "backing")
	m.store = filepath.Join(m.priv, "store.db")
	m.pwFile = filepath.Join(m.priv, "pw")
	m.policy = filepath.Join(m.priv, "policy.yaml")
	m.logf = filepath.Join(m.priv, "daemon.log")
	must(t, os.Chmod(dir, 0o755))
	must(t, os.Mkdir(m.priv, 0o700))
	must(t, os.Mkdir(m.bin, 0o755))
	must(t, os.Mkdir(m.mnt, 0o755))
	must(t, os.Mkdir(m.backing, 0o755))
	must(t, os.Chown(m.backing, agentUID, agentUID))
	must(t, os.WriteFile(m.pwFile, []byte(masterPassword+"\n"), 0o600))
	st, err := os.ReadFile(templateStore)
	must(t, err)
	must(t, os.WriteFile(m.store, st, 0o600))
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// start writes the policy and mounts; it returns once the daemon says it
// is serving. Cleanup unmounts, then checks the daemon's output, the log,
// the backing directory and the store directory for values.
func (m *mount) start(policy string) {
	t := m.t
	t.Helper()
	must(t, os.WriteFile(m.policy, []byte(policy), 0o600))
	logFile, err := os.OpenFile(m.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	must(t, err)
	defer logFile.Close()
	c := exec.Command(faciofsBin, "--store", m.store, "--password-file", m.pwFile,
		"mount", "--verbose", "--policy", m.policy, m.backing, m.mnt)
	c.Env = baseEnv(m.priv)
	c.Dir = m.priv
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Stdout, c.Stderr = &m.stdout, logFile
	must(t, c.Start())
	m.cmd = c
	m.done = make(chan struct{})
	go func() { _ = c.Wait(); close(m.done) }()
	t.Cleanup(m.stop)
	deadline := time.Now().Add(cmdTimeout)
	for !strings.Contains(m.stdout.String(), readyPrefix) {
		select {
		case <-m.done:
			t.Fatalf("faciofs mount exited: %s; log: %s", redact(m.stdout.String()), redact(m.log()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("faciofs mount not ready after %v; log: %s", cmdTimeout, redact(m.log()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *mount) pid() int { return m.cmd.Process.Pid }

func (m *mount) log() string {
	b, _ := os.ReadFile(m.logf)
	return string(b)
}

func (m *mount) stop() {
	t := m.t
	if m.cmd == nil {
		return
	}
	select {
	case <-m.done:
	default:
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(20 * time.Second):
			_ = m.cmd.Process.Signal(syscall.SIGTERM) // a second one detaches a busy mount
			select {
			case <-m.done:
			case <-time.After(10 * time.Second):
				_ = m.cmd.Process.Kill()
				<-m.done
				t.Errorf("faciofs mount did not stop on SIGTERM")
			}
		}
	}
	_ = syscall.Unmount(m.mnt, syscall.MNT_DETACH)
	log := m.log()
	noLeak(t, "stdout of faciofs mount", []byte(m.stdout.String()))
	noLeak(t, "the daemon's log", []byte(log))
	if strings.Contains(log, "panic") || strings.Contains(log, "goroutine ") {
		t.Errorf("the daemon's log shows a panic: %s", redact(log))
	}
	noLeakTree(t, m.backing)
	for _, f := range []string{m.store, m.policy} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("after the mount: %v", err)
		}
		noLeak(t, filepath.Base(f), b)
	}
}

// resolvedIn waits briefly for the audit trail to hold a resolve record of
// path naming credential name: `faciofs audit --event resolve --key NAME
// --path PATH --json`, as a human would query it.
func (m *mount) resolvedIn(path, name string) bool {
	deadline := time.Now().Add(3 * time.Second)
	for {
		c := exec.Command(faciofsBin, "--store", m.store, "audit", "--event", "resolve", "--key", name, "--path", path, "--json")
		c.Env = baseEnv(m.priv)
		out, err := c.Output()
		if err == nil && strings.Contains(string(out), `"event":"resolve"`) {
			noLeak(m.t, "faciofs audit output", out)
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// copyExe copies a program to dst (0755): a consumer rule naming dst
// matches only processes running that copy (a different inode).
func copyExe(t *testing.T, src, dst string) string {
	t.Helper()
	real, err := filepath.EvalSymlinks(src)
	must(t, err)
	in, err := os.Open(real)
	must(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	must(t, err)
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	must(t, out.Close())
	return dst
}

// ---- running programs ------------------------------------------------------

// who a process runs as.
type who struct {
	name string
	uid  int // 0: root, the test's own uid
}

var (
	asAgent = who{"agent", agentUID}
	asRoot  = who{"root", 0}
)

func (w who) attr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}
	if w.uid != 0 {
		a.Credential = &syscall.Credential{Uid: uint32(w.uid), Gid: uint32(w.uid), NoSetGroups: true}
	}
	return a
}

type ran struct {
	stdout, stderr string
	code           int
}

// run runs a program as w and returns its output and exit code; it fails
// the test only if the program cannot start or times out.
func run(t *testing.T, w who, dir string, env []string, stdin string, name string, args ...string) ran {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = env
	if c.Env == nil {
		c.Env = baseEnv("/")
	}
	c.Dir = dir
	c.SysProcAttr = w.attr()
	c.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	r := ran{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("%s %s as %s: timed out after %v", name, redact(strings.Join(args, " ")), w.name, cmdTimeout)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s as %s: %v", name, w.name, err)
	}
	return r
}

// ok runs a program that must exit 0.
func ok(t *testing.T, w who, dir string, env []string, stdin string, name string, args ...string) ran {
	t.Helper()
	r := run(t, w, dir, env, stdin, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s as %s: exit %d; stderr: %s", name, redact(strings.Join(args, " ")), w.name, r.code, redact(r.stderr))
	}
	return r
}

// agentWrite writes a file through the mount as the agent (with the
// agent's uid, so the agent owns it), with mode.
func agentWrite(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	ok(t, asAgent, "/", nil, content, "/bin/sh", "-c", `umask 077; cat > "$1" && chmod "$2" "$1"`, "sh", path, fmt.Sprintf("%o", mode))
}

// agentCat is the agent's `cat`.
func agentCat(t *testing.T, path string) string {
	t.Helper()
	return ok(t, asAgent, "/", nil, "", "cat", path).stdout
}
