// Package childexec runs one child process with credentials in its
// environment and every value redacted from what it prints: what the daemon
// does for `faciofs exec`.
//
// The redaction is against accidental disclosure (a tool that echoes its
// configuration, a debug log, a stack trace). A child that wants to leak a
// value can always transform it first (reverse it, XOR it); see the redact
// package for exactly what is matched.
package childexec

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/faciofs/faciofs/internal/subreaper"
	"github.com/faciofs/faciofs/redact"
	"github.com/faciofs/faciofs/resolve"
)

// Spec describes the child.
type Spec struct {
	Path string   // executable; looked up in PATH of Environ+Env if it has no slash
	Args []string // argv[1:]
	Dir  string   // working directory; "" is the current one
	// Environ is the base environment (the caller's); nil means empty.
	Environ []string
	// Env holds extra NAME=value entries (the exposed credentials); they
	// replace entries of Environ with the same NAME.
	Env []string
	// Stdin is relayed to the child; nil is /dev/null. An *os.File is
	// passed as is; any other reader is copied by a goroutine that may
	// stay blocked in Read after Run returns, until the reader ends.
	Stdin          io.Reader
	Stdout, Stderr io.Writer // redacted; nil discards. May be the same writer.
	// Known are the values to redact from Stdout and Stderr: at least
	// every value in Env, usually every value the store holds.
	Known []resolve.Known
	// Matcher, if set, is used instead of one built from Known.
	Matcher *redact.Matcher
	// Credential, if set, runs the child as another user (needs root).
	Credential *syscall.Credential
	// Signals are forwarded to the child's process group while it runs.
	Signals <-chan os.Signal
	// Started, if set, is called with the child's pid once it runs (its
	// environment has been copied into it by then).
	Started func(pid int)
	// KillDelay is how long after ctx is done (SIGTERM sent) the child
	// gets before SIGKILL; zero means 5 seconds.
	KillDelay time.Duration
	// Reaper, if set, is the daemon's subreaper: the child is registered
	// with it so it is never reaped as an orphan before Run waits for it.
	Reaper *subreaper.Reaper
}

// Result is how the child ended.
type Result struct {
	// ExitCode is the child's exit status, or 128+signal if a signal
	// killed it (the shell's convention).
	ExitCode int
	// Signal killed the child, or is 0.
	Signal syscall.Signal
	// Redactions counts values and forms replaced in stdout and stderr.
	Redactions int
	// Skipped names values too short to redact (they were not); warn.
	Skipped []string
}

// Run starts the child in its own process group, relays its I/O through
// redacting writers, forwards signals, and waits for it and for its output.
// When ctx is done the group gets SIGTERM, then SIGKILL after KillDelay.
//
// Output is delayed: each stream holds back its last MaxLen-1 bytes (the
// longest encoded form of the longest value, usually under 200 bytes)
// until more output or the child's exit shows they are not the start of a
// value. A prompt without a newline after it may therefore not appear until
// the child prints more.
//
// An error means the child could not be started (a *StartError) or its
// output could not be delivered; a non-zero exit is not an error.
func Run(ctx context.Context, s Spec) (Result, error) {
	m := s.Matcher
	if m == nil {
		m = redact.NewMatcher(s.Known)
	}
	res := Result{Skipped: m.Skipped()}
	stdout, stderr := s.Stdout, s.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	outW := redact.NewWriter(stdout, m)
	errW := outW
	if stderr != stdout {
		errW = redact.NewWriter(stderr, m)
	}

	cmd := exec.CommandContext(ctx, s.Path, s.Args...)
	cmd.Env = mergeEnv(s.Environ, s.Env)
	if lp, err := lookPath(s.Path, cmd.Env); err == nil {
		cmd.Path, cmd.Err = lp, nil
	} else {
		return res, &StartError{err}
	}
	cmd.Dir = s.Dir
	// With SysProcAttr set, a missing directory would be reported as
	// the command's own ENOENT (the chdir fails in the forked child);
	// say which it is.
	if s.Dir != "" {
		fi, err := os.Stat(s.Dir)
		var errno error = syscall.ENOTDIR
		if err != nil {
			errno = errors.Unwrap(err)
		}
		if err != nil || !fi.IsDir() {
			return res, &StartError{&os.PathError{Op: "chdir", Path: s.Dir, Err: errno}}
		}
	}
	cmd.Stdout = outW
	cmd.Stderr = errW // exec shares one pipe when both are the same writer
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.Credential}
	cmd.Cancel = func() error { return signalGroup(cmd.Process, syscall.SIGTERM) }
	cmd.WaitDelay = s.KillDelay
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = 5 * time.Second
	}
	var stdinPipe io.WriteCloser
	switch in := s.Stdin.(type) {
	case nil:
	case *os.File:
		cmd.Stdin = in
	default:
		p, err := cmd.StdinPipe()
		if err != nil {
			return res, &StartError{err}
		}
		stdinPipe = p
		go func() {
			// Ends at EOF, or at the first write after Wait closes p.
			io.Copy(p, in)
			p.Close()
		}()
	}
	registered := s.Reaper.Starting()
	if err := cmd.Start(); err != nil {
		registered(0)
		if stdinPipe != nil {
			stdinPipe.Close()
		}
		return res, &StartError{err}
	}
	registered(cmd.Process.Pid)
	if s.Started != nil {
		s.Started(cmd.Process.Pid)
	}

	stopSignals := make(chan struct{})
	sigDone := make(chan struct{})
	go func() {
		defer close(sigDone)
		for {
			select {
			case sig := <-s.Signals: // a nil channel never delivers
				if ss, ok := sig.(syscall.Signal); ok {
					signalGroup(cmd.Process, ss)
				}
			case <-stopSignals:
				return
			}
		}
	}()

	werr := cmd.Wait()
	s.Reaper.Forget(cmd.Process.Pid)
	close(stopSignals)
	<-sigDone
	cerr := outW.Close()
	if errW != outW {
		if err := errW.Close(); cerr == nil {
			cerr = err
		}
	}
	res.Redactions = outW.Count()
	if errW != outW {
		res.Redactions += errW.Count()
	}

	var ee *exec.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &ee):
		werr = nil
		if errors.Is(cmd.Err, exec.ErrWaitDelay) {
			werr = cmd.Err
		}
	case errors.Is(werr, exec.ErrWaitDelay):
		werr = nil // output still open in a grandchild; the child exited
	}
	if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case st.Signaled():
			res.Signal = st.Signal()
			res.ExitCode = 128 + int(st.Signal())
		default:
			res.ExitCode = st.ExitStatus()
		}
	}
	if werr == nil {
		werr = cerr
	}
	return res, werr
}

// StartError says the child did not start: not found, not executable, a
// working directory it cannot enter, or no resources to fork.
type StartError struct{ Err error }

func (e *StartError) Error() string { return "starting the command: " + e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

func signalGroup(p *os.Process, sig syscall.Signal) error {
	if p == nil {
		return nil
	}
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		return p.Signal(sig)
	}
	return nil
}

// mergeEnv is base with the entries of extra added, replacing base entries
// of the same name.
func mergeEnv(base, extra []string) []string {
	name := func(kv string) string {
		n, _, _ := strings.Cut(kv, "=")
		return n
	}
	drop := make(map[string]bool, len(extra))
	for _, kv := range extra {
		drop[name(kv)] = true
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		if !drop[name(kv)] {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// lookPath finds file in the PATH of the child's environment, not the
// daemon's.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	path := ""
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = p
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue // never the working directory implicitly
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
}
