package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faciofs/faciofs/fs"
	"github.com/faciofs/faciofs/internal/control"
	"github.com/faciofs/faciofs/policy"
)

// childEnv makes this test binary, started as a child, sleep instead of
// running tests: a process running the very same program as the test,
// but descended from it.
const childEnv = "FACIOFS_DAEMON_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		time.Sleep(30 * time.Second)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// selfPolicy names this test binary a consumer of K on every path.
func selfPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse(fmt.Appendf(nil, "version: 1\nconsumers:\n  - name: self\n    match: {exe: [%s]}\n    credentials: [K]\n    paths: [\"**\"]\n", exe), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startChild starts this binary as a sleeping child of the test process.
func startChild(t *testing.T) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(exe)
	c.Env = append(os.Environ(), childEnv+"=1")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	return c.Process.Pid
}

// TestDescendantsAreNeverConsumers: the same program that the policy names
// a consumer gets a resolved view as the daemon itself, and the raw view
// as the daemon's descendant (what every `faciofs exec` child is), though
// the policy's own decision for it is "resolved".
func TestDescendantsAreNeverConsumers(t *testing.T) {
	p := selfPolicy(t)
	pv := newPolicyView(p, policy.NewIdentifier())

	self := fs.Caller{Pid: uint32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	if v := pv.View(self, "app.env"); v.Raw() || !v.Allows("K") {
		t.Fatalf("the consumer itself: raw=%v; want a resolved view of K", v.Raw())
	}

	child := startChild(t)
	c := policy.Caller{Pid: uint32(child), Uid: self.Uid, Gid: self.Gid}
	proc, err := policy.NewIdentifier().Identify(c)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(proc, c, "app.env"); d.View != policy.ViewResolved {
		t.Fatalf("the policy alone does not resolve for the child (%+v): the test proves nothing", d)
	}
	if !startedByExec(proc) {
		t.Errorf("startedByExec = false for a child of the daemon; ancestors %+v", proc.Ancestors)
	}
	if v := pv.View(fs.Caller(c), "app.env"); !v.Raw() {
		t.Errorf("the daemon's descendant got a resolved view (key %q)", v.Key)
	}
	text, err := explain(p, "/mnt", child, "app.env")
	if err != nil || !strings.Contains(text, "descends from this mount") {
		t.Errorf("explain for the descendant: %q, %v", text, err)
	}
}

// TestExplainPaths: paths are relative to the mount root, or absolute
// under the mountpoint; anything else is a usage error. No policy: raw.
func TestExplainPaths(t *testing.T) {
	p := selfPolicy(t)
	mnt := t.TempDir()
	for _, path := range []string{"app.env", filepath.Join(mnt, "app.env"), "./sub/../app.env"} {
		text, err := explain(p, mnt, os.Getpid(), path)
		if err != nil || !strings.Contains(text, "decision: resolved") {
			t.Errorf("explain %q: %q, %v", path, text, err)
		}
	}
	for _, path := range []string{"/elsewhere/app.env", filepath.Dir(mnt)} {
		_, err := explain(p, mnt, os.Getpid(), path)
		var ce *control.Error
		if !errors.As(err, &ce) || ce.Kind != control.KindUsage {
			t.Errorf("explain %q outside the mountpoint: %v, want a usage error", path, err)
		}
	}
	if _, err := explain(p, mnt, -1, "app.env"); err == nil {
		t.Error("explain for pid -1: no error")
	}
	if text, err := explain(nil, mnt, os.Getpid(), "app.env"); err != nil || !strings.Contains(text, "no policy loaded") {
		t.Errorf("explain without a policy: %q, %v", text, err)
	}
}
