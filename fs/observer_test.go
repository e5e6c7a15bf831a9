package fs_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/faciofs/faciofs/fs"
)

// failingObserver cannot record resolutions, as an audit log on a full
// disk cannot.
type failingObserver struct {
	fail      atomic.Bool
	resolved  atomic.Int64
	rawServed atomic.Int64
	malformed atomic.Int64
}

func (o *failingObserver) Resolved(fs.Caller, string, []string) error {
	if o.fail.Load() {
		return errors.New("audit log: no space left on device")
	}
	o.resolved.Add(1)
	return nil
}
func (o *failingObserver) RawServed(fs.Caller, string)          { o.rawServed.Add(1) }
func (o *failingObserver) Malformed(fs.Caller, string)          { o.malformed.Add(1) }
func (o *failingObserver) Denied(fs.Caller, string, []string)   {}
func (o *failingObserver) Missing(fs.Caller, string, []string)  {}
func (o *failingObserver) Reversed(fs.Caller, string, []string) {}

// TestResolveFailsClosedWithoutAudit: when the resolution cannot be
// recorded, the consumer's open fails with EIO and no value is served.
func TestResolveFailsClosedWithoutAudit(t *testing.T) {
	requireFUSE(t)
	dir := worldDir(t)
	mnt, backing := filepath.Join(dir, "mnt"), filepath.Join(dir, "backing")
	os.Mkdir(mnt, 0o755)
	os.Mkdir(backing, 0o755)
	obs := &failingObserver{}
	// This test process (uid 0) is the consumer.
	root, err := fs.New(fs.Config{
		Backing:  backing,
		Policy:   &uidPolicy{consumers: map[uint32]bool{0: true}},
		Secrets:  newMapSecrets(fakeValues),
		Observer: obs,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := root.Mount(mnt, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if srv.Unmount() != nil {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	p := filepath.Join(mnt, "cfg.env")
	if err := os.WriteFile(filepath.Join(backing, "cfg.env"), []byte("K=${credentials.OPENAI_API_KEY}\nM=${credentials.bad|nope}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	obs.fail.Store(true)
	got, err := os.ReadFile(p)
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("open with the audit failing: %v, want EIO", err)
	}
	assertNoLeak(t, "read while the audit fails", got)

	obs.fail.Store(false)
	got, err = os.ReadFile(p)
	if err != nil || string(got) != "K="+fakeKey+"\nM=${credentials.bad|nope}\n" {
		t.Errorf("open with the audit working: %v (%d bytes)", err, len(got))
	}
	if obs.resolved.Load() != 1 || obs.malformed.Load() == 0 {
		t.Errorf("observer saw %d resolutions and %d malformed reports, want 1 and some", obs.resolved.Load(), obs.malformed.Load())
	}
}
