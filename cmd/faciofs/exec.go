package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/internal/control"
)

// exec's own failures use the exit codes of env(1) and timeout(1), so that
// they stay apart from the child's: 125 faciofs failed or refused, 126 the
// command cannot run, 127 it was not found. Usage errors are 2, as for
// every command, and are reported before anything runs.
const (
	exitExecFailed   = 125
	exitExecCannot   = 126
	exitExecNotFound = 127
)

// exitError ends the process with code, printing err if it is not nil.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// forwardedSignals are passed on to the child (the daemon accepts the
// same set). SIGTSTP and SIGCONT are not: job control stops and resumes
// this command, and the child waits in its output pipe meanwhile.
var forwardedSignals = []os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

func newExecCommand(g *globals) *cobra.Command {
	var expose []string
	cmd := &cobra.Command{
		Use:   "exec --expose NAME[,NAME] -- CMD [ARG...]",
		Short: "Run CMD with credentials in its environment; every value is redacted from what it prints",
		Long: `exec asks the running mount to start CMD with NAME=value in its environment
for each exposed credential, in this directory and with the rest of this
environment. Only names in the policy's exec.expose may be exposed. CMD's
stdin is this command's; its stdout and stderr pass a redactor first: every
stored value, and its base64, hex and URL-encoded forms, becomes
[REDACTED:NAME]. Signals sent to this command (Ctrl-C, SIGTERM) pass on to
CMD, and this command exits with CMD's status (128+N when signal N killed
it). Its own failures exit 125 (refused, no mount), 126 (CMD cannot run)
or 127 (CMD not found). CMD's stdout and stderr are pipes, not this
terminal, so programs behave as when their output is piped; and the
redactor holds back the last few dozen bytes of a stream until more output
or CMD's exit shows they are not the start of a value.

Redaction guards against accidental disclosure; a CMD that transforms a
value before printing it is not stopped. See SECURITY.md.`,
		Example: "  faciofs exec --expose GITHUB_TOKEN -- gh repo list",
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if len(expose) == 0 {
				return usagef("exec: name the credentials to expose with --expose NAME[,NAME]")
			}
			return g.exec(expose, argv)
		},
	}
	// Everything after CMD is CMD's, also without "--".
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringSliceVar(&expose, "expose", nil, "credentials to put into CMD's environment (comma-separated or repeated)")
	return cmd
}

func (g *globals) exec(expose, argv []string) error {
	client, err := control.Dial(g.storePath())
	if errors.Is(err, control.ErrNoMount) {
		return exitError{exitExecFailed, errors.New("exec needs a running mount of this store (faciofs mount); nothing was run")}
	}
	if err != nil {
		return exitError{exitExecFailed, err}
	}
	dir, err := os.Getwd()
	if err != nil {
		return exitError{exitExecFailed, fmt.Errorf("exec: the working directory: %v", err)}
	}
	stdio, closeStdio := execStdio()
	defer closeStdio()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)

	req := &control.Request{Op: control.OpExec, Expose: expose, Argv: argv, Env: os.Environ(), Dir: dir}
	res, err := client.Exec(req, stdio, sigs)
	var ce *control.Error
	switch {
	case errors.As(err, &ce) && ce.Kind == control.KindUsage:
		return usageError{err}
	case errors.As(err, &ce) && ce.Kind == control.KindCommandNotFound:
		return exitError{exitExecNotFound, err}
	case errors.As(err, &ce) && ce.Kind == control.KindCannotRun:
		return exitError{exitExecCannot, err}
	case err != nil:
		return exitError{exitExecFailed, err}
	case res.Error != "" && res.Signal != int(syscall.SIGPIPE):
		// (A reader that went away, as in `exec ... | head`, is the
		// usual end of a pipeline, not news.)
		note("exec: %s", res.Error)
	}
	if res.ExitCode == 0 && res.Error == "" {
		return nil
	}
	if res.ExitCode == 0 {
		return exitError{code: exitExecFailed}
	}
	return exitError{code: res.ExitCode}
}

// execStdio is this process's stdin, stdout and stderr, with /dev/null
// standing in for any that is closed.
func execStdio() ([3]*os.File, func()) {
	stdio := [3]*os.File{os.Stdin, os.Stdout, os.Stderr}
	var opened []*os.File
	for i, f := range stdio {
		var st syscall.Stat_t
		if f != nil && syscall.Fstat(int(f.Fd()), &st) == nil {
			continue
		}
		mode := os.O_WRONLY
		if i == 0 {
			mode = os.O_RDONLY
		}
		if null, err := os.OpenFile(os.DevNull, mode, 0); err == nil {
			stdio[i] = null
			opened = append(opened, null)
		}
	}
	return stdio, func() {
		for _, f := range opened {
			f.Close()
		}
	}
}
