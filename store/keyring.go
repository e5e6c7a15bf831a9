package store

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"
)

// Keyring is an unlocked store: it holds the data key and is the only way
// to write values or read them back. It is meant for the resolver in the
// mount daemon and for the human-driven commands that set values; never
// hand one to code that serves the agent. Safe for concurrent use.
type Keyring struct {
	s *Store

	mu   sync.RWMutex
	keys *lockedKeys // nil once closed
	aead cipher.AEAD // its copy of the data key lives on the Go heap (best effort)
}

// Unlock checks password, verifies the integrity manifest, and returns a
// Keyring. Errors: ErrWrongPassword, ErrCorrupt (naming what is wrong).
// From here on the process holds key material, so Unlock marks it
// non-dumpable (no core dumps, no same-uid ptrace).
func (s *Store) Unlock(password []byte) (*Keyring, error) {
	var h *header
	if err := s.view(func(btx *bolt.Tx) (err error) {
		h, err = readHeader(s, btx)
		return err
	}); err != nil {
		return nil, err
	}
	dataKey, err := unwrapKey(s, h, password)
	if err != nil {
		return nil, err
	}
	defer wipe(dataKey)

	markNonDumpable()
	keys, err := newLockedKeys()
	if err != nil {
		return nil, err
	}
	k := &Keyring{s: s, keys: keys}
	copy(keys.data(), dataKey)
	for _, d := range []struct {
		dst  []byte
		info string
	}{{keys.mac(), infoManifest}, {keys.audit(), infoAudit}} {
		b, err := hkdf.Key(sha256.New, dataKey, nil, d.info, keyLen)
		if err != nil {
			keys.destroy()
			return nil, err
		}
		copy(d.dst, b)
		wipe(b)
	}
	if k.aead, err = chacha20poly1305.NewX(keys.data()); err != nil {
		keys.destroy()
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.view(func(btx *bolt.Tx) error {
		h2, err := readHeader(s, btx)
		if err != nil {
			return err
		}
		if !bytes.Equal(h.kdfRec, h2.kdfRec) || !bytes.Equal(h.keyRec, h2.keyRec) {
			return errorf(ErrCorrupt, "%s: the store header changed during unlock; try again", s.path)
		}
		m, err := readManifest(s, btx, h2)
		if err != nil {
			return err
		}
		if !hmacEqual(m.mac(keys.mac()), btx.Bucket(bucketHeader).Get(keyMAC)) {
			return errorf(ErrCorrupt, "%s: integrity check failed: the manifest or header was edited outside faciofs", s.path)
		}
		if err := checkValues(s, btx, m); err != nil {
			return err
		}
		if s.trusted == nil {
			s.trusted = m
		} else if !s.trusted.equal(m) {
			return errorf(ErrCorrupt, "%s: integrity check failed: the file changed outside faciofs since it was unlocked", s.path)
		}
		return nil
	})
	if err != nil {
		k.aead = nil
		keys.destroy()
		return nil, err
	}
	return k, nil
}

func hmacEqual(a, b []byte) bool { return len(b) == len(a) && subtle.ConstantTimeCompare(a, b) == 1 }

// String and Format keep key material out of any log line.
func (k *Keyring) String() string                { return "[faciofs keyring]" }
func (k *Keyring) GoString() string              { return k.String() }
func (k *Keyring) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// use runs fn with the keys, or fails with ErrClosed.
func (k *Keyring) use(fn func() error) error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.keys == nil {
		return errorf(ErrClosed, "keyring is closed")
	}
	return fn()
}

// Update runs fn in one write transaction. The manifest MAC is recomputed
// from the manifest this process verified, never from the file, so that
// tampering since Unlock is not laundered into a valid MAC.
func (k *Keyring) Update(fn func(*WriteTx) error) error {
	return k.use(func() error {
		s := k.s
		if s.readOnly {
			return fmt.Errorf("store %s is open read-only", s.path)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		var next *manifest
		err := s.updateUser(func(btx *bolt.Tx) error {
			tx := &WriteTx{k: k, btx: btx, m: s.trusted}
			if err := fn(tx); err != nil {
				return err
			}
			if !tx.cloned {
				return nil
			}
			next = tx.m
			return btx.Bucket(bucketHeader).Put(keyMAC, next.mac(k.keys.mac()))
		})
		if err == nil && next != nil {
			s.trusted = next
		}
		return err
	})
}

// WriteTx changes credentials inside Keyring.Update.
type WriteTx struct {
	k      *Keyring
	btx    *bolt.Tx
	m      *manifest
	cloned bool
}

func (tx *WriteTx) mutable() *manifest {
	if !tx.cloned {
		tx.m, tx.cloned = tx.m.clone(), true
	}
	return tx.m
}

// Set stores value under name, replacing any previous value (its version
// increments). value is not retained. created reports a new credential.
func (tx *WriteTx) Set(name string, value []byte) (created bool, err error) {
	defer recoverCorrupt(tx.k.s.path, &err)
	if err := ValidName(name); err != nil {
		return false, err
	}
	switch {
	case len(value) == 0:
		return false, errorf(ErrEmptyValue, "value for %s is empty", name)
	case len(value) > MaxValueSize:
		return false, errorf(ErrValueTooLarge, "value for %s is %d bytes; the limit is %d", name, len(value), MaxValueSize)
	}
	vb := tx.btx.Bucket(bucketValues)
	key := []byte(name)
	now := time.Now().UnixNano()
	rec := valueRecord{version: 1, created: now, updated: now}
	if old, ok := tx.m.entries[name]; ok {
		raw := vb.Get(key)
		if raw == nil || sha256.Sum256(raw) != old.hash {
			return false, errorf(ErrCorrupt, "%s: integrity check failed: record of credential %q changed outside faciofs", tx.k.s.path, name)
		}
		prev, err := parseValue(name, raw)
		if err != nil {
			return false, err
		}
		rec.version, rec.created = old.version+1, prev.created
	}
	rec.nonce = make([]byte, nonceLen)
	rand.Read(rec.nonce)
	rec.sealed = tx.k.aead.Seal(nil, rec.nonce, value, valueAD(name, rec.version))
	raw := encodeValue(rec)
	e := manifestEntry{version: rec.version, hash: sha256.Sum256(raw)}
	if err := vb.Put(key, raw); err != nil {
		return false, err
	}
	if err := tx.btx.Bucket(bucketManifest).Put(key, encodeEntry(e)); err != nil {
		return false, err
	}
	if rec.version == 1 {
		// Counters of an earlier credential by this name do not carry over.
		if err := tx.btx.Bucket(bucketMeta).Delete(key); err != nil {
			return false, err
		}
	}
	tx.mutable().set(name, e)
	return rec.version == 1, nil
}

// Delete removes a credential, or returns ErrNotFound.
func (tx *WriteTx) Delete(name string) (err error) {
	defer recoverCorrupt(tx.k.s.path, &err)
	if err := ValidName(name); err != nil {
		return err
	}
	key := []byte(name)
	_, inManifest := tx.m.entries[name]
	if !inManifest && tx.btx.Bucket(bucketValues).Get(key) == nil {
		return errorf(ErrNotFound, "credential %s not found", name)
	}
	for _, b := range [][]byte{bucketValues, bucketManifest, bucketMeta} {
		if err := tx.btx.Bucket(b).Delete(key); err != nil {
			return err
		}
	}
	tx.mutable().remove(name)
	tx.k.s.counters.drop(name)
	return nil
}

// List is ReadTx.List inside a write transaction.
func (tx *WriteTx) List() (m []Meta, err error) {
	defer recoverCorrupt(tx.k.s.path, &err)
	return listMeta(tx.k.s, tx.btx)
}

// Reveal decrypts one credential. ErrNotFound if there is none by that
// name; ErrCorrupt if its record fails any check (never a wrong value).
func (k *Keyring) Reveal(name string) (*Secret, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	var sec *Secret
	err := k.use(func() error {
		s := k.s
		s.mu.RLock()
		defer s.mu.RUnlock()
		return s.view(func(btx *bolt.Tx) (err error) {
			sec, err = k.open(btx, name)
			return err
		})
	})
	return sec, err
}

// RevealAll decrypts every credential, sorted by name (for reverse
// substitution and scanning). On error nothing is returned.
func (k *Keyring) RevealAll() ([]*Secret, error) {
	var out []*Secret
	err := k.use(func() error {
		s := k.s
		s.mu.RLock()
		defer s.mu.RUnlock()
		return s.view(func(btx *bolt.Tx) error {
			out = make([]*Secret, 0, len(s.trusted.names))
			for _, n := range s.trusted.names {
				sec, err := k.open(btx, n)
				if err != nil {
					return err
				}
				out = append(out, sec)
			}
			return nil
		})
	})
	if err != nil {
		for _, sec := range out {
			sec.Wipe()
		}
		return nil, err
	}
	return out, nil
}

// open checks a record against the trusted manifest, then decrypts it.
func (k *Keyring) open(btx *bolt.Tx, name string) (*Secret, error) {
	s := k.s
	raw := btx.Bucket(bucketValues).Get([]byte(name))
	e, ok := s.trusted.entries[name]
	switch {
	case !ok && raw == nil:
		return nil, errorf(ErrNotFound, "credential %s not found", name)
	case !ok:
		return nil, errorf(ErrCorrupt, "%s: integrity check failed: credential %q was added outside faciofs", s.path, name)
	case raw == nil:
		return nil, errorf(ErrCorrupt, "%s: integrity check failed: credential %q was removed outside faciofs", s.path, name)
	}
	h := sha256.Sum256(raw)
	if subtle.ConstantTimeCompare(h[:], e.hash[:]) != 1 {
		return nil, errorf(ErrCorrupt, "%s: integrity check failed: record of credential %q was modified, swapped or rolled back", s.path, name)
	}
	rec, err := parseValue(name, raw)
	if err != nil {
		return nil, err
	}
	if rec.version != e.version {
		return nil, errorf(ErrCorrupt, "%s: integrity check failed: credential %q has the wrong version", s.path, name)
	}
	plain, err := k.aead.Open(nil, rec.nonce, rec.sealed, valueAD(name, rec.version))
	if err != nil {
		return nil, errorf(ErrCorrupt, "%s: credential %q failed authentication", s.path, name)
	}
	return &Secret{p: &secretData{name: name, value: plain}}, nil
}

// NoteResolved counts one resolution of each name. It only touches memory;
// Flush (or Close) writes the counters.
func (k *Keyring) NoteResolved(names []string) {
	k.s.counters.note(names, time.Now().UnixNano())
}

// Flush writes the resolve counters noted so far. A read-only store keeps
// them in memory only.
func (k *Keyring) Flush() error {
	return k.use(k.s.flushCounters)
}

// Rewrap re-encrypts the data key under newPassword with fresh salt and
// kdf; values are untouched. This is `faciofs passwd`.
func (k *Keyring) Rewrap(newPassword []byte, kdf KDFParams) error {
	if err := kdf.check(); err != nil {
		return fmt.Errorf("change password: invalid key derivation parameters: %w", err)
	}
	if len(newPassword) == 0 {
		return errors.New("change password: the new master password is empty")
	}
	return k.use(func() error {
		s := k.s
		if s.readOnly {
			return fmt.Errorf("store %s is open read-only", s.path)
		}
		salt := make([]byte, saltLen)
		rand.Read(salt)
		kdfRec := encodeKDF(kdf, salt)
		keyRec, err := wrapKey(k.keys.data(), newPassword, kdf, salt, kdfRec)
		if err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		next := s.trusted.clone()
		next.kdfRec, next.keyRec = kdfRec, keyRec
		err = s.updateUser(func(btx *bolt.Tx) error {
			hb := btx.Bucket(bucketHeader)
			if hb == nil {
				return errorf(ErrCorrupt, "%s has no faciofs header", s.path)
			}
			for _, kv := range [][2][]byte{{keyKDF, kdfRec}, {keyWrapped, keyRec}, {keyMAC, next.mac(k.keys.mac())}} {
				if err := hb.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			s.trusted = next
		}
		return err
	})
}

// AuditKey is a 32-byte key for the audit log's MAC chain, derived from
// the data key (HKDF-SHA256, info "faciofs audit v1"). It returns a copy;
// nil once the keyring is closed.
func (k *Keyring) AuditKey() []byte {
	var out []byte
	_ = k.use(func() error {
		out = bytes.Clone(k.keys.audit())
		return nil
	})
	return out
}

// Close flushes the counters, then wipes and unlocks the key material.
// Secrets already revealed stay valid until their own Wipe.
func (k *Keyring) Close() error {
	err := k.Flush()
	if errors.Is(err, ErrClosed) {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys != nil {
		k.keys.destroy()
		k.keys, k.aead = nil, nil
	}
	return err
}

// resolveCounters are in-memory resolve counts awaiting Flush.
type resolveCounters struct {
	mu      sync.Mutex
	pending map[string]*pendingCount
}

type pendingCount struct {
	n    uint64
	last int64
}

func (c *resolveCounters) note(names []string, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[string]*pendingCount{}
	}
	for _, n := range names {
		p := c.pending[n]
		if p == nil {
			p = &pendingCount{}
			c.pending[n] = p
		}
		p.n++
		p.last = now
	}
}

func (c *resolveCounters) peek(name string) (pendingCount, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[name]
	if !ok {
		return pendingCount{}, false
	}
	return *p, true
}

func (c *resolveCounters) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, name)
}

func (c *resolveCounters) take() map[string]*pendingCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending
	c.pending = nil
	return p
}

// restore puts back counters whose flush failed.
func (c *resolveCounters) restore(p map[string]*pendingCount) {
	for name, pc := range p {
		c.mu.Lock()
		q := c.pending[name]
		if q == nil {
			if c.pending == nil {
				c.pending = map[string]*pendingCount{}
			}
			c.pending[name] = pc
		} else {
			q.n += pc.n
			q.last = max(q.last, pc.last)
		}
		c.mu.Unlock()
	}
}

func (s *Store) flushCounters() error {
	if s.readOnly {
		return nil
	}
	pend := s.counters.take()
	if len(pend) == 0 {
		return nil
	}
	err := guard(s.path, "write", func() error {
		return s.db.Update(func(btx *bolt.Tx) error {
			vb, mb := btx.Bucket(bucketValues), btx.Bucket(bucketMeta)
			for name, pc := range pend {
				key := []byte(name)
				if vb.Get(key) == nil {
					continue // deleted, or never existed
				}
				mr, err := parseMeta(name, mb.Get(key))
				if err != nil {
					mr = metaRecord{} // unauthenticated bookkeeping: start again
				}
				mr.count += pc.n
				mr.lastResolved = max(mr.lastResolved, pc.last)
				if err := mb.Put(key, encodeMeta(mr)); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		s.counters.restore(pend)
	}
	return err
}

// CheckPassword reports whether password unlocks this keyring's store:
// nil, or ErrWrongPassword. It costs one key derivation and changes
// nothing; the mount daemon uses it as proof of a human before acting on
// a request that needs one.
func (k *Keyring) CheckPassword(password []byte) error {
	return k.use(func() error {
		s := k.s
		var h *header
		if err := s.view(func(btx *bolt.Tx) (err error) {
			h, err = readHeader(s, btx)
			return err
		}); err != nil {
			return err
		}
		dataKey, err := unwrapKey(s, h, password)
		if err != nil {
			return err
		}
		defer wipe(dataKey)
		if !hmacEqual(dataKey, k.keys.data()) {
			return errorf(ErrWrongPassword, "wrong master password for store %s", s.path)
		}
		return nil
	})
}
