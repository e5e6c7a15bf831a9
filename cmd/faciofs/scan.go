package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/internal/control"
	"github.com/faciofs/faciofs/internal/readpassword"
	rdx "github.com/faciofs/faciofs/redact" // not "redact": main_test.go has a func of that name
	"github.com/faciofs/faciofs/resolve"
	"github.com/faciofs/faciofs/store"
)

func newScanCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "scan PATH...",
		Short: "Report files holding a stored value or an encoding of it (base64, hex, URL, JSON, shell), never the value; exit 1 if any",
		Long: `scan walks each PATH (symlinks are not followed; files over 256 MiB are
skipped with a note) and prints FILE:LINE: NAME (FORM) for each stored value
or encoded form found, with the same matcher as exec's output redactor.
While a mount holds the store, the mount does the matching (this command
opens the files and passes them over the control socket, so it reads only
what you may read) and no password is needed; otherwise scan needs the
master password. Exit 1 if anything was found, 0 if not.`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, paths []string) error {
			for _, p := range paths {
				if _, err := os.Lstat(p); err != nil {
					return usagef("scan: %v", err)
				}
			}
			s := scanner{out: cmd.OutOrStdout()}
			client, err := control.Dial(g.storePath())
			switch {
			case err == nil:
				s.client = client
			case !errors.Is(err, control.ErrNoMount):
				return err
			default:
				if s.m, err = g.scanMatcher(cmd); err != nil {
					return err
				}
				s.skipped(s.m.Skipped())
			}
			for _, p := range paths {
				s.walk(p)
			}
			if err := s.flush(); err != nil {
				return err
			}
			switch {
			case s.hits > 0:
				return problemError{fmt.Errorf("found %d stored values or encodings in %d files", s.hits, s.files)}
			case s.failed > 0:
				return fmt.Errorf("%d paths could not be read; nothing found in the rest", s.failed)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "no stored value or encoding found")
			return nil
		},
	}
}

// scanner matches files itself (m, unlocked with the password) or has
// the running mount match them (client): files are then opened here and
// sent in batches of control.MaxFiles.
type scanner struct {
	m                   *rdx.Matcher
	client              *control.Client
	batch               []*os.File
	warned              bool
	out                 io.Writer
	hits, files, failed int
}

func (s *scanner) skipped(names []string) {
	if len(names) > 0 && !s.warned {
		s.warned = true
		fmt.Fprintf(os.Stderr, "faciofs: warning: %s shorter than %d bytes, not looked for\n", strings.Join(names, ", "), resolve.MinValueLen)
	}
}

func (s *scanner) note(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "faciofs: note: "+format+"\n", a...)
}

func (s *scanner) walk(root string) {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			s.note("%v", err)
			s.failed++
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if p == root {
				s.note("%s is a symlink, not followed", p)
			}
			return nil
		case !d.Type().IsRegular():
			return nil // directories are walked; devices, fifos, sockets skipped
		}
		s.file(p)
		return nil
	})
	if err != nil {
		s.note("%v", err)
		s.failed++
	}
}

func (s *scanner) file(p string) {
	// O_NONBLOCK: a file swapped for a fifo after the walk saw it must
	// not hang the scan (regular files ignore the flag).
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		s.note("%v", err)
		s.failed++
		return
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return
	}
	if fi.Size() > control.ScanMaxFile { // the mount's limit too
		s.note("%s skipped: larger than 256 MiB", p)
		f.Close()
		return
	}
	if s.client != nil {
		s.batch = append(s.batch, f)
		if len(s.batch) == control.MaxFiles {
			if err := s.flush(); err != nil {
				s.note("%v", err)
			}
		}
		return
	}
	defer f.Close()
	var hits []control.ScanHit
	err = s.m.Scan(f, func(h rdx.Hit) bool {
		hits = append(hits, control.ScanHit{Line: h.Line, Name: h.Name, Form: h.Form})
		return true
	})
	s.report(p, hits, err)
}

// flush has the mount scan the files batched so far.
func (s *scanner) flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	batch := s.batch
	s.batch = nil
	defer func() {
		for _, f := range batch {
			f.Close()
		}
	}()
	var res control.ScanResult
	if err := s.client.CallFiles(&control.Request{Op: control.OpScan}, batch, &res); err != nil {
		s.failed += len(batch)
		return controlErr(err)
	}
	s.skipped(res.Skipped)
	byFile := make([][]control.ScanHit, len(batch))
	for _, h := range res.Hits {
		if h.File >= 0 && h.File < len(batch) {
			byFile[h.File] = append(byFile[h.File], h)
		}
	}
	for i, f := range batch {
		var err error
		if msg, ok := res.Errors[i]; ok {
			err = errors.New(msg)
		}
		s.report(f.Name(), byFile[i], err)
	}
	return nil
}

// report prints one file's hits: FILE:LINE: NAME (FORM), the same form
// twice on a line once.
func (s *scanner) report(p string, hits []control.ScanHit, err error) {
	var last string
	for _, h := range hits {
		s.hits++
		line := fmt.Sprintf("%s:%d: %s (%s)\n", p, h.Line, h.Name, h.Form)
		if line != last {
			fmt.Fprint(s.out, line)
			last = line
		}
	}
	if len(hits) > 0 {
		s.files++
	}
	if err != nil {
		s.note("%s: %v", p, err)
		s.failed++
	}
}

// scanMatcher unlocks the store and builds the matcher over every value;
// the values are wiped once it is built. While a mount holds the store's
// lock but its socket is out of reach, a private copy is unlocked
// read-only, as audit verify does.
func (g *globals) scanMatcher(cmd *cobra.Command) (*rdx.Matcher, error) {
	s, cleanup, err := g.openStoreOrCopy()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	pw, err := g.passwordSource().Password("Master password", false)
	if errors.Is(err, readpassword.ErrNoTerminal) {
		return nil, usagef("scan needs the master password to know what to look for: use --password-file")
	}
	if err != nil {
		return nil, err
	}
	kr, err := g.unlockAudited(cmd, s, pw)
	clear(pw)
	if err != nil {
		return nil, err
	}
	defer kr.Close()
	secrets, err := kr.RevealAll()
	if err != nil {
		return nil, err
	}
	known := make([]resolve.Known, len(secrets))
	for i, sec := range secrets {
		known[i] = resolve.Known{Name: sec.Name(), Value: sec.Bytes()}
	}
	m := rdx.NewMatcher(known)
	for _, sec := range secrets {
		sec.Wipe()
	}
	return m, nil
}

// openStoreOrCopy opens the store read-only, or, while a mount holds its
// lock, a copy in a private temporary directory; cleanup closes it and
// removes the copy. scan and audit verify unlock it.
func (g *globals) openStoreOrCopy() (*store.Store, func(), error) {
	path := g.storePath()
	s, err := store.Open(path, store.OpenOptions{ReadOnly: true})
	if err == nil {
		return s, func() { s.Close() }, nil
	}
	if !errors.Is(err, store.ErrLocked) {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp("", "faciofs-store-copy-")
	if err != nil {
		return nil, nil, err
	}
	cp := filepath.Join(tmp, "store.db")
	if err := copyFile(path, cp); err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	s, err = store.Open(cp, store.OpenOptions{ReadOnly: true})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	return s, func() { s.Close(); os.RemoveAll(tmp) }, nil
}
