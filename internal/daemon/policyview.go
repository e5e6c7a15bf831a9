package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/faciofs/faciofs/fs"
	"github.com/faciofs/faciofs/internal/control"
	"github.com/faciofs/faciofs/policy"
)

var policyGeneration atomic.Uint64

// identityMaxAge is how long the filesystem trusts an identification of a
// thread without reading /proc again beyond the start time (see
// policy.Identifier.Recent for what that gives up).
const identityMaxAge = time.Second

// policyView puts caller identification and the policy's decision behind
// the filesystem's Policy interface. `faciofs policy explain` goes through
// the same Identify and Decide.
type policyView struct {
	p   *policy.Policy
	ids *policy.Identifier
	gen uint64
}

func newPolicyView(p *policy.Policy, ids *policy.Identifier) *policyView {
	return &policyView{p: p, ids: ids, gen: policyGeneration.Add(1)}
}

func (pv *policyView) Covers(rel string) bool { return pv.p.Covers(rel) }

func (pv *policyView) View(c fs.Caller, rel string) fs.View {
	if !pv.p.Covers(rel) {
		return fs.View{}
	}
	pc := policy.Caller(c)
	proc, err := pv.ids.Recent(pc, identityMaxAge)
	if err != nil || startedByExec(proc) {
		return fs.View{}
	}
	d := pv.p.Decide(proc, pc, rel)
	if d.View != policy.ViewResolved {
		return fs.View{}
	}
	// The key names the rules and the policy load, so a reload never
	// reuses a view node rendered under other rules.
	return fs.View{
		Key:            fmt.Sprintf("%d:%s", pv.gen, strings.Join(d.Consumers, ",")),
		Allows:         d.Allows,
		MissingIsError: pv.p.Missing() == policy.MissingError,
	}
}

// daemonPid is this process: asked once, not on every open.
var daemonPid = os.Getpid()

// startedByExec reports whether proc descends from this daemon: a child
// of `faciofs exec` (the daemon starts no other programs). Such a child
// was started for an agent and got its credentials in its environment;
// it never gets resolved views, whatever consumer rule its program
// matches, so an agent cannot use exec to run a consumer that copies a
// resolved file somewhere its output redactor does not reach. A child
// that detaches (double fork) keeps this ancestry: the daemon is a child
// subreaper (internal/subreaper), so the orphan is reparented to it, not
// to pid 1, for as long as the daemon runs.
func startedByExec(proc *policy.Process) bool {
	for _, a := range proc.Ancestors {
		if a.Pid == daemonPid {
			return true
		}
	}
	return false
}

// explain is `faciofs policy explain` against the policy in force: pid is
// identified afresh, and path is relative to the mount root or absolute
// under the mountpoint mnt.
func explain(p *policy.Policy, mnt string, pid int, path string) (string, error) {
	rel := path
	if filepath.IsAbs(path) {
		r, err := filepath.Rel(mnt, path)
		if err != nil || r == ".." || strings.HasPrefix(r, "../") {
			return "", &control.Error{Kind: control.KindUsage, Msg: fmt.Sprintf("%s is not under the mountpoint %s", path, mnt)}
		}
		rel = r
	}
	rel = filepath.ToSlash(filepath.Clean(rel))
	if p == nil {
		return "decision: raw: no policy loaded (nobody is a consumer)\n", nil
	}
	c, err := policy.CallerOf(pid)
	if err != nil {
		return "", &control.Error{Kind: control.KindUsage, Msg: err.Error()}
	}
	proc, err := policy.NewIdentifier().Identify(c)
	if err != nil {
		return fmt.Sprintf("decision: raw: %v\n", err), nil
	}
	_, text := p.Explain(proc, c, rel)
	if startedByExec(proc) {
		text += "but: the process descends from this mount (a faciofs exec child), so the mount serves it raw whatever the rules say\n"
	}
	return text, nil
}
