package store

import (
	"fmt"
	"testing"
)

func BenchmarkUnlock(b *testing.B) {
	path := newStorePath(b, DefaultKDF)
	s, err := Open(path, OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		k, err := s.Unlock(testPassword)
		if err != nil {
			b.Fatal(err)
		}
		k.Close()
	}
}

// bigStore is a store with 10 000 credentials.
func bigStore(b *testing.B) (*Store, *Keyring) {
	s, k := openUnlock(b, newStorePath(b, testKDF))
	if err := k.Update(func(tx *WriteTx) error {
		for i := range 10000 {
			if _, err := tx.Set(fakeName(i), []byte(fmt.Sprintf("FAKE-sk-test-%05d-xyz", i))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { closeBoth(b, s, k) })
	return s, k
}

// BenchmarkSet is one write transaction replacing one credential in a
// store of 10 000 (each commit fsyncs).
func BenchmarkSet(b *testing.B) {
	_, k := bigStore(b)
	v := []byte("FAKE-sk-test-bench-xyz")
	i := 0
	for b.Loop() {
		if err := k.Update(func(tx *WriteTx) error { _, err := tx.Set(fakeName(i%10000), v); return err }); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkList(b *testing.B) {
	s, _ := bigStore(b)
	for b.Loop() {
		if err := s.View(func(tx *ReadTx) error {
			l, err := tx.List()
			if len(l) != 10000 {
				b.Fatalf("List: %d", len(l))
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReveal(b *testing.B) {
	_, k := bigStore(b)
	i := 0
	for b.Loop() {
		sec, err := k.Reveal(fakeName(i % 10000))
		if err != nil {
			b.Fatal(err)
		}
		sec.Wipe()
		i++
	}
}

func BenchmarkNoteResolved(b *testing.B) {
	_, k := bigStore(b)
	names := []string{fakeName(1), fakeName(2)}
	for b.Loop() {
		k.NoteResolved(names)
	}
}
