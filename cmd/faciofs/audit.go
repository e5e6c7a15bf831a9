package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/audit"
	"github.com/faciofs/faciofs/internal/readpassword"
	"github.com/faciofs/faciofs/store"
)

// auditRecord appends one record about this command to the store's audit
// log and waits until it is on disk. key is the store's audit key, or nil
// for a command that did not unlock the store (the record is unsealed).
func (g *globals) auditRecord(cmd *cobra.Command, key []byte, r audit.Record) error {
	l, err := audit.Open(audit.DefaultDir(g.storePath()), audit.Options{Key: key})
	if err != nil {
		return err
	}
	r.Actor = audit.Self()
	r.Actor.Cmdline = cmd.CommandPath() // never the arguments
	err = l.Append(r)
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("could not write the audit record: %w", err)
	}
	return nil
}

// unlockAudited unlocks s; a wrong password is audited (unsealed: there is
// no key) before the error is returned.
func (g *globals) unlockAudited(cmd *cobra.Command, s *store.Store, pw []byte) (*store.Keyring, error) {
	kr, err := s.Unlock(pw)
	if errors.Is(err, store.ErrWrongPassword) {
		g.auditWrongPassword(cmd)
	}
	return kr, err
}

func (g *globals) auditWrongPassword(cmd *cobra.Command) {
	if aerr := g.auditRecord(cmd, nil, audit.Record{Event: audit.EventWrongPassword, Outcome: audit.OutcomeDenied}); aerr != nil {
		fmt.Fprintf(os.Stderr, "faciofs: warning: %v\n", aerr)
	}
}

func newAuditCommand(g *globals) *cobra.Command {
	var since, until, event, key, path, grep string
	var pid int
	var asJSON, follow bool
	c := &cobra.Command{
		Use:   "audit [--since 1h|TIME] [--until …] [--event E] [--key NAME] [--pid N] [--path GLOB] [--grep REGEX] [--json] [--follow]",
		Short: "Show the audit trail (oldest first); works with or without a running mount",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var f audit.Filter
			now := time.Now()
			var err error
			if since != "" {
				if f.Since, err = audit.ParseTime(since, now); err != nil {
					return usagef("--since: %v", err)
				}
			}
			if until != "" {
				if f.Until, err = audit.ParseTime(until, now); err != nil {
					return usagef("--until: %v", err)
				}
			}
			if grep != "" {
				if f.Grep, err = regexp.Compile(grep); err != nil {
					return usagef("--grep: %v", err)
				}
			}
			if path != "" {
				if _, err := filepath.Match(path, ""); err != nil {
					return usagef("--path: bad pattern: %v", err)
				}
			}
			f.Event, f.Key, f.Pid, f.Path = audit.Event(event), key, pid, path
			dir := audit.DefaultDir(g.storePath())
			out := cmd.OutOrStdout()
			var tw *tabwriter.Writer
			emit := func(raw []byte) error {
				if asJSON {
					_, err := fmt.Fprintf(out, "%s\n", raw)
					return err
				}
				r, err := audit.Parse(raw)
				if err != nil {
					return nil
				}
				cmdShown := r.Actor.Exe
				if cmdShown == "" {
					cmdShown = r.Actor.Cmdline
				}
				_, err = fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n",
					r.Time.Local().Format("2006-01-02 15:04:05.000"), r.Event, r.Outcome, r.Actor.Pid,
					dash(cmdShown), dash(r.Path), dash(strings.Join(r.Credentials, ",")), dash(r.Actor.Rule))
				if follow {
					tw.Flush()
				}
				return err
			}
			if !asJSON {
				tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tEVENT\tOUTCOME\tPID\tEXE\tPATH\tCREDENTIALS\tRULE")
			}
			if follow {
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				err = audit.Follow(ctx, dir, f, emit)
			} else {
				err = audit.Scan(dir, f, emit)
			}
			if tw != nil {
				if ferr := tw.Flush(); err == nil {
					err = ferr
				}
			}
			return err
		},
	}
	fl := c.Flags()
	fl.StringVar(&since, "since", "", "only records at or after: a duration back from now (1h, 30m, 7d) or an RFC 3339 time")
	fl.StringVar(&until, "until", "", "only records at or before (same forms as --since)")
	fl.StringVar(&event, "event", "", "only this event (resolve, raw_served, denied, missing, secret.set, …)")
	fl.StringVar(&key, "key", "", "only records naming this credential")
	fl.IntVar(&pid, "pid", 0, "only records about this process (pid or thread group id)")
	fl.StringVar(&path, "path", "", "only records whose path (relative to the mount) matches this glob; ** spans directories")
	fl.StringVar(&grep, "grep", "", "only records whose JSON line matches this regular expression")
	fl.BoolVar(&asJSON, "json", false, "print JSON lines, as stored")
	fl.BoolVar(&follow, "follow", false, "keep printing new records as they are written (Ctrl-C stops)")
	c.AddCommand(newAuditVerifyCommand(g))
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newAuditVerifyCommand(g *globals) *cobra.Command {
	var chainOnly bool
	c := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail for edited, removed, reordered, inserted or cut-off records (exit 1 if any); MACs need the master password",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var key []byte
			if !chainOnly {
				k, err := g.auditKey(cmd)
				if err != nil {
					return err
				}
				key = k
				defer clear(key)
			}
			rep, err := audit.Verify(audit.DefaultDir(g.storePath()), audit.VerifyOptions{Key: key})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			macs := "MACs checked"
			if !rep.MACsChecked {
				macs = "MACs NOT checked (--chain-only): edits by someone who can write the files are not detected"
			}
			for _, p := range rep.Problems {
				fmt.Fprintln(out, p.String())
			}
			if rep.Unsealed > 0 {
				fmt.Fprintf(out, "note: the last %d records were written without the master password (unsealed): chained, but not yet covered by a MAC; the next command that unlocks the store seals them\n", rep.Unsealed)
			}
			if !rep.OK() {
				return problemError{fmt.Errorf("audit trail: %d problems in %d records (%s)", len(rep.Problems), rep.Records, macs)}
			}
			fmt.Fprintf(out, "audit trail ok: %d records, last seq %d, %s\n", rep.Records, rep.LastSeq, macs)
			return nil
		},
	}
	c.Flags().BoolVar(&chainOnly, "chain-only", false, "check the hash chain and sequence only, without the master password")
	return c
}

// auditKey unlocks the store for its audit key. While a mount holds the
// store's lock, a private copy of the file is unlocked instead: the key
// only depends on the password and the wrapped data key in the header.
func (g *globals) auditKey(cmd *cobra.Command) ([]byte, error) {
	s, cleanup, err := g.openStoreOrCopy()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	pw, err := g.passwordSource().Password("Master password", false)
	if errors.Is(err, readpassword.ErrNoTerminal) {
		return nil, usagef("audit verify needs the master password to check MACs: use --password-file, or --chain-only to check without it")
	}
	if err != nil {
		return nil, err
	}
	kr, err := s.Unlock(pw)
	clear(pw)
	if errors.Is(err, store.ErrWrongPassword) {
		g.auditWrongPassword(cmd)
	}
	if err != nil {
		return nil, err
	}
	defer kr.Close()
	return kr.AuditKey(), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
