package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faciofs/faciofs/audit"
)

// ioTimeout bounds how long a client may take to send its request or read
// the answer.
const ioTimeout = 30 * time.Second

// Server serves the control socket of one mount.
type Server struct {
	Engine *Engine
	Log    *log.Logger

	mu sync.Mutex // one operation at a time
	wg sync.WaitGroup

	lnMu   sync.Mutex // guards ln, closed and stop between Serve and Close
	ln     *net.UnixListener
	closed bool
	// stop ends exec's children when the server closes (the mount is
	// going away): they get SIGTERM, then SIGKILL.
	stop     context.Context
	stopExec context.CancelFunc
}

// stopContext is done once Close has begun.
func (s *Server) stopContext() context.Context {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.stop == nil {
		s.stop, s.stopExec = context.WithCancel(context.Background())
		if s.closed {
			s.stopExec()
		}
	}
	return s.stop
}

// Listen creates the socket for the store at storePath: the directory
// mode 0700, the socket mode 0600, both owned by this process's user; with
// a group (gid > 0), the directory 0710 and the socket 0660 in that group,
// so that agents under another uid can ask (request, secret rm) while
// everything that changes a value still needs the master password. A
// socket left by a dead daemon is replaced (the store's lock, held by the
// caller, says no live daemon owns it).
func Listen(storePath string, group int) (*net.UnixListener, string, error) {
	path := SocketPath(storePath)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("control socket directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, "", fmt.Errorf("control socket directory: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return nil, "", fmt.Errorf("control socket directory %s is not a directory owned by uid %d", dir, os.Geteuid())
	}
	// The directory admits the socket group (search only, 0710) when one
	// is asked for; otherwise it keeps such a bit from another mount's
	// group, since its sockets are 0600 anyway, and loses any other.
	sockMode := os.FileMode(0o600)
	dirMode := os.FileMode(st.Mode & 0o710)
	if group > 0 {
		sockMode, dirMode = 0o660, 0o710
		if err := os.Chown(dir, -1, group); err != nil {
			return nil, "", fmt.Errorf("control socket directory: %w", err)
		}
	}
	if os.FileMode(st.Mode&0o777) != dirMode|0o700 {
		if err := os.Chmod(dir, dirMode|0o700); err != nil {
			return nil, "", err
		}
	}
	_ = os.Remove(path)
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, "", fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if group > 0 {
		if err := os.Chown(path, -1, group); err != nil {
			ln.Close()
			return nil, "", err
		}
	}
	if err := os.Chmod(path, sockMode); err != nil {
		ln.Close()
		return nil, "", err
	}
	return ln, path, nil
}

// Serve accepts connections until Close.
func (s *Server) Serve(ln *net.UnixListener) {
	s.lnMu.Lock()
	if s.closed {
		s.lnMu.Unlock()
		ln.Close()
		return
	}
	s.ln = ln
	s.lnMu.Unlock()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.Log.Printf("control: accept: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.lnMu.Lock()
		if s.closed {
			s.lnMu.Unlock()
			c.Close()
			return
		}
		s.wg.Add(1)
		s.lnMu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
		}()
	}
}

// Close stops accepting, ends exec's children, waits for operations in
// flight and removes the socket.
func (s *Server) Close() {
	s.lnMu.Lock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	if s.stopExec != nil {
		s.stopExec()
	}
	s.lnMu.Unlock()
	s.wg.Wait()
}

// peer reads SO_PEERCRED.
func peer(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	cred, err := peer(c)
	if err != nil {
		// Fail closed: an unidentified caller gets nothing.
		writeResponse(c, Response{Kind: KindRuntime, Error: "cannot identify the caller (SO_PEERCRED): " + err.Error()})
		return
	}
	actor := audit.Process(int(cred.Pid))
	actor.Uid, actor.Gid = cred.Uid, cred.Gid
	actor.Cmdline = "" // the caller's argv is its own business; the record says what it asked
	who := Who{Pid: int(cred.Pid), Uid: cred.Uid, Gid: cred.Gid, Exe: actor.Exe}
	if who.Groups, err = peerGroups(c); err != nil {
		who.Groups = []uint32{} // exec's children then get no supplementary groups
	}

	req, files, rerr := readRequestFiles(c)
	defer closeFiles(files)
	if rerr != nil {
		writeResponse(c, Response{Kind: KindUsage, Error: rerr.Error()})
		return
	}
	actor.Cmdline = "faciofs control " + req.Op
	if len(actor.Cmdline) > 64 {
		actor.Cmdline = "faciofs control"
	}
	// exec and scan read what the caller passed as descriptors; exec
	// lasts as long as its child, so neither takes the lock that orders
	// the operations on the store.
	switch req.Op {
	case OpExec:
		s.exec(c, who, actor, req, files)
		return
	case OpScan:
		res, err := s.Engine.scan(actor, req, files)
		if err != nil {
			writeResponse(c, Response{Kind: KindOf(err), Error: err.Error()})
			return
		}
		writeResponse(c, Response{OK: true, Result: res})
		return
	}
	s.mu.Lock()
	res, err := s.Engine.Handle(who, actor, req)
	s.mu.Unlock()
	// A client that hung up before its answer: the operation is done
	// (and audited) either way; a disconnect never undoes it.
	if err != nil {
		writeResponse(c, Response{Kind: KindOf(err), Error: err.Error()})
		return
	}
	writeResponse(c, Response{OK: true, Result: res})
}

// readRequestFiles reads the request and the descriptors that came with
// its first bytes (exec's stdio, scan's files). The client sends its line
// and waits for an answer, so nothing beyond the line is read here.
func readRequestFiles(c *net.UnixConn) (*Request, []*os.File, error) {
	first := make([]byte, 64<<10)
	defer clear(first) // it may hold a password
	oob := make([]byte, unix.CmsgSpace(MaxFiles*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(first, oob)
	files, ferr := parseFiles(oob[:oobn])
	if err == nil && n == 0 {
		err = io.EOF
	}
	switch {
	case err != nil && !errors.Is(err, io.EOF):
		return nil, files, fmt.Errorf("reading the request: %v", err)
	case ferr != nil:
		return nil, files, ferr
	case flags&unix.MSG_CTRUNC != 0:
		return nil, files, fmt.Errorf("more than %d descriptors sent; refused", MaxFiles)
	}
	req, err := readRequest(io.MultiReader(bytes.NewReader(first[:n]), c))
	return req, files, err
}

// parseFiles turns SCM_RIGHTS messages into files (received close-on-exec).
func parseFiles(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, errors.New("malformed control message")
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue // not SCM_RIGHTS (credentials are read with SO_PEERCRED)
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), fmt.Sprintf("fd %d from the caller", len(files))))
		}
	}
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// readRequest reads one line of at most MaxMessage bytes and decodes it
// strictly (unknown fields are errors).
func readRequest(r io.Reader) (*Request, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxMessage+1), 64<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxMessage {
			clear(line)
			return nil, fmt.Errorf("request larger than %d bytes; refused", MaxMessage)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			break
		}
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty request: send one JSON object on one line")
		}
		return nil, fmt.Errorf("reading the request: %v", err)
	}
	defer clear(line)
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		req.wipe()
		// The decoder's message may quote the input; say only where.
		return nil, fmt.Errorf("malformed request: not one JSON object with known fields (%s)", jsonWhere(err))
	}
	if dec.More() {
		req.wipe()
		return nil, errors.New("malformed request: more than one JSON value on the line")
	}
	return &req, nil
}

// jsonWhere describes a decoding error without quoting the input.
func jsonWhere(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	default:
		return "unknown field or bad value"
	}
}

func writeResponse(w io.Writer, r Response) {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(Response{Kind: KindRuntime, Error: "could not encode the response"})
	}
	_, _ = w.Write(append(b, '\n'))
}
