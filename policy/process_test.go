package policy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// start runs argv[0] with the rest as arguments and kills it at cleanup.
func start(t testing.TB, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func startSleep(t testing.TB, exe string) *exec.Cmd {
	return start(t, exec.Command(exe, "100"))
}

// copyExe copies src to dir/name, executable.
func copyExe(t testing.TB, src, dst string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// execDir returns a temporary directory others can traverse, from which
// binaries can run.
func execDir(t testing.TB) string {
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func identify(t testing.TB, id *Identifier, pid int) (*Process, Caller) {
	t.Helper()
	c, err := CallerOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	p, err := id.Identify(c)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

func TestIdentifyChild(t *testing.T) {
	cmd := startSleep(t, "/usr/bin/sleep")
	var want unix.Stat_t
	if err := unix.Stat("/usr/bin/sleep", &want); err != nil {
		t.Fatal(err)
	}
	id := NewIdentifier()
	p, c := identify(t, id, cmd.Process.Pid)
	if p.Tgid != cmd.Process.Pid || p.ExeDev != want.Dev || p.ExeIno != want.Ino {
		t.Errorf("process %+v; want tgid %d dev %d ino %d", p, cmd.Process.Pid, want.Dev, want.Ino)
	}
	if !strings.HasSuffix(p.Exe, "/sleep") {
		t.Errorf("Exe = %q", p.Exe)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if fields[19] != strconv.FormatUint(p.StartTime, 10) {
		t.Errorf("StartTime = %d, /proc says %s", p.StartTime, fields[19])
	}
	if len(p.Ancestors) == 0 || p.Ancestors[0].Pid != os.Getpid() {
		t.Fatalf("ancestors %+v do not start with the test process %d", p.Ancestors, os.Getpid())
	}
	if last := p.Ancestors[len(p.Ancestors)-1]; last.Pid != 1 {
		t.Errorf("ancestry ends at pid %d, not 1", last.Pid)
	}
	self, _ := os.Executable()
	if p.Ancestors[0].Exe != self || p.Ancestors[0].Uid != uint32(os.Getuid()) {
		t.Errorf("parent %+v; want exe %s uid %d", p.Ancestors[0], self, os.Getuid())
	}
	if c.Uid != uint32(os.Getuid()) || c.Gid != uint32(os.Getgid()) {
		t.Errorf("CallerOf = %+v", c)
	}

	// The second call is served from the cache: the same *Process.
	again, _ := identify(t, id, cmd.Process.Pid)
	if again != p {
		t.Error("second Identify did not use the cache")
	}
}

func TestIdentifyThread(t *testing.T) {
	tids := make(chan int)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		<-done
	}()
	tid := <-tids
	defer close(done)
	if tid == os.Getpid() {
		t.Skip("goroutine landed on the main thread")
	}
	p, err := NewIdentifier().Identify(Caller{Pid: uint32(tid)})
	if err != nil {
		t.Fatal(err)
	}
	if p.Tgid != os.Getpid() {
		t.Fatalf("thread %d identified as tgid %d, want %d", tid, p.Tgid, os.Getpid())
	}
}

func TestIdentifyExited(t *testing.T) {
	cmd := exec.Command("/usr/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if p, err := NewIdentifier().Identify(Caller{Pid: uint32(cmd.Process.Pid)}); err == nil {
		t.Fatalf("exited process identified as %+v", p)
	}
	// A zombie (exited, not reaped) has no executable: not identified either.
	z := exec.Command("/usr/bin/true")
	if err := z.Start(); err != nil {
		t.Fatal(err)
	}
	defer z.Wait()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", z.Process.Pid))
		if strings.Contains(string(b), ") Z ") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p, err := NewIdentifier().Identify(Caller{Pid: uint32(z.Process.Pid)}); err == nil {
		t.Fatalf("zombie identified as %+v", p)
	}
}

func TestPidZero(t *testing.T) {
	if _, err := NewIdentifier().Identify(Caller{Pid: 0}); !errors.Is(err, ErrOutsideNamespace) {
		t.Fatalf("Identify(pid 0) = %v", err)
	}
	p := mustParse(t, "version: 1\nconsumers:\n  - {name: all, match: {uid: 0}, credentials: \"*\", paths: \"**\"}\n")
	proc, _ := identify(t, NewIdentifier(), os.Getpid())
	for _, d := range []Decision{
		p.Decide(nil, Caller{Pid: 0}, "x"),
		p.Decide(proc, Caller{Pid: 0, Uid: 0}, "x"),
	} {
		if d.View != ViewRaw || d.Allows("X") || !strings.Contains(d.Reason, "pid namespace") {
			t.Errorf("pid 0: %+v", d)
		}
	}
	// Sanity: the same process with its pid is a consumer.
	if d := p.Decide(proc, Caller{Pid: uint32(os.Getpid())}, "x"); d.View != ViewResolved {
		t.Errorf("with pid: %+v", d)
	}
	var nilPolicy *Policy
	if d := nilPolicy.Decide(proc, Caller{Pid: 1}, "x"); d.View != ViewRaw {
		t.Errorf("nil policy: %+v", d)
	}
	if d := (Decision{}); d.View != ViewRaw || d.Allows("X") {
		t.Errorf("zero Decision is not raw")
	}
}

func TestDecideCopiedBinary(t *testing.T) {
	dir := execDir(t)
	a := copyExe(t, "/usr/bin/sleep", filepath.Join(dir, "a"))
	b := copyExe(t, "/usr/bin/sleep", filepath.Join(dir, "b"))
	p := mustParse(t, fmt.Sprintf(`version: 1
consumers:
  - {name: copy-a, match: {exe: %s}, credentials: [K], paths: "**"}
  - {name: system, match: {exe: /usr/bin/sleep}, credentials: [K], paths: "**"}
`, a))
	id := NewIdentifier()
	procA, cA := identify(t, id, startSleep(t, a).Process.Pid)
	procB, cB := identify(t, id, startSleep(t, b).Process.Pid)
	procSys, cSys := identify(t, id, startSleep(t, "/usr/bin/sleep").Process.Pid)

	if d := p.Decide(procA, cA, "f"); d.View != ViewResolved || !slices.Equal(d.Consumers, []string{"copy-a"}) {
		t.Errorf("a: %+v", d)
	}
	if d := p.Decide(procB, cB, "f"); d.View != ViewRaw {
		t.Errorf("a copy of a (b) matched: %+v", d)
	}
	if d := p.Decide(procSys, cSys, "f"); !slices.Equal(d.Consumers, []string{"system"}) {
		t.Errorf("/usr/bin/sleep: %+v", d)
	}
}

func TestDecideReplacedBinary(t *testing.T) {
	dir := execDir(t)
	bin := copyExe(t, "/usr/bin/sleep", filepath.Join(dir, "consumer"))
	p := mustParse(t, fmt.Sprintf("version: 1\nconsumers:\n  - {name: c, match: {exe: %s}, credentials: [K], paths: \"**\"}\n", bin))
	proc, c := identify(t, NewIdentifier(), startSleep(t, bin).Process.Pid)
	// The first Decide stats bin, and caches that stat, no earlier than this.
	cached := time.Now()
	if d := p.Decide(proc, c, "f"); d.View != ViewResolved {
		t.Fatalf("before replacement: %+v", d)
	}
	// Replace the binary on disk the way installers do: new file, rename.
	copyExe(t, "/usr/bin/sleep", bin+".new")
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	// The stat of the configured path is cached for exeCacheTTL... This
	// can only be checked if the Decide below surely ran within the TTL
	// of the first one's stat; a loaded machine may take longer.
	d := p.Decide(proc, c, "f")
	if elapsed := time.Since(cached); elapsed < exeCacheTTL-50*time.Millisecond {
		if d.View != ViewResolved {
			t.Errorf("within the stat cache TTL (%v after the first stat): %+v", elapsed, d)
		}
	} else {
		t.Logf("not checking the cached stat: replacing the binary took %v, the TTL is %v", elapsed, exeCacheTTL)
	}
	// ...after which the old image no longer matches.
	time.Sleep(exeCacheTTL + 100*time.Millisecond)
	if d := p.Decide(proc, c, "f"); d.View != ViewRaw {
		t.Errorf("after replacement: %+v", d)
	}
	// A fresh policy (a reload) sees the replacement at once.
	p2 := mustParse(t, fmt.Sprintf("version: 1\nconsumers:\n  - {name: c, match: {exe: %s}, credentials: [K], paths: \"**\"}\n", bin))
	if d := p2.Decide(proc, c, "f"); d.View != ViewRaw {
		t.Errorf("after replacement, new policy: %+v", d)
	}
	_, text := p2.Explain(proc, c, "f")
	if !strings.Contains(text, "exe "+bin+": no (process runs "+bin) {
		t.Errorf("explain:\n%s", text)
	}
}

// childOf waits for a child of parent whose executable is exe.
func childOf(t testing.TB, parent int, exe string) int {
	t.Helper()
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent))
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			if e, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); e == exe {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no child of %d runs %s", parent, exe)
	return 0
}

func TestDecideAgentDescendant(t *testing.T) {
	dir := execDir(t)
	agentSh := copyExe(t, "/bin/sh", filepath.Join(dir, "agent-sh"))
	consumer := copyExe(t, "/usr/bin/sleep", filepath.Join(dir, "consumer"))
	p := mustParse(t, fmt.Sprintf(`version: 1
agents:
  - exe: %s
consumers:
  - {name: c, match: {exe: %s}, credentials: [K], paths: "**"}
`, agentSh, consumer))
	id := NewIdentifier()

	// The consumer started directly (by the test, not an agent) resolves.
	direct, cd := identify(t, id, startSleep(t, consumer).Process.Pid)
	if d := p.Decide(direct, cd, "f"); d.View != ViewResolved {
		t.Fatalf("direct consumer: %+v", d)
	}
	// The same binary run by the agent's shell is an agent.
	sh := start(t, exec.Command(agentSh, "-c", `"$0" 100; true`, consumer))
	child := childOf(t, sh.Process.Pid, consumer)
	proc, c := identify(t, id, child)
	d := p.Decide(proc, c, "f")
	if d.View != ViewRaw || d.Allows("K") {
		t.Fatalf("consumer under agent: %+v", d)
	}
	want := fmt.Sprintf("agents[0] (exe %s) matched ancestor pid %d %s", agentSh, sh.Process.Pid, agentSh)
	if d.Agent != want {
		t.Errorf("Agent = %q, want %q", d.Agent, want)
	}
	// The agent itself is matched as the caller.
	shProc, shC := identify(t, id, sh.Process.Pid)
	if d := p.Decide(shProc, shC, "f"); d.View != ViewRaw || !strings.Contains(d.Agent, "matched the caller") {
		t.Errorf("agent shell: %+v", d)
	}
	// Explain shows the consumer rule would match, and that the agent wins.
	d2, text := p.Explain(proc, c, "f")
	if d2.View != ViewRaw || !strings.Contains(text, "matches ancestor pid") || !strings.Contains(text, "exe "+consumer+": yes") {
		t.Errorf("explain:\n%s", text)
	}
}

func TestDecideUID(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start a process under another uid")
	}
	p := mustParse(t, `version: 1
consumers:
  - {name: nobody, match: {exe: /usr/bin/sleep, uid: 65534}, credentials: [K], paths: "**"}
`)
	nobody := exec.Command("/usr/bin/sleep", "100")
	nobody.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	id := NewIdentifier()
	proc, c := identify(t, id, start(t, nobody).Process.Pid)
	if c.Uid != 65534 || c.Gid != 65534 {
		t.Fatalf("CallerOf = %+v", c)
	}
	if d := p.Decide(proc, c, "f"); d.View != ViewResolved {
		t.Errorf("uid 65534: %+v", d)
	}
	rootProc, rootC := identify(t, id, startSleep(t, "/usr/bin/sleep").Process.Pid)
	if d := p.Decide(rootProc, rootC, "f"); d.View != ViewRaw {
		t.Errorf("uid 0: %+v", d)
	}
	// The uid is the request's, not /proc's.
	if d := p.Decide(rootProc, Caller{Pid: rootC.Pid, Uid: 65534}, "f"); d.View != ViewResolved {
		t.Errorf("request uid not used: %+v", d)
	}
	// An agent rule by uid catches the ancestor's real uid.
	ap := mustParse(t, `version: 1
agents: [{uid: 65534}]
consumers:
  - {name: any, match: {exe: /usr/bin/sleep}, credentials: [K], paths: "**"}
`)
	sh := exec.Command("/bin/sh", "-c", `/usr/bin/sleep 100; true`)
	sh.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	start(t, sh)
	child := childOf(t, sh.Process.Pid, "/usr/bin/sleep")
	proc, _ = identify(t, id, child)
	// Even if the child were to present uid 0 (a setuid program), the
	// ancestor run by uid 65534 makes it an agent.
	if d := ap.Decide(proc, Caller{Pid: uint32(child), Uid: 0}, "f"); d.View != ViewRaw || !strings.Contains(d.Agent, "ancestor") {
		t.Errorf("descendant of uid agent: %+v", d)
	}
}

func TestDecideCredentialsAndPaths(t *testing.T) {
	p := mustParse(t, `version: 1
consumers:
  - name: one
    match: {exe: /usr/bin/sleep}
    credentials: [KEY1]
    paths: ["mcp.json", "**/.env"]
  - name: two
    match: {uid: 0}
    credentials: [KEY2, KEY3]
    paths: ["**/.env"]
  - name: other
    match: {uid: 4242}
    credentials: "*"
    paths: "**"
`)
	proc, c := identify(t, NewIdentifier(), startSleep(t, "/usr/bin/sleep").Process.Pid)
	c.Uid = 1000 // rule "two" does not match
	d := p.Decide(proc, c, "mcp.json")
	if d.View != ViewResolved || !d.Allows("KEY1") || d.Allows("KEY2") || d.Allows("OTHER") {
		t.Errorf("scoped: %+v", d)
	}
	c.Uid = 0
	d = p.Decide(proc, c, "svc/.env")
	if !slices.Equal(d.Consumers, []string{"one", "two"}) || !d.Allows("KEY1") || !d.Allows("KEY2") || !d.Allows("KEY3") || d.Allows("KEY4") {
		t.Errorf("union: %+v", d)
	}
	if got := d.Credentials(); !slices.Equal(got, []string{"KEY1", "KEY2", "KEY3"}) {
		t.Errorf("Credentials() = %v", got)
	}
	d = p.Decide(proc, c, "mcp.json")
	if !slices.Equal(d.Consumers, []string{"one"}) || d.Allows("KEY2") {
		t.Errorf("path scoping: %+v", d)
	}
	d = p.Decide(proc, c, "docs/mcp.json")
	if d.View != ViewRaw || d.Allows("KEY1") || !strings.Contains(d.Reason, "none covers path") {
		t.Errorf("uncovered path: %+v", d)
	}
	if d := p.Decide(proc, c, "../.env"); d.View != ViewRaw {
		t.Errorf("path outside the root: %+v", d)
	}
	c.Uid = 4242
	if d := p.Decide(proc, c, "anything/at/all"); !d.Allows("WHATEVER") || !slices.Equal(d.Credentials(), []string{"*"}) {
		t.Errorf("star: %+v", d)
	}
	if d := mustParse(t, "version: 1\n").Decide(proc, c, "x"); d.View != ViewRaw || d.Reason != "the policy has no consumer rules" {
		t.Errorf("empty policy: %+v", d)
	}
}

// cgroup2Root returns where the cgroup v2 hierarchy is mounted, or "".
func cgroup2Root() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		pre, post, ok := strings.Cut(s.Text(), " - ")
		fields := strings.Fields(pre)
		if ok && len(fields) > 4 && strings.HasPrefix(post, "cgroup2 ") && fields[3] == "/" {
			return fields[4]
		}
	}
	return ""
}

func TestDecideCgroup(t *testing.T) {
	root := cgroup2Root()
	if root == "" {
		t.Skip("no cgroup v2 hierarchy mounted")
	}
	own, err := readCgroup(os.Getpid())
	if err != nil || own == "" {
		t.Skipf("no cgroup v2 membership in /proc/self/cgroup (%v)", err)
	}
	dir, err := os.MkdirTemp(root, "faciofs-test-")
	if err != nil {
		t.Skipf("cgroup v2 at %s is not writable: %v", root, err)
	}
	cmd := exec.Command("/usr/bin/sleep", "100")
	if err := cmd.Start(); err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		// The cgroup can be removed once its last process has been reaped.
		for i := 0; i < 100; i++ {
			if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("could not remove %s", dir)
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Skipf("cannot move a process into %s: %v", dir, err)
	}
	name := filepath.Base(dir)
	p := mustParse(t, `version: 1
consumers:
  - {name: test-cgroup, match: {cgroup: "/faciofs-test-*"}, credentials: [K], paths: "**"}
  - {name: other-cgroup, match: {cgroup: "/system.slice/**"}, credentials: [L], paths: "**"}
`)
	id := NewIdentifier()
	proc, c := identify(t, id, cmd.Process.Pid)
	if proc.Cgroup != "/"+name {
		t.Fatalf("Cgroup = %q, want /%s", proc.Cgroup, name)
	}
	if d := p.Decide(proc, c, "f"); !slices.Equal(d.Consumers, []string{"test-cgroup"}) || d.Allows("L") {
		t.Errorf("in cgroup: %+v", d)
	}
	self, sc := identify(t, id, os.Getpid())
	if d := p.Decide(self, sc, "f"); d.View != ViewRaw {
		t.Errorf("test process (cgroup %q): %+v", self.Cgroup, d)
	}
	// An agent rule by cgroup catches it too.
	ap := mustParse(t, "version: 1\nagents: [{cgroup: \"/faciofs-test-*\"}]\nconsumers:\n  - {name: all, match: {uid: 0}, credentials: \"*\", paths: \"**\"}\n")
	if d := ap.Decide(proc, c, "f"); d.View != ViewRaw || !strings.Contains(d.Agent, "cgroup") {
		t.Errorf("agent by cgroup: %+v", d)
	}
}

func TestExplainAllFields(t *testing.T) {
	p := mustParse(t, `version: 1
agents: [{uid: 1001}]
consumers:
  - name: mcp
    match:
      exe: /usr/bin/node
      uid: [1000]
      gid: 1000
      cgroup: "/user.slice/**"
      ancestor_exe: /usr/bin/claude
    credentials: [OPENAI_API_KEY]
    paths: [mcp.json]
`)
	proc, c := identify(t, NewIdentifier(), startSleep(t, "/usr/bin/sleep").Process.Pid)
	d, text := p.Explain(proc, c, "mcp.json")
	if d.View != ViewRaw {
		t.Fatalf("%+v", d)
	}
	for _, want := range []string{
		"agents[0] (uid 1001): matches neither",
		"  mcp:\n",
		"exe /usr/bin/node: no",
		"uid 1000: no (caller uid 0)",
		"gid 1000: no",
		"cgroup /user.slice/**: no",
		"ancestor_exe /usr/bin/claude: no",
		"decision: raw: no consumer rule matches the process",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("explain lacks %q:\n%s", want, text)
		}
	}
	if dd := p.Decide(proc, c, "mcp.json"); dd.Reason != d.Reason {
		t.Errorf("Decide and Explain disagree: %q vs %q", dd.Reason, d.Reason)
	}
}

func TestIdentifyConcurrent(t *testing.T) {
	id := NewIdentifier()
	pids := []int{os.Getpid(), startSleep(t, "/usr/bin/sleep").Process.Pid, startSleep(t, "/usr/bin/sleep").Process.Pid}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				if _, err := id.Identify(Caller{Pid: uint32(pids[i%len(pids)])}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecent: within maxAge a thread's identity is reused without reading
// it again; after maxAge, or for an exited process, it is read again (and
// an exited one is an error, never the old identity).
func TestRecent(t *testing.T) {
	id := NewIdentifier()
	cmd := startSleep(t, "/usr/bin/sleep")
	c := Caller{Pid: uint32(cmd.Process.Pid)}
	p1, err := id.Recent(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := id.Recent(c, time.Hour)
	if err != nil || p2 != p1 {
		t.Fatalf("second Recent within maxAge: %p, %v; want the same identity %p", p2, err, p1)
	}
	if p1.Tgid != cmd.Process.Pid || p1.ExeIno == 0 {
		t.Errorf("identity %+v does not describe the sleep process", p1)
	}
	if _, err := id.Recent(c, 0); err != nil {
		t.Errorf("Recent with maxAge 0 (always identify again): %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if p, err := id.Recent(c, time.Hour); err == nil {
		t.Errorf("Recent of an exited process gave %+v, want an error", p)
	}
	if _, err := id.Recent(Caller{}, time.Hour); err != ErrOutsideNamespace {
		t.Errorf("Recent of pid 0: %v", err)
	}
}
