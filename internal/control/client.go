package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Client talks to the mount that holds a store.
type Client struct {
	path string
}

// Dial finds the running mount for the store at storePath. ErrNoMount
// means there is none (no socket, or a dead daemon's socket). A socket
// owned by anyone but this user or root is refused: it could be a fake
// daemon fishing for the master password.
func Dial(storePath string) (*Client, error) {
	c, err := dial(SocketPath(storePath), false)
	if errors.Is(err, ErrNoMount) && os.Geteuid() != 0 {
		// A root daemon that shares its socket with a group
		// (mount --socket-group) listens in root's runtime directory.
		c, err = dial(filepath.Join(rootRuntimeDir, filepath.Base(SocketPath(storePath))), true)
	}
	return c, err
}

func dial(path string, shared bool) (*Client, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) || shared && errors.Is(err, unix.EACCES) {
			return nil, ErrNoMount
		}
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("control socket %s is not a socket", path)
	}
	if st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("control socket %s is owned by uid %d, not by you or root; refusing to talk to it", path, st.Uid)
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, ErrNoMount // a socket left by a killed daemon
		}
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	c.Close()
	return &Client{path: path}, nil
}

// Path is the socket's path.
func (c *Client) Path() string { return c.path }

// Call sends req (wiping its secrets afterwards) and decodes the result
// into out. Errors from the daemon come back as *Error.
func (c *Client) Call(req *Request, out any) error {
	return c.CallFiles(req, nil, out)
}

// CallFiles is Call with descriptors passed along (scan's files).
func (c *Client) CallFiles(req *Request, files []*os.File, out any) error {
	conn, err := c.send(req, files)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Argon2 makes password checks take a moment; leave room for it.
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	return c.answer(bufio.NewReader(io.LimitReader(conn, MaxMessage)), out)
}

// Exec asks the mount to run a child (req.Op is OpExec) with stdin,
// stdout and stderr, passes on what arrives on signals until the child
// ends, and returns how it ended. The error is an *Error when the mount
// refused or could not start the command.
func (c *Client) Exec(req *Request, stdio [3]*os.File, signals <-chan os.Signal) (ExecResult, error) {
	var res ExecResult
	conn, err := c.send(req, stdio[:])
	if err != nil {
		return res, err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	var st ExecStarted
	if err := c.answer(br, &st); err != nil {
		return res, err
	}
	done := make(chan error, 1)
	go func() { done <- c.answer(br, &res) }()
	for {
		select {
		case err := <-done:
			return res, err
		case sig := <-signals:
			if ss, ok := sig.(syscall.Signal); ok {
				b, _ := json.Marshal(ExecSignal{Signal: int(ss)})
				if _, err := conn.Write(append(b, '\n')); err != nil {
					return res, fmt.Errorf("control socket %s: %w", c.path, err)
				}
			}
		}
	}
}

// send connects and writes req as one line, with files as SCM_RIGHTS.
func (c *Client) send(req *Request, files []*os.File) (*net.UnixConn, error) {
	defer req.wipe()
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if len(b)+1 > MaxMessage {
		return nil, errorf(KindUsage, "request larger than %d bytes", MaxMessage)
	}
	if len(files) > MaxFiles {
		return nil, errorf(KindUsage, "more than %d files in one request", MaxFiles)
	}
	nc, err := net.DialTimeout("unix", c.path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", c.path, err)
	}
	conn := nc.(*net.UnixConn)
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, _, err = conn.WriteMsgUnix(append(b, '\n'), oob, nil)
	runtime.KeepAlive(files)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("control socket %s: %w", c.path, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// answer reads one response line into out.
func (c *Client) answer(br *bufio.Reader, out any) error {
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("control socket %s: no answer from the mount: %v", c.path, err)
	}
	var resp struct {
		OK     bool            `json:"ok"`
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
		Kind   string          `json:"kind"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("control socket %s: malformed answer", c.path)
	}
	if !resp.OK {
		return &Error{Kind: resp.Kind, Msg: resp.Error}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(resp.Result, out)
}
