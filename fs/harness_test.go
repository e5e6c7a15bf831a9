package fs_test

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/faciofs/faciofs/fs"
	"github.com/faciofs/faciofs/internal/testkit"
	"github.com/faciofs/faciofs/resolve"
)

// Fake values: obviously not real, and long enough to be matched.
const (
	fakeKey   = "FAKE-sk-test-0001-xyz"
	fakeToken = "FAKE-token-0002-qrs"
)

var fakeValues = map[string]string{"OPENAI_API_KEY": fakeKey, "API_TOKEN": fakeToken}

// consumerUID is the uid the test policy treats as a consumer; agentUID is
// an ordinary other user. Both are unused on the test machines.
const (
	consumerUID = 4201
	agentUID    = 4202
)

// uidPolicy makes the processes of some uids consumers of every credential
// in every path, optionally only of some credentials.
type uidPolicy struct {
	consumers map[uint32]bool
	only      map[string]bool
	missing   bool
	decisions atomic.Int64
}

func (p *uidPolicy) Covers(rel string) bool { return len(p.consumers) > 0 }

func (p *uidPolicy) View(c fs.Caller, rel string) fs.View {
	p.decisions.Add(1)
	if !p.consumers[c.Uid] {
		return fs.View{}
	}
	return fs.View{
		Key: "uid-consumers",
		Allows: func(name string) bool {
			return p.only == nil || p.only[name]
		},
		MissingIsError: p.missing,
	}
}

// mapSecrets is a fixed set of values for tests.
type mapSecrets struct {
	mu      sync.RWMutex
	values  map[string][]byte
	matcher *resolve.Matcher
	gen     atomic.Uint64
}

func newMapSecrets(values map[string]string) *mapSecrets {
	s := &mapSecrets{}
	s.set(values)
	return s
}

func (s *mapSecrets) set(values map[string]string) {
	m := map[string][]byte{}
	var known []resolve.Known
	for k, v := range values {
		m[k] = []byte(v)
		known = append(known, resolve.Known{Name: k, Value: []byte(v)})
	}
	s.mu.Lock()
	s.values, s.matcher = m, resolve.NewMatcher(known)
	s.mu.Unlock()
	s.gen.Add(1)
}

func (s *mapSecrets) Value(name string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.values[name]
	return v, ok
}

func (s *mapSecrets) Reverse(data []byte) ([]byte, []string, error) {
	s.mu.RLock()
	m := s.matcher
	s.mu.RUnlock()
	return m.Reverse(data)
}

func (s *mapSecrets) Generation() uint64 { return s.gen.Load() }

type testMount struct {
	mnt, backing string
	root         *fs.Root
	server       *fuse.Server
	policy       *uidPolicy
	secrets      *mapSecrets
}

// requireFUSE skips when the machine cannot mount; CI has /dev/fuse and root.
func requireFUSE(t testing.TB) {
	t.Helper()
	if why := testkit.CannotMount(); why != "" {
		t.Skip(why)
	}
}

// worldDir makes a temporary directory every test uid can traverse.
func worldDir(t testing.TB) string {
	d := t.TempDir()
	for p := d; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	return d
}

// mountFS mounts a faciofs over a fresh backing directory, unmounted when
// the test ends, even if it fails.
func mountFS(t testing.TB, pol *uidPolicy, values map[string]string) *testMount {
	t.Helper()
	requireFUSE(t)
	dir := worldDir(t)
	tm := &testMount{
		mnt:     filepath.Join(dir, "mnt"),
		backing: filepath.Join(dir, "backing"),
		policy:  pol,
		secrets: newMapSecrets(values),
	}
	for _, d := range []string{tm.mnt, tm.backing} {
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o777)
	}
	cfg := fs.Config{Backing: tm.backing, Secrets: tm.secrets}
	if pol != nil {
		cfg.Policy = pol
	}
	root, err := fs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	server, err := root.Mount(tm.mnt, os.Getenv("FACIOFS_FUSE_DEBUG") != "")
	if err != nil {
		t.Fatal(err)
	}
	tm.root, tm.server = root, server
	t.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			// Something still holds the mount: detach it so later
			// tests and the machine are not left with it.
			time.Sleep(100 * time.Millisecond)
			if err := server.Unmount(); err != nil {
				_ = syscall.Unmount(tm.mnt, syscall.MNT_DETACH)
			}
		}
	})
	return tm
}

func consumerPolicy() *uidPolicy {
	return &uidPolicy{consumers: map[uint32]bool{consumerUID: true}}
}
