package store

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	path := newStorePath(t, testKDF)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file mode = %v (%v), want 0600", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("store folder mode = %v (%v), want 0700", fi.Mode(), err)
	}
	before := time.Now()
	s, k := openUnlock(t, path)
	want := fill(t, k, 200)
	checkAll(t, k, want)
	for name, v := range want {
		sec, err := k.Reveal(name)
		if err != nil {
			t.Fatalf("Reveal %s: %v", name, err)
		}
		if !bytes.Equal(sec.Bytes(), v) {
			t.Errorf("value mismatch for %s", name)
		}
	}

	// Replace: version increments, Created stays, Updated moves.
	var m1 Meta
	if err := s.View(func(tx *ReadTx) (err error) { m1, err = tx.Meta("CRED_0003"); return err }); err != nil {
		t.Fatal(err)
	}
	if m1.Version != 1 || m1.Created.Before(before.Add(-time.Second)) || !m1.Created.Equal(m1.Updated) {
		t.Fatalf("new credential meta = %+v", m1)
	}
	time.Sleep(2 * time.Millisecond)
	want["CRED_0003"] = []byte("FAKE-sk-test-0003-replaced")
	err := k.Update(func(tx *WriteTx) error {
		created, err := tx.Set("CRED_0003", want["CRED_0003"])
		if created {
			t.Errorf("replace reported created")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var m2 Meta
	if err := s.View(func(tx *ReadTx) (err error) { m2, err = tx.Meta("CRED_0003"); return err }); err != nil {
		t.Fatal(err)
	}
	if m2.Version != 2 || !m2.Created.Equal(m1.Created) || !m2.Updated.After(m1.Updated) {
		t.Fatalf("replaced meta = %+v, before %+v", m2, m1)
	}

	// Delete.
	if err := k.Update(func(tx *WriteTx) error { return tx.Delete("CRED_0007") }); err != nil {
		t.Fatal(err)
	}
	delete(want, "CRED_0007")
	if _, err := k.Reveal("CRED_0007"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Reveal deleted: %v, want ErrNotFound", err)
	}
	if err := k.Update(func(tx *WriteTx) error { return tx.Delete("CRED_0007") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete twice: %v, want ErrNotFound", err)
	}
	// A failed transaction changes nothing, in the file or in memory.
	boom := errors.New("boom")
	if err := k.Update(func(tx *WriteTx) error {
		if _, err := tx.Set("CRED_0008", []byte("FAKE-sk-test-rolledback")); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v", err)
	}
	checkAll(t, k, want)
	closeBoth(t, s, k)

	// Metadata without the password.
	s, err = Open(path, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var list []Meta
	if err := s.View(func(tx *ReadTx) (err error) { list, err = tx.List(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(list) != 199 || !slices.IsSortedFunc(list, func(a, b Meta) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatalf("List: %d entries (want 199), sorted=%v", len(list), slices.IsSortedFunc(list, func(a, b Meta) int { return strings.Compare(a.Name, b.Name) }))
	}
	for _, m := range list {
		if m.Created.IsZero() || m.Updated.Before(m.Created) || m.Version == 0 || m.ResolveCount != 0 || !m.LastResolved.IsZero() {
			t.Errorf("bad meta %+v", m)
		}
	}
	if err := s.View(func(tx *ReadTx) error { _, err := tx.Meta("CRED_0007"); return err }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Meta of deleted: %v", err)
	}
	s.Close()

	// Everything survives a reopen and re-verification.
	s, k = openUnlock(t, path)
	checkAll(t, k, want)
	closeBoth(t, s, k)
}

func TestSetDoesNotRetainValue(t *testing.T) {
	s, k := openUnlock(t, newStorePath(t, testKDF))
	defer closeBoth(t, s, k)
	v := []byte("FAKE-sk-test-0001-xyz")
	orig := bytes.Clone(v)
	if err := k.Update(func(tx *WriteTx) error { _, err := tx.Set("A", v); return err }); err != nil {
		t.Fatal(err)
	}
	clear(v)
	checkAll(t, k, map[string][]byte{"A": orig})
}

func TestWrongPasswordAndRewrap(t *testing.T) {
	path := newStorePath(t, testKDF)
	s, k := openUnlock(t, path)
	want := fill(t, k, 5)
	closeBoth(t, s, k)
	before, _ := os.ReadFile(path)

	s, err := Open(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unlock([]byte("FAKE-wrong-password")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	s.Close()
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a failed unlock changed the store file")
	}

	s, k = openUnlock(t, path)
	newPW := []byte("FAKE-new-master-password-0002")
	if err := k.Rewrap(newPW, KDFParams{Time: 2, MemoryKiB: 4 << 10, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	checkAll(t, k, want) // the open keyring keeps working
	closeBoth(t, s, k)

	s, err = Open(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Unlock(testPassword); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password after rewrap: %v", err)
	}
	k, err = s.Unlock(newPW)
	if err != nil {
		t.Fatalf("new password: %v", err)
	}
	defer k.Close()
	checkAll(t, k, want)
}

func TestNoPlaintextInFile(t *testing.T) {
	path := newStorePath(t, testKDF)
	s, k := openUnlock(t, path)
	want := fill(t, k, 60)
	// Replaced and deleted values must not linger in freed pages either.
	if err := k.Update(func(tx *WriteTx) error {
		if _, err := tx.Set("CRED_0002", []byte("FAKE-sk-test-0002-second")); err != nil {
			return err
		}
		return tx.Delete("CRED_0004")
	}); err != nil {
		t.Fatal(err)
	}
	want["CRED_0002b"] = []byte("FAKE-sk-test-0002-second")
	closeBoth(t, s, k)

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range want {
		if len(v) > 64 {
			v = v[:64]
		}
		for enc, form := range map[string]string{
			"raw":       string(v),
			"base64":    base64.StdEncoding.EncodeToString(v),
			"base64raw": base64.RawURLEncoding.EncodeToString(v),
			"hex":       hex.EncodeToString(v),
			"HEX":       strings.ToUpper(hex.EncodeToString(v)),
		} {
			// base64 of a prefix may end in a partial group; drop it.
			if strings.HasPrefix(enc, "base64") {
				form = form[:len(form)/4*4-4]
			}
			if bytes.Contains(raw, []byte(form)) {
				t.Errorf("store file contains the %s form of %s's value", enc, name)
			}
		}
	}
	if bytes.Contains(raw, []byte("FAKE-")) {
		t.Error("store file contains a FAKE- marker")
	}
	if bytes.Contains(raw, testPassword) {
		t.Error("store file contains the master password")
	}
}

func TestNoStoreAndExists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.db")
	_, err := Open(path, OpenOptions{})
	wantErr(t, err, ErrNoStore, "faciofs init")
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Open created the file")
	}
	if err := Create(path, testPassword, testKDF); err != nil {
		t.Fatal(err)
	}
	wantErr(t, Create(path, testPassword, testKDF), ErrExists)
	if err := Create(filepath.Join(t.TempDir(), "x.db"), testPassword, KDFParams{}); err == nil {
		t.Fatal("Create accepted zero KDF parameters")
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*.tmp")); len(m) != 0 {
		t.Fatalf("temporary files left behind: %v", m)
	}
}

func TestNames(t *testing.T) {
	long := strings.Repeat("A", 128)
	for _, ok := range []string{"A", "_", "a_1", "OPENAI_API_KEY", long} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1A", long + "A", "A-B", "A B", "É", "A.B", "${x}"} {
		err := ValidName(bad)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidName(%q) = %v, want ErrInvalidName", bad, err)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) || !strings.Contains(err.Error(), "A-Z") {
			t.Errorf("ValidName(%q) message %q should quote the name and state the rule", bad, err)
		}
	}
	if err := ValidName(strings.Repeat("B", 5000)); len(err.Error()) > 300 {
		t.Errorf("message for a huge name is %d bytes", len(err.Error()))
	}

	s, k := openUnlock(t, newStorePath(t, testKDF))
	defer closeBoth(t, s, k)
	set := func(name string, v []byte) error {
		return k.Update(func(tx *WriteTx) error { _, err := tx.Set(name, v); return err })
	}
	val := []byte("FAKE-sk-test-0001-xyz")
	for _, bad := range []string{"", "1A", long + "A", "A-B"} {
		if err := set(bad, val); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Set(%q) = %v", bad, err)
		}
	}
	if err := set(long, val); err != nil {
		t.Errorf("Set(128 chars) = %v", err)
	}
	if err := set("EMPTY", nil); !errors.Is(err, ErrEmptyValue) {
		t.Errorf("empty value: %v", err)
	}
	big := bytes.Repeat([]byte("FAKE"), MaxValueSize/4+1)[:MaxValueSize+1]
	err := set("BIG", big)
	if !errors.Is(err, ErrValueTooLarge) || strings.Contains(err.Error(), "FAKE") {
		t.Errorf("64 KiB+1 value: %v", err)
	}
	if err := set("MAX", big[:MaxValueSize]); err != nil {
		t.Errorf("64 KiB value: %v", err)
	}
	if _, err := k.Reveal("A-B"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Reveal(bad name) = %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s, k := openUnlock(t, newStorePath(t, testKDF))
	defer closeBoth(t, s, k)
	val := []byte("FAKE-sk-test-0001-xyz")
	if err := k.Update(func(tx *WriteTx) error { _, err := tx.Set("OPENAI_API_KEY", val); return err }); err != nil {
		t.Fatal(err)
	}
	sec, err := k.Reveal("OPENAI_API_KEY")
	if err != nil {
		t.Fatal(err)
	}
	leaks := func(out string) bool {
		return strings.Contains(out, string(val)) || strings.Contains(out, hex.EncodeToString(val)) ||
			strings.Contains(strings.ToLower(out), hex.EncodeToString(val[:8])) || strings.Contains(out, "46 41 4b 45") ||
			strings.Contains(out, base64.StdEncoding.EncodeToString(val)[:12])
	}
	type holder struct {
		S   *Secret
		V   Secret
		hid Secret
	}
	h := holder{S: sec, V: *sec, hid: *sec}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%d", "%T"} {
		for _, arg := range []any{sec, *sec, h, &h, []*Secret{sec}} {
			out := fmt.Sprintf(verb, arg)
			if leaks(out) {
				t.Errorf("fmt %s of %T leaks the value", verb, arg)
			}
		}
		if out := fmt.Sprintf(verb, sec); verb != "%T" && out != "[secret OPENAI_API_KEY]" {
			t.Errorf("fmt %s = %q, want [secret OPENAI_API_KEY]", verb, out)
		}
	}
	if sec.String() != "[secret OPENAI_API_KEY]" || sec.GoString() != "[secret OPENAI_API_KEY]" {
		t.Error("String/GoString")
	}
	for _, v := range []any{sec, *sec, h, map[string]*Secret{"k": sec}} {
		out, err := json.Marshal(v)
		if err == nil || leaks(string(out)) || leaks(err.Error()) {
			t.Errorf("json.Marshal(%T) = %q, %v; want an error", v, out, err)
		}
	}
	if out, err := sec.MarshalText(); err == nil || out != nil {
		t.Error("MarshalText must fail")
	}
	// Keyring and Store print no key material either.
	if out := fmt.Sprintf("%v %+v %#v %x", k, k, k, k); strings.Contains(out, hex.EncodeToString(k.AuditKey()[:4])) || !strings.Contains(out, "[faciofs keyring]") {
		t.Errorf("keyring prints as %q", out)
	}
	if !bytes.Equal(sec.Bytes(), val) {
		t.Error("value mismatch for OPENAI_API_KEY")
	}
	sec.Wipe()
	if len(sec.Bytes()) != 0 || sec.Name() != "OPENAI_API_KEY" {
		t.Error("Wipe left the value readable or lost the name")
	}
}

func TestResolveCounters(t *testing.T) {
	path := newStorePath(t, testKDF)
	s, k := openUnlock(t, path)
	fill(t, k, 3)
	for range 5 {
		k.NoteResolved([]string{"CRED_0001", "CRED_0002", "NO_SUCH"})
	}
	k.NoteResolved([]string{"CRED_0001"})
	meta := func(s *Store, name string) (m Meta) {
		t.Helper()
		if err := s.View(func(tx *ReadTx) (err error) { m, err = tx.Meta(name); return err }); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := meta(s, "CRED_0001"); m.ResolveCount != 6 || m.LastResolved.IsZero() {
		t.Fatalf("unflushed meta %+v", m)
	}
	if err := k.Flush(); err != nil {
		t.Fatal(err)
	}
	k.NoteResolved([]string{"CRED_0002"})
	closeBoth(t, s, k) // Close flushes

	s, err := Open(path, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, n := range map[string]uint64{"CRED_0000": 0, "CRED_0001": 6, "CRED_0002": 6} {
		if m := meta(s, name); m.ResolveCount != n || m.LastResolved.IsZero() != (n == 0) {
			t.Errorf("%s: count %d (want %d), last resolved %v", name, m.ResolveCount, n, m.LastResolved)
		}
	}
	// Counters are not in the manifest: the store still verifies.
	k, err = s.Unlock(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
}

func TestKeyringLifecycle(t *testing.T) {
	path := newStorePath(t, testKDF)
	s, k := openUnlock(t, path)
	want := fill(t, k, 3)
	a1 := k.AuditKey()
	if len(a1) != 32 {
		t.Fatalf("AuditKey is %d bytes", len(a1))
	}
	k2, err := s.Unlock(testPassword) // a second keyring shares the verified manifest
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k2.AuditKey(), a1) {
		t.Error("AuditKey differs between unlocks")
	}
	if err := k2.Update(func(tx *WriteTx) error { _, err := tx.Set("NEW", []byte("FAKE-sk-test-new")); return err }); err != nil {
		t.Fatal(err)
	}
	want["NEW"] = []byte("FAKE-sk-test-new")
	checkAll(t, k, want)
	if err := k2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Reveal("NEW"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reveal after Close: %v", err)
	}
	if k2.AuditKey() != nil || k2.Close() != nil {
		t.Fatal("closed keyring still hands out keys or fails a second Close")
	}
	closeBoth(t, s, k)

	other := newStorePath(t, testKDF)
	s, k = openUnlock(t, other)
	if bytes.Equal(k.AuditKey(), a1) {
		t.Error("two stores share an audit key")
	}
	closeBoth(t, s, k)
}

func TestCallerPanicIsNotSwallowed(t *testing.T) {
	s, k := openUnlock(t, newStorePath(t, testKDF))
	defer closeBoth(t, s, k)
	defer func() {
		if r := recover(); r != "caller bug" {
			t.Fatalf("recovered %v, want the caller's panic", r)
		}
	}()
	_ = s.View(func(*ReadTx) error { panic("caller bug") })
}

func TestDefaultKDFUnlockTime(t *testing.T) {
	if testing.Short() {
		t.Skip("measures argon2id with DefaultKDF, which takes seconds")
	}
	if raceEnabled {
		t.Skip("the race detector slows argon2id several times; run without -race to check DefaultKDF")
	}
	path := newStorePath(t, DefaultKDF)
	s, err := Open(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Best of three: the first argon2id run in a fresh process (or VM)
	// also pays for faulting in 64 MiB, which says nothing about the KDF.
	d := time.Hour
	for range 3 {
		start := time.Now()
		k, err := s.Unlock(testPassword)
		d = min(d, time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		k.Close()
	}
	t.Logf("Unlock with DefaultKDF %+v took %v (best of 3)", DefaultKDF, d)
	if d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("Unlock took %v, want 0.15 s .. 3 s", d)
	}
}
