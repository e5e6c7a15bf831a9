package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPolicyReload: SIGHUP applies a new policy to the next open, and a
// policy file that does not parse leaves the old one in force.
func TestPolicyReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	backing, mnt := e.mkdirs()
	exe := consumerExe(t, e.dir)
	pol := consumerPolicy(t, e.dir, exe)
	d := e.startMount(mnt, "--policy", pol, backing)
	d.ready()

	const raw = "KEY=${credentials.X}\n"
	env := filepath.Join(mnt, ".env")
	writeFile(t, env, raw, 0o644)
	resolved := "KEY=" + valX + "\n"
	if got := readAs(t, exe, env); got != resolved {
		t.Fatalf("before reload the consumer read %q", redact(got))
	}

	// Garbage: the reload fails, is logged, and the consumer keeps its view.
	writeFile(t, pol, "version: 1\nconsumers: [ {name: x, nonsense: true} ]\n", 0o600)
	d.signal(syscall.SIGHUP)
	if !eventually(5*time.Second, func() bool { return strings.Contains(d.stderr.String(), "policy reload failed") }) {
		t.Fatalf("no reload failure logged: %s", redact(d.stderr.String()))
	}
	if !strings.Contains(d.stderr.String(), pol+":") {
		t.Errorf("reload failure does not name the file and line: %s", redact(d.stderr.String()))
	}
	if got := readAs(t, exe, env); got != resolved {
		t.Errorf("after a failed reload the consumer read %q, want the value still", redact(got))
	}

	// A valid policy without the consumer: its next open gets placeholders.
	writeFile(t, pol, "version: 1\n", 0o600)
	d.signal(syscall.SIGHUP)
	if !eventually(5*time.Second, func() bool { return strings.Contains(d.stderr.String(), "policy reloaded") }) {
		t.Fatalf("no reload logged: %s", redact(d.stderr.String()))
	}
	if got := readAs(t, exe, env); got != raw {
		t.Errorf("after reload removed the consumer it read %q, want the placeholder", redact(got))
	}

	// And back: the consumer regains its view on its next open.
	consumerPolicy(t, e.dir, exe)
	before := strings.Count(d.stderr.String(), "policy reloaded")
	d.signal(syscall.SIGHUP)
	if !eventually(5*time.Second, func() bool { return strings.Count(d.stderr.String(), "policy reloaded") > before }) {
		t.Fatalf("second reload not logged: %s", redact(d.stderr.String()))
	}
	if got := readAs(t, exe, env); got != resolved {
		t.Errorf("after the consumer was restored it read %q", redact(got))
	}
	d.signal(syscall.SIGTERM)
	if !d.exited(10 * time.Second) {
		t.Fatal("mount did not stop")
	}
	d.checkOutput()
}

// TestPolicyExplain: `policy explain --pid` reports the view that process
// really gets: a running consumer is told resolved and reads the value; a
// running non-consumer is told raw and reads the placeholder.
func TestPolicyExplain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	backing, mnt := e.mkdirs()
	exe := consumerExe(t, e.dir)
	pol := consumerPolicy(t, e.dir, exe)
	d := e.startMount(mnt, "--policy", pol, backing)
	d.ready()
	const raw = "KEY=${credentials.X}\n"
	env := filepath.Join(mnt, ".env")
	writeFile(t, env, raw, 0o644)

	for _, c := range []struct {
		name, exe, want, read string
	}{
		{"consumer", exe, "decision: resolved", "KEY=" + valX + "\n"},
		{"agent", "cat", "decision: raw", raw},
	} {
		// The process waits on a fifo, so it can be explained while it
		// runs, and then reads the file with the same identity.
		fifo := filepath.Join(e.dir, "fifo-"+c.name)
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		p := exec.Command(c.exe, fifo, env)
		var out strings.Builder
		p.Stdout = &out
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		r := e.ok("", "policy", "explain", "--policy", pol, "--pid", strconv.Itoa(p.Process.Pid), ".env")
		if !strings.Contains(r.stdout, c.want) {
			t.Errorf("%s: explain says %q, want %q", c.name, redact(r.stdout), c.want)
		}
		if err := os.WriteFile(fifo, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); got != c.read {
			t.Errorf("%s read %q after explain said %q", c.name, redact(got), c.want)
		}
	}
	d.signal(syscall.SIGTERM)
	d.exited(10 * time.Second)
}

// TestPolicyReloadAndExplainCommands: `policy explain` without --policy asks
// the running mount, `policy reload` re-reads the file like SIGHUP (and
// keeps the policy in force when the file is broken), and both say so
// plainly when no mount runs.
func TestPolicyReloadAndExplainCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	e.fail(exitProblem, "", []string{"policy", "reload"}, "no running mount")
	e.fail(exitProblem, "", []string{"policy", "explain", "--pid", "1", "x"}, "no running mount")

	backing, mnt := e.mkdirs()
	exe := consumerExe(t, e.dir)
	pol := consumerPolicy(t, e.dir, exe)
	e.startMount(mnt, "--policy", pol, backing).ready()
	// A consumer process to explain: the consumer's cat, waiting on stdin.
	c := exec.Command(exe)
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); c.Wait() })
	pid := strconv.Itoa(c.Process.Pid)

	explain := func(path string) string {
		t.Helper()
		return e.ok("", "policy", "explain", "--pid", pid, path).stdout
	}
	if out := explain(filepath.Join(mnt, "app", ".env")); !strings.Contains(out, "decision: resolved") || !strings.Contains(out, "path: app/.env") {
		t.Errorf("explain under the mount's policy:\n%s", out)
	}
	e.fail(exitUsage, "", []string{"policy", "explain", "--pid", pid, "/etc/passwd"}, "not under the mountpoint")

	writeFile(t, pol, "version: 1\nconsumers: [ {name: x, nonsense: true} ]\n", 0o600)
	e.fail(exitProblem, "", []string{"policy", "reload"}, "keeping the policy in force", pol+":")
	if out := explain("app/.env"); !strings.Contains(out, "decision: resolved") {
		t.Errorf("a failed reload changed the decision:\n%s", out)
	}

	writeFile(t, pol, "version: 1\n", 0o600)
	if r := e.ok("", "policy", "reload"); !strings.Contains(r.stdout, "reloaded "+pol+": 0 consumer rules") {
		t.Errorf("policy reload said %q", r.stdout)
	}
	if out := explain("app/.env"); !strings.Contains(out, "decision: raw") {
		t.Errorf("after the reload:\n%s", out)
	}
	// The record is posted to the log asynchronously: wait for it.
	var a string
	if !eventually(10*time.Second, func() bool {
		a = e.ok("", "audit", "--event", "policy.reload", "--json").stdout
		return strings.Contains(a, `"cmdline":"faciofs control policy.reload"`)
	}) {
		t.Errorf("the reload's audit record does not name the command that asked:\n%s", a)
	}
}
