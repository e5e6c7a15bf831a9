package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/faciofs/faciofs/audit"
	"github.com/faciofs/faciofs/internal/childexec"
	"github.com/faciofs/faciofs/internal/subreaper"
	"github.com/faciofs/faciofs/policy"
	"github.com/faciofs/faciofs/redact"
	"github.com/faciofs/faciofs/store"
)

// ExecConfig is what exec needs from the running mount.
type ExecConfig struct {
	// Policy returns the policy in force; nil when the mount has none,
	// and then nothing may be exposed.
	Policy func() *policy.Policy
	// Redactor matches every value the store holds and its encoded forms.
	Redactor func() *redact.Matcher
	// Reveal returns the value of one credential; wipe clears it.
	Reveal func(name string) (value []byte, wipe func(), err error)
	// Reaper is the daemon's subreaper (nil: none): children are
	// registered with it, and their orphans stay the daemon's
	// descendants, so the mount keeps serving them placeholders.
	Reaper *subreaper.Reaper
}

// execSignals are the signals a caller may pass on to its child: what a
// terminal or a supervisor sends to stop, interrupt or poke a process.
var execSignals = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// exec runs one child for the caller: it checks the names against the
// policy's exec.expose, starts the child with their values in its
// environment and the caller's stdin, stdout and stderr (the last two
// through a redactor), passes on the caller's signals, and answers with
// how the child ended. A caller that hangs up takes its child down
// (SIGTERM, then SIGKILL). Nothing here holds Server.mu: a child may run
// for hours while other commands go on.
func (s *Server) exec(c *net.UnixConn, who Who, actor audit.Actor, req *Request, files []*os.File) {
	defer req.wipe()
	e := s.Engine
	fail := func(err error) { writeResponse(c, Response{Kind: KindOf(err), Error: err.Error()}) }
	if e.Exec == nil {
		fail(errorf(KindProblem, "exec needs a running mount"))
		return
	}
	if err := checkExecRequest(req, files); err != nil {
		fail(err)
		return
	}
	cmdline := redactString(e.Exec.Redactor(), strings.Join(req.Argv, " "))
	record := func(event audit.Event, outcome, detail string) error {
		return e.audit(actor, nil, audit.Record{Event: event, Outcome: outcome, Credentials: req.Expose,
			Detail: cut(detail, 512)})
	}
	spec, wipe, err := e.execSpec(who, req)
	defer wipe()
	if err != nil {
		if KindOf(err) == KindProblem {
			err = errors.Join(err, record(audit.EventExecStart, audit.OutcomeDenied, cmdline+": "+err.Error()))
			err = &Error{Kind: KindProblem, Msg: err.Error()}
		}
		fail(err)
		return
	}
	if err := record(audit.EventExecStart, audit.OutcomeOK, cmdline); err != nil {
		fail(fmt.Errorf("exec refused: the audit log cannot record it: %v", err))
		return
	}
	spec.Stdin, spec.Stdout, spec.Stderr = files[0], files[1], files[2]

	// The child lives as long as the caller listens and the mount runs:
	// a hang-up or Close cancels ctx, which sends SIGTERM to its group,
	// then SIGKILL.
	_ = c.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(s.stopContext())
	defer cancel()
	sigs := make(chan os.Signal, 8)
	spec.Signals = sigs
	// Started runs in Run's goroutine before it waits for the child, so
	// "started" is always the first answer and the result the second.
	// Only then does the caller speak, so no signal line can have been
	// lost to readRequest.
	spec.Started = func(pid int) {
		wipe() // the kernel copied the environment into the child
		writeResponse(c, Response{OK: true, Result: ExecStarted{Started: true, Pid: pid}})
		go func() {
			readExecSignals(c, sigs)
			cancel()
		}()
	}

	res, runErr := childexec.Run(ctx, spec)
	var se *childexec.StartError
	if errors.As(runErr, &se) {
		err := startError(se.Err)
		_ = record(audit.EventExecEnd, audit.OutcomeFailed, cmdline+": "+err.Error())
		fail(err)
		return
	}
	out := ExecResult{ExitCode: res.ExitCode, Signal: int(res.Signal), Redactions: res.Redactions}
	detail := fmt.Sprintf("exit status %d", res.ExitCode)
	if res.Signal != 0 {
		detail = "killed by " + unix.SignalName(res.Signal)
	}
	detail += fmt.Sprintf(", %d redactions", res.Redactions)
	outcome := audit.OutcomeOK
	if runErr != nil {
		out.Error = "the output could not be delivered in full: " + runErr.Error()
		detail += "; " + out.Error
		outcome = audit.OutcomeFailed
	}
	if err := record(audit.EventExecEnd, outcome, detail); err != nil {
		s.Log.Printf("exec: audit: %v", err)
	}
	writeResponse(c, Response{OK: true, Result: out})
}

// readExecSignals passes the caller's signal lines on until it hangs up.
func readExecSignals(c io.Reader, sigs chan<- os.Signal) {
	br := bufio.NewReaderSize(c, 256)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		var m ExecSignal
		if json.Unmarshal(line, &m) != nil {
			return // a confused client: treat it as gone
		}
		if sig := syscall.Signal(m.Signal); slices.Contains(execSignals, sig) {
			select {
			case sigs <- sig:
			default: // the child is flooded with signals already
			}
		}
	}
}

// checkExecRequest validates the shape of an exec request.
func checkExecRequest(req *Request, files []*os.File) error {
	switch {
	case len(files) != 3:
		return errorf(KindUsage, "exec: send stdin, stdout and stderr as three descriptors (got %d)", len(files))
	case len(req.Argv) == 0 || req.Argv[0] == "":
		return errorf(KindUsage, "exec: no command given")
	case len(req.Expose) == 0:
		return errorf(KindUsage, "exec: name at least one credential to expose (--expose NAME)")
	case !filepath.IsAbs(req.Dir):
		return errorf(KindUsage, "exec: the working directory must be an absolute path")
	}
	for i, name := range req.Expose {
		if err := checkName(name); err != nil {
			return err
		}
		if slices.Contains(req.Expose[:i], name) {
			return errorf(KindUsage, "exec: %s named twice", name)
		}
	}
	for _, kv := range req.Env {
		if !strings.Contains(kv, "=") || strings.HasPrefix(kv, "=") {
			return errorf(KindUsage, "exec: malformed environment entry (not NAME=VALUE)")
		}
	}
	return nil
}

// execSpec decides whether the caller may have the names exposed and as
// whom the child runs, and builds its spec. wipe clears the values (also
// after an error).
func (e *Engine) execSpec(who Who, req *Request) (childexec.Spec, func(), error) {
	var values [][]byte
	wipe := func() {
		for _, v := range values {
			clear(v)
		}
		values = nil
	}
	pol := e.Exec.Policy()
	if pol == nil {
		return childexec.Spec{}, wipe, errorf(KindProblem, "exec refused: the mount has no policy, so nothing may be exposed (policy key exec.expose)")
	}
	allowed := pol.ExecExpose()
	for _, name := range req.Expose {
		if !slices.Contains(allowed, name) {
			return childexec.Spec{}, wipe, errorf(KindProblem, "exec refused: %s is not in the policy's exec.expose", name)
		}
	}
	cred, err := childCredential(who, pol.ExecRunAs())
	if err != nil {
		return childexec.Spec{}, wipe, err
	}
	spec := childexec.Spec{
		Path:       req.Argv[0],
		Args:       req.Argv[1:],
		Dir:        req.Dir,
		Environ:    req.Env,
		Credential: cred,
		Matcher:    e.Exec.Redactor(),
		Reaper:     e.Exec.Reaper,
	}
	for _, name := range req.Expose {
		v, w, err := e.Exec.Reveal(name)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = errorf(KindProblem, "exec refused: %s is not set (faciofs request %s asks a human for it)", name, name)
			}
			return childexec.Spec{}, wipe, err
		}
		entry := make([]byte, 0, len(name)+1+len(v))
		entry = append(append(append(entry, name...), '='), v...)
		w()
		values = append(values, entry[len(name)+1:])
		// os/exec wants strings: this one aliases entry, whose value
		// part wipe clears once the child has started. (os/exec makes
		// its own short-lived C copies, which are garbage by then.)
		spec.Env = append(spec.Env, unsafe.String(unsafe.SliceData(entry), len(entry)))
	}
	return spec, wipe, nil
}

// childCredential is the user the child runs as: the policy's exec.uid
// and exec.gid (root daemons only), else the caller's uid, gid and
// supplementary groups as the kernel gave them at connect time. A daemon
// that is not root can only start children as itself.
func childCredential(who Who, runAs *policy.RunAs) (*syscall.Credential, error) {
	root := os.Geteuid() == 0
	switch {
	case runAs != nil && !root:
		return nil, errorf(KindProblem, "exec refused: the policy's exec.uid needs a mount running as root")
	case runAs != nil:
		return &syscall.Credential{Uid: runAs.Uid, Gid: runAs.Gid, Groups: []uint32{}}, nil
	case !root && int(who.Uid) != os.Geteuid():
		return nil, errorf(KindProblem, "exec refused: this mount runs as uid %d and cannot start a child as uid %d (run the mount as root, or set exec.uid)", os.Geteuid(), who.Uid)
	case !root:
		return nil, nil // the daemon's own uid, which is the caller's
	}
	return &syscall.Credential{Uid: who.Uid, Gid: who.Gid, Groups: who.Groups}, nil
}

// peerGroups reads SO_PEERGROUPS: the caller's supplementary groups when
// it connected (the pid could be reused by then; this cannot).
func peerGroups(c *net.UnixConn) ([]uint32, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var groups []uint32
	var gerr error
	cerr := rc.Control(func(fd uintptr) {
		buf := make([]uint32, 64)
		for {
			size := uint32(len(buf) * 4)
			_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_PEERGROUPS,
				uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
			if errno == unix.ERANGE && int(size/4) > len(buf) {
				buf = make([]uint32, size/4)
				continue
			}
			if errno != 0 {
				gerr = errno
				return
			}
			groups = buf[:size/4]
			return
		}
	})
	if cerr != nil {
		return nil, cerr
	}
	return groups, gerr
}

// startError classifies why a child did not start, as the shell does:
// not found (127) or found but not runnable (126).
func startError(err error) error {
	var ee *exec.Error
	var pe *os.PathError
	switch {
	case errors.As(err, &pe) && pe.Op == "chdir":
		return errorf(KindCannotRun, "exec: cannot enter the working directory (%s)", startReason(err))
	case errors.As(err, &ee) && errors.Is(ee.Err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return errorf(KindCommandNotFound, "exec: command not found (%s)", startReason(err))
	default:
		return errorf(KindCannotRun, "exec: cannot run the command (%s)", startReason(err))
	}
}

// startReason names the failure without repeating the path or
// arguments the caller sent (they are the caller's, and echoed back to
// it, but the audit log keeps its own redacted copy).
func startReason(err error) string {
	var errno syscall.Errno
	var ee *exec.Error
	switch {
	case errors.As(err, &ee):
		return ee.Err.Error()
	case errors.As(err, &errno):
		return errno.Error()
	}
	return "start failed"
}

// redactString replaces every value and encoded form in s (a command
// line for the audit log) by [REDACTED:NAME].
func redactString(m *redact.Matcher, s string) string {
	var b strings.Builder
	w := redact.NewWriter(&b, m)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// cut shortens s to at most n bytes for the audit log.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
