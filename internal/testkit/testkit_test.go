package testkit

import (
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestMounted(t *testing.T) {
	if m, err := Mounted("/proc"); err != nil || !m {
		t.Errorf("Mounted(/proc) = %v, %v", m, err)
	}
	if m, err := Mounted(t.TempDir()); err != nil || m {
		t.Errorf("Mounted(a fresh temp dir) = %v, %v", m, err)
	}
	if Stale(t.TempDir()) {
		t.Error("a plain directory is stale")
	}
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	if !Eventually(5*time.Second, func() bool { return n.Add(1) >= 3 }) {
		t.Error("a condition that comes true on the third poll was not seen")
	}
	start := time.Now()
	if Eventually(100*time.Millisecond, func() bool { return false }) {
		t.Error("a condition that never holds was reported as held")
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("gave up after %v, before the 100 ms bound", d)
	}
}

// TestCannotMount: on a machine the CI is (root, /dev/fuse), nothing is
// missing; as another user, the reason names root.
func TestCannotMount(t *testing.T) {
	why := CannotMount()
	if os.Geteuid() != 0 {
		if !strings.Contains(why, "root") {
			t.Errorf("not root, but CannotMount says %q", why)
		}
		return
	}
	if _, err := os.Stat("/dev/fuse"); err == nil && why != "" {
		t.Errorf("root with /dev/fuse, but CannotMount says %q", why)
	}
}
