package fs

// Caller is who sent a FUSE request, as the kernel reports it: Pid may be a
// thread id, and is 0 for a process outside the mount's pid namespace.
type Caller struct{ Pid, Uid, Gid uint32 }

// View is what a caller gets for one path. The zero View is the raw view.
type View struct {
	// Key names the set of consumer rules behind the view; "" is raw.
	// Callers with the same key see the same bytes and may share a node.
	Key string
	// Allows reports whether the view may resolve a credential.
	Allows func(name string) bool
	// MissingIsError makes an open fail with EIO when a placeholder the
	// view covers names a credential that does not exist.
	MissingIsError bool
}

// Raw reports whether v is the raw view.
func (v View) Raw() bool { return v.Key == "" }

// Policy decides which view a caller gets for a path relative to the mount
// root. It must fail closed: any doubt about the caller is the raw view.
type Policy interface {
	View(c Caller, relPath string) View
	// Covers reports whether any caller at all could get a non-raw view
	// of relPath. It must be cheap: it is asked on every LOOKUP.
	Covers(relPath string) bool
}

// Secrets is the filesystem's only access to credential values.
type Secrets interface {
	// Value returns a credential's plaintext; the caller must not keep it.
	Value(name string) ([]byte, bool)
	// Reverse replaces every known value (and its filtered forms) in data
	// with its placeholder and reports the names it replaced. An error
	// means the values could not be removed; the data must not be stored.
	Reverse(data []byte) ([]byte, []string, error)
	// Generation changes whenever a value is added, replaced or removed,
	// so that cached rendering results can be told apart.
	Generation() uint64
}

// Observer is told about credential-relevant events. Names are credential
// names, never values. Only Resolved may block: resolution is audited or it
// does not happen, so an error from Resolved fails the open with EIO.
type Observer interface {
	Resolved(c Caller, relPath string, names []string) error
	// RawServed: a caller the policy does not permit opened a templated
	// file on a path some consumer rule covers.
	RawServed(c Caller, relPath string)
	// Malformed: a file rendered for a consumer holds text starting
	// "${credentials." that is not a placeholder.
	Malformed(c Caller, relPath string)
	Denied(c Caller, relPath string, names []string)
	Missing(c Caller, relPath string, names []string)
	Reversed(c Caller, relPath string, names []string)
}

type nopObserver struct{}

func (nopObserver) Resolved(Caller, string, []string) error { return nil }
func (nopObserver) RawServed(Caller, string)                {}
func (nopObserver) Malformed(Caller, string)                {}
func (nopObserver) Denied(Caller, string, []string)         {}
func (nopObserver) Missing(Caller, string, []string)        {}
func (nopObserver) Reversed(Caller, string, []string)       {}
