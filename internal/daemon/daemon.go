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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
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

	// A marker beside the store says a mount of this backing directory is
	// running. Finding one means the last daemon died: raw writers may have
	// left values that no close scrubbed, so look for them before serving.
	marker := dirtyMarker(o.Store.Path(), backing)
	if _, err := os.Stat(marker); err == nil {
		o.Log.Printf("the last mount of %s did not stop cleanly; scrubbing it for values left behind", backing)
		changed, err := fs.ScrubTree(backing, values)
		if err != nil {
			return fmt.Errorf("scrubbing %s after an unclean stop: %w", backing, err)
		}
		for _, rel := range changed {
			o.Log.Printf("reverse substitution after an unclean stop: path=%s", rel)
		}
	}
	if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(marker, []byte(backing+"\n"), 0o600); err != nil {
		return err
	}
	clean := false
	defer func() {
		if clean {
			os.Remove(marker)
		}
	}()

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
			clean = true
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
				err := mountpoint.Unmount(mnt, false)
				switch {
				case err == nil, errors.Is(err, mountpoint.ErrNotMounted):
				case errors.Is(err, mountpoint.ErrBusy):
					// Detach now so nobody new enters; the processes
					// inside keep working until they leave, then the
					// kernel ends the mount and Wait returns.
					o.Log.Printf("%s is busy; detached it: serving the processes still using it until they leave (signal again to stop now)", mnt)
					if err := mountpoint.Unmount(mnt, true); err != nil && !errors.Is(err, mountpoint.ErrNotMounted) {
						o.Log.Printf("lazy unmount: %v", err)
					}
				default:
					o.Log.Printf("unmount %s: %v; signal again to detach it and stop", mnt, err)
				}
			default:
				o.Log.Printf("second signal: stopping now; processes still using %s get errors", mnt)
				if err := mountpoint.Unmount(mnt, true); err != nil && !errors.Is(err, mountpoint.ErrNotMounted) {
					o.Log.Printf("lazy unmount: %v", err)
				}
				return nil
			}
		}
	}
}

// dirtyMarker is where a running mount of backing is recorded: beside the
// store, not in the backing directory, where the agent could remove it.
func dirtyMarker(storePath, backing string) string {
	sum := sha256.Sum256([]byte(backing))
	return filepath.Join(filepath.Dir(storePath), "mounts", hex.EncodeToString(sum[:12])+".running")
}

// isUnder reports whether p lies strictly inside dir.
func isUnder(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
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
