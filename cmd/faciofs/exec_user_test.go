package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faciofs/faciofs/internal/testkit"
)

// The users of these tests: the agent, a group it is in, and the user
// the policy's exec.uid names.
const (
	execAgentUid   = 4303
	execAgentGroup = 4444
	execOtherUid   = 4310
	execSocketGid  = 65534 // nogroup: the mount's --socket-group
)

// execAsAgent starts `faciofs exec` as the agent uid, in the socket group
// and one more, from dir.
func execAsAgent(t *testing.T, e *env, agentBin, dir string, args ...string) *exec.Cmd {
	t.Helper()
	c := exec.Command(agentBin, append([]string{"--store", e.store, "exec"}, args...)...)
	c.Dir = dir
	c.Env = append(cleanEnviron(), "HOME=/", "AGENT_MARK=from-the-agent")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{
		Uid: execAgentUid, Gid: execAgentUid, Groups: []uint32{execSocketGid, execAgentGroup}}}
	return c
}

// readAsAgent reads a file as the agent uid: its content, or nil if the
// kernel refused.
func readAsAgent(t *testing.T, path string) []byte {
	t.Helper()
	c := exec.Command("/bin/cat", path)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: execAgentUid, Gid: execAgentUid}}
	var out bytes.Buffer
	c.Stdout = &out
	if err := c.Run(); err != nil {
		return nil
	}
	return out.Bytes()
}

// startExecChild runs a child that writes its pid to a file and sleeps,
// waits for the pid, and returns it with the exec command.
func startExecChild(t *testing.T, e *env, agentBin, shared string) (int, *exec.Cmd, *bytes.Buffer) {
	t.Helper()
	pidFile := filepath.Join(shared, "pid")
	os.Remove(pidFile)
	c := execAsAgent(t, e, agentBin, "/", "--expose", "X", "--", "/bin/sh", "-c", "echo $$ > "+pidFile+"; sleep 30")
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Process.Kill() // the mount then ends the child
		_ = c.Wait()
	})
	var pid int
	if !eventually(10*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	}) {
		t.Fatalf("the child did not start: %s", redact(out.String()))
	}
	return pid, c, &out
}

// sharedExecMount starts a mount whose socket the agent's group reaches,
// under policy.
func sharedExecMount(t *testing.T, policy string) *env {
	t.Helper()
	e := newEnv(t, true)
	backing, mnt := e.mkdirs()
	pol := filepath.Join(e.dir, "policy.yaml")
	writeFile(t, pol, policy, 0o644)
	e.startMount(mnt, "--socket-group", "nogroup", "--policy", pol, backing).ready()
	return e
}

// TestExecUsers: a root mount runs exec's child as the caller (uid, gid
// and supplementary groups), so a same-uid agent can read the child's
// /proc/PID/environ, as SECURITY.md says; with exec.uid and exec.gid the
// child runs as that user and the agent cannot.
func TestExecUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run processes as other users")
	}
	t.Parallel()
	agentBin := agentCopy(t)
	// A directory every user here can enter and write (t.TempDir's
	// parent is root's alone).
	shared, err := os.MkdirTemp("", "faciofs-exec-users-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}

	t.Run("caller", func(t *testing.T) {
		e := sharedExecMount(t, "version: 1\nexec:\n  expose: [X]\n")

		c := execAsAgent(t, e, agentBin, shared, "--expose", "X", "--", "/bin/sh", "-c", `id -u; id -g; id -G; pwd; echo "$AGENT_MARK"; echo "$X"`)
		out, err := c.CombinedOutput()
		noLeak(t, "exec output", out)
		if err != nil {
			t.Fatalf("exec as the agent: %v: %s", err, redact(string(out)))
		}
		lines := strings.Split(string(out), "\n")
		if len(lines) < 6 || lines[0] != "4303" || lines[1] != "4303" || !strings.Contains(" "+lines[2]+" ", " 4444 ") ||
			!strings.Contains(" "+lines[2]+" ", " 65534 ") || lines[3] != shared || lines[4] != "from-the-agent" || lines[5] != "[REDACTED:X]" {
			t.Errorf("child as the caller printed:\n%s", redact(string(out)))
		}

		// The limit SECURITY.md states: the agent's uid owns the child.
		pid, _, _ := startExecChild(t, e, agentBin, shared)
		environ := readAsAgent(t, "/proc/"+strconv.Itoa(pid)+"/environ")
		if !bytes.Contains(environ, []byte("X="+valX)) {
			t.Errorf("the same-uid agent could not read the child's environment (%d bytes): SECURITY.md says it can; update one of them", len(environ))
		}
	})

	t.Run("other user", func(t *testing.T) {
		e := sharedExecMount(t, "version: 1\nexec:\n  expose: [X]\n  uid: 4310\n  gid: 4310\n")

		c := execAsAgent(t, e, agentBin, shared, "--expose", "X", "--", "/bin/sh", "-c", `id -u; id -G; echo "$X"`)
		out, err := c.CombinedOutput()
		noLeak(t, "exec output", out)
		if err != nil || string(out) != "4310\n4310\n[REDACTED:X]\n" {
			t.Errorf("child as exec.uid: %v:\n%s", err, redact(string(out)))
		}

		pid, _, _ := startExecChild(t, e, agentBin, shared)
		if environ := readAsAgent(t, "/proc/"+strconv.Itoa(pid)+"/environ"); environ != nil {
			noLeak(t, "the child's environ as the agent read it", environ)
			t.Errorf("the agent read the environment of a child running as exec.uid (%d bytes)", len(environ))
		}
		a := e.ok("", "audit", "--event", "exec.start", "--json")
		if !strings.Contains(a.stdout, `"uid":4303`) || !strings.Contains(a.stdout, `"credentials":["X"]`) {
			t.Errorf("exec.start does not name the calling agent and the credential:\n%s", a.stdout)
		}
	})
}

// TestExecChildIsNeverAConsumer: a program that the policy names as a
// consumer gets resolved views when the agent cannot start it through
// exec, and placeholders when exec started it: otherwise the agent could
// have it copy a resolved file to where no redactor looks.
func TestExecChildIsNeverAConsumer(t *testing.T) {
	e := newEnv(t, true)
	backing, mnt := e.mkdirs()
	consumer := consumerExe(t, e.dir)
	pol := consumerPolicy(t, e.dir, consumer)
	writeFile(t, pol, string(readFile(t, pol))+"exec:\n  expose: [X]\n", 0o600)
	writeFile(t, filepath.Join(backing, "app.env"), "TOKEN=${credentials.X}\n", 0o644)
	d := e.startMount(mnt, "--policy", pol, backing)
	d.ready()

	if got := readAs(t, consumer, filepath.Join(mnt, "app.env")); got != "TOKEN="+valX+"\n" {
		t.Fatalf("the consumer itself did not get the resolved view (%d bytes)", len(got))
	}
	copied := filepath.Join(e.dir, "copied.env")
	r := e.run("", "exec", "--expose", "X", "--", "/bin/sh", "-c", consumer+" "+filepath.Join(mnt, "app.env")+" > "+copied)
	if r.code != 0 {
		t.Fatalf("exec: exit %d: %s", r.code, redact(r.stderr))
	}
	got := readFile(t, copied)
	noLeak(t, "what a consumer started by exec copied out of the mount", got)
	if string(got) != "TOKEN=${credentials.X}\n" {
		t.Errorf("a consumer started by exec read %q, want the placeholder", redact(string(got)))
	}

	// A child that double-forks into a new session leaves a grandchild
	// that outlives it. The daemon adopts the orphan (it is a child
	// subreaper), so the grandchild still descends from the mount: it
	// reads the placeholder too, and once it exits it is reaped.
	detached := filepath.Join(e.dir, "detached")
	grandchild := fmt.Sprintf(`sleep 0.5; cut -d" " -f4 /proc/$$/stat > %[3]s.ppid; %[1]s %[2]s > %[3]s.tmp; mv %[3]s.tmp %[3]s.env`,
		consumer, filepath.Join(mnt, "app.env"), detached)
	r = e.run("", "exec", "--expose", "X", "--", "/bin/sh", "-c",
		`(setsid /bin/sh -c "$0" </dev/null >/dev/null 2>&1 &); exit 0`, grandchild)
	if r.code != 0 {
		t.Fatalf("exec of a double-forking child: exit %d: %s", r.code, redact(r.stderr))
	}
	if !eventually(20*time.Second, func() bool { _, err := os.Stat(detached + ".env"); return err == nil }) {
		t.Fatal("the detached grandchild never wrote its copy")
	}
	daemonPid := strconv.Itoa(d.cmd.Process.Pid)
	if ppid := strings.TrimSpace(string(readFile(t, detached+".ppid"))); ppid != daemonPid {
		t.Errorf("the orphaned grandchild's parent is %s, want the daemon %s", ppid, daemonPid)
	}
	got = readFile(t, detached+".env")
	noLeak(t, "what a detached grandchild of exec copied out of the mount", got)
	if string(got) != "TOKEN=${credentials.X}\n" {
		t.Errorf("a detached grandchild of exec read %q, want the placeholder", redact(string(got)))
	}
	if !eventually(10*time.Second, func() bool { return len(testkit.ZombieChildren(d.cmd.Process.Pid)) == 0 }) {
		t.Errorf("the daemon left zombie children: %v", testkit.ZombieChildren(d.cmd.Process.Pid))
	}
}
