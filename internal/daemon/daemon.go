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
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/faciofs/faciofs/audit"
	"github.com/faciofs/faciofs/fs"
	"github.com/faciofs/faciofs/internal/control"
	"github.com/faciofs/faciofs/internal/mountpoint"
	"github.com/faciofs/faciofs/internal/subreaper"
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
	// SocketGroup, when not 0, lets this group use the control socket
	// (mode 0660); otherwise only the daemon's user can (0600).
	SocketGroup int
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
	// argon2id's working memory (store.DefaultKDF: 256 MiB) is garbage
	// now; give it back rather than carry it for the mount's lifetime.
	debug.FreeOSMemory()

	// From here on every credential operation is audited; the log is
	// opened with the key, so the first record also seals whatever
	// keyless commands wrote since the last keyed writer.
	key := kr.AuditKey()
	alog, err := audit.Open(audit.DefaultDir(o.Store.Path()), audit.Options{
		Key:     key,
		OnError: func(err error) { o.Log.Printf("audit: %v", err) },
		// A consumer's open waits for its resolve record to be written,
		// not for the disk: see audit.Options.SyncInterval.
		SyncInterval: 100 * time.Millisecond,
	})
	clear(key)
	if err != nil {
		return err
	}
	defer alog.Close()
	self := audit.Self()
	self.Cmdline = "faciofs mount"
	if o.PolicyFile != "" {
		if err := alog.Append(audit.Record{Event: audit.EventPolicyLoad, Outcome: audit.OutcomeOK, Actor: self,
			Detail: fmt.Sprintf("%s: %d consumer rules (%s)", o.PolicyFile, len(pol.ConsumerNames()), strings.Join(pol.ConsumerNames(), ","))}); err != nil {
			return err
		}
	}
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
	var scrubbed []string
	if _, err := os.Stat(marker); err == nil {
		o.Log.Printf("the last mount of %s did not stop cleanly; scrubbing it for values left behind", backing)
		changed, err := fs.ScrubTree(backing, values)
		if err != nil {
			return fmt.Errorf("scrubbing %s after an unclean stop: %w", backing, err)
		}
		for _, rel := range changed {
			o.Log.Printf("reverse substitution after an unclean stop: path=%s", rel)
		}
		scrubbed = changed
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

	for _, rel := range scrubbed {
		if err := alog.Append(audit.Record{Event: audit.EventReverseSubstitution, Outcome: audit.OutcomeOK, Actor: self, Path: rel,
			Detail: "scrubbed after an unclean stop"}); err != nil {
			return err
		}
	}
	ids := policy.NewIdentifier()
	obs := &observer{kr: kr, log: o.Log, verbose: o.Verbose, audit: alog, ids: ids, values: values}
	obs.pol.Store(pol)
	cfg := fs.Config{
		Backing:  backing,
		Secrets:  values,
		Observer: obs,
	}
	if pol != nil {
		cfg.Policy = newPolicyView(pol, ids)
	}
	root, err := fs.New(cfg)
	if err != nil {
		return err
	}
	mountDetail := fmt.Sprintf("serving %s at %s", backing, mnt)
	server, err := root.Mount(mnt, o.Debug)
	if err != nil {
		_ = alog.Append(audit.Record{Event: audit.EventMount, Outcome: audit.OutcomeFailed, Actor: self, Detail: mountDetail + ": " + err.Error()})
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	if err := alog.Append(audit.Record{Event: audit.EventMount, Outcome: audit.OutcomeOK, Actor: self, Detail: mountDetail}); err != nil {
		// Nothing unaudited may be served: take the mount down again.
		_ = mountpoint.Unmount(mnt, true)
		return err
	}
	defer func() {
		_ = alog.Append(audit.Record{Event: audit.EventUnmount, Outcome: audit.OutcomeOK, Actor: self, Detail: fmt.Sprintf("stopped serving %s at %s", backing, mnt)})
	}()

	// The control socket: from here on other commands go through this
	// daemon, which holds the store (see internal/control).
	started := time.Now()
	var policyLoaded atomic.Int64
	policyLoaded.Store(started.UnixNano())
	// reload re-reads the policy file (SIGHUP, `faciofs policy reload`);
	// a file that fails to parse leaves the policy in force.
	var reloadMu sync.Mutex
	reload := func(by audit.Actor) (string, error) {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		if o.PolicyFile == "" {
			return "", &control.Error{Kind: control.KindProblem, Msg: "this mount has no policy file to reload"}
		}
		np, err := policy.Load(o.PolicyFile)
		if err != nil {
			o.Log.Printf("policy reload failed, keeping the policy in force: %v", err)
			_ = alog.Post(audit.Record{Event: audit.EventPolicyReloadFailed, Outcome: audit.OutcomeFailed, Actor: by,
				Detail: fmt.Sprintf("keeping the policy in force: %v", err)})
			return "", &control.Error{Kind: control.KindProblem, Msg: fmt.Sprintf("policy reload failed, keeping the policy in force: %v", err)}
		}
		root.SetPolicy(newPolicyView(np, ids))
		obs.pol.Store(np)
		policyLoaded.Store(time.Now().UnixNano())
		o.Log.Printf("policy reloaded from %s", o.PolicyFile)
		detail := fmt.Sprintf("%s: %d consumer rules (%s)", o.PolicyFile, len(np.ConsumerNames()), strings.Join(np.ConsumerNames(), ","))
		_ = alog.Post(audit.Record{Event: audit.EventPolicyReload, Outcome: audit.OutcomeOK, Actor: by, Detail: detail})
		return "reloaded " + detail, nil
	}
	ln, sockPath, err := control.Listen(o.Store.Path(), o.SocketGroup)
	if err != nil {
		_ = mountpoint.Unmount(mnt, true)
		return err
	}
	// Orphans of exec children are adopted, not handed to pid 1, so they
	// stay descendants of this daemon and are served placeholders.
	reaper, err := subreaper.Start()
	if err != nil {
		_ = ln.Close()
		_ = mountpoint.Unmount(mnt, true)
		return err
	}
	defer reaper.Close()
	ctl := &control.Server{Log: o.Log, Engine: &control.Engine{
		StorePath: o.Store.Path(),
		Store:     func(bool) (*store.Store, error) { return o.Store, nil },
		Keyring:   kr,
		Audit:     func(r audit.Record, _ []byte) error { return alog.Append(r) },
		// Rotation and revocation: the next open renders with the new
		// set; the generation bump invalidates every cached size. If the
		// values cannot be read back, resolve none (fail closed).
		Changed: func() error {
			secs, err := kr.RevealAll()
			if err != nil {
				values.Replace(nil)
				o.Log.Printf("reloading values after a change failed; resolving none: %v", err)
				return err
			}
			values.Replace(secs)
			return nil
		},
		Policy: &control.PolicyConfig{
			Reload:  reload,
			Explain: func(pid int, path string) (string, error) { return explain(obs.pol.Load(), mnt, pid, path) },
		},
		Exec: &control.ExecConfig{
			Policy:   obs.pol.Load,
			Redactor: values.Redactor,
			Reveal: func(name string) ([]byte, func(), error) {
				sec, err := kr.Reveal(name)
				if err != nil {
					return nil, func() {}, err
				}
				return sec.Bytes(), sec.Wipe, nil
			},
			Reaper: reaper,
		},
		Redact: func(s string) string {
			red, _, err := values.Reverse([]byte(s))
			if err != nil {
				return ""
			}
			return string(red)
		},
		Status: func() control.Status {
			st := root.Stats()
			m := control.Mount{Pid: os.Getpid(), Backing: backing, Mountpoint: mnt, Socket: sockPath, Started: started.UTC(),
				Credentials: len(values.Names()),
				Counters: control.Counters{Opens: st.Opens.Load(), Resolves: st.Resolves.Load(), RawServes: st.RawServes.Load(),
					Denials: st.Denials.Load(), Reversals: st.Reversals.Load()}}
			if o.PolicyFile != "" {
				m.Policy = o.PolicyFile
				m.PolicyLoaded = time.Unix(0, policyLoaded.Load()).UTC()
			}
			return control.Status{Store: o.Store.Path(), StoreState: "held by mount", Mounts: []control.Mount{m}}
		},
	}}
	go ctl.Serve(ln)
	defer ctl.Close()

	policyDesc := "none (nobody is a consumer)"
	if pol != nil {
		policyDesc = o.PolicyFile
	}
	if pol != nil && pol.ExecRunAs() != nil && os.Geteuid() != 0 {
		o.Log.Printf("warning: the policy's exec.uid needs a mount running as root; faciofs exec will be refused")
	}
	if skipped := values.Skipped(); len(skipped) > 0 {
		o.Log.Printf("warning: values of %v are shorter than 4 bytes; writes containing them are not reverse-substituted", skipped)
	}
	// Signals are ours before the ready line: a SIGHUP sent the moment a
	// supervisor sees it must reload, not kill the daemon.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	fmt.Fprintf(o.Ready, "faciofs: serving %s at %s (policy: %s, %d credentials); Ctrl-C unmounts\n", backing, mnt, policyDesc, len(secrets))

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
				if _, err := reload(self); err != nil && o.PolicyFile == "" {
					o.Log.Printf("SIGHUP: no policy file to reload")
				}
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

// observer records every credential event in the audit log and the
// resolve counters, and, when verbose, in the daemon's log: credential
// names and paths only.
type observer struct {
	kr      *store.Keyring
	log     *log.Logger
	verbose bool
	audit   *audit.Log
	ids     *policy.Identifier
	pol     atomic.Pointer[policy.Policy] // nil: no policy, nobody is a consumer
	values  *valueset.Set

	procMu sync.Mutex
	procs  map[uint32]procEntry // pid -> what /proc said, for a second
}

type procEntry struct {
	a  audit.Actor
	at time.Time
}

// process is audit.Process for the hot path: a pid described less than
// identityMaxAge ago is not read from /proc again. A pid reused within that
// second (the whole pid space would have to wrap) would be recorded with
// its predecessor's exe and command line; the decision is not affected.
func (o *observer) process(pid uint32) audit.Actor {
	now := time.Now()
	o.procMu.Lock()
	e, ok := o.procs[pid]
	o.procMu.Unlock()
	if ok && now.Sub(e.at) < identityMaxAge {
		return e.a
	}
	a := audit.Process(int(pid))
	// A consumer started with a value on its command line must not put
	// it in the log: known values (and their encodings) become
	// placeholders before the line is cut to size.
	if a.Cmdline != "" {
		if red, _, err := o.values.Reverse([]byte(a.Cmdline)); err == nil {
			a.Cmdline = string(red)
		} else {
			a.Cmdline = ""
		}
	}
	o.procMu.Lock()
	if o.procs == nil || len(o.procs) >= 4096 {
		o.procs = make(map[uint32]procEntry)
	}
	o.procs[pid] = procEntry{a, now}
	o.procMu.Unlock()
	return a
}

// actor describes a FUSE caller from /proc, best effort: a process that is
// gone still gets a record with the ids the kernel gave. The policy is
// asked again for the rule that decided, so the record names it.
func (o *observer) actor(c fs.Caller, rel string) audit.Actor {
	a := o.process(c.Pid)
	a.Uid, a.Gid = c.Uid, c.Gid
	if p := o.pol.Load(); p != nil && c.Pid != 0 {
		pc := policy.Caller(c)
		if proc, err := o.ids.Recent(pc, identityMaxAge); err == nil {
			d := p.Decide(proc, pc, rel)
			switch {
			case len(d.Consumers) > 0:
				a.Rule = "consumer:" + strings.Join(d.Consumers, ",")
			case d.Agent != "":
				a.Rule = "agent:" + d.Agent
			}
		}
	}
	return a
}

func (o *observer) record(ev audit.Event, outcome string, c fs.Caller, rel string, names []string) audit.Record {
	return audit.Record{Event: ev, Outcome: outcome, Actor: o.actor(c, rel), Path: rel, Credentials: names}
}

// AuditResolved writes the resolve record and returns once write(2) took it.
// An error means the resolution is not audited and the open must fail
// (EIO): fs.Observer.Resolved is meant to return it.
func (o *observer) AuditResolved(c fs.Caller, rel string, names []string) error {
	o.kr.NoteResolved(names)
	if o.verbose {
		o.log.Printf("resolve pid=%d uid=%d path=%s credentials=%v", c.Pid, c.Uid, rel, names)
	}
	if err := o.audit.Append(o.record(audit.EventResolve, audit.OutcomeOK, c, rel, names)); err != nil {
		o.log.Printf("audit: resolve of %s by pid %d not recorded: %v", rel, c.Pid, err)
		return err
	}
	return nil
}

// Resolved blocks until the record is written; an error fails the open.
func (o *observer) Resolved(c fs.Caller, rel string, names []string) error {
	return o.AuditResolved(c, rel, names)
}

func (o *observer) post(r audit.Record) {
	_ = o.audit.Post(r) // failures reach the daemon's log through OnError
}

func (o *observer) RawServed(c fs.Caller, rel string) {
	o.post(o.record(audit.EventRawServed, audit.OutcomeOK, c, rel, nil))
}

// Malformed is for text that starts "${credentials." but does not parse.
func (o *observer) Malformed(c fs.Caller, rel string) {
	o.post(o.record(audit.EventMalformed, audit.OutcomeOK, c, rel, nil))
}

func (o *observer) Denied(c fs.Caller, rel string, names []string) {
	if o.verbose {
		o.log.Printf("denied pid=%d uid=%d path=%s credentials=%v", c.Pid, c.Uid, rel, names)
	}
	o.post(o.record(audit.EventDenied, audit.OutcomeDenied, c, rel, names))
}

func (o *observer) Missing(c fs.Caller, rel string, names []string) {
	if o.verbose {
		o.log.Printf("missing pid=%d uid=%d path=%s credentials=%v", c.Pid, c.Uid, rel, names)
	}
	o.post(o.record(audit.EventMissing, audit.OutcomeFailed, c, rel, names))
}

func (o *observer) Reversed(c fs.Caller, rel string, names []string) {
	o.log.Printf("reverse substitution pid=%d uid=%d path=%s credentials=%v", c.Pid, c.Uid, rel, names)
	o.post(o.record(audit.EventReverseSubstitution, audit.OutcomeOK, c, rel, names))
}
