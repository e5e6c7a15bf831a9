package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/audit"
	"github.com/faciofs/faciofs/internal/control"
	"github.com/faciofs/faciofs/store"
)

// backend is where a command's operation runs: the mount that holds the
// store (over its control socket), or, with no mount, this process with
// the store opened directly. Both give the same results and exit codes.
type backend struct {
	g      *globals
	cmd    *cobra.Command
	client *control.Client // nil: direct
	s      *store.Store    // direct: opened on first need
	write  bool
}

// backend finds the mount for --store. With none, and when the operation
// needs the store (write: opened for writing), it opens it now, so that a
// missing or busy store is reported before any prompt.
func (g *globals) backend(cmd *cobra.Command, needStore, write bool) (*backend, error) {
	b := &backend{g: g, cmd: cmd}
	c, err := control.Dial(g.storePath())
	switch {
	case err == nil:
		b.client = c
		return b, nil
	case !errors.Is(err, control.ErrNoMount):
		return nil, err
	}
	if needStore {
		if _, err := b.open(write); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *backend) open(write bool) (*store.Store, error) {
	if b.s != nil && (b.write || !write) {
		return b.s, nil
	}
	if b.s != nil {
		b.s.Close()
		b.s = nil
	}
	s, err := store.Open(b.g.storePath(), store.OpenOptions{ReadOnly: !write})
	if err != nil {
		return nil, err
	}
	b.s, b.write = s, write
	return s, nil
}

func (b *backend) close() {
	if b.s != nil {
		b.s.Close()
		b.s = nil
	}
}

// call runs req and decodes its result into out. Direct results go
// through JSON too, so both ways print from the same data.
func (b *backend) call(req *control.Request, out any) error {
	if b.client != nil {
		return b.client.Call(req, out)
	}
	self := audit.Self()
	self.Cmdline = b.cmd.CommandPath() // never the arguments
	who := control.Who{Pid: self.Pid, Uid: self.Uid, Gid: self.Gid, Exe: self.Exe}
	e := &control.Engine{
		StorePath: b.g.storePath(),
		Store:     b.open,
		Audit: func(r audit.Record, key []byte) error {
			return b.g.auditRecord(b.cmd, key, r)
		},
	}
	res, err := e.Handle(who, self, req)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	j, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return json.Unmarshal(j, out)
}

// controlErr turns an error from the control plane into the CLI's kinds
// (exit 2 for usage, 1 for a problem found).
func controlErr(err error) error {
	var ce *control.Error
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.Kind {
	case control.KindUsage:
		return usageError{err}
	case control.KindProblem:
		return problemError{err}
	}
	return err
}

// printJSON writes v indented.
func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// note is a line for the human on stderr (the answer is on stdout).
func note(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "faciofs: "+format+"\n", args...)
}
