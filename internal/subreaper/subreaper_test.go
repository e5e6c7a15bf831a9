package subreaper

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/faciofs/faciofs/internal/testkit"
)

// One Reaper for the whole test binary: the subreaper mark is
// process-wide.
var reaper = func() *Reaper {
	r, err := Start()
	if err != nil {
		panic(err)
	}
	return r
}()

var eventually = testkit.Eventually

// runRegistered runs cmd in its own process group, registered with the
// reaper as exec's children are.
func runRegistered(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	started := reaper.Starting()
	if err := cmd.Start(); err != nil {
		started(0)
		return err
	}
	started(cmd.Process.Pid)
	err := cmd.Wait()
	reaper.Forget(cmd.Process.Pid)
	return err
}

// TestAdoptsAndReapsOrphans: a child that double-forks leaves its
// grandchild to this process, not to pid 1; once the grandchild exits it
// is reaped, not left a zombie.
func TestAdoptsAndReapsOrphans(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	release := filepath.Join(dir, "go")
	// The grandchild writes its pid, waits to be told, and exits; its
	// parent, the subshell, exits at once.
	grandchild := `echo $$ > "$0.tmp"; mv "$0.tmp" "$0"; while [ ! -e "$1" ]; do sleep 0.05; done`
	cmd := exec.Command("/bin/sh", "-c", `(exec /bin/sh -c "$0" "$1" "$2") & exit 0`, grandchild, pidFile, release)
	if err := runRegistered(cmd); err != nil {
		t.Fatalf("the registered child: %v", err)
	}

	var pid int
	if !eventually(10*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}) {
		t.Fatal("the grandchild never wrote its pid")
	}
	if !eventually(10*time.Second, func() bool {
		ppid, err := parent(pid)
		return err == nil && ppid == os.Getpid()
	}) {
		ppid, err := parent(pid)
		t.Fatalf("orphan %d has parent %d (%v), want this process %d", pid, ppid, err, os.Getpid())
	}
	before := reaper.Reaped()
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		return errors.Is(err, os.ErrNotExist)
	}) {
		state, _, _ := stat(pid)
		t.Fatalf("orphan %d still exists 10 s after it was told to exit (state %c)", pid, state)
	}
	if got := reaper.Reaped(); got <= before {
		t.Errorf("Reaped() = %d after the orphan went, want more than %d", got, before)
	}
}

// TestLeavesOthersChildrenAlone: children registered with Starting, and
// children in this process's own group (which libraries start and wait
// for), keep their exit status for their own Wait, even when they exit at
// once and orphans are being reaped at the same moment.
func TestLeavesOthersChildrenAlone(t *testing.T) {
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan string, 3*n)
	for i := range n {
		wg.Add(3)
		go func() { // registered, own process group, exits at once
			defer wg.Done()
			err := runRegistered(exec.Command("/bin/sh", "-c", "exit 7"))
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				errs <- "registered child: " + describe(err)
			}
		}()
		go func() { // unregistered, in this process's group
			defer wg.Done()
			err := exec.Command("/bin/sh", "-c", "exit 5").Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 5 {
				errs <- "child in the daemon's group: " + describe(err)
			}
		}()
		go func() { // noise: an orphan to reap
			defer wg.Done()
			err := runRegistered(exec.Command("/bin/sh", "-c", "(sleep 0.0"+strconv.Itoa(i%10)+" &) ; exit 0"))
			if err != nil {
				errs <- "orphan maker: " + err.Error()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// Every orphan is gone: no zombie children left behind.
	if !eventually(10*time.Second, func() bool { return len(testkit.ZombieChildren(os.Getpid())) == 0 }) {
		t.Errorf("zombie children left: %v", testkit.ZombieChildren(os.Getpid()))
	}
}

func describe(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// TestNilReaper: code that runs without a reaper (tests, non-daemon use)
// calls the same methods.
func TestNilReaper(t *testing.T) {
	var r *Reaper
	r.Starting()(42)
	r.Forget(42)
	r.Close()
	if r.Reaped() != 0 {
		t.Error("a nil Reaper reaped something")
	}
}
