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

	"github.com/faciofs/faciofs/internal/readpassword"
	rdx "github.com/faciofs/faciofs/redact" // not "redact": main_test.go has a func of that name
	"github.com/faciofs/faciofs/resolve"
	"github.com/faciofs/faciofs/store"
)

// scanMaxFile is the largest file scan reads; larger ones are skipped with
// a note.
const scanMaxFile = 256 << 20

func newScanCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "scan PATH...",
		Short: "Report files holding a stored value or an encoding of it (base64, hex, URL, JSON, shell), never the value; exit 1 if any",
		Long: `scan walks each PATH (symlinks are not followed; files over 256 MiB are
skipped with a note) and prints FILE:LINE: NAME (FORM) for each stored value
or encoded form found, with the same matcher as exec's output redactor. It
needs the master password; while a mount holds the store, a private copy of
the store file is unlocked instead. Exit 1 if anything was found, 0 if not.`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, paths []string) error {
			for _, p := range paths {
				if _, err := os.Lstat(p); err != nil {
					return usagef("scan: %v", err)
				}
			}
			m, err := g.scanMatcher(cmd)
			if err != nil {
				return err
			}
			if sk := m.Skipped(); len(sk) > 0 {
				fmt.Fprintf(os.Stderr, "faciofs: warning: %s shorter than %d bytes, not looked for\n", strings.Join(sk, ", "), resolve.MinValueLen)
			}
			s := scanner{m: m, out: cmd.OutOrStdout()}
			for _, p := range paths {
				s.walk(p)
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

type scanner struct {
	m                   *rdx.Matcher
	out                 io.Writer
	hits, files, failed int
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
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		s.note("%v", err)
		s.failed++
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	if fi.Size() > scanMaxFile {
		s.note("%s skipped: larger than 256 MiB", p)
		return
	}
	found := false
	var last string
	err = s.m.Scan(f, func(h rdx.Hit) bool {
		found = true
		s.hits++
		line := fmt.Sprintf("%s:%d: %s (%s)\n", p, h.Line, h.Name, h.Form)
		if line != last { // the same form twice on a line is one report
			fmt.Fprint(s.out, line)
			last = line
		}
		return true
	})
	if found {
		s.files++
	}
	if err != nil {
		s.note("%s: %v", p, err)
		s.failed++
	}
}

// scanMatcher unlocks the store and builds the matcher over every value;
// the values are wiped once it is built. While a mount holds the store's
// lock, a private copy is unlocked read-only, as audit verify does.
// TODO: ask the running mount over the control socket instead.
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
// removes the copy. (audit verify's auditKey does the same inline and
// could call this.)
func (g *globals) openStoreOrCopy() (*store.Store, func(), error) {
	path := g.storePath()
	s, err := store.Open(path, store.OpenOptions{ReadOnly: true})
	if err == nil {
		return s, func() { s.Close() }, nil
	}
	if !errors.Is(err, store.ErrLocked) {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp("", "faciofs-scan-")
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
