package main

// Tests of the control plane (issue 6): with a mount running, commands go
// through its socket; rotation and deletion reach a real consumer at its
// next open; an agent under another uid cannot use the socket; garbage on
// the socket gets clear errors and the daemon keeps serving; every command
// prints the same with and without a mount.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faciofs/faciofs/internal/control"
)

const wrongPassword = "FAKE-wrong-pw-0009"

// pwArgs returns args that read the password from a file holding pw.
func (e *env) pwArgs(pw string) []string {
	p := filepath.Join(e.dir, "pw-"+fmt.Sprint(len(pw)))
	writeFile(e.t, p, pw+"\n", 0o600)
	return []string{"--password-file", p}
}

func TestControlRotationAndDeletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	backing, mnt := e.mkdirs()
	exe := consumerExe(t, e.dir)
	pol := consumerPolicy(t, e.dir, exe)
	d := e.startMount(mnt, "--policy", pol, backing)
	d.ready()

	const raw = "KEY=${credentials.X}\n"
	envf := filepath.Join(mnt, ".env")
	if err := os.WriteFile(envf, []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readAs(t, exe, envf); got != "KEY="+valX+"\n" {
		t.Fatalf("consumer before rotation read %q", redact(got))
	}

	// status goes through the socket and names the mount.
	st := e.ok("", "status", "--json")
	var status control.Status
	if err := json.Unmarshal([]byte(st.stdout), &status); err != nil || len(status.Mounts) != 1 {
		t.Fatalf("status --json: %v: %s", err, redact(st.stdout))
	}
	if m := status.Mounts[0]; m.Pid != d.pid() || m.Mountpoint != mnt || m.Backing != backing || m.Policy != pol || m.Counters.Resolves == 0 {
		t.Errorf("status: %+v", m)
	}

	// Rotation through the running mount: the next open sees the new value.
	r := e.ok(valX2+"\n", "secret", "set", "X")
	if !strings.Contains(r.stdout, "replaced X") {
		t.Errorf("secret set on a mount: %q", r.stdout)
	}
	for i := 0; i < 3; i++ {
		if got := readAs(t, exe, envf); got != "KEY="+valX2+"\n" {
			t.Fatalf("consumer after rotation read %q, want the new value", redact(got))
		}
	}
	if got := readAs(t, "cat", envf); got != raw {
		t.Errorf("agent after rotation read %q", redact(got))
	}
	// A set with a wrong password changes nothing.
	e.fail(exitRuntime, valY+"\n", append(e.pwArgs(wrongPassword), "secret", "set", "X"), "wrong master password")
	if got := readAs(t, exe, envf); got != "KEY="+valX2+"\n" {
		t.Fatalf("after a refused set the consumer read %q", redact(got))
	}

	// Deletion: asked without a password, approved with one.
	r = e.ok("", "secret", "rm", "X")
	id := regexp.MustCompile(`item (\d+)`).FindStringSubmatch(r.stdout)
	if id == nil {
		t.Fatalf("secret rm printed %q", r.stdout)
	}
	if got := readAs(t, exe, envf); got != "KEY="+valX2+"\n" {
		t.Fatalf("a pending deletion already changed what the consumer reads: %q", redact(got))
	}
	e.fail(exitRuntime, "", append(e.pwArgs(wrongPassword), "approve", id[1]), "wrong master password")
	if got := readAs(t, exe, envf); got != "KEY="+valX2+"\n" {
		t.Fatalf("a refused approval changed what the consumer reads: %q", redact(got))
	}
	e.ok("", "approve", id[1])
	for i := 0; i < 3; i++ {
		if got := readAs(t, exe, envf); got != raw {
			t.Fatalf("consumer after deletion read %q, want the placeholder (missing: keep)", redact(got))
		}
	}
	if b, err := os.ReadFile(envf); err != nil || string(b) != raw {
		t.Errorf("read after deletion: %q %v", redact(string(b)), err)
	}

	// A request, fulfilled by secret set through the mount.
	r = e.ok("", "request", "Y", "--label", "for the test")
	if r.stdout != "${credentials.Y}\n" {
		t.Errorf("request printed %q", r.stdout)
	}
	ap := e.ok("", "approvals", "--json")
	var items []control.Item
	if err := json.Unmarshal([]byte(ap.stdout), &items); err != nil || len(items) != 1 || items[0].Kind != "credential" || items[0].Name != "Y" {
		t.Fatalf("approvals --json: %v %s", err, ap.stdout)
	}
	r = e.ok(valY+"\n", "secret", "set", "Y")
	if !strings.Contains(r.stdout, "fulfilled request "+items[0].ID) {
		t.Errorf("secret set Y did not fulfil the request: %q", r.stdout)
	}
	if ap := e.ok("", "approvals"); !strings.Contains(ap.stdout, "no pending items") {
		t.Errorf("approvals after fulfilment: %q", ap.stdout)
	}
	writeFile(t, filepath.Join(backing, "y.txt"), "${credentials.Y}", 0o644)
	if got := readAs(t, exe, filepath.Join(mnt, "y.txt")); got != valY {
		t.Errorf("consumer read of the fulfilled credential: %q", redact(got))
	}

	// Every event is in the audit, with the caller's pid.
	for _, ev := range []string{"secret.replace", "delete.requested", "delete.approved", "delete.done", "wrong_password", "credential.requested", "credential.fulfilled"} {
		if lines := e.auditLines("--event", ev); len(lines) == 0 {
			t.Errorf("no %s record", ev)
		}
	}
	// passwd goes through the mount too: the old password stops working
	// at once, the new one works, and the mount keeps serving.
	newPw := filepath.Join(e.dir, "new-pw")
	writeFile(t, newPw, newPassword+"\n", 0o600)
	badPw := filepath.Join(e.dir, "bad-pw")
	writeFile(t, badPw, wrongPassword+"\n", 0o600)
	e.fail(exitRuntime, "", []string{"--password-file", badPw, "passwd", "--new-password-file", newPw}, "wrong master password")
	e.ok(valY+"\n", "secret", "set", "Y") // the password is still the old one
	if r := e.ok("", "passwd", "--new-password-file", newPw); !strings.Contains(r.stdout, "master password changed") {
		t.Errorf("passwd through the mount: %q", r.stdout)
	}
	e.fail(exitRuntime, valY+"\n", []string{"secret", "set", "Y"}, "wrong master password")
	oldPw := e.pwFile
	e.pwFile = newPw
	e.ok(valY+"\n", "secret", "set", "Y")
	if got := readAs(t, exe, filepath.Join(mnt, "y.txt")); got != valY {
		t.Errorf("consumer read after passwd: %q", redact(got))
	}
	if lines := e.auditLines("--event", "passwd"); len(lines) != 1 {
		t.Errorf("%d passwd records", len(lines))
	}

	d.signal(syscall.SIGTERM)
	if !d.exited(30 * time.Second) {
		t.Fatal("mount did not exit")
	}
	if _, err := os.Stat(control.SocketPath(e.store)); !os.IsNotExist(err) {
		t.Errorf("socket left after a clean stop: %v", err)
	}
	if st := e.ok("", "status"); !strings.Contains(st.stdout, "mounts: none") {
		t.Errorf("status without a mount: %q", st.stdout)
	}
	// Without the mount, the store itself has the new password.
	e.ok(valY+"\n", "secret", "set", "Y")
	e.pwFile = oldPw
	e.fail(exitRuntime, valY+"\n", []string{"secret", "set", "Y"}, "wrong master password")
	noLeakTree(t, backing)
	noLeakTree(t, filepath.Dir(e.store))
}

// sendRaw writes data to the socket and returns the one answer line.
func sendRaw(t *testing.T, sock string, data []byte) map[string]any {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	go func() {
		_, _ = c.Write(data)
		if uc, ok := c.(*net.UnixConn); ok {
			_ = uc.CloseWrite()
		}
	}()
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no answer to %d bytes: %v", len(data), err)
	}
	noLeak(t, "control answer", line)
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("answer is not JSON: %q", line)
	}
	return m
}

func TestControlProtocolGarbage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	backing, mnt := e.mkdirs()
	d := e.startMount(mnt, backing)
	d.ready()
	sock := control.SocketPath(e.store)
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, mode %v; want 0600", sock, err, fi.Mode())
	}
	// 0700, or 0710 when another mount shares its socket with a group
	// (search only: this socket's own mode keeps the group out).
	if di, err := os.Stat(filepath.Dir(sock)); err != nil || di.Mode().Perm()&^0o010 != 0o700 {
		t.Fatalf("socket dir: %v %v; want 0700 or 0710", err, di.Mode())
	}
	big := make([]byte, control.MaxMessage+10)
	for i := range big {
		big[i] = 'a'
	}
	cases := []struct {
		name, data, want string
	}{
		{"malformed", "{not json\n", "malformed"},
		{"unknown op", `{"op":"reveal","name":"X"}` + "\n", "unknown op"},
		{"unknown field", `{"op":"status","value_out":true}` + "\n", "malformed"},
		{"no op", "{}\n", "no op"},
		{"empty", "", "empty request"},
		{"two values", `{"op":"status"} {"op":"status"}` + "\n", "more than one"},
		{"array", "[1,2,3]\n", "malformed"},
		{"set without password", `{"op":"secret.set","name":"X","value":"QUJDREVGRw=="}` + "\n", "needs the master password"},
		{"approve without password", `{"op":"approve","id":"1"}` + "\n", "no pending item"},
		{"bad name", `{"op":"secret.rm","name":"1 bad"}` + "\n", "invalid credential name"},
		{"wrong password", `{"op":"secret.set","name":"X","value":"QUJDREVGRw==","password":"d3Jvbmc="}` + "\n", "wrong master password"},
		{"oversized", string(big), "larger than"},
		{"binary", "\x00\xff\xfe\n", "malformed"},
	}
	for _, c := range cases {
		m := sendRaw(t, sock, []byte(c.data))
		if m["ok"] != false || !strings.Contains(fmt.Sprint(m["error"]), c.want) {
			t.Errorf("%s: answer %v, want an error mentioning %q", c.name, m, c.want)
		}
	}
	// A client that connects and says nothing, or hangs up mid-line,
	// does not stop the others.
	idle, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if m := sendRaw(t, sock, []byte(`{"op":"status"}`+"\n")); m["ok"] != true {
		t.Errorf("status after garbage: %v", m)
	}
	// Still serving, X still resolvable by nobody but unchanged in the store.
	r := e.ok("", "secret", "list", "--json")
	if !strings.Contains(r.stdout, `"name": "X"`) {
		t.Errorf("list after garbage: %s", r.stdout)
	}
	if d.exited(0) {
		t.Fatal("the daemon died")
	}
}

// agentCopy copies the faciofs binary where uid 4301 can run it.
func agentCopy(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "faciofs-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "faciofs")
	writeFile(t, p, string(readFile(t, bin)), 0o755)
	return p
}

func TestControlAgentUid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another uid")
	}
	t.Parallel()
	e := newEnv(t, true)
	backing, mnt := e.mkdirs()
	d := e.startMount(mnt, backing)
	d.ready()
	e.ok("", "secret", "rm", "X")
	agentBin := agentCopy(t)
	// The agent knows where the store is and where the socket is, and
	// even has a password file of its own (with a wrong password).
	agentPw := filepath.Join(filepath.Dir(agentBin), "pw")
	writeFile(t, agentPw, wrongPassword+"\n", 0o644)
	asAgent := func(args ...string) (string, int) {
		c := exec.Command(agentBin, append([]string{"--store", e.store, "--password-file", agentPw}, args...)...)
		c.Dir = "/"
		c.Env = append(cleanEnviron(), "HOME=/")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: 4301, Gid: 4301}}
		return agentOutput(t, c)
	}
	for _, a := range [][]string{{"approve", "1"}, {"deny", "1"}, {"secret", "list"}, {"approvals"}, {"secret", "set", "X"}} {
		out, code := asAgent(a...)
		if code == 0 {
			t.Errorf("agent uid ran %v: exit 0: %s", a, out)
		}
	}
	// The agent's own status does not find root's socket (its runtime
	// directory is another), and connecting to it by path is refused.
	if out, code := asAgent("status"); code != 0 || !strings.Contains(out, "mounts: none") || !strings.Contains(out, "inaccessible") {
		t.Errorf("agent uid status: exit %d %q", code, out)
	}
	// A system python3 (not a per-user shim the agent uid cannot run)
	// makes the raw connect(2).
	if py := "/usr/bin/python3"; func() bool { fi, err := os.Stat(py); return err == nil && fi.Mode()&0o001 != 0 }() {
		c := exec.Command(py, "-c", "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); print('connected')\nexcept PermissionError: print('denied')", control.SocketPath(e.store))
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4301, Gid: 4301}}
		if out, err := c.CombinedOutput(); strings.TrimSpace(string(out)) != "denied" {
			t.Errorf("agent uid connecting to the socket: %v: %s", err, out)
		}
	}
	// Nothing changed: the deletion is still pending, X still exists.
	if ap := e.ok("", "approvals", "--json"); !strings.Contains(ap.stdout, `"kind": "delete"`) {
		t.Errorf("pending deletion gone after the agent's attempts: %s", ap.stdout)
	}
	if r := e.ok("", "secret", "list"); !strings.Contains(r.stdout, "X ") {
		t.Errorf("X gone after the agent's attempts: %s", r.stdout)
	}
}

var (
	reTime = regexp.MustCompile(`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?`)
	rePid  = regexp.MustCompile(`("pid": |pid )\d+`)
	// A table's columns are as wide as their widest cell, so a pid with
	// one more digit widens the padding after it: compare padding as one
	// run of spaces, not by its length.
	rePad = regexp.MustCompile(`  +`)
)

func normalise(s string) string {
	s = rePid.ReplaceAllString(reTime.ReplaceAllString(s, "TIME"), "${1}N")
	return rePad.ReplaceAllString(s, "  ")
}

// TestControlSameWithAndWithoutMount runs one sequence of commands against
// two copies of a store, one served by a mount, and compares the outputs.
func TestControlSameWithAndWithoutMount(t *testing.T) {
	t.Parallel()
	seq := []struct {
		stdin string
		args  []string
	}{
		{"", []string{"secret", "list"}},
		{"", []string{"request", "Y", "--label", "db password"}},
		{"", []string{"request", "X"}},
		{"", []string{"request", "1bad"}},
		{"", []string{"approvals"}},
		{"", []string{"approvals", "--json"}},
		{"", []string{"approve", "1"}},
		{valY + "\n", []string{"secret", "set", "Y"}},
		{"", []string{"secret", "rm", "X"}},
		{"", []string{"secret", "rm", "X"}},
		{"", []string{"secret", "rm", "NOPE"}},
		{"", []string{"approvals", "--json"}},
		{"", []string{"deny", "2"}},
		{"", []string{"secret", "rm", "X"}},
		{"", []string{"approve", "99"}},
		{"", []string{"approve", "3"}},
		{"", []string{"approvals"}},
		{"", []string{"secret", "list", "--json"}},
		{"", []string{"secret", "rm", "X"}},
	}
	outputs := func(mount bool) []string {
		e := newEnv(t, true)
		if mount {
			backing, mnt := e.mkdirs()
			d := e.startMount(mnt, backing)
			d.ready()
		}
		var out []string
		for _, s := range seq {
			r := e.run(s.stdin, s.args...)
			out = append(out, fmt.Sprintf("$ %s\nexit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(s.args, " "), r.code, normalise(r.stdout), normalise(r.stderr)))
		}
		return out
	}
	direct, served := outputs(false), outputs(true)
	for i := range direct {
		if direct[i] != served[i] {
			t.Errorf("without a mount:\n%s\nwith a mount:\n%s", direct[i], served[i])
		}
	}
}

// TestControlSocketGroup: with --socket-group, an agent uid in that group
// reaches the mount to ask for a credential, and still cannot approve,
// read or change anything without the master password; an agent uid
// outside the group cannot reach it at all.
func TestControlSocketGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another uid")
	}
	t.Parallel()
	const group, gid = "nogroup", 65534
	e := newEnv(t, true)
	backing, mnt := e.mkdirs()
	d := e.startMount(mnt, "--socket-group", group, backing)
	d.ready()
	agentBin := agentCopy(t)
	agentPw := filepath.Join(filepath.Dir(agentBin), "pw")
	writeFile(t, agentPw, wrongPassword+"\n", 0o644)
	run := func(inGroup bool, args ...string) (string, int) {
		c := exec.Command(agentBin, append([]string{"--store", e.store, "--password-file", agentPw}, args...)...)
		c.Dir = "/"
		c.Env = append(cleanEnviron(), "HOME=/")
		cred := &syscall.Credential{Uid: 4302, Gid: 4302}
		if inGroup {
			cred.Groups = []uint32{gid}
		}
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
		return agentOutput(t, c)
	}
	if out, code := run(true, "request", "NEW_TOKEN", "--label", "for the deploy"); code != 0 || !strings.Contains(out, "${credentials.NEW_TOKEN}") {
		t.Fatalf("agent in the socket group: request: exit %d %q", code, out)
	}
	ap := e.ok("", "approvals", "--json")
	if !strings.Contains(ap.stdout, "NEW_TOKEN") || !strings.Contains(ap.stdout, `"uid": 4302`) {
		t.Errorf("the request is not pending with the agent's uid: %s", ap.stdout)
	}
	for _, a := range [][]string{{"approve", "1"}, {"deny", "1"}, {"secret", "set", "X"}} {
		if out, code := run(true, a...); code == 0 {
			t.Errorf("agent in the socket group ran %v without the password: %s", a, out)
		}
	}
	if out, code := run(false, "request", "OTHER_TOKEN"); code == 0 {
		t.Errorf("agent outside the socket group reached the mount: %s", out)
	}
	if ap := e.ok("", "approvals", "--json"); strings.Contains(ap.stdout, "OTHER_TOKEN") {
		t.Errorf("a request from outside the group is pending: %s", ap.stdout)
	}
}

// agentOutput runs an agent's command and returns its combined output,
// checked for values, and its exit code.
func agentOutput(t *testing.T, c *exec.Cmd) (string, int) {
	t.Helper()
	out, err := c.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	noLeak(t, "agent output", out)
	return string(out), code
}
