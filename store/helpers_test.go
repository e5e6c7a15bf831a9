package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Tests use cheap KDF parameters; TestDefaultKDFUnlockTime covers the real ones.
var (
	testKDF = KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}
	tinyKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
)

var testPassword = []byte("FAKE-master-password-0001")

func newStorePath(t testing.TB, kdf KDFParams) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "faciofs", "store.db")
	if err := Create(path, testPassword, kdf); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return path
}

func openUnlock(t testing.TB, path string) (*Store, *Keyring) {
	t.Helper()
	s, err := Open(path, OpenOptions{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	k, err := s.Unlock(testPassword)
	if err != nil {
		s.Close()
		t.Fatalf("Unlock: %v", err)
	}
	return s, k
}

func closeBoth(t testing.TB, s *Store, k *Keyring) {
	t.Helper()
	if err := k.Close(); err != nil {
		t.Errorf("Keyring.Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Store.Close: %v", err)
	}
}

// fakeValue returns a deterministic, obviously fake value. Every 10th is
// binary, every 50th (from 1) is exactly MaxValueSize bytes.
func fakeValue(i int) []byte {
	switch {
	case i%50 == 1:
		v := bytes.Repeat([]byte(fmt.Sprintf("FAKE-big-%04d-", i)), MaxValueSize)
		return v[:MaxValueSize]
	case i%10 == 0:
		r := rand.New(rand.NewPCG(uint64(i), 42))
		v := make([]byte, 16+i%300)
		for j := range v {
			v[j] = byte(r.Uint32())
		}
		v[0] = 0 // starts with a NUL: truly binary
		return v
	default:
		return []byte(fmt.Sprintf("FAKE-sk-test-%04d-xyz", i))
	}
}

func fakeName(i int) string { return fmt.Sprintf("CRED_%04d", i) }

// fill stores n fake credentials in one transaction.
func fill(t testing.TB, k *Keyring, n int) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	err := k.Update(func(tx *WriteTx) error {
		for i := range n {
			v := fakeValue(i)
			created, err := tx.Set(fakeName(i), v)
			if err != nil {
				return err
			}
			if !created {
				return fmt.Errorf("Set %s: created = false for a new credential", fakeName(i))
			}
			want[fakeName(i)] = v
		}
		return nil
	})
	if err != nil {
		t.Fatalf("fill: %v", err)
	}
	return want
}

// checkAll asserts every credential decrypts to exactly its expected bytes.
func checkAll(t testing.TB, k *Keyring, want map[string][]byte) {
	t.Helper()
	all, err := k.RevealAll()
	if err != nil {
		t.Fatalf("RevealAll: %v", err)
	}
	if len(all) != len(want) {
		t.Fatalf("RevealAll returned %d credentials, want %d", len(all), len(want))
	}
	for _, sec := range all {
		if !bytes.Equal(sec.Bytes(), want[sec.Name()]) {
			t.Errorf("value mismatch for %s", sec.Name())
		}
		sec.Wipe()
	}
}

// rawEdit changes the file with bbolt directly, as an attacker could.
func rawEdit(t testing.TB, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatalf("raw edit: %v", err)
	}
}

func rawGet(t testing.TB, path, bucket, key string) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	defer db.Close()
	var out []byte
	_ = db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket([]byte(bucket)).Get([]byte(key)))
		return nil
	})
	if out == nil {
		t.Fatalf("raw get %s/%s: missing", bucket, key)
	}
	return out
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// unlockErr opens and unlocks path and returns the error, closing everything.
func unlockErr(t testing.TB, path string) error {
	t.Helper()
	s, err := Open(path, OpenOptions{})
	if err != nil {
		return err
	}
	defer s.Close()
	k, err := s.Unlock(testPassword)
	if err != nil {
		return err
	}
	_ = k.Close()
	return nil
}

func wantErr(t testing.TB, err, kind error, contains ...string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want %v", err, kind)
	}
	for _, c := range contains {
		if !bytes.Contains([]byte(err.Error()), []byte(c)) {
			t.Errorf("error %q does not mention %q", err, c)
		}
	}
}
