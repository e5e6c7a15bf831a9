package store

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// twoCreds makes a store holding A and B, values of equal length.
func twoCreds(t *testing.T) (path string, want map[string][]byte) {
	path = newStorePath(t, testKDF)
	s, k := openUnlock(t, path)
	want = map[string][]byte{"A": []byte("FAKE-sk-test-000A-xyz"), "B": []byte("FAKE-sk-test-000B-xyz"), "C": []byte("FAKE-sk-test-000C-xyz")}
	if err := k.Update(func(tx *WriteTx) error {
		for n, v := range want {
			if _, err := tx.Set(n, v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	closeBoth(t, s, k)
	return path, want
}

func swapRaw(bucket string) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		a, c := bytes.Clone(b.Get([]byte("A"))), bytes.Clone(b.Get([]byte("B")))
		if err := b.Put([]byte("A"), c); err != nil {
			return err
		}
		return b.Put([]byte("B"), a)
	}
}

func TestTamperSwap(t *testing.T) {
	path, _ := twoCreds(t)
	rawEdit(t, path, swapRaw("values"))
	wantErr(t, unlockErr(t, path), ErrCorrupt, "integrity check failed", `"A"`, "swapped")

	// Swapping the manifest entries too cannot fix the MAC.
	rawEdit(t, path, swapRaw("manifest"))
	wantErr(t, unlockErr(t, path), ErrCorrupt, "integrity check failed")
}

// TestTamperAfterUnlock edits the file under a running keyring, as an agent
// that ignores the advisory lock could.
func TestTamperAfterUnlock(t *testing.T) {
	path, want := twoCreds(t)
	recA, recB := rawGet(t, path, "values", "A"), rawGet(t, path, "values", "B")
	s, k := openUnlock(t, path)
	checkAll(t, k, want)

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(f)
	ia, ib := bytes.Index(raw, recA), bytes.Index(raw, recB)
	if ia < 0 || ib < 0 || len(recA) != len(recB) {
		t.Fatalf("records not found in the file (%d, %d)", ia, ib)
	}
	f.WriteAt(recB, int64(ia))
	f.WriteAt(recA, int64(ib))
	f.Close()

	for _, n := range []string{"A", "B"} {
		sec, err := k.Reveal(n)
		if !errors.Is(err, ErrCorrupt) {
			if err == nil && !bytes.Equal(sec.Bytes(), want[n]) {
				t.Fatalf("Reveal(%s) returned a wrong value", n)
			}
			t.Fatalf("Reveal(%s) after swap: %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := k.RevealAll(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("RevealAll after swap: %v", err)
	}
	if sec, err := k.Reveal("C"); err != nil || !bytes.Equal(sec.Bytes(), want["C"]) {
		t.Fatalf("untouched credential C: %v", err)
	}
	// Replacing a tampered record is refused; writing another one works
	// but must not launder the swap into a valid manifest.
	if err := k.Update(func(tx *WriteTx) error { _, err := tx.Set("A", []byte("FAKE-sk-test-new")); return err }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Set over a tampered record: %v", err)
	}
	if err := k.Update(func(tx *WriteTx) error { _, err := tx.Set("D", []byte("FAKE-sk-test-000D-xyz")); return err }); err != nil {
		t.Fatal(err)
	}
	closeBoth(t, s, k)
	wantErr(t, unlockErr(t, path), ErrCorrupt, "integrity check failed", `"A"`)
}

func TestTamperRollback(t *testing.T) {
	path, want := twoCreds(t)
	old := filepath.Join(t.TempDir(), "old.db")
	copyFile(t, path, old)
	s, k := openUnlock(t, path)
	if err := k.Update(func(tx *WriteTx) error { _, err := tx.Set("A", []byte("FAKE-sk-test-000A-v2")); return err }); err != nil {
		t.Fatal(err)
	}
	closeBoth(t, s, k)
	want["A"] = []byte("FAKE-sk-test-000A-v2")
	current := filepath.Join(t.TempDir(), "current.db")
	copyFile(t, path, current)

	oldRec, oldEntry := rawGet(t, old, "values", "A"), rawGet(t, old, "manifest", "A")
	rawEdit(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("values")).Put([]byte("A"), oldRec) })
	wantErr(t, unlockErr(t, path), ErrCorrupt, `credential "A" was rolled back from version 2 to 1`)

	// Rolling back the manifest entry as well breaks the MAC.
	rawEdit(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("manifest")).Put([]byte("A"), oldEntry) })
	wantErr(t, unlockErr(t, path), ErrCorrupt, "integrity check failed")

	// The untouched copy still verifies.
	s, err := Open(current, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k, err = s.Unlock(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, k, want)
	closeBoth(t, s, k)
}

func TestTamperDeleteAndAdd(t *testing.T) {
	path, _ := twoCreds(t)
	orig := filepath.Join(t.TempDir(), "orig.db")
	copyFile(t, path, orig)

	rawEdit(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("values")).Delete([]byte("B")) })
	wantErr(t, unlockErr(t, path), ErrCorrupt, `credential "B" was removed`)
	rawEdit(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("manifest")).Delete([]byte("B")) })
	wantErr(t, unlockErr(t, path), ErrCorrupt, "integrity check failed")

	copyFile(t, orig, path)
	recB := rawGet(t, path, "values", "B")
	rawEdit(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("values")).Put([]byte("EVIL"), recB) })
	wantErr(t, unlockErr(t, path), ErrCorrupt, `credential "EVIL" was added`)

	copyFile(t, orig, path)
	rawEdit(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("header")).Put([]byte("kdf"), encodeKDF(KDFParams{Time: 1, MemoryKiB: 8, Threads: 1}, make([]byte, 32)))
	})
	wantErr(t, unlockErr(t, path), ErrWrongPassword)
}

// TestByteFlips flips one byte at every 64th offset of a copy of the file:
// each outcome must be an error of the documented kinds, or every value
// intact. A panic fails the test by crashing it.
func TestByteFlips(t *testing.T) {
	path := newStorePath(t, tinyKDF)
	s, k := openUnlock(t, path)
	want := fill(t, k, 12) // includes binary and 64 KiB values
	if err := k.Update(func(tx *WriteTx) error {
		want["CRED_0003"] = []byte("FAKE-sk-test-0003-replaced")
		if _, err := tx.Set("CRED_0003", want["CRED_0003"]); err != nil {
			return err
		}
		delete(want, "CRED_0005")
		return tx.Delete("CRED_0005")
	}); err != nil {
		t.Fatal(err)
	}
	// bbolt falls back to the older meta page when the newer one is
	// damaged; end with two counter-only commits so both describe the
	// same values.
	for range 2 {
		k.NoteResolved([]string{"CRED_0002"})
		if err := k.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	closeBoth(t, s, k)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	step := 64
	if testing.Short() {
		step = 509
	}
	flip := filepath.Join(t.TempDir(), "flip.db")
	tally := map[string]int{}
	for off := 0; off < len(orig); off += step {
		b := bytes.Clone(orig)
		b[off] ^= 0xff
		if err := os.WriteFile(flip, b, 0o600); err != nil {
			t.Fatal(err)
		}
		tally[damagedOutcome(t, flip, want, fmt.Sprintf("flip at %d", off))]++
	}
	t.Logf("%d bytes, %d flips: %v", len(orig), (len(orig)+step-1)/step, tally)
	if tally["intact"] == 0 || tally["intact"] == (len(orig)+step-1)/step {
		t.Errorf("expected both harmless and detected flips, got %v", tally)
	}
}

// damagedOutcome opens, lists, unlocks and reveals a damaged store and
// classifies the result, failing the test on any other outcome.
func damagedOutcome(t *testing.T, path string, want map[string][]byte, what string) string {
	t.Helper()
	kind := func(stage string, err error, allowed ...error) string {
		for _, a := range allowed {
			if errors.Is(err, a) {
				return stage + ": " + strings.TrimPrefix(a.Error(), "store ")
			}
		}
		t.Errorf("%s: %s: unexpected error %v", what, stage, err)
		return stage + ": unexpected"
	}
	s, err := Open(path, OpenOptions{})
	if err != nil {
		return kind("open", err, ErrCorrupt, ErrUnsupportedVersion)
	}
	defer s.Close()
	_ = s.View(func(tx *ReadTx) error { _, err := tx.List(); return err }) // must not panic
	k, err := s.Unlock(testPassword)
	if err != nil {
		return kind("unlock", err, ErrCorrupt, ErrWrongPassword, ErrUnsupportedVersion)
	}
	defer k.Close()
	all, err := k.RevealAll()
	if err != nil {
		return kind("reveal", err, ErrCorrupt)
	}
	if len(all) != len(want) {
		t.Errorf("%s: %d credentials without an error, want %d", what, len(all), len(want))
	}
	for _, sec := range all {
		if !bytes.Equal(sec.Bytes(), want[sec.Name()]) {
			t.Errorf("%s: value mismatch for %s", what, sec.Name())
		}
	}
	return "intact"
}

func TestTruncatedAndGarbage(t *testing.T) {
	path := newStorePath(t, testKDF)
	s, k := openUnlock(t, path)
	want := fill(t, k, 20)
	closeBoth(t, s, k)
	orig, _ := os.ReadFile(path)
	dir := t.TempDir()
	for _, n := range []int{0, 1, 100, 4095, 4096, 8192, 12288, len(orig) / 2, len(orig) - 4096, len(orig) - 1} {
		p := filepath.Join(dir, "trunc.db")
		if err := os.WriteFile(p, orig[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		out := damagedOutcome(t, p, want, fmt.Sprintf("truncated to %d", n))
		if n < 4096*4 && out == "intact" {
			t.Errorf("truncated to %d bytes and still intact?", n)
		}
	}

	garbage := make([]byte, 64<<10)
	rand.Read(garbage)
	p := filepath.Join(dir, "garbage.db")
	os.WriteFile(p, garbage, 0o600)
	_, err := Open(p, OpenOptions{})
	wantErr(t, err, ErrCorrupt)
	os.WriteFile(p, []byte("not a database at all\n"), 0o600)
	_, err = Open(p, OpenOptions{})
	wantErr(t, err, ErrCorrupt)

	// A healthy bbolt file that is not a faciofs store.
	p = filepath.Join(dir, "other.db")
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err })
	db.Close()
	_, err = Open(p, OpenOptions{})
	wantErr(t, err, ErrCorrupt, "not a faciofs store")
}

func TestUnknownFormatVersion(t *testing.T) {
	path, _ := twoCreds(t)
	rawEdit(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("header")).Put([]byte("format"), []byte{0, 0, 0, 2})
	})
	_, err := Open(path, OpenOptions{})
	wantErr(t, err, ErrUnsupportedVersion, "version 2")
}

func TestLockedInProcess(t *testing.T) {
	path := newStorePath(t, testKDF)
	s, err := Open(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// flock belongs to the open file description, so a second open in the
	// same process conflicts like another process would.
	_, err = Open(path, OpenOptions{})
	wantErr(t, err, ErrLocked, path, fmt.Sprintf("(pid %d)", os.Getpid()))
	_, err = Open(path, OpenOptions{ReadOnly: true})
	wantErr(t, err, ErrLocked)
	start := time.Now()
	_, err = Open(path, OpenOptions{Timeout: 300 * time.Millisecond})
	wantErr(t, err, ErrLocked)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("Open with Timeout 300ms gave up after %v", d)
	}
	s.Close()

	// Readers share.
	r1, err := Open(path, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(path, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
}

// TestHelperHoldStore is the child process of TestLockedByChild.
func TestHelperHoldStore(t *testing.T) {
	path := os.Getenv("FACIOFS_TEST_HOLD_STORE")
	if path == "" {
		t.Skip("helper process for TestLockedByChild")
	}
	s, err := Open(path, OpenOptions{})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("ready")
	io.ReadAll(os.Stdin)
	s.Close()
}

func TestLockedByChild(t *testing.T) {
	path := newStorePath(t, testKDF)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldStore$")
	cmd.Env = append(os.Environ(), "FACIOFS_TEST_HOLD_STORE="+path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		t.Logf("child: %s", sc.Text())
	}
	_, err := Open(path, OpenOptions{})
	wantErr(t, err, ErrLocked, fmt.Sprintf("store %s is in use by another process (pid %d)", path, cmd.Process.Pid))
	stdin.Close()
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	s, err := Open(path, OpenOptions{})
	if err != nil {
		t.Fatalf("Open after the child exited: %v", err)
	}
	s.Close()
}
