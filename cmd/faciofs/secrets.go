package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/audit"
	"github.com/faciofs/faciofs/internal/control"
	"github.com/faciofs/faciofs/internal/readpassword"
	"github.com/faciofs/faciofs/store"
)

func newInitCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the encrypted credential store (asks for a new master password twice)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := g.storePath()
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("a store already exists at %s; nothing was changed", path)
			}
			pw, err := g.passwordSource().Password("New master password", true)
			if err != nil {
				return err
			}
			defer clear(pw)
			if err := store.Create(path, pw, store.DefaultKDF); err != nil {
				return err
			}
			// Unsealed: init does not unlock what it created (that would
			// cost a second key derivation); the next unlock seals it.
			if err := g.auditRecord(cmd, nil, audit.Record{Event: audit.EventInit, Outcome: audit.OutcomeOK, Detail: "created " + path}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created store %s\n", path)
			return nil
		},
	}
}

func newSecretCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "secret",
		Short: "Store and list credentials (values go in, never out)",
		Args:  args(cobra.NoArgs),
		RunE:  helpOnly,
	}
	c.AddCommand(newSecretSetCommand(g), newSecretListCommand(g), newSecretRmCommand(g))
	return c
}

func newSecretSetCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "set NAME",
		Short: "Store or replace a credential; the value comes from a hidden prompt, else from stdin, never from the command line",
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) > 1 {
				return usagef("secret set takes only NAME: values are never taken from the command line, where other processes can read them; type it at the prompt or pipe it on stdin")
			}
			return args(cobra.ExactArgs(1))(cmd, a)
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			name := a[0]
			if store.ValidName(name) != nil {
				// Not quoted back: a value typed in NAME's place must not
				// reach the terminal's scrollback or a log.
				return usagef("invalid credential name (not repeated here, in case it was a value): use 1 to 128 characters from A-Z, a-z, 0-9 and _, not starting with a digit")
			}
			b, err := g.backend(cmd, true, true)
			if err != nil {
				return err
			}
			defer b.close()
			pw, err := g.passwordSource().Password("Master password", false)
			if err != nil {
				return err
			}
			defer clear(pw)
			value, err := readpassword.Value(os.Stdin, "Value for "+name)
			if err != nil {
				return err
			}
			defer clear(value)
			// With a mount running, the daemon checks the password against
			// the store and rotates the value in place: the next open
			// resolves the new one.
			var res control.SetResult
			if err := b.call(&control.Request{Op: control.OpSecretSet, Name: name, Password: pw, Value: value}, &res); err != nil {
				return controlErr(err)
			}
			verb := "replaced"
			if res.Created {
				verb = "stored"
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s %s; files reference it as ${credentials.%s}\n", verb, name, name)
			for _, id := range res.Fulfilled {
				fmt.Fprintf(out, "fulfilled request %s\n", id)
			}
			return nil
		},
	}
}

// listedCredential is what `secret list --json` prints: metadata only.
type listedCredential = control.Credential

func newSecretListCommand(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List credential names and metadata (never values)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := g.backend(cmd, true, false)
			if err != nil {
				return err
			}
			defer b.close()
			var metas []listedCredential
			if err := b.call(&control.Request{Op: control.OpSecretList}, &metas); err != nil {
				return controlErr(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if metas == nil {
					metas = []listedCredential{}
				}
				return printJSON(cmd, metas)
			}
			if len(metas) == 0 {
				fmt.Fprintln(out, "no credentials; add one with `faciofs secret set NAME`")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tCREATED\tUPDATED\tLAST RESOLVED\tRESOLVES")
			for _, m := range metas {
				last := "never"
				if m.LastResolved != nil {
					last = m.LastResolved.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\n", m.Name, m.Version,
					m.Created.Local().Format(time.DateTime), m.Updated.Local().Format(time.DateTime), last, m.ResolveCount)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newPasswdCommand(g *globals) *cobra.Command {
	var newFile string
	c := &cobra.Command{
		Use:   "passwd",
		Short: "Change the master password (re-wraps the data key; values are untouched)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := control.Dial(g.storePath())
			if err != nil && !errors.Is(err, control.ErrNoMount) {
				return err
			}
			if client != nil {
				// The running mount holds the store: it re-wraps the key.
				pw, err := g.passwordSource().Password("Current master password", false)
				if errors.Is(err, readpassword.ErrNoTerminal) {
					return usagef("passwd needs the current master password: use --password-file")
				}
				if err != nil {
					return err
				}
				npw, err := readNewPassword(newFile)
				if err != nil {
					clear(pw)
					return err
				}
				if err := controlErr(client.Call(&control.Request{Op: control.OpPasswd, Password: pw, NewPassword: npw}, nil)); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "master password changed")
				return nil
			}
			kr, done, err := g.unlock(cmd, "Current master password")
			if err != nil {
				return err
			}
			defer done()
			npw, err := readNewPassword(newFile)
			if err != nil {
				return err
			}
			defer clear(npw)
			if err := kr.Rewrap(npw, store.DefaultKDF); err != nil {
				return err
			}
			key := kr.AuditKey() // the data key, and so this key, did not change
			err = g.auditRecord(cmd, key, audit.Record{Event: audit.EventPasswd, Outcome: audit.OutcomeOK, Detail: "master password changed"})
			clear(key)
			if err != nil {
				return fmt.Errorf("master password changed, but %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "master password changed")
			return nil
		},
	}
	c.Flags().StringVar(&newFile, "new-password-file", "", "read the new master password from this file (mode 0600)")
	return c
}

// readNewPassword reads the new master password from file, or from the
// terminal (asked twice) when file is "".
func readNewPassword(file string) ([]byte, error) {
	if file == "" {
		return readpassword.Terminal("New master password", true)
	}
	npw, err := readpassword.ReadFile(file)
	if err == nil && len(npw) == 0 {
		err = fmt.Errorf("password file %s is empty", file)
	}
	return npw, err
}

// unlock opens the store for writing and unlocks it with the master
// password, asked with prompt; a wrong password is audited. done closes
// the keyring (wiping the key) and the store.
func (g *globals) unlock(cmd *cobra.Command, prompt string) (kr *store.Keyring, done func(), err error) {
	s, err := store.Open(g.storePath(), store.OpenOptions{})
	if err != nil {
		return nil, nil, err
	}
	pw, err := g.passwordSource().Password(prompt, false)
	if err == nil {
		kr, err = g.unlockAudited(cmd, s, pw)
		clear(pw)
	}
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return kr, func() { kr.Close(); s.Close() }, nil
}
