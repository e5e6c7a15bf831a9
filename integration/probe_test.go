package integration

// The probe: this test binary, copied and re-executed (FACIOFS_IT_ROLE set),
// performs real system calls on the mount as the agent (under agentUID) or,
// from a copy that the policy names, as a consumer. A session takes one
// command per line on stdin and answers "OK <hex of data>" or "ERR <msg>",
// so one long-running process can keep files open and mapped between
// commands and loop thousands of rounds without spawning processes.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	probeOnce sync.Once
	probeBin  string
	probeErr  error
)

// agentProbe is a world-executable copy of the test binary.
func agentProbe(t *testing.T) string {
	t.Helper()
	probeOnce.Do(func() {
		p := filepath.Join(binDir, "probe")
		in, err := os.Open(os.Args[0])
		if err != nil {
			probeErr = err
			return
		}
		defer in.Close()
		out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			probeErr = err
			return
		}
		if _, err := io.Copy(out, in); err != nil {
			probeErr = err
			return
		}
		probeErr = out.Close()
		probeBin = p
	})
	must(t, probeErr)
	return probeBin
}

// consumerProbe copies the probe into the mount's bin directory, for a
// consumer rule to name.
func (m *mount) consumerProbe(t *testing.T) string {
	t.Helper()
	return copyExe(t, agentProbe(t), filepath.Join(m.bin, "consumer-probe"))
}

type session struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	errb  syncBuffer
	once  sync.Once
	waitc chan error
}

// startSession starts exe (a probe copy) as w in session mode.
func startSession(t *testing.T, w who, exe, name string) *session {
	t.Helper()
	s := &session{t: t, name: name, waitc: make(chan error, 1)}
	s.cmd = exec.Command(exe)
	s.cmd.Env = append(baseEnv("/"), roleEnv+"=session", "TMPDIR=/tmp")
	s.cmd.Dir = "/"
	s.cmd.SysProcAttr = w.attr()
	s.cmd.Stderr = &s.errb
	var err error
	s.in, err = s.cmd.StdinPipe()
	must(t, err)
	out, err := s.cmd.StdoutPipe()
	must(t, err)
	must(t, s.cmd.Start())
	go func() { s.waitc <- s.cmd.Wait() }()
	s.out = bufio.NewReaderSize(out, 1<<20)
	t.Cleanup(s.close)
	return s
}

func (s *session) pid() int { return s.cmd.Process.Pid }

func (s *session) close() {
	s.once.Do(func() {
		s.in.Close()
		select {
		case <-s.waitc:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.waitc
		}
	})
}

// do runs one command; a probe that does not answer in 2 minutes fails
// the test.
func (s *session) do(args ...string) ([]byte, error) {
	s.t.Helper()
	type answer struct {
		data []byte
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		if _, err := io.WriteString(s.in, strings.Join(args, " ")+"\n"); err != nil {
			ch <- answer{err: fmt.Errorf("session write: %v", err)}
			return
		}
		line, err := s.out.ReadString('\n')
		if err != nil {
			ch <- answer{err: fmt.Errorf("session read: %v (stderr %q)", err, s.errb.String())}
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if msg, ok := strings.CutPrefix(line, "ERR "); ok {
			ch <- answer{err: errors.New(msg)}
			return
		}
		data, err := hex.DecodeString(strings.TrimPrefix(line, "OK "))
		ch <- answer{data, err}
	}()
	select {
	case a := <-ch:
		return a.data, a.err
	case <-time.After(cmdTimeout):
		_ = s.cmd.Process.Kill()
		s.t.Fatalf("%s: no answer to %v", s.name, args)
		return nil, nil
	}
}

func (s *session) must(args ...string) []byte {
	s.t.Helper()
	b, err := s.do(args...)
	if err != nil {
		s.t.Fatalf("%s %v: %s", s.name, args, redact(err.Error()))
	}
	return b
}

// ---- the probe side --------------------------------------------------------

type unsupported struct{ msg string }

func (u unsupported) Error() string { return "UNSUPPORTED " + u.msg }

func runRole(role string) int {
	switch role {
	case "session":
		return runSession()
	case "goload":
		// A Go config loader: os.ReadFile, the bytes to stdout.
		b, err := os.ReadFile(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Stdout.Write(b)
		return 0
	case "nodump":
		return runNoDump(os.Args[1])
	}
	fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
	return 2
}

type handle struct {
	fd      int
	direct  bool
	mapping []byte
	size    int
}

type probe struct {
	h    map[string]*handle
	spin struct {
		stop            atomic.Bool
		done            chan string
		rounds, bad, er atomic.Int64
	}
}

func runSession() int {
	p := &probe{h: map[string]*handle{}}
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return 0
		}
		args := strings.Fields(line)
		if len(args) == 0 {
			continue
		}
		data, err := p.do(args)
		if err != nil {
			fmt.Fprintf(out, "ERR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Fprintf(out, "OK %s\n", hex.EncodeToString(data))
		}
		out.Flush()
	}
}

func (p *probe) fd(name string) (*handle, error) {
	h := p.h[name]
	if h == nil {
		return nil, fmt.Errorf("no handle %s", name)
	}
	return h, nil
}

func fdSize(fd int) (int, error) {
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	return int(st.Size), err
}

func preadAll(fd int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 8192)
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
		off += int64(n)
	}
}

// alignedPreadAll reads with a page-aligned buffer, as O_DIRECT wants.
func alignedPreadAll(fd int) ([]byte, error) {
	buf, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(buf)
	var out []byte
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
		off += int64(n)
	}
}

func readAll(fd int) ([]byte, error) {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

func catPath(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readAll(fd)
}

func mmapCopy(fd, flags int) ([]byte, []byte, error) {
	size, err := fdSize(fd)
	if err != nil {
		return nil, nil, err
	}
	length := size
	if length == 0 {
		length = os.Getpagesize()
	}
	m, err := unix.Mmap(fd, 0, length, unix.PROT_READ, flags)
	if err != nil {
		return nil, nil, err
	}
	var sum byte
	for i := 0; i < size; i += os.Getpagesize() {
		sum += m[i]
	}
	_ = sum
	return m, append([]byte(nil), m[:size]...), nil
}

var oddSizes = []int{1, 2, 4, 3, 7, 13, 4095, 5, 1, 4089, 2, 8191}

func (p *probe) do(args []string) ([]byte, error) {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch args[0] {
	case "open": // open H PATH [ro|rw|direct]
		flags := unix.O_RDONLY
		switch arg(3) {
		case "rw":
			flags = unix.O_RDWR
		case "direct":
			flags |= unix.O_DIRECT
		}
		fd, err := unix.Open(arg(2), flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		p.h[arg(1)] = &handle{fd: fd, direct: arg(3) == "direct"}
		return nil, nil
	case "close":
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		if h.mapping != nil {
			unix.Munmap(h.mapping)
		}
		delete(p.h, arg(1))
		return nil, unix.Close(h.fd)
	case "munmap":
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		if h.mapping != nil {
			unix.Munmap(h.mapping)
			h.mapping = nil
		}
		return nil, nil
	case "pread":
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		if h.direct {
			return alignedPreadAll(h.fd)
		}
		return preadAll(h.fd)
	case "read":
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		return readAll(h.fd)
	case "podd": // pieces of odd sizes at odd offsets
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		var out []byte
		for i, off := 0, int64(0); ; i++ {
			buf := make([]byte, oddSizes[i%len(oddSizes)])
			n, err := unix.Pread(h.fd, buf, off)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return out, nil
			}
			out = append(out, buf[:n]...)
			off += int64(n)
		}
	case "readv":
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		if _, err := unix.Seek(h.fd, 0, 0); err != nil {
			return nil, err
		}
		var out []byte
		for {
			a, b, c := make([]byte, 5), make([]byte, 17), make([]byte, 3001)
			n, err := unix.Readv(h.fd, [][]byte{a, b, c})
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return out, nil
			}
			out = append(out, append(append(a, b...), c...)[:n]...)
		}
	case "mmap": // mmap H private|shared: map (kept), touch, copy out
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		flags := unix.MAP_PRIVATE
		if arg(2) == "shared" {
			flags = unix.MAP_SHARED
		}
		m, data, err := mmapCopy(h.fd, flags)
		if err != nil {
			return nil, err
		}
		if h.mapping != nil {
			unix.Munmap(h.mapping)
		}
		h.mapping, h.size = m, len(data)
		return data, nil
	case "mapread": // the kept mapping's bytes, now
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		if h.mapping == nil {
			return nil, errors.New("no mapping")
		}
		return append([]byte(nil), h.mapping[:h.size]...), nil
	case "fstat":
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		n, err := fdSize(h.fd)
		return []byte(strconv.Itoa(n)), err
	case "stat", "lstat":
		var st unix.Stat_t
		var err error
		if args[0] == "stat" {
			err = unix.Stat(arg(1), &st)
		} else {
			err = unix.Lstat(arg(1), &st)
		}
		return []byte(strconv.FormatInt(st.Size, 10)), err
	case "statx":
		var stx unix.Statx_t
		err := unix.Statx(unix.AT_FDCWD, arg(1), 0, unix.STATX_SIZE|unix.STATX_BLOCKS, &stx)
		return []byte(strconv.FormatUint(stx.Size, 10)), err
	case "sendfile", "cfrout":
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		tmp, err := os.CreateTemp("", "faciofs-it-out-")
		if err != nil {
			return nil, err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		var off int64
		for {
			var n int
			if args[0] == "sendfile" {
				n, err = unix.Sendfile(int(tmp.Fd()), h.fd, &off, 1<<20)
			} else {
				n, err = unix.CopyFileRange(h.fd, &off, int(tmp.Fd()), nil, 1<<20, 0)
				if err == unix.EXDEV || err == unix.EOPNOTSUPP || err == unix.ENOSYS || err == unix.EINVAL {
					return nil, unsupported{"copy_file_range to another filesystem: " + err.Error()}
				}
			}
			if err != nil {
				return nil, err
			}
			if n == 0 {
				break
			}
		}
		return os.ReadFile(tmp.Name())
	case "cfrin": // cfrin H DEST: copy_file_range into a new file DEST (in the mount)
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		dfd, err := unix.Open(arg(2), unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, err
		}
		var off int64
		for {
			n, err := unix.CopyFileRange(h.fd, &off, dfd, nil, 1<<20, 0)
			if err != nil {
				unix.Close(dfd)
				if err == unix.EXDEV || err == unix.EOPNOTSUPP || err == unix.ENOSYS {
					return nil, unsupported{"copy_file_range inside the mount: " + err.Error()}
				}
				return nil, err
			}
			if n == 0 {
				break
			}
		}
		if err := unix.Close(dfd); err != nil {
			return nil, err
		}
		return catPath(arg(2))
	case "splice":
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		var pp [2]int
		if err := unix.Pipe2(pp[:], unix.O_CLOEXEC); err != nil {
			return nil, err
		}
		defer unix.Close(pp[0])
		defer unix.Close(pp[1])
		var out []byte
		var off int64
		buf := make([]byte, 65536)
		for {
			n, err := unix.Splice(h.fd, &off, pp[1], nil, 4096, 0)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return out, nil
			}
			for got := 0; got < int(n); {
				m, err := unix.Read(pp[0], buf[:int(n)-got])
				if err != nil {
					return nil, err
				}
				out = append(out, buf[:m]...)
				got += m
			}
		}
	case "odirect":
		fd, err := unix.Open(arg(1), unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
		if err == unix.EINVAL {
			return nil, unsupported{"O_DIRECT open: " + err.Error()}
		}
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		return alignedPreadAll(fd)
	case "uring":
		h, err := p.fd(arg(1))
		if err != nil {
			return nil, err
		}
		return uringReadAll(h.fd)
	case "aio":
		return aioReadAll(arg(1))
	case "xattr": // every name=value
		buf := make([]byte, 64<<10)
		n, err := unix.Listxattr(arg(1), buf)
		if err != nil {
			return nil, err
		}
		var out []byte
		for _, name := range bytes.Split(buf[:n], []byte{0}) {
			if len(name) == 0 {
				continue
			}
			v := make([]byte, 64<<10)
			m, err := unix.Getxattr(arg(1), string(name), v)
			if err != nil {
				return nil, fmt.Errorf("getxattr %s: %v", name, err)
			}
			out = append(append(append(append(out, name...), '='), v[:m]...), '\n')
		}
		return out, nil
	case "setxattr": // setxattr PATH NAME VALUE
		return nil, unix.Setxattr(arg(1), arg(2), []byte(arg(3)), 0)
	case "readdir": // names and lstat sizes
		ents, err := os.ReadDir(arg(1))
		if err != nil {
			return nil, err
		}
		var out []byte
		for _, e := range ents {
			info, err := e.Info()
			if err != nil {
				return nil, err
			}
			out = fmt.Appendf(out, "%s %d\n", e.Name(), info.Size())
		}
		return out, nil
	case "link":
		return nil, unix.Link(arg(1), arg(2))
	case "symlink":
		return nil, unix.Symlink(arg(1), arg(2))
	case "rename":
		return nil, unix.Rename(arg(1), arg(2))
	case "unlink":
		return nil, unix.Unlink(arg(1))
	case "cat":
		return catPath(arg(1))
	case "write": // write PATH HEX: create/truncate, write, close
		data, err := hex.DecodeString(arg(2))
		if err != nil {
			return nil, err
		}
		return nil, os.WriteFile(arg(1), data, 0o600)
	case "loop":
		return loop(arg(1), arg(2), arg(3))
	case "spin": // spin PATH,PATH HEX,HEX: read them in the background until spinstop
		return nil, p.startSpin(strings.Split(arg(1), ","), strings.Split(arg(2), ","))
	case "spinstop":
		p.spin.stop.Store(true)
		return []byte(<-p.spin.done), nil
	}
	return nil, fmt.Errorf("unknown command %q", args[0])
}

// loop reads path N times with every in-process read path, in one process,
// and reports counts plus (hex) up to two wrong contents for the test to
// inspect; it never decides what a leak is.
func loop(path, nstr, wantHex string) ([]byte, error) {
	n, err := strconv.Atoi(nstr)
	if err != nil {
		return nil, err
	}
	want, err := hex.DecodeString(wantHex)
	if err != nil {
		return nil, err
	}
	var wrong, wrongSize, errs int
	var samples [][]byte
	var firstErr string
	check := func(kind string, got []byte, err error) {
		if err != nil {
			errs++
			if firstErr == "" {
				firstErr = kind + ": " + err.Error()
			}
			return
		}
		if !bytes.Equal(got, want) {
			wrong++
			if len(samples) < 2 {
				samples = append(samples, got)
			}
		}
	}
	for i := range n {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			check("open", nil, err)
			continue
		}
		switch i % 4 {
		case 0:
			got, err := readAll(fd)
			check("read", got, err)
		case 1:
			_, got, err := mmapCopy(fd, unix.MAP_PRIVATE)
			check("mmap-private", got, err)
		case 2:
			m, got, err := mmapCopy(fd, unix.MAP_SHARED)
			if err == nil {
				unix.Munmap(m)
			}
			check("mmap-shared", got, err)
		case 3:
			got, err := preadAll(fd)
			check("pread", got, err)
		}
		if sz, err := fdSize(fd); err == nil && sz != len(want) {
			wrongSize++
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err == nil && int(st.Size) != len(want) {
			wrongSize++
		}
		unix.Close(fd)
	}
	summary := fmt.Sprintf("rounds=%d wrong=%d wrongsize=%d errors=%d firsterr=%q", n, wrong, wrongSize, errs, firstErr)
	for _, s := range samples {
		summary += " sample=" + hex.EncodeToString(s)
	}
	return []byte(summary), nil
}

func (p *probe) startSpin(paths, wantHex []string) error {
	var wants [][]byte
	for _, h := range wantHex {
		w, err := hex.DecodeString(h)
		if err != nil {
			return err
		}
		wants = append(wants, w)
	}
	p.spin.stop.Store(false)
	p.spin.done = make(chan string, 1)
	go func() {
		var firstErr string
		for i := 0; !p.spin.stop.Load(); i++ {
			k := i % len(paths)
			fd, err := unix.Open(paths[k], unix.O_RDONLY|unix.O_CLOEXEC, 0)
			var got []byte
			if err == nil {
				if i%2 == 0 {
					got, err = readAll(fd)
				} else {
					var m []byte
					m, got, err = mmapCopy(fd, unix.MAP_PRIVATE)
					if err == nil {
						unix.Munmap(m)
					}
				}
				unix.Close(fd)
			}
			p.spin.rounds.Add(1)
			switch {
			case err != nil:
				p.spin.er.Add(1)
				if firstErr == "" {
					firstErr = err.Error()
				}
			case !bytes.Equal(got, wants[k]):
				p.spin.bad.Add(1)
			}
		}
		p.spin.done <- fmt.Sprintf("rounds=%d wrong=%d errors=%d firsterr=%q", p.spin.rounds.Load(), p.spin.bad.Load(), p.spin.er.Load(), firstErr)
	}()
	return nil
}

// ---- io_uring and AIO with plain system calls ------------------------------

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// uringReadAll reads fd to EOF with IORING_OP_READ, one request at a time.
func uringReadAll(fd int) ([]byte, error) {
	var prm uringParams
	rfd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&prm)), 0)
	if e != 0 {
		return nil, unsupported{"io_uring_setup: " + e.Error()}
	}
	ring := int(rfd)
	defer unix.Close(ring)
	sq, err := unix.Mmap(ring, 0, int(prm.sqOff.array+prm.sqEntries*4), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(sq)
	cq, err := unix.Mmap(ring, 0x8000000, int(prm.cqOff.cqes+prm.cqEntries*16), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(cq)
	sqes, err := unix.Mmap(ring, 0x10000000, int(prm.sqEntries*64), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(sqes)
	buf, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(buf)
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	var out []byte
	for off := uint64(0); ; {
		tail := atomic.LoadUint32(u32(sq, prm.sqOff.tail))
		idx := tail & *u32(sq, prm.sqOff.ringMask)
		sqe := sqes[idx*64 : idx*64+64]
		clear(sqe)
		sqe[0] = 22 // IORING_OP_READ
		*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
		*(*uint64)(unsafe.Pointer(&sqe[8])) = off
		*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(uintptr(unsafe.Pointer(&buf[0])))
		*(*uint32)(unsafe.Pointer(&sqe[24])) = uint32(len(buf))
		*(*uint64)(unsafe.Pointer(&sqe[32])) = 7
		*u32(sq, prm.sqOff.array+idx*4) = idx
		atomic.StoreUint32(u32(sq, prm.sqOff.tail), tail+1)
		_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(ring), 1, 1, 1 /* GETEVENTS */, 0, 0)
		if e != 0 {
			return nil, fmt.Errorf("io_uring_enter: %v", e)
		}
		head := atomic.LoadUint32(u32(cq, prm.cqOff.head))
		if head == atomic.LoadUint32(u32(cq, prm.cqOff.tail)) {
			return nil, errors.New("io_uring: no completion")
		}
		cqe := prm.cqOff.cqes + (head&*u32(cq, prm.cqOff.ringMask))*16
		res := *(*int32)(unsafe.Pointer(&cq[cqe+8]))
		atomic.StoreUint32(u32(cq, prm.cqOff.head), head+1)
		if res < 0 {
			return nil, fmt.Errorf("io_uring read: %v", unix.Errno(-res))
		}
		if res == 0 {
			return out, nil
		}
		out = append(out, buf[:res]...)
		off += uint64(res)
	}
}

// aioReadAll reads path (opened O_DIRECT, so the read is really
// asynchronous) with Linux AIO: io_setup, io_submit(IOCB_CMD_PREAD),
// io_getevents.
func aioReadAll(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var ctx uintptr
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return nil, unsupported{"io_setup: " + e.Error()}
	}
	defer unix.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0)
	buf, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(buf)
	var out []byte
	for off := int64(0); ; {
		var iocb [64]byte
		*(*uint16)(unsafe.Pointer(&iocb[16])) = 0 // IOCB_CMD_PREAD
		*(*uint32)(unsafe.Pointer(&iocb[20])) = uint32(fd)
		*(*uint64)(unsafe.Pointer(&iocb[24])) = uint64(uintptr(unsafe.Pointer(&buf[0])))
		*(*uint64)(unsafe.Pointer(&iocb[32])) = uint64(len(buf))
		*(*int64)(unsafe.Pointer(&iocb[40])) = off
		ptrs := [1]uintptr{uintptr(unsafe.Pointer(&iocb[0]))}
		if _, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, ctx, 1, uintptr(unsafe.Pointer(&ptrs[0]))); e != 0 {
			return nil, fmt.Errorf("io_submit: %v", e)
		}
		var ev [32]byte
		if _, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, ctx, 1, 1, uintptr(unsafe.Pointer(&ev[0])), 0, 0); e != 0 {
			return nil, fmt.Errorf("io_getevents: %v", e)
		}
		runtime.KeepAlive(&iocb)
		res := *(*int64)(unsafe.Pointer(&ev[16]))
		if res < 0 {
			return nil, fmt.Errorf("aio read: %v", unix.Errno(-res))
		}
		if res == 0 {
			return out, nil
		}
		out = append(out, buf[:res]...)
		off += res
	}
}

// ---- the daemon's /proc without privilege ----------------------------------

// runNoDump drops every capability on a locked thread (staying uid 0, the
// daemon's own uid) and tries the daemon's /proc entries: a same-uid
// process without CAP_SYS_PTRACE can read them only if the daemon is
// dumpable. It prints one "name result" line per entry.
func runNoDump(pid string) int {
	runtime.LockOSThread()
	for c := 0; c <= 63; c++ {
		_ = unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		fmt.Fprintln(os.Stderr, "capset:", err)
		return 1
	}
	for _, name := range []string{"environ", "cmdline", "maps", "mem", "auxv", "stack", "syscall", "fd/0"} {
		p := "/proc/" + pid + "/" + name
		var b []byte
		var err error
		if name == "fd/0" {
			var s string
			s, err = os.Readlink(p)
			b = []byte(s)
		} else {
			b, err = catPath(p)
		}
		switch {
		case err != nil:
			fmt.Printf("%s %s\n", name, errName(err))
		default:
			fmt.Printf("%s ok:%s\n", name, hex.EncodeToString(b))
		}
	}
	return 0
}

func errName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}
