// Package store keeps credential values encrypted in a single bbolt file.
//
// Threat model. The store file lives where the agent (the adversary, see
// SECURITY.md) may be able to read it, copy it, and edit it with any tool,
// including bbolt itself. The package therefore guarantees:
//
//   - Confidentiality: values are sealed with XChaCha20-Poly1305 under a
//     random 256-bit data key; the data key is wrapped by a key derived from
//     the master password with argon2id. Without the password the file
//     yields names, versions, timestamps and value lengths, never a value.
//   - Integrity: every value is bound to its name and version (AEAD
//     associated data), and an HMAC manifest over the sorted list of
//     (name, version, record hash) plus the file header is checked at
//     Unlock. A record that was swapped, rolled back, removed or added
//     outside this package is reported as ErrCorrupt, never returned as a
//     wrong value. Tampering after Unlock is caught too: the unlocked store
//     checks every record it reads against the manifest it verified.
//   - One way out: plaintext leaves the package only through a Keyring,
//     which Unlock hands out in exchange for the master password. Metadata
//     (View, ReadTx) needs no password and cannot reach a value. Nothing in
//     the API lets a command "get" a value without the password, and a
//     Secret refuses to print or marshal itself.
//
// What it cannot do: it cannot tell that the whole file was replaced by an
// older copy of itself (every part of that copy is genuine); that needs a
// counter kept elsewhere, such as the audit log. Resolve counters
// (LastResolved, ResolveCount) are bookkeeping, not authenticated: an
// attacker can edit them. A hostile file can make Open or Unlock fail (a
// denial of service), which is the fail-closed outcome the product wants.
//
// Wiping of keys and passwords is best effort: Go copies memory freely
// (argon2 working memory, cipher key schedules, HMAC pads), so zeroing
// narrows the window but cannot close it. The process is marked
// non-dumpable once it holds key material.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// MaxValueSize is the largest credential value the store accepts.
const MaxValueSize = 64 << 10

// FormatVersion is the version of the on-disk layout written by this package.
const FormatVersion = 1

// Errors returned by the store; test with errors.Is. The messages that carry
// them say what happened and, where there is one, what to do next.
var (
	ErrWrongPassword      = errors.New("wrong master password")
	ErrNotFound           = errors.New("credential not found")
	ErrExists             = errors.New("store already exists")
	ErrLocked             = errors.New("store is in use by another process")
	ErrCorrupt            = errors.New("store is corrupt or was tampered with")
	ErrUnsupportedVersion = errors.New("unsupported store format version")
	ErrInvalidName        = errors.New("invalid credential name")
	ErrValueTooLarge      = errors.New("credential value too large")
	ErrEmptyValue         = errors.New("credential value is empty")
	ErrNoStore            = errors.New("no credential store")
	ErrClosed             = errors.New("store or keyring is closed")
)

// storeError carries a precise message while still matching a sentinel with
// errors.Is. Messages never contain a value.
type storeError struct {
	kind error
	msg  string
}

func (e *storeError) Error() string { return e.msg }
func (e *storeError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &storeError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

const maxNameLen = 128

// ValidName reports whether name can name a credential: 1 to 128 characters
// from [A-Za-z0-9_], not starting with a digit (the grammar of
// ${credentials.NAME}).
func ValidName(name string) error {
	ok := len(name) >= 1 && len(name) <= maxNameLen
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9':
			ok = i > 0
		default:
			ok = false
		}
	}
	if ok {
		return nil
	}
	shown := name
	if len(shown) > 140 {
		shown = shown[:140] + "..."
	}
	return errorf(ErrInvalidName,
		"invalid credential name %q: use 1 to %d characters from A-Z, a-z, 0-9 and _, not starting with a digit",
		shown, maxNameLen)
}

// Store is an open store file. Without a Keyring it serves metadata only.
type Store struct {
	path     string
	db       *bolt.DB
	readOnly bool

	// mu orders keyring writes against reads so that a Reveal sees the
	// file and the trusted manifest from the same moment.
	mu      sync.RWMutex
	trusted *manifest // set by the first successful Unlock; nil before

	counters resolveCounters
}

// OpenOptions tune Open.
type OpenOptions struct {
	// ReadOnly opens the file without write access; Keyring.Update and
	// Rewrap then fail and resolve counters are not persisted.
	ReadOnly bool
	// Timeout is how long to wait for another process to release the
	// file. Zero means do not wait.
	Timeout time.Duration
}

// Open opens the store at path. It does not need the password; call Unlock
// for anything beyond metadata.
func Open(path string, opt OpenOptions) (s *Store, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(ErrNoStore, "no credential store at %s: run `faciofs init` to create one", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errorf(ErrCorrupt, "store %s is not a regular file", path)
	}
	if fi.Size() == 0 {
		// bbolt would silently initialise an empty file as a new database.
		return nil, errorf(ErrCorrupt, "store %s is empty", path)
	}
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = time.Nanosecond // bbolt treats 0 as "wait forever"
	}

	var db *bolt.DB
	var file *os.File
	mapped := fileMappings(path)
	err = guard(path, "open", func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			ReadOnly: opt.ReadOnly,
			Timeout:  timeout,
			// Never create: a missing store is ErrNoStore, decided above.
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag&^os.O_CREATE, perm)
				file = f
				return f, err
			},
		})
		return err
	})
	if err != nil && db == nil && file != nil {
		// bbolt panicked after taking the lock and mapping the file:
		// release both, or the store stays locked until exit.
		unmapNew(path, mapped)
		_ = file.Close()
	}
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		if pid := lockHolder(path); pid > 0 {
			return nil, errorf(ErrLocked, "store %s is in use by another process (pid %d)", path, pid)
		}
		return nil, errorf(ErrLocked, "store %s is in use by another process", path)
	case errors.Is(err, ErrCorrupt):
		return nil, err
	case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open store: %w", err)
	default:
		return nil, errorf(ErrCorrupt, "store %s cannot be opened: %v", path, err)
	}

	s = &Store{path: path, db: db, readOnly: opt.ReadOnly}
	err = s.view(func(btx *bolt.Tx) error {
		_, err := readHeader(s, btx)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the file. Close every Keyring first so that resolve
// counters reach the file.
func (s *Store) Close() error {
	return s.db.Close()
}

// Path is the file the store was opened from.
func (s *Store) Path() string { return s.path }

// String keeps the store's internals out of logs.
func (s *Store) String() string { return "store " + s.path }

// View runs fn in a read-only transaction. It sees metadata only.
func (s *Store) View(fn func(*ReadTx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.viewUser(func(btx *bolt.Tx) error {
		return fn(&ReadTx{s: s, btx: btx})
	})
}

// ReadTx is a read-only view of the store's metadata.
type ReadTx struct {
	s   *Store
	btx *bolt.Tx
}

// Meta describes one credential. It never contains the value.
type Meta struct {
	Name         string
	Created      time.Time
	Updated      time.Time
	Version      uint64 // 1 for a new credential, +1 on every replace
	LastResolved time.Time
	ResolveCount uint64
}

// List returns the metadata of every credential, sorted by name. Resolve
// counters include those noted but not yet flushed by this process.
func (tx *ReadTx) List() (m []Meta, err error) {
	defer recoverCorrupt(tx.s.path, &err)
	return listMeta(tx.s, tx.btx)
}

// Meta returns the metadata of one credential, or ErrNotFound.
func (tx *ReadTx) Meta(name string) (m Meta, err error) {
	defer recoverCorrupt(tx.s.path, &err)
	if err := ValidName(name); err != nil {
		return Meta{}, err
	}
	return oneMeta(tx.s, tx.btx, name)
}

// view runs an internal read transaction; bbolt panics become ErrCorrupt.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	return guard(s.path, "read", func() error { return s.db.View(fn) })
}

// viewUser and updateUser run a caller's function: a panic raised by
// bbolt becomes ErrCorrupt, a panic raised by the caller's own code is
// re-raised untouched.
func (s *Store) viewUser(fn func(*bolt.Tx) error) error {
	return guardUser(s.path, "read", func(user func(func() error) error) error {
		return s.db.View(func(btx *bolt.Tx) error { return user(func() error { return fn(btx) }) })
	})
}

func (s *Store) updateUser(fn func(*bolt.Tx) error) error {
	return guardUser(s.path, "write", func(user func(func() error) error) error {
		return s.db.Update(func(btx *bolt.Tx) error { return user(func() error { return fn(btx) }) })
	})
}

// guard runs fn, turning a panic (bbolt panics on damaged pages, and a
// fault in the memory map arrives as a panic with SetPanicOnFault) into
// ErrCorrupt.
func guard(path, what string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, what, r)
		}
	}()
	return fn()
}

// damaged is the error for a panic out of bbolt's pages. A runtime fault
// (a nil page from a truncated file, a fault in the memory map) says
// nothing to the user but "crash", so it is named for what it means.
func damaged(path, what string, r any) error {
	detail := fmt.Sprint(r)
	if _, ok := r.(runtime.Error); ok {
		detail = "a page is missing or unreadable"
	}
	return errorf(ErrCorrupt, "store %s is damaged or truncated (%s: %s); restore it from a backup", path, what, detail)
}

type userPanic struct{ v any }

func guardUser(path, what string, run func(user func(func() error) error) error) error {
	var up *userPanic
	user := func(fn func() error) error {
		done := false
		defer func() {
			if done {
				return
			}
			// recover is nil for runtime.Goexit (t.FailNow): let it unwind.
			if r := recover(); r != nil {
				up = &userPanic{r}
				panic(r)
			}
		}()
		err := fn()
		done = true
		return err
	}
	err := guard(path, what, func() error { return run(user) })
	if up != nil {
		panic(up.v)
	}
	return err
}

// recoverCorrupt is deferred by transaction methods that walk bbolt pages,
// so a damaged page is an error for the caller, not a panic in its code.
func recoverCorrupt(path string, err *error) {
	if r := recover(); r != nil {
		*err = damaged(path, "read", r)
	}
}
