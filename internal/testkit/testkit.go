// Package testkit holds the small pieces every suite that starts faciofs
// needs: a buffer a child process writes while the test reads it, polling
// for a condition instead of sleeping, and what the kernel says about a
// mountpoint. Only tests import it; nothing here is part of the product.
package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for a writer goroutine (an exec.Cmd's
// output copier) and a reader at the same time.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Eventually polls cond every 20 ms for up to d, and reports whether it
// held. Tests wait for evidence this way: a fixed sleep is either too long
// or, on a loaded machine, too short.
func Eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Mounted reports whether path is a mount point in /proc/self/mounts, as
// the kernel sees it (not as faciofs's own mountpoint package decides).
func Mounted(path string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.ReplaceAll(f[1], `\040`, " ") == path {
			return true, nil
		}
	}
	return false, nil
}

// Stale reports whether path is a FUSE mount whose server is gone
// (ENOTCONN).
func Stale(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, syscall.ENOTCONN)
}

// CannotMount says why this process cannot run the mounting tests (they
// need root, for allow_other and other uids, and a usable /dev/fuse), or
// "" when it can. CI has both; elsewhere the tests skip with the reason.
func CannotMount() string {
	if os.Geteuid() != 0 {
		return "needs root (mounts with allow_other, other uids)"
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Sprintf("no usable /dev/fuse: %v", err)
	}
	f.Close()
	return ""
}

// ZombieChildren lists the children of process pid that have exited and
// not been waited for, from /proc/PID/task/*/children.
func ZombieChildren(pid int) []int {
	var z []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, f := range strings.Fields(string(b)) {
			st, err := os.ReadFile("/proc/" + f + "/stat")
			i := bytes.LastIndexByte(st, ')')
			if err != nil || i < 0 || !bytes.HasPrefix(st[i:], []byte(") Z")) {
				continue
			}
			if child, err := strconv.Atoi(f); err == nil {
				z = append(z, child)
			}
		}
	}
	return z
}
