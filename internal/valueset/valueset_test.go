package valueset

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/faciofs/faciofs/store"
)

// secrets makes a real store with the given values and reveals them.
func secrets(t *testing.T, values map[string]string) []*store.Secret {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s", "store.db")
	pw := []byte("FAKE-master-0001")
	if err := store.Create(p, pw, store.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(p, store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	kr, err := s.Unlock(pw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kr.Close() })
	if err := kr.Update(func(tx *store.WriteTx) error {
		for k, v := range values {
			if _, err := tx.Set(k, []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	all, err := kr.RevealAll()
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func TestSet(t *testing.T) {
	first := secrets(t, map[string]string{"A": "FAKE-value-A-0001", "SHORT": "ab"})
	s := New(first)
	if v, ok := s.Value("A"); !ok || string(v) != "FAKE-value-A-0001" {
		t.Error("Value(A) does not give A's value")
	}
	if _, ok := s.Value("MISSING"); ok {
		t.Error("Value of a missing name reported found")
	}
	out, names, err := s.Reverse([]byte("x=FAKE-value-A-0001;"))
	if err != nil || string(out) != "x=${credentials.A};" || len(names) != 1 || names[0] != "A" {
		t.Errorf("Reverse: %q %v %v", out, names, err)
	}
	if sk := s.Skipped(); len(sk) != 1 || sk[0] != "SHORT" {
		t.Errorf("Skipped() = %v, want [SHORT]", sk)
	}

	gen := s.Generation()
	old, _ := s.Value("A")
	s.Replace(secrets(t, map[string]string{"A": "FAKE-value-A-0002"}))
	if s.Generation() == gen {
		t.Error("Replace did not change the generation")
	}
	if bytes.Contains(old, []byte("FAKE-value-A-0001")) {
		t.Error("the replaced value was not wiped")
	}
	if v, _ := s.Value("A"); string(v) != "FAKE-value-A-0002" {
		t.Error("after Replace, Value(A) is not the new value")
	}
	s.Close()
	if _, ok := s.Value("A"); ok {
		t.Error("after Close a value is still served")
	}
}

// TestRedactor: the redactor finds every value and its encodings, keeps
// its own copies (an exec in flight keeps redacting across a rotation),
// and is rebuilt for the new values after Replace.
func TestRedactor(t *testing.T) {
	s := New(secrets(t, map[string]string{"A": "FAKE-value-A-0001"}))
	defer s.Close()
	found := func(m interface {
		Find([]byte, func(int, int, string, string) bool)
	}, text string) []string {
		var got []string
		m.Find([]byte(text), func(_, _ int, name, form string) bool { got = append(got, name+" "+form); return true })
		return got
	}
	old := s.Redactor()
	if got := found(old, "x "+hex.EncodeToString([]byte("FAKE-value-A-0001"))); len(got) != 1 || got[0] != "A hex" {
		t.Errorf("redactor found %v in the hex form", got)
	}
	if s.Redactor() != old {
		t.Error("the redactor is rebuilt without a change")
	}
	s.Replace(secrets(t, map[string]string{"A": "FAKE-value-A-0002"}))
	if got := found(old, "FAKE-value-A-0001"); len(got) != 1 {
		t.Errorf("the redactor held before Replace lost the old value (found %v): it must own its copies", got)
	}
	if got := found(s.Redactor(), "FAKE-value-A-0002 FAKE-value-A-0001"); len(got) != 1 || got[0] != "A raw" {
		t.Errorf("after Replace the redactor found %v, want only the new value", got)
	}
}
