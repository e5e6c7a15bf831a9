package fs_test

import (
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// TestPosix runs go-fuse's own conformance suite against a faciofs mount,
// as go-fuse runs it against its loopback.
func TestPosix(t *testing.T) {
	for name, fn := range posixtest.All {
		t.Run(name, func(t *testing.T) {
			tm := mountFS(t, consumerPolicy(), fakeValues)
			fn(t, tm.mnt)
		})
	}
}
