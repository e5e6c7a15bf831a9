package control

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"
	"unicode"

	"github.com/faciofs/faciofs/audit"
	"github.com/faciofs/faciofs/store"
)

// maxLabel bounds a request's label.
const maxLabel = 200

// Engine carries out the operations, in the mount daemon (which holds the
// store and its keyring) or in a command when no mount runs (which opens
// the store per operation). Both produce the same results and records.
type Engine struct {
	StorePath string
	// Store returns the open store; write says whether the operation
	// changes it. The daemon returns the one it holds.
	Store func(write bool) (*store.Store, error)
	// Keyring is the mount's unlocked keyring; nil when there is none,
	// and then operations that need one unlock the store with the
	// password they were given.
	Keyring *store.Keyring
	// Audit writes one record; key is the store's audit key when the
	// operation unlocked the store (nil otherwise). The daemon's log is
	// keyed already and ignores it.
	Audit func(r audit.Record, key []byte) error
	// Changed is called after values changed (the daemon reloads them
	// into the mount); nil for direct use.
	Changed func() error
	// Status reports the running mount; nil when there is none.
	Status func() Status
	// Redact hides known values in agent-supplied text (labels); nil
	// means none are known here.
	Redact func(string) string
	// Policy serves policy.reload and policy.explain; nil when no mount
	// runs.
	Policy *PolicyConfig
	// Exec serves exec and scan; nil when no mount runs (then exec is
	// refused and scan is the CLI's own).
	Exec *ExecConfig
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) audit(actor audit.Actor, key []byte, r audit.Record) error {
	r.Actor = actor
	return e.Audit(r, key)
}

// Handle carries out req for the caller who (as actor in the audit). The
// result is one of the *Result types, Status or []Credential / []Item;
// it never holds a value. Handle wipes req's password and value.
func (e *Engine) Handle(who Who, actor audit.Actor, req *Request) (any, error) {
	defer req.wipe()
	switch req.Op {
	case OpStatus:
		return e.status(), nil
	case OpSecretSet:
		return e.set(who, actor, req)
	case OpSecretList:
		return e.list(actor)
	case OpRequest:
		return e.ask(who, actor, KindCredential, req.Name, req.Label)
	case OpSecretRm:
		return e.ask(who, actor, KindDelete, req.Name, "")
	case OpApprovals:
		return e.approvals(actor)
	case OpApprove:
		return e.decide(actor, req, true)
	case OpDeny:
		return e.decide(actor, req, false)
	case OpPasswd:
		return e.passwd(actor, req)
	case OpPolicyReload, OpPolicyExplain:
		return e.policy(actor, req)
	case "":
		return nil, errorf(KindUsage, "request has no op")
	default:
		return nil, errorf(KindUsage, "unknown op (not repeated here); known: status, secret.set, secret.list, secret.rm, request, approvals, approve, deny, policy.reload, policy.explain, exec, scan")
	}
}

// passwd re-wraps the data key under a new master password; the values,
// and so the mount's views and the audit key, are untouched.
func (e *Engine) passwd(actor audit.Actor, req *Request) (any, error) {
	if len(req.NewPassword) == 0 {
		return nil, errorf(KindUsage, "passwd needs the new master password")
	}
	kr, key, done, err := e.unlock(actor, req.Password, true, "passwd")
	if err != nil {
		return nil, err
	}
	defer done()
	defer clear(key)
	err = kr.Rewrap(req.NewPassword, store.DefaultKDF)
	// argon2id's working memory is garbage now; a mount gives it back
	// rather than carry it (see the daemon's unlock).
	debug.FreeOSMemory()
	if err != nil {
		return nil, err
	}
	if err := e.audit(actor, key, audit.Record{Event: audit.EventPasswd, Outcome: audit.OutcomeOK, Detail: "master password changed"}); err != nil {
		return nil, fmt.Errorf("master password changed, but %w", err)
	}
	return struct{}{}, nil
}

// PolicyConfig is what the policy operations need from the running mount.
type PolicyConfig struct {
	// Reload re-reads the policy file; the text describes what is in
	// force. An error keeps the policy that was in force.
	Reload func(by audit.Actor) (string, error)
	// Explain describes the decision for process pid on path.
	Explain func(pid int, path string) (string, error)
}

func (e *Engine) policy(actor audit.Actor, req *Request) (any, error) {
	if e.Policy == nil {
		return nil, errorf(KindProblem, "no running mount for this store: there is no policy in force to reload or explain (policy explain --policy FILE works without one)")
	}
	var text string
	var err error
	if req.Op == OpPolicyReload {
		text, err = e.Policy.Reload(actor)
	} else {
		if req.Pid <= 0 || req.Path == "" {
			return nil, errorf(KindUsage, "policy.explain needs a pid and a path")
		}
		text, err = e.Policy.Explain(req.Pid, req.Path)
	}
	if err != nil {
		return nil, err
	}
	return PolicyResult{Text: text}, nil
}

func (e *Engine) status() Status {
	if e.Status != nil {
		return e.Status()
	}
	st := Status{Store: e.StorePath, StoreState: "absent", Mounts: []Mount{}}
	switch _, err := os.Stat(e.StorePath); {
	case err == nil:
		st.StoreState = "present"
	case !errors.Is(err, os.ErrNotExist):
		st.StoreState = "inaccessible"
	}
	return st
}

// checkName refuses a bad name without repeating it (it may be a value
// typed in the wrong place).
func checkName(name string) error {
	if store.ValidName(name) != nil {
		return errorf(KindUsage, "invalid credential name (not repeated here, in case it was a value): use 1 to 128 characters from A-Z, a-z, 0-9 and _, not starting with a digit")
	}
	return nil
}

// unlock gives a keyring once password is proven right. A wrong password
// is audited and nothing else happens.
func (e *Engine) unlock(actor audit.Actor, password []byte, write bool, what string) (kr *store.Keyring, key []byte, done func(), err error) {
	if len(password) == 0 {
		return nil, nil, nil, errorf(KindUsage, "%s needs the master password", what)
	}
	if e.Keyring != nil {
		err = e.Keyring.CheckPassword(password)
		kr, done = e.Keyring, func() {}
	} else {
		var s *store.Store
		if s, err = e.Store(write); err == nil {
			kr, err = s.Unlock(password)
			done = func() { kr.Close() }
		}
	}
	if errors.Is(err, store.ErrWrongPassword) {
		if aerr := e.audit(actor, nil, audit.Record{Event: audit.EventWrongPassword, Outcome: audit.OutcomeDenied, Detail: what}); aerr != nil {
			err = fmt.Errorf("%w (and %v)", err, aerr)
		}
		return nil, nil, nil, &Error{Kind: KindWrongPassword, Msg: err.Error()}
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return kr, kr.AuditKey(), done, nil
}

func (e *Engine) set(who Who, actor audit.Actor, req *Request) (any, error) {
	if err := checkName(req.Name); err != nil {
		return nil, err
	}
	kr, key, done, err := e.unlock(actor, req.Password, true, "secret set "+req.Name)
	if err != nil {
		return nil, err
	}
	defer done()
	defer clear(key)
	var created bool
	if err := kr.Update(func(tx *store.WriteTx) (err error) {
		created, err = tx.Set(req.Name, req.Value)
		return err
	}); err != nil {
		return nil, err
	}
	verb, ev := "replaced", audit.EventSecretReplace
	if created {
		verb, ev = "stored", audit.EventSecretSet
	}
	res := SetResult{Name: req.Name, Created: created}
	var changeErr error
	if e.Changed != nil {
		changeErr = e.Changed()
	}
	if err := e.audit(actor, key, audit.Record{Event: ev, Outcome: audit.OutcomeOK, Credentials: []string{req.Name}}); err != nil {
		return nil, fmt.Errorf("%s %s, but could not write the audit record: %w", verb, req.Name, err)
	}
	if changeErr != nil {
		return nil, fmt.Errorf("%s %s, but the mount could not reload its values (it now resolves none): %w", verb, req.Name, changeErr)
	}
	var fulfilled []Item
	expired, err := withPending(PendingPath(e.StorePath), func(p *pendingFile) (bool, error) {
		fulfilled = p.takeAll(KindCredential, req.Name)
		return len(fulfilled) > 0, nil
	})
	e.auditExpired(actor, expired)
	if err != nil {
		return nil, fmt.Errorf("%s %s, but %w", verb, req.Name, err)
	}
	for _, it := range fulfilled {
		res.Fulfilled = append(res.Fulfilled, it.ID)
		if err := e.audit(actor, key, audit.Record{Event: audit.EventCredentialFulfilled, Outcome: audit.OutcomeOK, Credentials: []string{req.Name},
			Detail: fmt.Sprintf("request %s (asked by pid %d uid %d %s)", it.ID, it.Who.Pid, it.Who.Uid, it.Who.Exe)}); err != nil {
			return nil, fmt.Errorf("%s %s, but could not write the audit record: %w", verb, req.Name, err)
		}
	}
	return res, nil
}

func (e *Engine) list(actor audit.Actor) (any, error) {
	s, err := e.Store(false)
	if err != nil {
		return nil, err
	}
	var metas []store.Meta
	if err := s.View(func(tx *store.ReadTx) error {
		metas, err = tx.List()
		return err
	}); err != nil {
		return nil, err
	}
	names := make([]string, len(metas))
	list := make([]Credential, 0, len(metas))
	for i, m := range metas {
		names[i] = m.Name
		c := Credential{Name: m.Name, Created: m.Created, Updated: m.Updated, Version: m.Version, ResolveCount: m.ResolveCount}
		if !m.LastResolved.IsZero() {
			t := m.LastResolved
			c.LastResolved = &t
		}
		list = append(list, c)
	}
	if err := e.audit(actor, nil, audit.Record{Event: audit.EventSecretList, Outcome: audit.OutcomeOK,
		Credentials: names, Detail: fmt.Sprintf("%d credentials", len(names))}); err != nil {
		return nil, fmt.Errorf("could not write the audit record: %w", err)
	}
	return list, nil
}

// exists reports whether the store holds name.
func (e *Engine) exists(name string) (bool, error) {
	s, err := e.Store(false)
	if err != nil {
		return false, err
	}
	err = s.View(func(tx *store.ReadTx) error {
		_, err := tx.Meta(name)
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// cleanLabel keeps a label printable, bounded and free of known values.
func (e *Engine) cleanLabel(label string) string {
	label = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, label)
	if e.Redact != nil {
		label = e.Redact(label)
	}
	if len(label) > maxLabel {
		label = strings.ToValidUTF8(label[:maxLabel], "") + "…"
	}
	return label
}

// ask records a pending item: a request for a credential, or a deletion.
// Asking needs no password: the agent may ask; only a human approves.
func (e *Engine) ask(who Who, actor audit.Actor, kind, name, label string) (any, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	exists, err := e.exists(name)
	if err != nil {
		return nil, err
	}
	ev := audit.EventCredentialRequested
	if kind == KindDelete {
		ev = audit.EventDeleteRequested
		if !exists {
			return nil, errorf(KindNotFound, "credential %s not found; nothing to delete", name)
		}
	} else if exists {
		if err := e.audit(actor, nil, audit.Record{Event: ev, Outcome: audit.OutcomeOK, Credentials: []string{name}, Detail: "already set; nothing pending"}); err != nil {
			return nil, fmt.Errorf("could not write the audit record: %w", err)
		}
		return RequestResult{Exists: true}, nil
	}
	now := e.now().UTC().Truncate(time.Second)
	it := Item{Kind: kind, Name: name, Label: e.cleanLabel(label), Who: who, When: now, Expires: now.Add(DefaultExpiry)}
	var again bool
	expired, err := withPending(PendingPath(e.StorePath), func(p *pendingFile) (bool, error) {
		var err error
		it, again, err = p.add(it)
		return !again && err == nil, err
	})
	e.auditExpired(actor, expired)
	if err != nil {
		return nil, err
	}
	detail := "item " + it.ID
	if again {
		detail += " (already pending)"
	}
	if it.Label != "" {
		detail += ": " + it.Label
	}
	if err := e.audit(actor, nil, audit.Record{Event: ev, Outcome: audit.OutcomeOK, Credentials: []string{name}, Detail: detail}); err != nil {
		return nil, fmt.Errorf("could not write the audit record: %w", err)
	}
	return RequestResult{Item: &it, Again: again}, nil
}

func (e *Engine) approvals(actor audit.Actor) (any, error) {
	var items []Item
	expired, err := withPending(PendingPath(e.StorePath), func(p *pendingFile) (bool, error) {
		items = append([]Item{}, p.Items...)
		return false, nil
	})
	e.auditExpired(actor, expired)
	if err != nil {
		return nil, err
	}
	sortItems(items)
	return items, nil
}

// auditExpired records items that expired unanswered (best effort: the
// items are gone either way).
func (e *Engine) auditExpired(actor audit.Actor, expired []Item) {
	for _, it := range expired {
		ev := audit.EventCredentialDenied
		if it.Kind == KindDelete {
			ev = audit.EventDeleteDenied
		}
		_ = e.audit(actor, nil, audit.Record{Event: ev, Outcome: audit.OutcomeFailed, Credentials: []string{it.Name},
			Detail: fmt.Sprintf("item %s expired unanswered", it.ID)})
	}
}

// decide approves or denies a pending item; both need the password.
func (e *Engine) decide(actor audit.Actor, req *Request, approve bool) (any, error) {
	verb := "deny"
	if approve {
		verb = "approve"
	}
	if req.ID == "" || len(req.ID) > 20 {
		return nil, errorf(KindUsage, "%s needs the id of a pending item (see `faciofs approvals`)", verb)
	}
	var it Item
	var found bool
	expired, err := withPending(PendingPath(e.StorePath), func(p *pendingFile) (bool, error) {
		it, found = p.find(req.ID)
		return false, nil
	})
	e.auditExpired(actor, expired)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errorf(KindNotFound, "no pending item %s (it may have expired or been answered; see `faciofs approvals`)", req.ID)
	}
	if approve && it.Kind == KindCredential {
		return nil, errorf(KindUsage, "item %s is a request for credential %s: a human fulfils it with `faciofs secret set %s` (or refuses it with `faciofs deny %s`)", it.ID, it.Name, it.Name, it.ID)
	}
	kr, key, done, err := e.unlock(actor, req.Password, approve && it.Kind == KindDelete, verb+" "+it.ID)
	if err != nil {
		return nil, err
	}
	defer done()
	defer clear(key)
	// Take the item now: if another human answered it meanwhile, stop.
	_, err = withPending(PendingPath(e.StorePath), func(p *pendingFile) (bool, error) {
		_, found = p.take(req.ID)
		return found, nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errorf(KindNotFound, "no pending item %s (it was answered or expired meanwhile)", req.ID)
	}
	res := DecideResult{Item: it, Approved: approve}
	cred := []string{it.Name}
	detail := "item " + it.ID
	if !approve {
		ev := audit.EventCredentialDenied
		if it.Kind == KindDelete {
			ev = audit.EventDeleteDenied
		}
		if err := e.audit(actor, key, audit.Record{Event: ev, Outcome: audit.OutcomeDenied, Credentials: cred, Detail: detail + ": denied by a human"}); err != nil {
			return nil, fmt.Errorf("denied %s, but could not write the audit record: %w", it.ID, err)
		}
		return res, nil
	}
	if err := e.audit(actor, key, audit.Record{Event: audit.EventDeleteApproved, Outcome: audit.OutcomeOK, Credentials: cred, Detail: detail}); err != nil {
		return nil, fmt.Errorf("could not write the audit record; nothing deleted: %w", err)
	}
	err = kr.Update(func(tx *store.WriteTx) error { return tx.Delete(it.Name) })
	if err != nil {
		_ = e.audit(actor, key, audit.Record{Event: audit.EventDeleteDone, Outcome: audit.OutcomeFailed, Credentials: cred, Detail: detail + ": " + err.Error()})
		if errors.Is(err, store.ErrNotFound) {
			return nil, errorf(KindNotFound, "credential %s no longer exists; item %s is closed", it.Name, it.ID)
		}
		return nil, err
	}
	var changeErr error
	if e.Changed != nil {
		changeErr = e.Changed()
	}
	if err := e.audit(actor, key, audit.Record{Event: audit.EventDeleteDone, Outcome: audit.OutcomeOK, Credentials: cred, Detail: detail}); err != nil {
		return nil, fmt.Errorf("deleted %s, but could not write the audit record: %w", it.Name, err)
	}
	if changeErr != nil {
		return nil, fmt.Errorf("deleted %s, but the mount could not reload its values (it now resolves none): %w", it.Name, changeErr)
	}
	return res, nil
}
