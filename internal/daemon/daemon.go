// Package daemon runs one faciofs mount in the foreground: it unlocks the
// store, loads the policy, mounts the filesystem, and unmounts cleanly on
// SIGINT or SIGTERM (a second signal detaches a busy mount lazily). SIGHUP
// reloads the policy; a reload that fails keeps the policy in force.
//
// Threat model: the daemon holds every value in memory for its lifetime.
// The store's Unlock marks the process non-dumpable, which also makes its
// /proc entries (environ, mem, maps) unreadable to same-uid processes; the
// daemon's log carries paths and credential names, never values.
package daemon

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/faciofs/faciofs/fs"
	"github.com/faciofs/faciofs/internal/mountpoint"
	"github.com/faciofs/faciofs/internal/valueset"
	"github.com/faciofs/faciofs/policy"
	"github.com/faciofs/faciofs/store"
)

// Options describes a mount.
type Options struct {
	Store      *store.Store
	Password   []byte
	PolicyFile string
	Backing    string
	Mountpoint string
	// Ready is told one line when the mount is up (stdout for the CLI).
	Ready io.Writer
	// Log receives the daemon's own log (stderr for the CLI).
	Log     *log.Logger
	Verbose bool
	Debug   bool
}

// Run mounts and serves until the filesystem is unmounted.
func Run(o Options) error {
	backing, err := filepath.Abs(o.Backing)
	if err != nil {
		return err
	}
	mnt, err := filepath.Abs(o.Mountpoint)
	if err != nil {
		return err
	}
	if backing == mnt || isUnder(mnt, backing) || isUnder(backing, mnt) {
		return fmt.Errorf("backing directory %s and mountpoint %s must not contain each other", backing, mnt)
	}

	// The policy is read before the store is unlocked: a policy error
	// must not cost an unlock, and must leave nothing mounted.
	var pol *policy.Policy
	if o.PolicyFile != "" {
		if pol, err = policy.Load(o.PolicyFile); err != nil {
			return err
		}
	}
	if err := mountpoint.Prepare(mnt); err != nil {
		return err
	}

	kr, err := o.Store.Unlock(o.Password)
	clear(o.Password)
	if err != nil {
		return err
	}
	defer kr.Close()
	secrets, err := kr.RevealAll()
	if err != nil {
		return err
	}
	values := valueset.New(secrets)
	defer values.Close()

	ids := policy.NewIdentifier()
	cfg := fs.Config{
		Backing:  backing,
		Secrets:  values,
		Observer: &observer{kr: kr, log: o.Log, verbose: o.Verbose},
	}
	if pol != nil {
		cfg.Policy = newPolicyView(pol, ids)
	}
	root, err := fs.New(cfg)
	if err != nil {
		return err
	}
	server, err := root.Mount(mnt, o.Debug)
	if err != nil {
		return fmt.Errorf("mount %s: %w", mnt, err)
	}

	policyDesc := "none (nobody is a consumer)"
	if pol != nil {
		policyDesc = o.PolicyFile
	}
	if skipped := values.Skipped(); len(skipped) > 0 {
		o.Log.Printf("warning: values of %v are shorter than 4 bytes; writes containing them are not reverse-substituted", skipped)
	}
	fmt.Fprintf(o.Ready, "faciofs: serving %s at %s (policy: %s, %d credentials); Ctrl-C unmounts\n", backing, mnt, policyDesc, len(secrets))

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()

	stopping := false
	for {
		select {
		case <-done:
			return nil
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				if o.PolicyFile == "" {
					o.Log.Printf("SIGHUP: no policy file to reload")
					continue
				}
				np, err := policy.Load(o.PolicyFile)
				if err != nil {
					o.Log.Printf("policy reload failed, keeping the policy in force: %v", err)
					continue
				}
				root.SetPolicy(newPolicyView(np, ids))
				o.Log.Printf("policy reloaded from %s", o.PolicyFile)
			case !stopping:
				stopping = true
				if err := server.Unmount(); err != nil {
					o.Log.Printf("unmount: %v; detaching lazily", err)
					if err := mountpoint.Unmount(mnt, true); err != nil {
						o.Log.Printf("lazy unmount: %v", err)
					}
				}
			default:
				o.Log.Printf("second signal: detaching %s lazily", mnt)
				if err := mountpoint.Unmount(mnt, true); err != nil && !errors.Is(err, syscall.EINVAL) {
					o.Log.Printf("lazy unmount: %v", err)
				}
			}
		}
	}
}

func isUnder(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && !filepath.IsAbs(rel) && rel != ".." && !hasDotDotPrefix(rel)
}

func hasDotDotPrefix(rel string) bool {
	return len(rel) >= 3 && rel[:3] == "../"
}

// observer records resolutions in the store's counters and, when verbose,
// in the daemon's log: credential names and paths only.
type observer struct {
	kr      *store.Keyring
	log     *log.Logger
	verbose bool
}

func (o *observer) Resolved(c fs.Caller, rel string, names []string) {
	o.kr.NoteResolved(names)
	if o.verbose {
		o.log.Printf("resolve pid=%d uid=%d path=%s credentials=%v", c.Pid, c.Uid, rel, names)
	}
}

func (o *observer) RawServed(c fs.Caller, rel string) {}

func (o *observer) Denied(c fs.Caller, rel string, names []string) {
	if o.verbose {
		o.log.Printf("denied pid=%d uid=%d path=%s credentials=%v", c.Pid, c.Uid, rel, names)
	}
}

func (o *observer) Missing(c fs.Caller, rel string, names []string) {
	if o.verbose {
		o.log.Printf("missing pid=%d uid=%d path=%s credentials=%v", c.Pid, c.Uid, rel, names)
	}
}

func (o *observer) Reversed(c fs.Caller, rel string, names []string) {
	o.log.Printf("reverse substitution pid=%d uid=%d path=%s credentials=%v", c.Pid, c.Uid, rel, names)
}
