package policy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// View is what a caller sees of a templated file.
type View uint8

const (
	// ViewRaw is the placeholders byte for byte as written. It is the zero
	// value: anything that forgets to decide shows placeholders.
	ViewRaw View = iota
	// ViewResolved substitutes the credentials the Decision allows.
	ViewResolved
)

func (v View) String() string {
	if v == ViewResolved {
		return "resolved"
	}
	return "raw"
}

// Decision is the outcome of Policy.Decide for one caller and one path. The
// filesystem takes it at open and binds it to the file handle.
type Decision struct {
	View View
	// Consumers are the names of the consumer rules that matched, in file
	// order; empty for ViewRaw.
	Consumers []string
	// Agent describes the agent rule that matched, if one did, e.g.
	// "agents[0] (uid 1001) matched ancestor pid 123 /usr/bin/bash".
	Agent string
	// Reason says in one line why the caller got this view.
	Reason string

	allCreds bool
	creds    []string
}

// Allows reports whether the caller may receive the value of credential:
// it is in the union of the matched rules' credentials ("*" covers all).
// Always false for ViewRaw.
func (d Decision) Allows(credential string) bool {
	if d.View != ViewResolved {
		return false
	}
	return d.allCreds || slices.Contains(d.creds, credential)
}

// Credentials returns the credentials the decision covers, ["*"] for all;
// nil for ViewRaw. For audit records.
func (d Decision) Credentials() []string {
	if d.View != ViewResolved {
		return nil
	}
	if d.allCreds {
		return []string{"*"}
	}
	return slices.Clone(d.creds)
}

// Decide returns the view proc gets of relPath (relative to the mount root).
// c is the request the process was identified from; its uid and gid are the
// caller's. The order is:
//
//  1. no policy, no process or pid 0: raw;
//  2. an agent rule matches the process or any ancestor: raw;
//  3. every consumer rule whose match holds and whose paths match relPath:
//     resolved, with the union of their credentials;
//  4. otherwise raw.
func (p *Policy) Decide(proc *Process, c Caller, relPath string) Decision {
	return p.decide(proc, c, relPath, nil)
}

// Explain runs the same evaluation as Decide and also returns a multi-line
// account of every agent and consumer rule: which fields matched and why the
// others did not. `faciofs policy explain --pid PID PATH` prints it.
func (p *Policy) Explain(proc *Process, c Caller, relPath string) (Decision, string) {
	var b strings.Builder
	d := p.decide(proc, c, relPath, &b)
	fmt.Fprintf(&b, "decision: %s: %s\n", d.View, d.Reason)
	if d.View == ViewResolved {
		fmt.Fprintf(&b, "credentials: %s\n", strings.Join(d.Credentials(), ", "))
	}
	return d, b.String()
}

func raw(reason string) Decision { return Decision{View: ViewRaw, Reason: reason} }

// decide is the one code path behind Decide and Explain. w is nil for
// Decide; with w set every rule is evaluated in full so the account is
// complete, but the decision is the same.
func (p *Policy) decide(proc *Process, c Caller, relPath string, w *strings.Builder) Decision {
	if p == nil {
		return raw("no policy loaded")
	}
	if c.Pid == 0 {
		return raw(ErrOutsideNamespace.Error())
	}
	if proc == nil {
		return raw("caller not identified")
	}
	if w != nil {
		fmt.Fprintf(w, "policy: %s (loaded %s)\n", p.Source, p.LoadedAt.Format(time.RFC3339))
		fmt.Fprintf(w, "caller: pid %d (tgid %d) uid %d gid %d exe %s (dev %d ino %d) cgroup %q\n",
			c.Pid, proc.Tgid, c.Uid, c.Gid, proc.Exe, proc.ExeDev, proc.ExeIno, proc.Cgroup)
		for _, a := range proc.Ancestors {
			exe := a.Exe
			if exe == "" {
				exe = "(not readable)"
			}
			fmt.Fprintf(w, "  ancestor: pid %d uid %d gid %d exe %s cgroup %q\n", a.Pid, a.Uid, a.Gid, exe, a.Cgroup)
		}
		fmt.Fprintf(w, "path: %s\n", relPath)
	}

	agent := ""
	if w != nil && len(p.agents) > 0 {
		w.WriteString("agents:\n")
	}
	for i := range p.agents {
		if m := p.matchAgent(&p.agents[i], proc, c, w); m != "" && agent == "" {
			agent = m
			if w == nil {
				break
			}
		}
	}
	if agent != "" && w == nil {
		return Decision{View: ViewRaw, Agent: agent, Reason: "agent: " + agent}
	}

	segs, pathOK := splitPath(relPath)
	var d Decision
	processMatched := 0
	if w != nil && len(p.consumers) > 0 {
		w.WriteString("consumers:\n")
	}
	for i := range p.consumers {
		r := &p.consumers[i]
		if w != nil {
			fmt.Fprintf(w, "  %s:\n", r.name)
		}
		if !p.matchConsumer(r, proc, c, w) {
			continue
		}
		processMatched++
		pathMatch := false
		if pathOK {
			for _, g := range r.paths {
				if g.match(segs) {
					pathMatch = true
					break
				}
			}
		}
		if w != nil {
			fmt.Fprintf(w, "    paths %s: %s\n", joinGlobs(r.paths), yesNo(pathMatch))
		}
		if !pathMatch {
			continue
		}
		d.Consumers = append(d.Consumers, r.name)
		if r.allCreds {
			d.allCreds = true
		}
		for _, name := range r.creds {
			if !slices.Contains(d.creds, name) {
				d.creds = append(d.creds, name)
			}
		}
	}
	switch {
	case agent != "":
		return Decision{View: ViewRaw, Agent: agent, Reason: "agent: " + agent}
	case len(d.Consumers) > 0:
		d.View = ViewResolved
		d.Reason = "consumer: " + strings.Join(d.Consumers, ", ")
		return d
	case processMatched > 0:
		return raw(fmt.Sprintf("%d consumer rule(s) match the process but none covers path %q", processMatched, relPath))
	case len(p.consumers) == 0:
		return raw("the policy has no consumer rules")
	default:
		return raw("no consumer rule matches the process")
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// matchAgent returns a description of how rule a matched proc or one of its
// ancestors, or "". For the process itself uid and gid are the caller's; for
// ancestors, their real ids.
func (p *Policy) matchAgent(a *agentRule, proc *Process, c Caller, w *strings.Builder) string {
	if p.agentHolds(a, c.Uid, c.Gid, proc.Exe, proc.ExeDev, proc.ExeIno, proc.Cgroup) {
		m := fmt.Sprintf("agents[%d] (%s) matched the caller, pid %d %s", a.index, a.desc, proc.Tgid, proc.Exe)
		if w != nil {
			fmt.Fprintf(w, "  agents[%d] (%s): matches the caller\n", a.index, a.desc)
		}
		return m
	}
	for _, an := range proc.Ancestors {
		if p.agentHolds(a, an.Uid, an.Gid, an.Exe, an.ExeDev, an.ExeIno, an.Cgroup) {
			m := fmt.Sprintf("agents[%d] (%s) matched ancestor pid %d %s", a.index, a.desc, an.Pid, an.Exe)
			if w != nil {
				fmt.Fprintf(w, "  agents[%d] (%s): matches ancestor pid %d %s\n", a.index, a.desc, an.Pid, an.Exe)
			}
			return m
		}
	}
	if w != nil {
		fmt.Fprintf(w, "  agents[%d] (%s): matches neither the caller nor any ancestor\n", a.index, a.desc)
	}
	return ""
}

// agentHolds applies one agent rule to one process. It leans towards
// matching, because a false match only costs a placeholder: an executable
// matches by dev+ino or by path (so an agent runtime upgraded on disk while
// it runs is still an agent), and an unknown cgroup matches.
func (p *Policy) agentHolds(a *agentRule, uid, gid uint32, exe string, dev, ino uint64, cgroup string) bool {
	if len(a.uids) > 0 && !slices.Contains(a.uids, uid) {
		return false
	}
	if len(a.gids) > 0 && !slices.Contains(a.gids, gid) {
		return false
	}
	if len(a.exes) > 0 {
		running := strings.TrimSuffix(exe, " (deleted)")
		ok := false
		for _, e := range a.exes {
			st := p.exes.stat(e)
			if (st.ok && ino != 0 && st.dev == dev && st.ino == ino) || running == e || (st.resolved != "" && running == st.resolved) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(a.cgroups) > 0 && cgroup != "" {
		segs := splitCgroup(cgroup)
		ok := false
		for _, g := range a.cgroups {
			if g.match(segs) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// matchConsumer applies a consumer rule's match block. It leans towards not
// matching: executables compare by dev+ino of the configured path as it is
// on disk now, and an unknown cgroup never matches.
func (p *Policy) matchConsumer(r *consumerRule, proc *Process, c Caller, w *strings.Builder) bool {
	ok := true
	if len(r.exes) > 0 {
		m, detail := p.exeMatch(r.exes, proc.ExeDev, proc.ExeIno, w != nil)
		ok = m
		if w != nil {
			fmt.Fprintf(w, "    exe %s: %s (process runs %s, dev %d ino %d%s)\n", strings.Join(r.exes, "|"), yesNo(m), proc.Exe, proc.ExeDev, proc.ExeIno, detail)
		}
	}
	if len(r.uids) > 0 && (ok || w != nil) {
		m := slices.Contains(r.uids, c.Uid)
		ok = ok && m
		if w != nil {
			fmt.Fprintf(w, "    uid %s: %s (caller uid %d)\n", joinIDs(r.uids), yesNo(m), c.Uid)
		}
	}
	if len(r.gids) > 0 && (ok || w != nil) {
		m := slices.Contains(r.gids, c.Gid)
		ok = ok && m
		if w != nil {
			fmt.Fprintf(w, "    gid %s: %s (caller gid %d)\n", joinIDs(r.gids), yesNo(m), c.Gid)
		}
	}
	if len(r.cgroups) > 0 && (ok || w != nil) {
		m := false
		if proc.Cgroup != "" {
			segs := splitCgroup(proc.Cgroup)
			for _, g := range r.cgroups {
				if g.match(segs) {
					m = true
					break
				}
			}
		}
		ok = ok && m
		if w != nil {
			fmt.Fprintf(w, "    cgroup %s: %s (process cgroup %q)\n", joinGlobs(r.cgroups), yesNo(m), proc.Cgroup)
		}
	}
	if len(r.ancestorExes) > 0 && (ok || w != nil) {
		m := false
		for _, a := range proc.Ancestors {
			if am, _ := p.exeMatch(r.ancestorExes, a.ExeDev, a.ExeIno, false); am {
				m = true
				break
			}
		}
		ok = ok && m
		if w != nil {
			fmt.Fprintf(w, "    ancestor_exe %s: %s\n", strings.Join(r.ancestorExes, "|"), yesNo(m))
		}
	}
	return ok
}

// exeMatch reports whether dev, ino is the file at one of the paths now.
// With explain set it also says what each path is.
func (p *Policy) exeMatch(paths []string, dev, ino uint64, explain bool) (bool, string) {
	var detail strings.Builder
	for _, e := range paths {
		st := p.exes.stat(e)
		if st.ok && ino != 0 && st.dev == dev && st.ino == ino {
			return true, ""
		}
		if !explain {
			continue
		}
		if st.ok {
			fmt.Fprintf(&detail, "; %s is dev %d ino %d", e, st.dev, st.ino)
		} else {
			fmt.Fprintf(&detail, "; %s: %v", e, st.err)
		}
	}
	return false, detail.String()
}

// exeCacheTTL bounds how long a stat of a configured executable is reused.
// The tradeoff: for up to this long after a binary is replaced on disk, a
// process still running the old image keeps matching consumer rules (and a
// newly installed binary does not match yet). Replacing a binary under
// /usr/bin needs root, so a second is a fair price for not calling stat(2)
// on every open.
const exeCacheTTL = time.Second

type exeStat struct {
	ok       bool
	dev, ino uint64
	resolved string // symlinks resolved, for path comparison in agent rules
	err      error
	at       time.Time
}

type exeCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]exeStat
}

func newExeCache(ttl time.Duration) *exeCache {
	return &exeCache{ttl: ttl, m: make(map[string]exeStat)}
}

// stat returns the configured path's current dev and ino, from the cache if
// fresh. A nil cache (a Policy not made by Parse) stats every time.
func (c *exeCache) stat(path string) exeStat {
	now := time.Now()
	if c == nil {
		return statExe(path, now)
	}
	c.mu.Lock()
	st, found := c.m[path]
	c.mu.Unlock()
	if found && now.Sub(st.at) < c.ttl {
		return st
	}
	st = statExe(path, now)
	c.mu.Lock()
	c.m[path] = st
	c.mu.Unlock()
	return st
}

func statExe(path string, now time.Time) exeStat {
	st := exeStat{at: now}
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		st.err = err
	} else {
		st.ok, st.dev, st.ino = true, s.Dev, s.Ino
		if r, err := filepath.EvalSymlinks(path); err == nil && r != path {
			st.resolved = r
		}
	}
	return st
}

// Covers reports whether any consumer rule's paths match relPath: whether
// any process at all could get a resolved view of it. The filesystem asks
// this first, so that a file no rule covers costs no caller identification.
func (p *Policy) Covers(relPath string) bool {
	if p == nil {
		return false
	}
	segs, ok := splitPath(relPath)
	if !ok {
		return false
	}
	for i := range p.consumers {
		for _, g := range p.consumers[i].paths {
			if g.match(segs) {
				return true
			}
		}
	}
	return false
}
