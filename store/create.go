package store

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// DefaultKDF makes Unlock take about half a second on the 2-core
// development VM: 4 passes over 256 MiB with 2 lanes took 0.54 s (best of
// 3, lightly loaded; 8 passes over 64 MiB took only 0.19 s). Memory is the
// cost that GPUs and ASICs pay for, so it is raised rather than passes;
// 256 MiB for half a second is fine on a workstation or a CI runner.
var DefaultKDF = KDFParams{Time: 4, MemoryKiB: 256 << 10, Threads: 2}

// Create makes a new, empty store at path, protected by password. The
// folder is created 0700 if missing and the file is 0600. It fails with
// ErrExists rather than replace a store.
func Create(path string, password []byte, kdf KDFParams) error {
	if err := kdf.check(); err != nil {
		return fmt.Errorf("create store: invalid key derivation parameters: %w", err)
	}
	if len(password) == 0 {
		return errors.New("create store: the master password is empty")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		return errorf(ErrExists, "a credential store already exists at %s; use `faciofs passwd` to change its password", path)
	}

	// Build the store under a temporary name and link it into place, so a
	// crash leaves no half-made store and a concurrent Create cannot be
	// overwritten.
	tmp, err := os.CreateTemp(dir, ".faciofs-store-*.tmp")
	if err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	tmpPath := tmp.Name()
	defer os.Remove(tmpPath)
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	if err := initFile(tmpPath, password, kdf); err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	if err := os.Link(tmpPath, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errorf(ErrExists, "a credential store already exists at %s", path)
		}
		return fmt.Errorf("create store: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func initFile(path string, password []byte, kdf KDFParams) error {
	dataKey := make([]byte, keyLen)
	defer wipe(dataKey)
	salt := make([]byte, saltLen)
	rand.Read(dataKey)
	rand.Read(salt)

	kdfRec := encodeKDF(kdf, salt)
	keyRec, err := wrapKey(dataKey, password, kdf, salt, kdfRec)
	if err != nil {
		return err
	}
	macKey, err := hkdf.Key(sha256.New, dataKey, nil, infoManifest, keyLen)
	if err != nil {
		return err
	}
	defer wipe(macKey)
	m := &manifest{kdfRec: kdfRec, keyRec: keyRec, entries: map[string]manifestEntry{}}

	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	err = db.Update(func(btx *bolt.Tx) error {
		hb, err := btx.CreateBucket(bucketHeader)
		if err != nil {
			return err
		}
		for _, b := range [][]byte{bucketValues, bucketManifest, bucketMeta} {
			if _, err := btx.CreateBucket(b); err != nil {
				return err
			}
		}
		for _, kv := range [][2][]byte{
			{keyFormat, formatBytes()},
			{keyKDF, kdfRec},
			{keyWrapped, keyRec},
			{keyMAC, m.mac(macKey)},
		} {
			if err := hb.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// wrapKey seals the data key under argon2id(password, salt). The KEK is
// wiped afterwards (best effort: argon2's working memory is not ours to wipe).
func wrapKey(dataKey, password []byte, kdf KDFParams, salt, kdfRec []byte) ([]byte, error) {
	kek := argon2.IDKey(password, salt, kdf.Time, kdf.MemoryKiB, kdf.Threads, keyLen)
	defer wipe(kek)
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, nonceLen, wrappedLen)
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, dataKey, keyWrapAD(kdfRec)), nil
}

// unwrapKey returns the data key, or ErrWrongPassword. A damaged wrapped
// key is indistinguishable from a wrong password, by design of the AEAD.
func unwrapKey(s *Store, h *header, password []byte) ([]byte, error) {
	kek := argon2.IDKey(password, h.salt, h.kdf.Time, h.kdf.MemoryKiB, h.kdf.Threads, keyLen)
	defer wipe(kek)
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, err
	}
	dataKey, err := aead.Open(nil, h.keyRec[:nonceLen], h.keyRec[nonceLen:], keyWrapAD(h.kdfRec))
	if err != nil {
		return nil, errorf(ErrWrongPassword, "wrong master password for store %s", s.path)
	}
	return dataKey, nil
}

func wipe(b []byte) { clear(b) }
