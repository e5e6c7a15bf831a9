package fs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Config describes one mount.
type Config struct {
	// Backing is the directory whose files the mount shows.
	Backing string
	// Policy decides views; nil means nobody is a consumer.
	Policy Policy
	// Secrets gives values for rendering and reverse substitution.
	Secrets Secrets
	// Observer is told about resolutions; nil ignores them.
	Observer Observer
	// CacheTimeout is the kernel's entry and attribute timeout for nodes
	// that cannot hold resolved bytes; default one second.
	CacheTimeout time.Duration
	// Debug logs every FUSE request (names and sizes, never contents).
	Debug bool
}

// Root is a mounted (or mountable) faciofs tree.
type Root struct {
	backing     string
	backingFd   int
	loop        *gofs.LoopbackRoot
	node        *Node
	policy      atomic.Pointer[Policy]
	secrets     Secrets
	obs         Observer
	timeout     time.Duration
	attrTimeout time.Duration
	// viewAttrTimeout is the attribute timeout of regular files on
	// covered paths (views and raw nodes alike); their entry timeout
	// stays zero, so every walk asks Lookup again.
	viewAttrTimeout time.Duration
	scans           scanCache
	stats           Stats
}

// New checks the backing directory and prepares the tree.
func New(cfg Config) (*Root, error) {
	backing, err := filepath.Abs(cfg.Backing)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("backing directory %s: %w", backing, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, fmt.Errorf("backing directory %s: not a directory", backing)
	}
	fd, err := unix.Open(backing, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("backing directory %s: %w", backing, err)
	}
	if err := unix.Faccessat(fd, ".", unix.R_OK|unix.X_OK, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("backing directory %s: not readable: %w", backing, err)
	}
	if cfg.Secrets == nil {
		return nil, errors.New("no secrets source")
	}
	r := &Root{
		backing:   backing,
		backingFd: fd,
		secrets:   cfg.Secrets,
		obs:       cfg.Observer,
		timeout:   cfg.CacheTimeout,
	}
	if r.obs == nil {
		r.obs = nopObserver{}
	}
	if r.timeout == 0 {
		r.timeout = time.Second
	}
	r.attrTimeout = r.timeout
	r.viewAttrTimeout = r.timeout
	r.SetPolicy(cfg.Policy)
	r.loop = &gofs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	r.node = &Node{LoopbackNode: &gofs.LoopbackNode{RootData: r.loop}, root: r}
	r.loop.RootNode = r.node
	r.scans.init()
	return r, nil
}

// SetPolicy replaces the policy for every later decision. Handles opened
// before keep the view they were opened with; view nodes whose key no longer
// matches a caller answer ESTALE and are walked away from.
func (r *Root) SetPolicy(p Policy) {
	if p == nil {
		p = nobody{}
	}
	r.policy.Store(&p)
}

type nobody struct{}

func (nobody) View(Caller, string) View { return View{} }
func (nobody) Covers(string) bool       { return false }

// Stats returns the filesystem's counters.
func (r *Root) Stats() *Stats { return &r.stats }

// Mount mounts the tree at mountpoint and serves it in the background.
func (r *Root) Mount(mountpoint string, debug bool) (*fuse.Server, error) {
	opts := &gofs.Options{
		MountOptions: fuse.MountOptions{
			FsName:      "faciofs",
			Name:        "faciofs",
			Options:     []string{"default_permissions"},
			AllowOther:  os.Geteuid() == 0 || userAllowOther(),
			DirectMount: true,
			EnableLocks: true,
			MaxWrite:    1 << 20,
			Debug:       debug,
		},
		// Timeouts are set per reply (see setTimeouts): a global
		// default would overwrite the zero entry timeouts of covered files.
		NullPermissions: true,
	}
	return gofs.Mount(mountpoint, r.node, opts)
}

// userAllowOther reports whether /etc/fuse.conf lets non-root users mount
// with allow_other, which consumers under other uids need.
func userAllowOther() bool {
	conf, err := os.ReadFile("/etc/fuse.conf")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(conf), "\n") {
		if strings.TrimSpace(line) == "user_allow_other" {
			return true
		}
	}
	return false
}

func (r *Root) rootInode() *gofs.Inode { return r.node.EmbeddedInode() }

func (r *Root) view(c Caller, rel string) View {
	if c.Pid == 0 {
		// Outside our pid namespace, or no caller: never a consumer.
		return View{}
	}
	v := (*r.policy.Load()).View(c, rel)
	if v.Key != "" && v.Allows == nil {
		return View{}
	}
	return v
}

func (r *Root) covers(rel string) bool {
	return (*r.policy.Load()).Covers(rel)
}

func (r *Root) newNode(viewKey string) *Node {
	return &Node{LoopbackNode: &gofs.LoopbackNode{RootData: r.loop}, root: r, viewKey: viewKey}
}

func (r *Root) setTimeouts(out *fuse.EntryOut) {
	out.SetEntryTimeout(r.timeout)
	out.SetAttrTimeout(r.attrTimeout)
}

// lstat stats a backing path and gives it the identity go-fuse's loopback
// would, so that nodes created by inherited loopback operations (link,
// mkdir) and by our Lookup are the same node.
func (r *Root) lstat(p string) (syscall.Stat_t, gofs.StableAttr, error) {
	var stx unix.Statx_t
	var st syscall.Stat_t
	err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &stx)
	if err != nil {
		return st, gofs.StableAttr{}, err
	}
	st.Dev = unix.Mkdev(stx.Dev_major, stx.Dev_minor)
	st.Ino = stx.Ino
	st.Nlink = uint64(stx.Nlink)
	st.Mode = uint32(stx.Mode)
	st.Uid = stx.Uid
	st.Gid = stx.Gid
	st.Rdev = unix.Mkdev(stx.Rdev_major, stx.Rdev_minor)
	st.Size = int64(stx.Size)
	st.Blksize = int64(stx.Blksize)
	st.Blocks = int64(stx.Blocks)
	st.Atim = syscall.Timespec{Sec: stx.Atime.Sec, Nsec: int64(stx.Atime.Nsec)}
	st.Mtim = syscall.Timespec{Sec: stx.Mtime.Sec, Nsec: int64(stx.Mtime.Nsec)}
	st.Ctim = syscall.Timespec{Sec: stx.Ctime.Sec, Nsec: int64(stx.Ctime.Nsec)}

	gen := uint64(1)
	if stx.Mask&unix.STATX_BTIME != 0 && (stx.Btime.Sec != 0 || stx.Btime.Nsec != 0) {
		gen = uint64(stx.Btime.Sec)*1e9 + uint64(stx.Btime.Nsec)
	}
	swapped := (st.Dev << 32) | (st.Dev >> 32)
	swappedRootDev := (r.loop.Dev << 32) | (r.loop.Dev >> 32)
	return st, gofs.StableAttr{Mode: st.Mode, Gen: gen, Ino: (swapped ^ swappedRootDev) ^ st.Ino}, nil
}

// openBeneath opens a path relative to the backing directory without
// following any symlink, so a directory swapped for a symlink after LOOKUP
// cannot make the daemon open a file outside the backing directory.
func (r *Root) openBeneath(rel string, flags int, mode uint32) (*os.File, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Mode:    uint64(mode & 07777),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	if flags&unix.O_CREAT == 0 {
		how.Mode = 0
	}
	fd, err := unix.Openat2(r.backingFd, rel, &how)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(r.backing, rel)), nil
}

// openForScan opens a backing file to look at its content on the
// daemon's own account (scanning, sizing, rendering), without updating its
// access time where the kernel allows that.
func (r *Root) openForScan(rel string) (*os.File, error) {
	f, err := r.openBeneath(rel, unix.O_RDONLY|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		f, err = r.openBeneath(rel, unix.O_RDONLY, 0)
	}
	return f, err
}

// preserveOwner gives a file created by the root daemon to its creator.
func (r *Root) preserveOwner(c Caller, p string) {
	if os.Geteuid() != 0 {
		return
	}
	_ = syscall.Lchown(p, int(c.Uid), int(c.Gid))
}

// Stats counts what the filesystem did; the control plane reports them.
type Stats struct {
	Opens, Resolves, RawServes, Denials, Reversals atomic.Uint64
}
