package fs

import (
	"context"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// openView opens a view node. A consumer reading a file without
// placeholders reads the backing file; anything else goes through an
// in-memory rendered copy.
func (r *Root) openView(c Caller, rel string, flags uint32, v View) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		templated, errno := r.templatedPath(rel)
		if errno != 0 {
			return nil, 0, errno
		}
		if !templated {
			f, err := r.openBeneath(rel, int(flags&^(syscall.O_APPEND|fuse.FMODE_EXEC)), 0)
			if err != nil {
				return nil, 0, toErrno(err)
			}
			r.stats.Opens.Add(1)
			// Read-only: nothing to scrub at close (see openRaw).
			return plainViewFile{gofs.NewLoopbackFileFromOS(f)}, fuse.FOPEN_NOFLUSH, 0
		}
	}
	return r.openResolved(c, rel, flags, v)
}

// loopbackHandle is the loopback file's methods less PassthroughFd.
type loopbackHandle interface {
	gofs.FileReader
	gofs.FileReleaser
	gofs.FileFlusher
	gofs.FileFsyncer
	gofs.FileGetattrer
	gofs.FileLseeker
	gofs.FileGetlker
	gofs.FileSetlker
	gofs.FileSetlkwer
}

// plainViewFile serves a consumer a file that holds no placeholder, without
// kernel passthrough: the kernel does not let passthrough and cached opens
// share a node, and a consumer may open the same node for writing, which is
// always cached.
type plainViewFile struct{ loopbackHandle }

// openResolved opens a consumer's view of a file: the rendered bytes live in
// the handle, and whatever the consumer writes is reverse-substituted before
// it is stored.
func (r *Root) openResolved(c Caller, rel string, flags uint32, v View) (gofs.FileHandle, uint32, syscall.Errno) {
	mode := syscall.O_RDONLY
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		mode = syscall.O_RDWR
	}
	f, err := r.openBeneath(rel, mode|int(flags&syscall.O_TRUNC), 0)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	return r.resolvedFromFile(c, rel, f, flags, v)
}

func (r *Root) resolvedFromFile(c Caller, rel string, f *os.File, flags uint32, v View) (gofs.FileHandle, uint32, syscall.Errno) {
	r.stats.Opens.Add(1)
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, 0, toErrno(err)
	}
	sig := sizeKey{statKey: keyOf(&st), view: v.Key, gen: r.secrets.Generation()}
	buf, rep, errno := r.render(f, v)
	if errno != 0 {
		f.Close()
		return nil, 0, errno
	}
	if len(rep.Denied) > 0 {
		r.stats.Denials.Add(1)
		r.obs.Denied(c, rel, rep.Denied)
	}
	if len(rep.Missing) > 0 {
		r.obs.Missing(c, rel, rep.Missing)
		if v.MissingIsError {
			wipe(buf)
			f.Close()
			return nil, 0, syscall.EIO
		}
	}
	if rep.Malformed > 0 {
		r.obs.Malformed(c, rel)
	}
	if len(rep.Resolved) > 0 {
		if err := r.obs.Resolved(c, rel, rep.Resolved); err != nil {
			// Not audited, so not resolved.
			wipe(buf)
			f.Close()
			return nil, 0, syscall.EIO
		}
		r.stats.Resolves.Add(1)
	}
	return &resolvedFile{
		root:     r,
		caller:   c,
		rel:      rel,
		f:        f,
		buf:      buf,
		writable: flags&syscall.O_ACCMODE != syscall.O_RDONLY,
		sig:      sig,
	}, 0, 0
}

// truncateResolved changes a view's size without a handle (truncate(2)).
func (r *Root) truncateResolved(c Caller, rel string, size int64, v View) syscall.Errno {
	f, err := r.openBeneath(rel, syscall.O_RDWR, 0)
	if err != nil {
		return toErrno(err)
	}
	h, _, errno := r.resolvedFromFile(c, rel, f, syscall.O_RDWR, v)
	if errno != 0 {
		return errno
	}
	rf := h.(*resolvedFile)
	if errno := rf.truncate(size); errno != 0 {
		rf.Release(context.Background())
		return errno
	}
	return rf.Release(context.Background())
}

// resolvedFile is an open consumer view. buf holds values; it never leaves
// this process except to the consumer that opened it, and is wiped on
// release.
type resolvedFile struct {
	mu       sync.Mutex
	root     *Root
	caller   Caller
	rel      string
	f        *os.File
	buf      []byte
	writable bool
	dirty    bool
	sig      sizeKey // what was rendered: file version, view, values
}

var (
	_ = (gofs.FileReader)((*resolvedFile)(nil))
	_ = (gofs.FileWriter)((*resolvedFile)(nil))
	_ = (gofs.FileFlusher)((*resolvedFile)(nil))
	_ = (gofs.FileFsyncer)((*resolvedFile)(nil))
	_ = (gofs.FileReleaser)((*resolvedFile)(nil))
	_ = (gofs.FileGetattrer)((*resolvedFile)(nil))
	_ = (gofs.FileAllocater)((*resolvedFile)(nil))
)

func (rf *resolvedFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if off >= int64(len(rf.buf)) {
		return fuse.ReadResultData(nil), 0
	}
	n := copy(dest, rf.buf[off:])
	return fuse.ReadResultData(dest[:n]), 0
}

func (rf *resolvedFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if !rf.writable {
		return 0, syscall.EBADF
	}
	end := off + int64(len(data))
	if end > MaxResolvedSize {
		return 0, syscall.EFBIG
	}
	rf.grow(end)
	copy(rf.buf[off:], data)
	rf.dirty = true
	return uint32(len(data)), 0
}

// grow extends buf to size with zeros, moving it so that the old backing
// array (which held values) is wiped rather than left to the collector.
func (rf *resolvedFile) grow(size int64) {
	if size <= int64(len(rf.buf)) {
		return
	}
	if size > int64(cap(rf.buf)) {
		nb := make([]byte, size, size+size/2)
		copy(nb, rf.buf)
		wipe(rf.buf)
		rf.buf = nb
		return
	}
	old := len(rf.buf)
	rf.buf = rf.buf[:size]
	clear(rf.buf[old:])
}

func (rf *resolvedFile) truncate(size int64) syscall.Errno {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if size > MaxResolvedSize {
		return syscall.EFBIG
	}
	if size < int64(len(rf.buf)) {
		clear(rf.buf[size:])
		rf.buf = rf.buf[:size]
	} else {
		rf.grow(size)
	}
	rf.dirty = true
	return rf.storeLocked()
}

func (rf *resolvedFile) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	if mode != 0 {
		return syscall.EOPNOTSUPP
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if int64(off+size) > MaxResolvedSize {
		return syscall.EFBIG
	}
	if int64(off+size) > int64(len(rf.buf)) {
		rf.grow(int64(off + size))
		rf.dirty = true
	}
	return 0
}

// storeLocked writes the view back with every known value replaced by its
// placeholder. The bytes handed to the backing file are the reversed copy;
// the resolved buffer itself never leaves memory.
func (rf *resolvedFile) storeLocked() syscall.Errno {
	if !rf.dirty {
		return 0
	}
	out, names, err := rf.root.secrets.Reverse(rf.buf)
	if err != nil {
		return syscall.EIO
	}
	if _, err := rf.f.WriteAt(out, 0); err != nil {
		return toErrno(err)
	}
	if err := rf.f.Truncate(int64(len(out))); err != nil {
		return toErrno(err)
	}
	if len(names) > 0 {
		rf.root.stats.Reversals.Add(1)
		rf.root.obs.Reversed(rf.caller, rf.rel, names)
	}
	rf.dirty = false
	return 0
}

func (rf *resolvedFile) Flush(ctx context.Context) syscall.Errno {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return rf.storeLocked()
}

func (rf *resolvedFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if errno := rf.storeLocked(); errno != 0 {
		return errno
	}
	return toErrno(rf.f.Sync())
}

func (rf *resolvedFile) Release(ctx context.Context) syscall.Errno {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	errno := rf.storeLocked()
	wipe(rf.buf)
	rf.buf = nil
	if err := rf.f.Close(); err != nil && errno == 0 {
		errno = toErrno(err)
	}
	return errno
}

func (rf *resolvedFile) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(rf.f.Fd()), &st); err != nil {
		return toErrno(err)
	}
	rf.mu.Lock()
	size := uint64(len(rf.buf))
	rf.mu.Unlock()
	out.FromStat(&st)
	out.Size = size
	out.Blocks = (size + 511) / 512
	out.SetTimeout(rf.root.viewAttrTimeout)
	return 0
}

// noteRawServe reports a non-permitted open of a templated file on a
// covered path (paths no rule covers are not scanned: nobody could
// resolve them anyway).
func (r *Root) noteRawServe(c Caller, rel string) {
	if templated, errno := r.templatedPath(rel); errno == 0 && templated {
		r.stats.RawServes.Add(1)
		r.obs.RawServed(c, rel)
	}
}

// openRaw opens the backing file as it is. Such handles may be served by
// kernel passthrough; that is safe because their bytes are the raw bytes.
func (r *Root) openRaw(c Caller, rel string, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	flags &^= syscall.O_APPEND | fuse.FMODE_EXEC
	// Readable too, so that release can scrub what was written.
	f, err := r.openBeneath(rel, readableToo(flags), 0)
	if err != nil && readableToo(flags) != int(flags) {
		f, err = r.openBeneath(rel, int(flags), 0)
	}
	if err != nil {
		return nil, 0, toErrno(err)
	}
	// A read-only handle has nothing to scrub: close(2) need not wait for
	// a FLUSH round trip. (POSIX locks are still released: the kernel
	// sends its own unlock on close.)
	var fl uint32
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		fl = fuse.FOPEN_NOFLUSH
	}
	return r.rawFromFile(c, rel, f, flags), fl, 0
}

func (r *Root) rawFromFile(c Caller, rel string, f *os.File, flags uint32) gofs.FileHandle {
	r.stats.Opens.Add(1)
	rf := &rawFile{
		LoopbackFile: gofs.NewLoopbackFileFromOS(f),
		f:            f,
		root:         r,
		caller:       c,
		rel:          rel,
		writable:     flags&syscall.O_ACCMODE != syscall.O_RDONLY,
	}
	if rf.writable {
		syscall.Fstat(int(f.Fd()), &rf.opened)
	}
	return rf
}

// reopenNoAtime opens the file behind f again for reading, without
// updating its access time where the kernel allows that.
func reopenNoAtime(f *os.File) (*os.File, error) {
	p := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	rd, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOATIME, 0)
	if err != nil {
		rd, err = os.OpenFile(p, os.O_RDONLY, 0)
	}
	return rd, err
}

// rawFile is a loopback handle that, when it was open for writing, replaces
// any known value written through it by its placeholder on release.
type rawFile struct {
	*gofs.LoopbackFile
	f        *os.File
	root     *Root
	caller   Caller
	rel      string
	writable bool
	wrote    atomic.Bool

	scrubMu sync.Mutex
	opened  syscall.Stat_t // what the file was when last known clean
}

func (rf *rawFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	rf.wrote.Store(true)
	return rf.LoopbackFile.Write(ctx, data, off)
}

// Flush runs in close(2) itself, so a value written through this handle is
// gone from the backing file by the time close returns. Release is
// asynchronous to close and only catches what Flush could not.
func (rf *rawFile) Flush(ctx context.Context) syscall.Errno {
	if rf.writable {
		rf.root.scrub(rf)
	}
	return rf.LoopbackFile.Flush(ctx)
}

func (rf *rawFile) Release(ctx context.Context) syscall.Errno {
	if rf.writable {
		rf.root.scrub(rf)
	}
	return rf.LoopbackFile.Release(ctx)
}

// scrub rewrites a file written through a raw handle if it now holds a
// known value. Writes through passthrough never reach the daemon, so this
// looks at the file rather than at the writes.
func (r *Root) scrub(rf *rawFile) {
	rf.scrubMu.Lock()
	defer rf.scrubMu.Unlock()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(rf.f.Fd()), &st); err != nil {
		return
	}
	if !rf.wrote.Load() && keyOf(&st) == keyOf(&rf.opened) {
		return
	}
	rf.wrote.Store(false)
	names, err := scrubFile(rf.f, r.secrets)
	syscall.Fstat(int(rf.f.Fd()), &rf.opened)
	if err != nil || len(names) == 0 {
		return
	}
	r.stats.Reversals.Add(1)
	r.obs.Reversed(rf.caller, rf.rel, names)
}

// scrubFile replaces every known value in the file behind f (open for
// writing) by its placeholder, and reports the names replaced. Files
// larger than maxScrubSize are left alone.
func scrubFile(f *os.File, secrets Secrets) ([]string, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if st.Size == 0 || st.Size > maxScrubSize {
		return nil, nil
	}
	// Read through a second descriptor without updating atime, so the
	// scrub leaves no trace in the file's metadata.
	rd, err := reopenNoAtime(f)
	if err != nil {
		return nil, err
	}
	data, errno := readAll(rd)
	rd.Close()
	if errno != 0 {
		return nil, errno
	}
	defer wipe(data)
	out, names, err := secrets.Reverse(data)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	if _, err := f.WriteAt(out, 0); err != nil {
		return nil, err
	}
	if err := f.Truncate(int64(len(out))); err != nil {
		return nil, err
	}
	return names, f.Sync()
}

// ScrubTree replaces known values in every regular file under dir by
// their placeholders, without following symlinks. A daemon that was killed
// may have left values that raw writers put there and that no close
// scrubbed; the next mount runs this before serving. It reports the
// relative paths it changed, never what it removed.
func ScrubTree(dir string, secrets Secrets) ([]string, error) {
	var changed []string
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // unreadable entries cannot be scrubbed; go on
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.OpenFile(p, os.O_RDWR|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return nil
		}
		names, err := scrubFile(f, secrets)
		f.Close()
		if err == nil && len(names) > 0 {
			rel, _ := filepath.Rel(dir, p)
			changed = append(changed, rel)
		}
		return nil
	})
	return changed, err
}
