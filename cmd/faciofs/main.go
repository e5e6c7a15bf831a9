// Command faciofs is the credential-resolving filesystem for AI agents'
// workspaces. This package only parses flags, wires packages together and
// prints results; see the README for the commands and SECURITY.md for what
// each one guarantees.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/internal/readpassword"
)

// Exit codes, as the README and product spec give them.
const (
	exitOK      = 0
	exitProblem = 1 // the command ran and found a problem
	exitUsage   = 2
	exitRuntime = 3
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// globals are the flags every command shares.
type globals struct {
	store        string
	passwordFile string
}

func (g *globals) storePath() string {
	if g.store != "" {
		return g.store
	}
	if p := os.Getenv("FACIOFS_STORE"); p != "" {
		return p
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "faciofs", "store.db")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/"
	}
	return filepath.Join(home, ".local", "share", "faciofs", "store.db")
}

func (g *globals) passwordSource() readpassword.Source {
	return readpassword.Source{File: g.passwordFile}
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "faciofs",
		Short: "A workspace filesystem that gives credentials to permitted consumers and placeholders to everyone else",
		Long: `faciofs mounts a workspace for an AI agent. Files keep placeholders such as
${credentials.OPENAI_API_KEY}; only processes the policy permits read the real
values. Values enter through a human's hidden prompt and never come back out.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.store, "store", "", "credential store file (default $FACIOFS_STORE, else $XDG_DATA_HOME/faciofs/store.db, else ~/.local/share/faciofs/store.db)")
	root.PersistentFlags().StringVar(&g.passwordFile, "password-file", "", "read the master password from this file (mode 0600) instead of a terminal prompt; also $FACIOFS_PASSWORD_FILE")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// pflag's message quotes the offending argument, which may be a
		// value typed where it does not belong: never repeat it.
		return usagef("%s: unknown flag or bad option value (the argument is not repeated here, in case it was a value); see `%s --help`", c.CommandPath(), c.CommandPath())
	})
	root.AddCommand(
		newInitCommand(g),
		newSecretCommand(g),
		newPasswdCommand(g),
		newMountCommand(g),
		newUnmountCommand(),
		newPolicyCommand(g),
		newAuditCommand(g),
		newScanCommand(g),
		newExecCommand(g),
		newStatusCommand(g),
		newRequestCommand(g),
		newApprovalsCommand(g),
		newDecideCommand(g, true),
		newDecideCommand(g, false),
	)
	return root
}

// helpOnly is the action of a command that only groups subcommands: bare,
// it shows help; with an argument, that argument named no subcommand.
func helpOnly(cmd *cobra.Command, a []string) error {
	return cmd.Help()
}

// args wraps a cobra argument check so that its failures are usage errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(argv []string) int {
	root := newRootCommand()
	root.SetArgs(argv)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var xe exitError
	if errors.As(err, &xe) && xe.err == nil {
		return xe.code // exec: the child's status, already explained by its output
	}
	fmt.Fprintf(os.Stderr, "faciofs: %v\n", err)
	var ue usageError
	var pe problemError
	switch {
	case errors.As(err, &xe):
		return xe.code
	case errors.As(err, &ue) || isCobraUsage(err):
		return exitUsage
	case errors.As(err, &pe):
		return exitProblem
	default:
		return exitRuntime
	}
}

// problemError means the command worked and found something wrong.
type problemError struct{ error }

// isCobraUsage recognises the errors cobra itself returns for unknown
// commands, which do not pass through our hooks.
func isCobraUsage(err error) bool {
	msg := err.Error()
	return len(msg) > 16 && msg[:16] == "unknown command "
}
