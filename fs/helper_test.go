package fs_test

// Helper processes: the test binary re-executes itself (a copy in a
// world-readable directory) under another uid to perform one operation on
// the mount with real system calls, and writes what it obtained to stdout.
//
//	FACIOFS_TEST_ROLE   set to anything: run as a helper, not as tests
//	FACIOFS_TEST_OP     the operation (see runHelperOp)
//	FACIOFS_TEST_PATH   the file (or directory) to operate on
//	FACIOFS_TEST_DEST   a destination path for copying operations
//	FACIOFS_TEST_N      rounds for the "loop" operation
//	FACIOFS_TEST_EXPECT hex of the bytes the "loop" operation must read
//	FACIOFS_TEST_CHECKLEAK "1": the loop also counts leaked values
//
// Exit status 0 is success, 3 "not supported here" (stderr says why), any
// other value a failure (stderr says which).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faciofs/faciofs/internal/leakcheck"
)

const (
	envRole   = "FACIOFS_TEST_ROLE"
	envOp     = "FACIOFS_TEST_OP"
	envPath   = "FACIOFS_TEST_PATH"
	envDest   = "FACIOFS_TEST_DEST"
	envN      = "FACIOFS_TEST_N"
	envExpect = "FACIOFS_TEST_EXPECT"
	envLeak   = "FACIOFS_TEST_CHECKLEAK"
	envDestRW = "FACIOFS_TEST_DEST_RDWR"
	envXattr  = "FACIOFS_TEST_XATTR" // setxattr: NAME=HEXVALUE

	exitUnsupported = 3
)

var helperDir string // world-readable directory holding the binary copy

// goraceEnv stops a -race helper from sleeping a second at exit.
const goraceEnv = "GORACE=atexit_sleep_ms=0"

func TestMain(m *testing.M) {
	if os.Getenv(envRole) != "" {
		os.Exit(runHelper())
	}
	code := m.Run()
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

var (
	helperOnce sync.Once
	helperBin  string
	helperErr  error
)

// helperBinary copies the test binary, once, to a 0755 directory so that
// other uids can execute it (go test builds in a 0700 directory).
func helperBinary(t testing.TB) string {
	t.Helper()
	helperOnce.Do(func() {
		d, err := os.MkdirTemp("", "faciofs-helper-")
		if err != nil {
			helperErr = err
			return
		}
		helperDir = d
		if err := os.Chmod(d, 0o755); err != nil {
			helperErr = err
			return
		}
		src, err := os.Open(os.Args[0])
		if err != nil {
			helperErr = err
			return
		}
		defer src.Close()
		bin := filepath.Join(d, "faciofs-helper.test")
		dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			helperErr = err
			return
		}
		if _, err := io.Copy(dst, src); err != nil {
			dst.Close()
			helperErr = err
			return
		}
		if err := dst.Close(); err != nil {
			helperErr = err
			return
		}
		helperBin = bin
	})
	if helperErr != nil {
		t.Fatalf("copy test binary for helpers: %v", helperErr)
	}
	return helperBin
}

// A role is who a helper process runs as.
type role struct {
	name string
	uid  uint32 // 0: the test's own uid (root), no credential switch
}

var (
	consumerRole = role{"consumer", consumerUID}
	agentRole    = role{"agent", agentUID}
	rootRole     = role{"root-agent", 0}
)

func (r role) attr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if r.uid != 0 {
		a.Credential = &syscall.Credential{Uid: r.uid, Gid: r.uid, NoSetGroups: true}
	}
	return a
}

// helperResult is what one helper run produced.
type helperResult struct {
	out, stderr []byte
	code        int
}

func (h helperResult) unsupported() bool { return h.code == exitUnsupported }

// runHelper runs one helper operation as r and waits for it (20 s at most).
func runHelperAs(t testing.TB, r role, op, path string, env ...string) helperResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, helperBinary(t))
	cmd.Env = append([]string{
		envRole + "=" + r.name, envOp + "=" + op, envPath + "=" + path,
		"PATH=/usr/bin:/bin", "TMPDIR=/tmp", "HOME=/", goraceEnv,
	}, env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = r.attr()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := helperResult{out: stdout.Bytes(), stderr: stderr.Bytes()}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s %s: %v", r.name, op, err)
		}
		res.code = ee.ExitCode()
		if ctx.Err() != nil {
			t.Fatalf("%s %s: timed out", r.name, op)
		}
	}
	return res
}

// mustHelper runs an operation that must succeed (or be unsupported, which
// skips the caller's subtest with a note).
func mustHelper(t *testing.T, r role, op, path string, env ...string) []byte {
	t.Helper()
	res := runHelperAs(t, r, op, path, env...)
	if res.unsupported() {
		t.Skipf("%s %s not supported here: %s", r.name, op, strings.TrimSpace(string(res.stderr)))
	}
	if res.code != 0 {
		t.Fatalf("%s %s failed (exit %d): %s", r.name, op, res.code, strings.TrimSpace(string(res.stderr)))
	}
	return res.out
}

// runCmdAs runs an ordinary program (cat, cp) as r.
func runCmdAs(t testing.TB, r role, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	cmd.Dir = "/"
	cmd.SysProcAttr = r.attr()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %v as %s: %v: %s", name, args, r.name, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// session is a long-running helper that takes one command per line on
// stdin and answers each with "OK <len>\n<data>" or "ERR <msg>\n".
type session struct {
	t      testing.TB
	r      role
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr bytes.Buffer
	done   bool
}

func startSession(t testing.TB, r role) *session {
	t.Helper()
	s := &session{t: t, r: r}
	s.cmd = exec.Command(helperBinary(t))
	s.cmd.Env = []string{envRole + "=" + r.name, envOp + "=session", "PATH=/usr/bin:/bin", "TMPDIR=/tmp", goraceEnv}
	s.cmd.Dir = "/"
	s.cmd.SysProcAttr = r.attr()
	s.cmd.Stderr = &s.stderr
	in, err := s.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.stdin, s.stdout = in, bufio.NewReader(out)
	t.Cleanup(s.close)
	return s
}

// close ends the session (closing stdin makes it exit) and waits for it.
func (s *session) close() {
	if s.done {
		return
	}
	s.done = true
	s.stdin.Close()
	ch := make(chan error, 1)
	go func() { ch <- s.cmd.Wait() }()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-ch
	}
}

// do sends one command and returns its data, or an error with the helper's
// message. It fails the test if the helper does not answer in 20 s.
func (s *session) do(args ...string) ([]byte, error) {
	s.t.Helper()
	type answer struct {
		data []byte
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		if _, err := io.WriteString(s.stdin, strings.Join(args, " ")+"\n"); err != nil {
			ch <- answer{err: fmt.Errorf("session write: %v", err)}
			return
		}
		line, err := s.stdout.ReadString('\n')
		if err != nil {
			ch <- answer{err: fmt.Errorf("session read: %v (stderr %q)", err, s.stderr.String())}
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if msg, ok := strings.CutPrefix(line, "ERR "); ok {
			ch <- answer{err: errors.New(msg)}
			return
		}
		n, err := strconv.Atoi(strings.TrimPrefix(line, "OK "))
		if err != nil {
			ch <- answer{err: fmt.Errorf("session: bad answer %q", line)}
			return
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(s.stdout, data); err != nil {
			ch <- answer{err: fmt.Errorf("session read data: %v", err)}
			return
		}
		ch <- answer{data: data}
	}()
	select {
	case a := <-ch:
		return a.data, a.err
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		s.t.Fatalf("%s session: no answer to %v", s.r.name, args)
		return nil, nil
	}
}

func (s *session) must(args ...string) []byte {
	s.t.Helper()
	b, err := s.do(args...)
	if err != nil {
		s.t.Fatalf("%s session %v: %v", s.r.name, args, err)
	}
	return b
}

// ---- leak detection -------------------------------------------------------

// fakeForms are the fake values in every form an observer could recognise.
var fakeForms = leakcheck.New(fakeValues)

// assertNoLeak fails if data holds a fake value in any known form. It names
// the label and the form, never the value.
func assertNoLeak(t testing.TB, label string, data []byte) {
	t.Helper()
	if f := fakeForms.Find(data); f != "" {
		t.Errorf("LEAK: %s contains %s", label, f)
	}
}

// ---- the helper side ------------------------------------------------------

func runHelper() int {
	op := os.Getenv(envOp)
	if op == "session" {
		return runSession()
	}
	out, err := runHelperOp(op, os.Getenv(envPath))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", op, err)
		var u unsupportedErr
		if errors.As(err, &u) {
			return exitUnsupported
		}
		return 1
	}
	os.Stdout.Write(out)
	return 0
}

type unsupportedErr struct{ err error }

func (u unsupportedErr) Error() string { return "unsupported: " + u.err.Error() }

func openRO(path string, extra int) (int, error) {
	return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|extra, 0)
}

func fdSize(fd int) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}

// readFd reads from the current offset to EOF with read(2).
func readFd(fd int) ([]byte, error) {
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

// mmapCopy maps fd (st_size bytes, or one page for an empty file), touches
// every page, and copies st_size bytes out.
func mmapCopy(fd int, flags int) ([]byte, error) {
	size, err := fdSize(fd)
	if err != nil {
		return nil, err
	}
	length := int(size)
	if length == 0 {
		length = os.Getpagesize()
	}
	m, err := unix.Mmap(fd, 0, length, unix.PROT_READ, flags)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(m)
	var sum byte
	for i := 0; i < int(size); i += os.Getpagesize() {
		sum += m[i]
	}
	_ = sum
	return append([]byte(nil), m[:size]...), nil
}

var odd = []int{1, 2, 4, 3, 7, 13, 4095, 5, 1, 4089, 2}

func runHelperOp(op, path string) ([]byte, error) {
	switch op {
	case "read":
		fd, err := openRO(path, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		return readFd(fd)

	case "pread":
		// Pieces of odd sizes at odd offsets (1, 3, 7, 10, 23, 4118, …),
		// assembled.
		fd, err := openRO(path, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		var out []byte
		off := int64(0)
		for i := 0; ; i++ {
			buf := make([]byte, odd[i%len(odd)])
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

	case "readv":
		fd, err := openRO(path, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		var out []byte
		for {
			a, b, c := make([]byte, 5), make([]byte, 17), make([]byte, 3001)
			n, err := unix.Readv(fd, [][]byte{a, b, c})
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return out, nil
			}
			all := append(append(a, b...), c...)
			out = append(out, all[:n]...)
		}

	case "mmap-private", "mmap-shared":
		fd, err := openRO(path, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		flags := unix.MAP_PRIVATE
		if op == "mmap-shared" {
			flags = unix.MAP_SHARED
		}
		return mmapCopy(fd, flags)

	case "sendfile", "splice", "cfr-out":
		fd, err := openRO(path, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		size, err := fdSize(fd)
		if err != nil {
			return nil, err
		}
		if op == "splice" {
			return spliceOut(fd)
		}
		tmp, err := os.CreateTemp("", "faciofs-out-")
		if err != nil {
			return nil, err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		left := int(size) + 4096 // ask for more than st_size: EOF is the limit
		var off int64
		for left > 0 {
			var n int
			if op == "sendfile" {
				n, err = unix.Sendfile(int(tmp.Fd()), fd, &off, left)
			} else {
				n, err = unix.CopyFileRange(fd, &off, int(tmp.Fd()), nil, left, 0)
				if err == unix.EXDEV || err == unix.EOPNOTSUPP || err == unix.ENOSYS {
					return nil, unsupportedErr{fmt.Errorf("copy_file_range to another filesystem: %v", err)}
				}
			}
			if err != nil {
				return nil, err
			}
			if n == 0 {
				break
			}
			left -= n
		}
		return os.ReadFile(tmp.Name())

	case "cfr-in":
		// copy_file_range to a new file inside the mount, then read it back.
		fd, err := openRO(path, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		size, err := fdSize(fd)
		if err != nil {
			return nil, err
		}
		dest := os.Getenv(envDest)
		mode := unix.O_WRONLY // as cp(1) opens its destination
		if os.Getenv(envDestRW) == "1" {
			mode = unix.O_RDWR
		}
		dfd, err := unix.Open(dest, mode|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, err
		}
		var off int64
		left := int(size) + 4096
		for left > 0 {
			n, err := unix.CopyFileRange(fd, &off, dfd, nil, left, 0)
			if err != nil {
				unix.Close(dfd)
				if err == unix.EXDEV || err == unix.EOPNOTSUPP || err == unix.ENOSYS {
					return nil, unsupportedErr{fmt.Errorf("copy_file_range inside the mount: %v", err)}
				}
				return nil, err
			}
			if n == 0 {
				break
			}
			left -= n
		}
		if err := unix.Close(dfd); err != nil {
			return nil, err
		}
		return os.ReadFile(dest)

	case "odirect":
		fd, err := openRO(path, unix.O_DIRECT)
		if err == unix.EINVAL {
			return nil, unsupportedErr{fmt.Errorf("O_DIRECT open: %v", err)}
		}
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		buf, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return nil, err
		}
		defer unix.Munmap(buf)
		var out []byte
		var off int64
		for {
			n, err := unix.Pread(fd, buf, off)
			if err == unix.EINVAL {
				return nil, unsupportedErr{fmt.Errorf("O_DIRECT read: %v", err)}
			}
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return out, nil
			}
			out = append(out, buf[:n]...)
			off += int64(n)
		}

	case "fstat":
		fd, err := openRO(path, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		size, err := fdSize(fd)
		return []byte(strconv.FormatInt(size, 10)), err

	case "stat":
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return nil, err
		}
		return []byte(strconv.FormatInt(st.Size, 10)), nil

	case "statx":
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_SIZE, &stx); err != nil {
			return nil, err
		}
		return []byte(strconv.FormatUint(stx.Size, 10)), nil

	case "xattr":
		// Every name and value, as name=value lines.
		buf := make([]byte, 64<<10)
		n, err := unix.Listxattr(path, buf)
		if err != nil {
			if err == unix.ENOTSUP {
				return nil, unsupportedErr{err}
			}
			return nil, err
		}
		var out []byte
		for _, name := range bytes.Split(buf[:n], []byte{0}) {
			if len(name) == 0 {
				continue
			}
			v := make([]byte, 64<<10)
			m, err := unix.Getxattr(path, string(name), v)
			if err != nil {
				return nil, fmt.Errorf("getxattr %s: %v", name, err)
			}
			out = append(out, name...)
			out = append(out, '=')
			out = append(out, v[:m]...)
			out = append(out, '\n')
		}
		return out, nil

	case "setxattr":
		name, hexValue, _ := strings.Cut(os.Getenv(envXattr), "=")
		value, err := hex.DecodeString(hexValue)
		if err != nil {
			return nil, err
		}
		if err := unix.Setxattr(path, name, value, 0); err != nil {
			if err == unix.ENOTSUP {
				return nil, unsupportedErr{err}
			}
			return nil, err
		}
		return nil, nil

	case "readdir":
		// Names and lstat sizes of the directory's entries.
		ents, err := os.ReadDir(path)
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

	case "loop":
		return runLoop(path)
	}
	return nil, fmt.Errorf("unknown op %q", op)
}

func spliceOut(fd int) ([]byte, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	var out []byte
	buf := make([]byte, 65536)
	for {
		n, err := unix.Splice(fd, nil, p[1], nil, 4096, 0)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		for got := 0; got < int(n); {
			m, err := unix.Read(p[0], buf[:int(n)-got])
			if err != nil {
				return nil, err
			}
			out = append(out, buf[:m]...)
			got += m
		}
	}
}

// runLoop reads the file N times with open/read/close and with mmap
// (alternately private and shared), and reports counts only: never bytes.
func runLoop(path string) ([]byte, error) {
	n, _ := strconv.Atoi(os.Getenv(envN))
	want, err := hex.DecodeString(os.Getenv(envExpect))
	if err != nil {
		return nil, err
	}
	checkLeak := os.Getenv(envLeak) == "1"
	// Wait for the go line so that both roles start together.
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return nil, err
	}
	var wrong, leaks, errs int
	var firstErr, firstLeak string
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
		}
		if checkLeak {
			if f := fakeForms.Find(got); f != "" {
				leaks++
				if firstLeak == "" {
					firstLeak = kind + ": " + f
				}
			}
		}
	}
	for i := range n {
		got, err := runHelperOp("read", path)
		check("read", got, err)
		mop := "mmap-private"
		if i%2 == 1 {
			mop = "mmap-shared"
		}
		got, err = runHelperOp(mop, path)
		check(mop, got, err)
	}
	return fmt.Appendf(nil, "rounds=%d wrong=%d leaks=%d errors=%d firstleak=%q firsterr=%q",
		n, wrong, leaks, errs, firstLeak, firstErr), nil
}

// runSession serves commands on stdin; see session.
func runSession() int {
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	fd := -1
	var mapping []byte
	reply := func(data []byte, err error) {
		if err != nil {
			fmt.Fprintf(out, "ERR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Fprintf(out, "OK %d\n", len(data))
			out.Write(data)
		}
		out.Flush()
	}
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return 0
		}
		args := strings.Fields(line)
		if len(args) == 0 {
			continue
		}
		switch args[0] {
		case "open": // open PATH MODE
			flags := unix.O_RDONLY
			switch args[2] {
			case "rw":
				flags = unix.O_RDWR
			case "rwt":
				flags = unix.O_RDWR | unix.O_TRUNC
			case "wc":
				flags = unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC
			case "wt":
				flags = unix.O_WRONLY | unix.O_TRUNC
			case "rwc":
				flags = unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC
			}
			fd, err = unix.Open(args[1], flags|unix.O_CLOEXEC, 0o644)
			reply(nil, err)
		case "read":
			var data []byte
			data, err = preadAll(fd)
			reply(data, err)
		case "write": // write HEX
			var data []byte
			data, err = hex.DecodeString(args[1])
			if err == nil {
				_, err = unix.Write(fd, data)
			}
			reply(nil, err)
		case "fsync":
			reply(nil, unix.Fsync(fd))
		case "mmap": // mmap private|shared: map, touch, copy out
			flags := unix.MAP_PRIVATE
			if args[1] == "shared" {
				flags = unix.MAP_SHARED
			}
			var size int64
			size, err = fdSize(fd)
			if err != nil {
				reply(nil, err)
				continue
			}
			length := int(size)
			if length == 0 {
				length = os.Getpagesize()
			}
			mapping, err = unix.Mmap(fd, 0, length, unix.PROT_READ, flags)
			if err != nil {
				reply(nil, err)
				continue
			}
			mapping = mapping[:size]
			reply(append([]byte(nil), mapping...), nil)
		case "mapread":
			reply(append([]byte(nil), mapping...), nil)
		case "fstat":
			var size int64
			size, err = fdSize(fd)
			reply([]byte(strconv.FormatInt(size, 10)), err)
		case "stat":
			var st unix.Stat_t
			err = unix.Stat(args[1], &st)
			reply([]byte(strconv.FormatInt(st.Size, 10)), err)
		case "close":
			if mapping != nil {
				unix.Munmap(mapping[:cap(mapping)])
				mapping = nil
			}
			err = unix.Close(fd)
			fd = -1
			reply(nil, err)
		default:
			reply(nil, fmt.Errorf("unknown command %q", args[0]))
		}
	}
}

func preadAll(fd int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
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
