package audit

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var testKey = bytes.Repeat([]byte{7}, 32)

// TestMain doubles as the crash helper: with AUDIT_CRASH_DIR set, the test
// binary appends records to that directory until it is killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("AUDIT_CRASH_DIR"); dir != "" {
		l, err := Open(dir, Options{Key: testKey, SegmentSize: 256 << 10})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					if err := l.Append(rec(EventResolve, g*1_000_000+i)); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(4)
					}
				}
			}()
		}
		wg.Wait()
	}
	code := m.Run()
	if query1M.root != "" {
		os.RemoveAll(query1M.root)
	}
	os.Exit(code)
}

func rec(ev Event, i int) Record {
	return Record{Event: ev, Outcome: OutcomeOK,
		Actor:       Actor{Pid: 1000 + i%7, Tgid: 1000 + i%7, Uid: 1000, Gid: 1000, Exe: "/usr/bin/node", Cmdline: "node server.js --port 8080", Cgroup: "/user.slice/mcp.service", Rule: "consumer:mcp-openai"},
		Path:        fmt.Sprintf("proj%d/mcp.json", i%10),
		Credentials: []string{"OPENAI_API_KEY", fmt.Sprintf("K%d", i%5)},
	}
}

func appendN(t testing.TB, dir string, key []byte, n int, ev Event) {
	t.Helper()
	l, err := Open(dir, Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Append(rec(ev, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func verify(t *testing.T, dir string, key []byte) *Report {
	t.Helper()
	r, err := Verify(dir, VerifyOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantOK(t *testing.T, r *Report) {
	t.Helper()
	if !r.OK() {
		t.Fatalf("verify found problems: %v", r.Problems)
	}
}

func lines(t *testing.T, dir string) []Record {
	t.Helper()
	var out []Record
	if err := Scan(dir, Filter{}, func(raw []byte) error {
		r, err := Parse(raw)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendChainAndParse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	l, err := Open(dir, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	r := rec(EventResolve, 1)
	r.Detail = "tricky \"quotes\" \\ and \n newline and \xff bad utf8"
	r.Actor.Cmdline = strings.Repeat("x", 500)
	if err := l.Append(r); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(rec(EventDenied, 2)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	got := lines(t, dir)
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 || got[0].Prev != "" || got[1].Prev == "" || got[0].MAC == "" {
		t.Fatalf("records: %+v", got)
	}
	if got[0].Detail != "tricky \"quotes\" \\ and \n newline and \ufffd bad utf8" || len(got[0].Actor.Cmdline) != MaxCmdline {
		t.Errorf("round trip: detail %q, cmdline %d bytes", got[0].Detail, len(got[0].Actor.Cmdline))
	}
	wantOK(t, verify(t, dir, testKey))
	for _, p := range []string{dir, filepath.Join(dir, segName(1)), AnchorPath(dir)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	// The wrong key fails every MAC.
	if r := verify(t, dir, bytes.Repeat([]byte{8}, 32)); r.OK() {
		t.Error("verify with the wrong key passed")
	}
}

func TestUnsealedThenSealed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	appendN(t, dir, testKey, 2, EventMount)
	appendN(t, dir, nil, 3, EventSecretList)
	r := verify(t, dir, testKey)
	wantOK(t, r)
	if r.Unsealed != 3 {
		t.Errorf("unsealed = %d, want 3", r.Unsealed)
	}
	appendN(t, dir, testKey, 1, EventSecretSet)
	r = verify(t, dir, testKey)
	wantOK(t, r)
	if r.Unsealed != 0 || r.LastSeq != 7 {
		t.Errorf("after sealing: unsealed %d, last seq %d; want 0, 7", r.Unsealed, r.LastSeq)
	}
	got := lines(t, dir)
	if got[5].Event != EventSeal || !strings.Contains(got[5].Detail, "up to seq 5") {
		t.Errorf("record 6 is %s %q, want a seal of seq 5", got[5].Event, got[5].Detail)
	}
}

// tamper edits the log's only segment by lines.
func tamper(t *testing.T, dir string, edit func([][]byte) [][]byte) {
	t.Helper()
	p := filepath.Join(dir, segName(1))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ls := bytes.SplitAfter(b, []byte("\n"))
	if len(ls[len(ls)-1]) == 0 {
		ls = ls[:len(ls)-1]
	}
	if err := os.WriteFile(p, bytes.Join(edit(ls), nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTamper(t *testing.T) {
	forge := func(ls [][]byte, after int, mac bool) []byte {
		// A record with the right seq and prev, as an attacker without
		// the key can build it.
		r, _ := Parse(ls[after])
		f := rec(EventSecretList, 99)
		f.Time, f.Seq, f.Prev = r.Time, r.Seq+1, lineHash(bytes.TrimRight(ls[after], "\n"))
		var m = newMAC(nil)
		if mac {
			m = newMAC(bytes.Repeat([]byte{9}, 32))
		}
		return append(encode(nil, &f, m), '\n')
	}
	cases := []struct {
		name string
		edit func([][]byte) [][]byte
		kind string
		seq  uint64
	}{
		{"edit a field", func(ls [][]byte) [][]byte {
			ls[4] = bytes.Replace(ls[4], []byte("proj4"), []byte("projX"), 1)
			return ls
		}, KindEdited, 5},
		{"remove a line", func(ls [][]byte) [][]byte { return append(ls[:3], ls[4:]...) }, KindRemoved, 4},
		{"swap two lines", func(ls [][]byte) [][]byte { ls[3], ls[4] = ls[4], ls[3]; return ls }, KindReordered, 4},
		{"insert a forged unsealed line", func(ls [][]byte) [][]byte {
			return append(ls[:5], append([][]byte{forge(ls, 4, false)}, ls[5:]...)...)
		}, KindInserted, 6},
		{"insert a forged sealed line", func(ls [][]byte) [][]byte {
			return append(ls[:5], append([][]byte{forge(ls, 4, true)}, ls[5:]...)...)
		}, KindEdited, 6},
		{"insert a copied line", func(ls [][]byte) [][]byte {
			return append(ls[:5], append([][]byte{ls[2]}, ls[5:]...)...)
		}, KindInserted, 3},
		{"truncate the tail", func(ls [][]byte) [][]byte { return ls[:7] }, KindTruncated, 8},
		{"partial last line", func(ls [][]byte) [][]byte {
			ls[9] = ls[9][:len(ls[9])/2]
			return ls
		}, KindPartial, 0},
		{"edit the last record", func(ls [][]byte) [][]byte {
			ls[9] = bytes.Replace(ls[9], []byte(`"uid":1000`), []byte(`"uid":1001`), 1)
			return ls
		}, KindEdited, 10},
		{"garbage line", func(ls [][]byte) [][]byte {
			ls[2] = []byte("{\"oops\":1}\n")
			return ls
		}, KindEdited, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "audit")
			appendN(t, dir, testKey, 10, EventResolve)
			tamper(t, dir, c.edit)
			for _, key := range [][]byte{testKey, nil} {
				r := verify(t, dir, key)
				found := false
				for _, p := range r.Problems {
					if p.Kind == c.kind && (c.seq == 0 || p.Seq == c.seq) {
						found = true
					}
				}
				if !found {
					if key == nil && (c.name == "insert a forged sealed line" || c.name == "edit the last record") {
						// Without the key a well-formed forgery is only
						// caught by what follows it; these need the MAC.
						if !r.OK() || c.name == "edit the last record" {
							continue
						}
					}
					t.Errorf("key=%v: want %s at seq %d, got %v", key != nil, c.kind, c.seq, r.Problems)
				}
			}
		})
	}
}

func TestRotationAndRemovedSegment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	l, err := Open(dir, Options{Key: testKey, SegmentSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := l.Append(rec(EventResolve, i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	segs, _ := listSegments(dir)
	if len(segs) < 5 {
		t.Fatalf("%d segments, want rotation", len(segs))
	}
	wantOK(t, verify(t, dir, testKey))
	if n := len(lines(t, dir)); n != 200 {
		t.Fatalf("scan found %d records, want 200", n)
	}
	os.Remove(filepath.Join(dir, segs[2]))
	r := verify(t, dir, testKey)
	if r.OK() || r.Problems[0].Kind != KindRemoved {
		t.Errorf("removed segment: %v", r.Problems)
	}
}

func TestConcurrentWriters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	var wg sync.WaitGroup
	// Separate Logs take the flock like separate processes do.
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := testKey
			if w == 3 {
				key = nil
			}
			l, err := Open(dir, Options{Key: key, SegmentSize: 32 << 10})
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Close()
			var inner sync.WaitGroup
			for g := range 8 {
				inner.Add(1)
				go func() {
					defer inner.Done()
					for i := range 100 {
						if err := l.Append(rec(EventResolve, g*100+i)); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	r := verify(t, dir, testKey)
	wantOK(t, r)
	n := 0
	if err := Scan(dir, Filter{Event: EventResolve}, func([]byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 3200 {
		t.Errorf("%d resolve records, want 3200", n)
	}
}

func TestCrashThenRepair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	for round := range 3 {
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), "AUDIT_CRASH_DIR="+dir)
		var errb bytes.Buffer
		c.Stderr = &errb
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it mid-stream: once it has written, at a varying moment.
		before := 0
		if r, err := Verify(dir, VerifyOptions{}); err == nil {
			before = r.Records
		}
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if r, err := Verify(dir, VerifyOptions{}); err == nil && r.Records > before+500 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(37*round) * time.Millisecond)
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
		if errb.Len() > 0 {
			t.Fatalf("helper: %s", errb.String())
		}
		r := verify(t, dir, testKey)
		for _, p := range r.Problems {
			if p.Kind != KindPartial {
				t.Fatalf("round %d: after kill -9: %v", round, p)
			}
		}
		t.Logf("round %d: %d records, problems %v", round, r.Records, r.Problems)
		if r.Records == 0 {
			t.Fatal("the helper wrote nothing")
		}
		partial := !r.OK()
		appendN(t, dir, testKey, 1, EventMount)
		wantOK(t, verify(t, dir, testKey))
		if partial {
			found := false
			Scan(dir, Filter{Event: EventRepair}, func([]byte) error { found = true; return nil })
			if !found {
				t.Error("a partial line was removed without a repair record")
			}
		}
	}
}

// TestDiskFull: when the record cannot be written, Append says so and
// leaves no partial line.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	dir := filepath.Join(mnt, "audit")
	l, err := Open(dir, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var failed error
	for i := 0; i < 10000 && failed == nil; i++ {
		failed = l.Append(rec(EventResolve, i))
	}
	if failed == nil || !strings.Contains(failed.Error(), "no space") {
		t.Fatalf("Append on a full disk: %v", failed)
	}
	r := verify(t, dir, testKey)
	for _, p := range r.Problems {
		if p.Kind != KindTruncated && p.Kind != KindAnchor { // the anchor write may be what failed
			t.Errorf("after ENOSPC: %v", p)
		}
	}
}

func TestQueryFilters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	l, _ := Open(dir, Options{Key: testKey})
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 100 {
		r := rec([]Event{EventResolve, EventDenied, EventMissing}[i%3], i)
		r.Time = base.Add(time.Duration(i) * time.Minute)
		r.Path = fmt.Sprintf("a/b%d/.env", i%4)
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	count := func(f Filter) int {
		n := 0
		if err := Scan(dir, f, func([]byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, c := range []struct {
		name string
		f    Filter
		want int
	}{
		{"all", Filter{}, 100},
		{"event", Filter{Event: EventDenied}, 33},
		{"key", Filter{Key: "K1"}, 20},
		{"key prefix is not a match", Filter{Key: "OPENAI"}, 0},
		{"pid", Filter{Pid: 1003}, 14},
		{"since", Filter{Since: base.Add(90 * time.Minute)}, 10},
		{"until", Filter{Until: base.Add(9 * time.Minute)}, 10},
		{"path", Filter{Path: "a/b1/.env"}, 25},
		{"path **", Filter{Path: "**/.env"}, 100},
		{"path *", Filter{Path: "a/*/.env"}, 100},
		{"grep", Filter{Grep: regexp.MustCompile(`"seq":(1|2)[0-9],`)}, 20},
		{"combined", Filter{Event: EventResolve, Key: "K0", Path: "a/b0/*"}, 2},
	} {
		if got := count(c.f); got != c.want {
			t.Errorf("%s: %d records, want %d", c.name, got, c.want)
		}
	}
	for _, s := range []string{"1h", "7d", "2026-01-01T12:00:00Z"} {
		if _, err := ParseTime(s, time.Now()); err != nil {
			t.Errorf("ParseTime(%q): %v", s, err)
		}
	}
	if _, err := ParseTime("yesterday", time.Now()); err == nil {
		t.Error("ParseTime accepted nonsense")
	}
}

func TestProcess(t *testing.T) {
	a := Process(os.Getpid())
	if a.Tgid != os.Getpid() || a.Exe == "" || !strings.Contains(a.Cmdline, "test") {
		t.Errorf("Process(self) = %+v", a)
	}
	if a := Process(1 << 30); a.Exe != "" {
		t.Errorf("a missing process: %+v", a)
	}
	_ = strconv.Itoa
}
