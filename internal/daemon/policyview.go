package daemon

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/faciofs/faciofs/fs"
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
	if err != nil {
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
