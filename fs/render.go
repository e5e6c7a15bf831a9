package fs

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/faciofs/faciofs/resolve"
)

// MaxResolvedSize bounds the files a consumer view renders: a view is kept
// in memory while open, so a consumer opening a larger templated file gets
// EFBIG rather than a daemon that runs out of memory.
const MaxResolvedSize = 256 << 20

// maxScrubSize bounds the files that are re-read after a raw write to
// replace values by placeholders.
const maxScrubSize = 64 << 20

// statKey identifies one content version of a backing file closely enough
// for caching: any write changes ctime.
type statKey struct {
	dev, ino, size uint64
	mtime, ctime   int64
}

func keyOf(st *syscall.Stat_t) statKey {
	return statKey{
		dev: st.Dev, ino: st.Ino, size: uint64(st.Size),
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
	}
}

type sizeKey struct {
	statKey
	view string
	gen  uint64
}

// scanCache remembers which file versions are templated and what size each
// view renders to, so repeated LOOKUPs and GETATTRs do not reread files.
// It holds no content.
type scanCache struct {
	mu        sync.Mutex
	templated map[statKey]bool
	sizes     map[sizeKey]uint64
}

const scanCacheMax = 1 << 14

func (c *scanCache) init() {
	c.templated = make(map[statKey]bool)
	c.sizes = make(map[sizeKey]uint64)
}

// templated reports whether rendering could change the file: it holds a
// placeholder or an escaped one.
func (r *Root) templated(rel string, st *syscall.Stat_t) (bool, syscall.Errno) {
	k := keyOf(st)
	r.scans.mu.Lock()
	t, ok := r.scans.templated[k]
	r.scans.mu.Unlock()
	if ok {
		return t, 0
	}
	f, err := r.openForScan(rel)
	if err != nil {
		return false, toErrno(err)
	}
	defer f.Close()
	t, err = hasTemplate(f)
	if err != nil {
		return false, toErrno(err)
	}
	r.scans.mu.Lock()
	if len(r.scans.templated) > scanCacheMax {
		clear(r.scans.templated)
	}
	r.scans.templated[k] = t
	r.scans.mu.Unlock()
	return t, 0
}

func (r *Root) templatedPath(rel string) (bool, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(r.backing, rel), &st); err != nil {
		return false, toErrno(err)
	}
	return r.templated(rel, &st)
}

// scanWindow is how much of the file is looked at per step, and scanOverlap
// how much of the previous step is looked at again, so that a placeholder
// split by the step boundary is still seen whole. The longest placeholder is
// `$${credentials.` + 128-byte name + `|base64}`, well under the overlap.
const (
	scanWindow  = 1 << 20
	scanOverlap = 512
)

func hasTemplate(f io.ReaderAt) (bool, error) {
	buf := make([]byte, scanWindow+scanOverlap)
	var off int64
	carry := 0
	for {
		n, err := f.ReadAt(buf[carry:], off)
		data := buf[:carry+n]
		found := false
		resolve.Scan(data, func(ref resolve.Ref) bool {
			if ref.Kind != resolve.Malformed {
				found = true
				return false
			}
			return true
		})
		if found {
			return true, nil
		}
		if err == io.EOF || n == 0 {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		off += int64(n)
		carry = min(scanOverlap, len(data))
		copy(buf, data[len(data)-carry:])
	}
}

// lookupFor builds the resolver's view of the store for one view.
func (r *Root) lookupFor(v View) resolve.Lookup {
	return func(name string) ([]byte, resolve.Status) {
		if !v.Allows(name) {
			return nil, resolve.Denied
		}
		val, ok := r.secrets.Value(name)
		if !ok {
			return nil, resolve.Missing
		}
		return val, resolve.Resolved
	}
}

// render reads the whole backing file through f and renders it for v.
func (r *Root) render(f *os.File, v View) ([]byte, resolve.Report, syscall.Errno) {
	raw, errno := readAll(f)
	if errno != 0 {
		return nil, resolve.Report{}, errno
	}
	out, rep := resolve.Render(raw, r.lookupFor(v))
	if len(out) > MaxResolvedSize {
		wipe(out)
		return nil, rep, syscall.EFBIG
	}
	return out, rep, 0
}

func readAll(f *os.File) ([]byte, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, toErrno(err)
	}
	if st.Size > MaxResolvedSize {
		return nil, syscall.EFBIG
	}
	buf := make([]byte, 0, st.Size+512)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > MaxResolvedSize {
				return nil, syscall.EFBIG
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.ReadAt(buf[len(buf):cap(buf)], int64(len(buf)))
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, 0
		}
		if err != nil {
			return nil, toErrno(err)
		}
	}
}

// viewSize is the size a view node reports: the rendered size of a
// templated file, the backing size of any other.
func (r *Root) viewSize(rel string, st *syscall.Stat_t, v View) (uint64, syscall.Errno) {
	templated, errno := r.templated(rel, st)
	if errno != 0 || !templated {
		return uint64(st.Size), errno
	}
	return r.renderedSize(rel, st, v)
}

// renderedSize is the size a view of the file has, for LOOKUP and GETATTR.
func (r *Root) renderedSize(rel string, st *syscall.Stat_t, v View) (uint64, syscall.Errno) {
	k := sizeKey{statKey: keyOf(st), view: v.Key, gen: r.secrets.Generation()}
	r.scans.mu.Lock()
	size, ok := r.scans.sizes[k]
	r.scans.mu.Unlock()
	if ok {
		return size, 0
	}
	f, err := r.openForScan(rel)
	if err != nil {
		return 0, toErrno(err)
	}
	defer f.Close()
	out, _, errno := r.render(f, v)
	if errno != 0 {
		return 0, errno
	}
	size = uint64(len(out))
	wipe(out)
	r.scans.mu.Lock()
	if len(r.scans.sizes) > scanCacheMax {
		clear(r.scans.sizes)
	}
	r.scans.sizes[k] = size
	r.scans.mu.Unlock()
	return size, 0
}

// wipe zeroes a buffer that held values, so they do not linger in the heap.
func wipe(b []byte) { clear(b[:cap(b)]) }

func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if errno, ok := err.(syscall.Errno); ok {
		return errno
	}
	if pe, ok := err.(*os.PathError); ok {
		return toErrno(pe.Err)
	}
	if se, ok := err.(*os.SyscallError); ok {
		return toErrno(se.Err)
	}
	return syscall.EIO
}
