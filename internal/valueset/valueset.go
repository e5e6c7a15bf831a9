// Package valueset holds the decrypted credential values of a running
// mount: the one place in the daemon where values sit in memory, shared by
// rendering (consumer views) and reverse substitution (writes).
//
// Threat model: nothing here is reachable by the agent except through the
// filesystem's decisions. The set never prints its values (it has no String
// of its own to leak them through) and wipes them when replaced or closed.
package valueset

import (
	"sync"
	"sync/atomic"

	"github.com/faciofs/faciofs/redact"
	"github.com/faciofs/faciofs/resolve"
	"github.com/faciofs/faciofs/store"
)

// Set is safe for concurrent use.
type Set struct {
	mu      sync.RWMutex
	secrets map[string]*store.Secret
	matcher *resolve.Matcher
	// redactor finds every value and encoded form (exec's output, scan);
	// built on first use, since most mounts never need it.
	redactor *redact.Matcher
	gen      atomic.Uint64
}

// New takes ownership of secrets (they are wiped by Replace and Close).
func New(secrets []*store.Secret) *Set {
	s := &Set{}
	s.Replace(secrets)
	return s
}

// Replace swaps in a new set of values, e.g. after a rotation, and wipes
// the old ones. Views rendered afterwards use the new values.
func (s *Set) Replace(secrets []*store.Secret) {
	m := make(map[string]*store.Secret, len(secrets))
	known := make([]resolve.Known, 0, len(secrets))
	for _, sec := range secrets {
		m[sec.Name()] = sec
		known = append(known, resolve.Known{Name: sec.Name(), Value: sec.Bytes()})
	}
	matcher := resolve.NewMatcher(known)
	s.mu.Lock()
	old := s.secrets
	s.secrets, s.matcher, s.redactor = m, matcher, nil
	s.gen.Add(1)
	s.mu.Unlock()
	for _, sec := range old {
		sec.Wipe()
	}
}

// Value returns a value for rendering; the caller must not keep it.
func (s *Set) Value(name string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sec, ok := s.secrets[name]
	if !ok {
		return nil, false
	}
	return sec.Bytes(), true
}

// Reverse replaces every known value and filtered form by its placeholder.
func (s *Set) Reverse(data []byte) ([]byte, []string, error) {
	s.mu.RLock()
	m := s.matcher
	s.mu.RUnlock()
	return m.Reverse(data)
}

// Redactor returns the matcher of every value and its encoded forms, as
// exec's output redactor and scan use it.
func (s *Set) Redactor() *redact.Matcher {
	s.mu.RLock()
	m := s.redactor
	s.mu.RUnlock()
	if m != nil {
		return m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.redactor == nil {
		known := make([]resolve.Known, 0, len(s.secrets))
		for name, sec := range s.secrets {
			known = append(known, resolve.Known{Name: name, Value: sec.Bytes()})
		}
		s.redactor = redact.NewMatcher(known)
	}
	return s.redactor
}

// Generation changes whenever the values change.
func (s *Set) Generation() uint64 { return s.gen.Load() }

// Names lists the credentials held, for status output.
func (s *Set) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.secrets))
	for n := range s.secrets {
		names = append(names, n)
	}
	return names
}

// Skipped names values too short to be found by reverse substitution.
func (s *Set) Skipped() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.matcher.Skipped()
}

// Close wipes every value.
func (s *Set) Close() {
	s.Replace(nil)
}
