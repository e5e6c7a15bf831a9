package fs

import (
	"context"
	"hash/fnv"
	"path"
	"path/filepath"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Node is one inode of the mount. A raw node (viewKey "") is a plain
// loopback node; a view node shows the resolved bytes of a templated file to
// the consumers whose view key it carries, and to nobody else.
type Node struct {
	*gofs.LoopbackNode
	root    *Root
	viewKey string
	// rendered is what the last read-only open of a view node rendered.
	rendered atomic.Pointer[sizeKey]
}

var (
	_ = (gofs.NodeWrapChilder)((*Node)(nil))
	_ = (gofs.NodeLookuper)((*Node)(nil))
	_ = (gofs.NodeOpener)((*Node)(nil))
	_ = (gofs.NodeCreater)((*Node)(nil))
	_ = (gofs.NodeGetattrer)((*Node)(nil))
	_ = (gofs.NodeStatxer)((*Node)(nil))
	_ = (gofs.NodeSetattrer)((*Node)(nil))
	_ = (gofs.NodeMkdirer)((*Node)(nil))
	_ = (gofs.NodeSymlinker)((*Node)(nil))
	_ = (gofs.NodeLinker)((*Node)(nil))
	_ = (gofs.NodeMknoder)((*Node)(nil))
	_ = (gofs.NodeCopyFileRanger)((*Node)(nil))
)

// WrapChild makes every node the loopback code creates one of ours.
func (n *Node) WrapChild(ctx context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	if ln, ok := ops.(*gofs.LoopbackNode); ok {
		return &Node{LoopbackNode: ln, root: n.root}
	}
	return ops
}

// rel is the node's path relative to the mount root, as policy globs see it.
func (n *Node) rel() string {
	return n.Path(n.root.rootInode())
}

func (n *Node) backingPath() string {
	return filepath.Join(n.root.backing, n.rel())
}

func callerOf(ctx context.Context) Caller {
	if c, ok := fuse.FromContext(ctx); ok {
		return Caller{Pid: c.Pid, Uid: c.Uid, Gid: c.Gid}
	}
	// No caller attached: treat as unknown, which is never a consumer.
	return Caller{}
}

// Lookup points each caller at its own node. On a path that some consumer
// rule covers, a consumer gets a view node and everybody else the raw node,
// both with a zero entry timeout so that every walk asks again (their
// attributes may be cached: only the node's own callers reach them).
func (n *Node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	p := filepath.Join(n.backingPath(), name)
	st, id, err := n.root.lstat(p)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	rel := path.Join(n.rel(), name)
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || !n.root.covers(rel) {
		n.root.setTimeouts(out)
		return n.NewInode(ctx, n.root.newNode(""), id), 0
	}
	// Zero entry timeout: the next walk by anybody asks again.
	out.SetEntryTimeout(0)
	out.SetAttrTimeout(n.root.viewAttrTimeout)
	v := n.root.view(callerOf(ctx), rel)
	if v.Raw() {
		return n.NewInode(ctx, n.root.newNode(""), id), 0
	}
	size, errno := n.root.viewSize(rel, &st, v)
	if errno != 0 {
		return nil, errno
	}
	out.Attr.Size = size
	out.Attr.Blocks = (size + 511) / 512
	id.Gen = viewGen(id.Gen, v.Key)
	return n.NewInode(ctx, n.root.newNode(v.Key), id), 0
}

// viewGen gives each view of a backing inode its own go-fuse identity, and
// so its own kernel node ID, while st_ino stays the backing inode number.
func viewGen(gen uint64, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return (gen ^ h.Sum64()) | 1<<63
}

// misplaced reports whether the caller belongs on another node than n: a
// consumer on a raw node of a covered file, or anybody whose view is not
// n's on a view node. Such a caller gets ESTALE, and the VFS walks again
// with LOOKUP_REVAL, which always asks Lookup.
func (n *Node) misplaced(c Caller, rel string) (View, bool) {
	if n.viewKey == "" && (!n.IsRegular() || !n.root.covers(rel)) {
		return View{}, false
	}
	v := n.root.view(c, rel)
	return v, v.Key != n.viewKey
}

// Open decides the view at open time and binds it to the handle.
func (n *Node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	c := callerOf(ctx)
	rel := n.rel()
	v, wrong := n.misplaced(c, rel)
	if wrong {
		return nil, 0, syscall.ESTALE
	}
	if n.viewKey == "" {
		if n.IsRegular() && n.root.covers(rel) {
			n.root.noteRawServe(c, rel)
		}
		return n.root.openRaw(c, rel, flags)
	}
	fh, fl, errno := n.root.openView(c, rel, flags, v)
	if rf, ok := fh.(*resolvedFile); ok && !rf.writable {
		// Nothing to flush; and when the same bytes were rendered for
		// this node last time (same file version, view and values), the
		// kernel may keep the pages it has: they are this view's own.
		fl |= fuse.FOPEN_NOFLUSH
		if prev := n.rendered.Swap(&rf.sig); prev != nil && *prev == rf.sig {
			fl |= fuse.FOPEN_KEEP_CACHE
		}
	}
	return fh, fl, errno
}

// IsRegular reports whether the node is a regular file.
func (n *Node) IsRegular() bool {
	return n.StableAttr().Mode&syscall.S_IFMT == syscall.S_IFREG
}

// Create makes a new file. A consumer creating a file on a path its view
// covers gets a view node and an in-memory handle, so nothing it writes
// reaches the disk, or a cache the agent can reach, before reverse
// substitution.
func (n *Node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if errno := n.refuseValues(ctx, name); errno != 0 {
		return nil, nil, 0, errno
	}
	c := callerOf(ctx)
	p := filepath.Join(n.backingPath(), name)
	rel := path.Join(n.rel(), name)
	flags = flags &^ syscall.O_APPEND
	f, err := n.root.openBeneath(rel, readableToo(flags)|syscall.O_CREAT, mode)
	if err != nil {
		return nil, nil, 0, gofs.ToErrno(err)
	}
	n.root.preserveOwner(c, p)
	st, id, err := n.root.lstat(p)
	if err != nil {
		f.Close()
		return nil, nil, 0, gofs.ToErrno(err)
	}
	out.FromStat(&st)
	if !n.root.covers(rel) {
		n.root.setTimeouts(out)
		return n.NewInode(ctx, n.root.newNode(""), id), n.root.rawFromFile(c, rel, f, flags), 0, 0
	}
	out.SetEntryTimeout(0)
	out.SetAttrTimeout(n.root.viewAttrTimeout)
	v := n.root.view(c, rel)
	if v.Raw() {
		return n.NewInode(ctx, n.root.newNode(""), id), n.root.rawFromFile(c, rel, f, flags), 0, 0
	}
	id.Gen = viewGen(id.Gen, v.Key)
	ch := n.NewInode(ctx, n.root.newNode(v.Key), id)
	fh, fl, errno := n.root.resolvedFromFile(c, rel, f, flags|syscall.O_RDWR, v)
	return ch, fh, fl, errno
}

// readableToo turns a write-only open into a read-write one: the daemon
// must read what was written, to scrub values from it or to render it.
// The kernel has already checked the caller's own access.
func readableToo(flags uint32) int {
	if flags&syscall.O_ACCMODE == syscall.O_WRONLY {
		return int(flags&^syscall.O_ACCMODE | syscall.O_RDWR)
	}
	return int(flags)
}

// Getattr reports a view node's view size; a raw node's is the backing
// file's.
func (n *Node) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if rf, ok := fh.(*resolvedFile); ok {
		return rf.Getattr(ctx, out)
	}
	rel := n.rel()
	c := callerOf(ctx)
	if n.viewKey == "" {
		// Without a handle the request comes from a path walk's dentry,
		// which may belong to somebody else's view.
		if fh == nil {
			if _, wrong := n.misplaced(c, rel); wrong {
				return syscall.ESTALE
			}
		}
		errno := n.LoopbackNode.Getattr(ctx, fh, out)
		if n.IsRegular() && n.root.covers(rel) {
			out.SetTimeout(n.root.viewAttrTimeout)
		} else {
			out.SetTimeout(n.root.attrTimeout)
		}
		return errno
	}
	v, wrong := n.misplaced(c, rel)
	if wrong {
		if fh == nil {
			return syscall.ESTALE
		}
		// The handle's process changed view since it opened (a policy
		// reload): report the backing file, render nothing.
		errno := n.LoopbackNode.Getattr(ctx, fh, out)
		out.SetTimeout(n.root.viewAttrTimeout)
		return errno
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(n.root.backing, rel), &st); err != nil {
		return gofs.ToErrno(err)
	}
	size, errno := n.root.viewSize(rel, &st, v)
	if errno != 0 {
		return errno
	}
	out.FromStat(&st)
	out.Size = size
	out.Blocks = (size + 511) / 512
	out.SetTimeout(n.root.viewAttrTimeout)
	return 0
}

// Statx is Getattr for callers that ask for more fields; a view node must
// report the same resolved size.
func (n *Node) Statx(ctx context.Context, fh gofs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if _, ok := fh.(*resolvedFile); !ok && n.viewKey == "" && (!n.IsRegular() || !n.root.covers(n.rel())) {
		return n.LoopbackNode.Statx(ctx, fh, flags, mask, out)
	}
	var a fuse.AttrOut
	if errno := n.Getattr(ctx, fh, &a); errno != 0 {
		return errno
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, n.backingPath(), unix.AT_SYMLINK_NOFOLLOW, int(mask), &stx); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStatx(&stx)
	out.Size = a.Size
	out.Blocks = a.Blocks
	out.SetTimeout(n.root.viewAttrTimeout)
	return 0
}

// Setattr on a view node changes the size in resolved space; everything
// else goes to the backing file.
func (n *Node) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	c := callerOf(ctx)
	rel := n.rel()
	v, wrong := n.misplaced(c, rel)
	if wrong && fh == nil {
		return syscall.ESTALE
	}
	if n.viewKey == "" {
		errno := n.LoopbackNode.Setattr(ctx, fh, in, out)
		if n.IsRegular() && n.root.covers(rel) {
			out.SetTimeout(n.root.viewAttrTimeout)
		} else {
			out.SetTimeout(n.root.attrTimeout)
		}
		return errno
	}
	if size, ok := in.GetSize(); ok {
		if rf, ok := fh.(*resolvedFile); ok {
			if errno := rf.truncate(int64(size)); errno != 0 {
				return errno
			}
		} else if errno := n.root.truncateResolved(c, rel, int64(size), v); errno != 0 {
			return errno
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	if errno := n.LoopbackNode.Setattr(ctx, nil, in, out); errno != 0 {
		return errno
	}
	return n.Getattr(ctx, fh, out)
}

// CopyFileRange between two raw handles is done by the backing
// filesystem; anything else falls back to reads and writes through our
// handles, which apply the views.
func (n *Node) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode, fhOut gofs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	in, ok1 := fhIn.(*rawFile)
	o, ok2 := fhOut.(*rawFile)
	if !ok1 || !ok2 {
		return 0, syscall.ENOTSUP
	}
	written, err := unix.CopyFileRange(int(in.f.Fd()), ptr(int64(offIn)), int(o.f.Fd()), ptr(int64(offOut)), int(length), int(flags))
	if err != nil {
		return 0, gofs.ToErrno(err)
	}
	o.wrote.Store(true)
	return uint32(written), 0
}

func ptr(v int64) *int64 { return &v }

// Setxattr stores an extended attribute as writes store contents: a known
// value in it is replaced by its placeholder first, so a consumer cannot
// put a value where the agent reads it (invariant 2). An attribute whose
// values cannot be removed is not stored.
func (n *Node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	clean, names, err := n.root.secrets.Reverse(data)
	if err != nil {
		return syscall.EIO
	}
	if len(names) > 0 {
		n.root.stats.Reversals.Add(1)
		n.root.obs.Reversed(callerOf(ctx), n.rel(), names)
	}
	return n.LoopbackNode.Setxattr(ctx, attr, clean, flags)
}

// refuseValues answers EPERM when a name (or a symlink target) about to be
// stored in the backing directory holds a known value: names cannot be
// reverse-substituted without surprising the program that chose them, and
// must not carry a value to where the agent lists it (invariant 2).
func (n *Node) refuseValues(ctx context.Context, texts ...string) syscall.Errno {
	for _, s := range texts {
		_, names, err := n.root.secrets.Reverse([]byte(s))
		if err != nil {
			return syscall.EIO
		}
		if len(names) > 0 {
			n.root.obs.Denied(callerOf(ctx), path.Join(n.rel(), "(a name holding a value)"), names)
			return syscall.EPERM
		}
	}
	return 0
}

// Mkdir, Symlink, Link and Mknod are loopback operations that only need the
// mount's cache timeouts on their replies, once the new name is checked.
func (n *Node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.refuseValues(ctx, name); errno != 0 {
		return nil, errno
	}
	ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	n.root.setTimeouts(out)
	return ch, errno
}

func (n *Node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.refuseValues(ctx, name, target); errno != 0 {
		return nil, errno
	}
	ch, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
	n.root.setTimeouts(out)
	return ch, errno
}

func (n *Node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.refuseValues(ctx, name); errno != 0 {
		return nil, errno
	}
	ch, errno := n.LoopbackNode.Link(ctx, target, name, out)
	n.root.setTimeouts(out)
	return ch, errno
}

// Rename checks the new name; the rest is the loopback's.
func (n *Node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := n.refuseValues(ctx, newName); errno != 0 {
		return errno
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *Node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.refuseValues(ctx, name); errno != 0 {
		return nil, errno
	}
	ch, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	n.root.setTimeouts(out)
	return ch, errno
}
