package reliability

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestKill9UnderWrites: four writer processes (one pasting a value) write
// and fsync files and an append-only log through the mount; the daemon is
// killed with SIGKILL mid-stream. Every file and log line whose fsync
// returned is in BACKING byte for byte, the next mount recovers the stale
// mountpoint and scrubs the pasted values, and no value is at rest.
func TestKill9UnderWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.start()
	const writers = 4
	var cmds []*exec.Cmd
	records := make([]string, writers)
	for i := range writers {
		dir := filepath.Join(e.mnt, fmt.Sprintf("w%d", i))
		must(t, os.Mkdir(dir, 0o755))
		records[i] = filepath.Join(e.priv, fmt.Sprintf("record%d", i))
		paste := "0"
		if i == 0 {
			paste = "1"
		}
		c := helper(context.Background(), asRoot, "writer", dir, records[i], paste)
		var errb bytes.Buffer
		c.Stderr = &errb
		must(t, c.Start())
		cmds = append(cmds, c)
	}
	// Kill mid-stream: after every writer has recorded at least one
	// fsynced file (slow to come on a loaded machine), and some more.
	if !eventually(cmdTimeout, func() bool {
		for _, r := range records {
			if b, err := os.ReadFile(r); err != nil || len(bytes.TrimSpace(b)) == 0 {
				return false
			}
		}
		return true
	}) {
		t.Errorf("not every writer recorded an fsynced file within %v", cmdTimeout)
	}
	time.Sleep(time.Second)
	d.signal(syscall.SIGKILL)
	if !d.exited(15 * time.Second) {
		t.Fatal("daemon survived SIGKILL")
	}
	for _, c := range cmds {
		waited := make(chan struct{})
		go func() { _ = c.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(15 * time.Second):
			_ = c.Process.Kill()
			<-waited
			t.Errorf("writer pid %d did not end within 15 s of the daemon's death", c.Process.Pid)
		}
	}
	if !eventually(5*time.Second, func() bool { return stale(e.mnt) }) {
		t.Errorf("after kill -9 the mountpoint is not stale (ENOTCONN)")
	}

	// The next mount recovers the stale mountpoint and scrubs.
	d2 := e.start()
	total := 0
	for i := range writers {
		dir := filepath.Join(e.backing, fmt.Sprintf("w%d", i))
		recb, err := os.ReadFile(records[i])
		must(t, err)
		lines := strings.Fields(string(recb))
		if len(lines) == 0 {
			t.Errorf("writer %d recorded no fsynced file before the kill", i)
			continue
		}
		last := -1
		for _, l := range lines {
			seq, err := strconv.Atoi(l)
			if err != nil {
				continue // a torn last record line
			}
			last = seq
			want := writerContent(filepath.Join(e.mnt, fmt.Sprintf("w%d", i)), seq, i == 0)
			if i == 0 {
				want = bytes.ReplaceAll(want, []byte(creds["REL_A"]), []byte(ph("REL_A")))
			}
			got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%06d", seq)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("writer %d file %d (fsynced before the kill): %d bytes, %v; want %d bytes as written", i, seq, len(got), err, len(want))
			}
			total++
		}
		var wantLog strings.Builder
		for k := 0; k <= last; k++ {
			wantLog.WriteString(logLine(k))
		}
		gotLog, err := os.ReadFile(filepath.Join(dir, "log"))
		if err != nil || !bytes.HasPrefix(gotLog, []byte(wantLog.String())) {
			t.Errorf("writer %d log: %d bytes (%v), want at least the %d fsynced bytes as a prefix", i, len(gotLog), err, wantLog.Len())
		}
	}
	t.Logf("kill -9 mid-stream of %d writers: %d fsynced files verified", writers, total)
	if !strings.Contains(e.log(), "did not stop cleanly") {
		t.Errorf("the second mount did not notice the unclean stop: %s", redact(e.log()))
	}
	// Through the new mount, a recorded file reads back.
	if _, err := os.ReadFile(filepath.Join(e.mnt, "w1", "f000000")); err != nil {
		t.Errorf("reading through the recovered mount: %v", err)
	}
	d2.stop()
	noLeakTree(t, e.priv) // backing, store dir, audit, marker, log
}

// tmpfs mounts a size-limited tmpfs at dir, removed at cleanup.
func tmpfs(t *testing.T, dir, size string) {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o700))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// fill writes zeros to path until ENOSPC; it returns the error it ended with.
func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			// Fill the last partial page too.
			for _, err2 := f.Write(buf[:1]); err2 == nil; _, err2 = f.Write(buf[:1]) {
			}
			return err
		}
	}
}

// TestBackingFull: BACKING on an 8 MiB tmpfs. A write through the mount
// that runs out of space fails with ENOSPC; the mount stays up; files
// stored before are intact; after freeing space a new file works.
func TestBackingFull(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tmpfs(t, e.backing, "8m")
	must(t, os.Chown(e.backing, agentUID, agentUID))
	d := e.start()

	before := map[string][]byte{
		"plain.txt": bytes.Repeat([]byte("stored before the disk filled\n"), 1000),
		".env":      []byte("A=" + ph("REL_A") + "\nB=" + ph("REL_B") + "\n"),
	}
	for name, b := range before {
		must(t, os.WriteFile(filepath.Join(e.mnt, name), b, 0o644))
	}
	// Fill through the mount.
	err := fill(filepath.Join(e.mnt, "filler"))
	if !isErrno(err, syscall.ENOSPC) {
		t.Errorf("writing past the end of an 8 MiB BACKING: %v, want ENOSPC", err)
	}
	// Another file: create may work, the write must fail with ENOSPC.
	werr := os.WriteFile(filepath.Join(e.mnt, "more"), bytes.Repeat([]byte("y"), 64<<10), 0o644)
	if !isErrno(werr, syscall.ENOSPC) {
		t.Errorf("a new 64 KiB file on a full BACKING: %v, want ENOSPC", werr)
	}
	// The consumer still resolves (needs no BACKING space); the mount is up.
	if got, errs := readAs(t, asConsumer, filepath.Join(e.mnt, ".env")); errs != "" || got != "A="+creds["REL_A"]+"\nB="+creds["REL_B"]+"\n" {
		t.Errorf("consumer read of .env on a full BACKING: %d bytes, %s", len(got), errs)
	}
	for name, b := range before {
		got, err := os.ReadFile(filepath.Join(e.mnt, name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s through the mount after ENOSPC: %d bytes, %v", name, len(got), err)
		}
		raw, err := os.ReadFile(filepath.Join(e.backing, name))
		if err != nil || !bytes.Equal(raw, b) {
			t.Errorf("backing %s after ENOSPC: %d bytes, %v", name, len(raw), err)
		}
	}
	// A consumer rewriting its file on a full disk must get an error, and
	// must not damage what is stored.
	f, err := os.OpenFile(filepath.Join(e.mnt, ".env"), os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, werr := f.Write(bytes.Repeat([]byte("z"), 1<<20))
		serr := f.Sync()
		cerr := f.Close()
		t.Logf("appending 1 MiB to .env on a full disk: write %v, fsync %v, close %v", werr, serr, cerr)
	}
	if raw, _ := os.ReadFile(filepath.Join(e.backing, ".env")); !bytes.HasPrefix(raw, before[".env"]) {
		t.Errorf("backing .env damaged by a write on a full disk: %d bytes", len(raw))
	}
	// Free space; a new small file works; the mount never went away.
	must(t, os.Remove(filepath.Join(e.mnt, "filler")))
	_ = os.Remove(filepath.Join(e.mnt, "more"))
	must(t, os.WriteFile(filepath.Join(e.mnt, "after.txt"), []byte("after freeing space\n"), 0o644))
	if got, _ := os.ReadFile(filepath.Join(e.backing, "after.txt")); string(got) != "after freeing space\n" {
		t.Errorf("a new file after freeing space: %q", got)
	}
	if !d.exited(0) && !mounted(e.mnt) {
		t.Errorf("the mount went away")
	}
	if d.exited(0) {
		t.Errorf("the daemon exited on a full BACKING: %s", redact(e.log()))
	}
}

func isErrno(err error, want syscall.Errno) bool {
	var en syscall.Errno
	for err != nil {
		if x, ok := err.(syscall.Errno); ok {
			en = x
			break
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			break
		}
		err = u.Unwrap()
	}
	return en == want
}

// TestAuditFull: the audit directory on a tiny tmpfs, filled after the
// mount is up. A consumer's open of a templated file must fail (EIO)
// rather than resolve unaudited; every resolution that did succeed is in
// the audit log; the agent's raw read keeps working.
func TestAuditFull(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	auditDir := filepath.Join(e.priv, "audit")
	tmpfs(t, auditDir, "256k")
	must(t, os.Chmod(auditDir, 0o700))
	e.start()
	raw := "A=" + ph("REL_A") + "\n"
	must(t, os.WriteFile(filepath.Join(e.mnt, ".env"), []byte(raw), 0o644))
	if got, errs := readAs(t, asConsumer, filepath.Join(e.mnt, ".env")); errs != "" || got != "A="+creds["REL_A"]+"\n" {
		t.Fatalf("consumer read before the audit filled: %d bytes, %s", len(got), errs)
	}
	ferr := fill(filepath.Join(auditDir, "zz-filler"))
	if !isErrno(ferr, syscall.ENOSPC) {
		t.Fatalf("filling the audit tmpfs: %v", ferr)
	}
	// A record may still fit in the last page of the current segment;
	// within a few reads every open must fail, and none may resolve
	// without its record.
	ok, failed := 0, 0
	var lastErr string
	for i := 0; i < 40 && failed < 5; i++ {
		got, errs := readAs(t, asConsumer, filepath.Join(e.mnt, ".env"))
		switch {
		case errs == "":
			if got != "A="+creds["REL_A"]+"\n" {
				t.Errorf("consumer read on a full audit: %d bytes, neither value nor error", len(got))
			}
			ok++
		default:
			failed++
			lastErr = errs
			if got != "" {
				t.Errorf("a failed consumer open still returned %d bytes", len(got))
			}
		}
	}
	t.Logf("audit full: %d consumer reads resolved (records still fitting), %d failed: %s", ok, failed, lastErr)
	if failed == 0 {
		t.Errorf("40 consumer reads on a full audit filesystem all resolved: not fail-closed")
	} else if !strings.Contains(lastErr, "input/output error") {
		t.Errorf("consumer open on a full audit: %q, want EIO", lastErr)
	}
	// The agent's raw read needs no record.
	if got, errs := readAs(t, asAgent, filepath.Join(e.mnt, ".env")); errs != "" || got != raw {
		t.Errorf("agent read on a full audit: %q, %s", redact(got), errs)
	}
	// Free space: each resolution that succeeded has its record.
	must(t, os.Remove(filepath.Join(auditDir, "zz-filler")))
	time.Sleep(300 * time.Millisecond)
	out, errs, code := e.faciofs("audit", "--event", "resolve", "--json")
	if code != 0 {
		t.Fatalf("faciofs audit: exit %d: %s", code, redact(errs))
	}
	n := strings.Count(strings.TrimSpace(out), "\n") + 1
	if strings.TrimSpace(out) == "" {
		n = 0
	}
	if n < ok+1 {
		t.Errorf("%d consumer reads resolved but the audit log holds %d resolve records: a resolution went unaudited", ok+1, n)
	}
}

// TestUnmountUnderLoad: readers and writers busy in the mount.
// `faciofs unmount` either unmounts or says "busy", within a bound; SIGTERM
// detaches the mount and the daemon exits once its users leave; a second
// SIGTERM stops it at once. Nothing stays mounted or running.
func TestUnmountUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.start()
	must(t, os.WriteFile(filepath.Join(e.mnt, ".env"), []byte("A="+ph("REL_A")+"\n"), 0o644))
	exp := filepath.Join(e.exp, "exp")
	must(t, os.WriteFile(exp, []byte("A="+creds["REL_A"]+"\n"), 0o600))
	expRaw := filepath.Join(e.dir, "expraw") // the agent reads it
	must(t, os.WriteFile(expRaw, []byte("A="+ph("REL_A")+"\n"), 0o644))
	wdir := filepath.Join(e.mnt, "rw")
	must(t, os.Mkdir(wdir, 0o777))

	// The load works in the mount by relative paths from a working
	// directory taken at exec, so a helper slow to start still uses the
	// detached mount after SIGTERM, never the empty mountpoint below it
	// (where its writes would make the next mount refuse a non-empty
	// directory).
	load := func(secs int) []*exec.Cmd {
		var cs []*exec.Cmd
		for _, c := range []*exec.Cmd{
			helper(context.Background(), asConsumer, "readloop", ".env", exp, strconv.Itoa(secs)),
			helper(context.Background(), asAgent, "readloop", ".env", expRaw, strconv.Itoa(secs)),
			helper(context.Background(), asRoot, "rw", filepath.Base(wdir), strconv.Itoa(secs), "1"),
		} {
			c.Dir = e.mnt
			must(t, c.Start())
			cs = append(cs, c)
		}
		return cs
	}
	waitAll := func(cs []*exec.Cmd, within time.Duration) {
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := make(chan struct{})
				go func() { _ = c.Wait(); close(w) }()
				select {
				case <-w:
				case <-time.After(within):
					_ = c.Process.Kill()
					<-w
					t.Errorf("load process %v hung", c.Args)
				}
			}()
		}
		wg.Wait()
	}

	// 1. faciofs unmount while busy: a clear "busy" error, quickly.
	cs := load(4)
	time.Sleep(time.Second)
	start := time.Now()
	out, errs, code := e.faciofs("unmount", e.mnt)
	took := time.Since(start)
	switch {
	case took > 10*time.Second:
		t.Errorf("faciofs unmount under load took %v", took)
	case code == 0:
		t.Logf("faciofs unmount under load unmounted cleanly in %v: %s", took, out)
	case strings.Contains(errs, "busy") && strings.Count(strings.TrimSpace(errs), "\n") == 0:
		t.Logf("faciofs unmount under load: exit %d in %v: %s", code, took, strings.TrimSpace(errs))
	default:
		t.Errorf("faciofs unmount under load: exit %d, stderr %q: want success or one line saying busy", code, errs)
	}
	if code == 0 {
		waitAll(cs, 20*time.Second)
		if !d.exited(15 * time.Second) {
			t.Fatalf("daemon still running after a successful unmount")
		}
		return
	}
	waitAll(cs, 20*time.Second)

	// 2. SIGTERM under load: detached at once, exit when users leave.
	cs = load(3)
	time.Sleep(500 * time.Millisecond)
	d.signal(syscall.SIGTERM)
	if !eventually(10*time.Second, func() bool { return !mounted(e.mnt) }) {
		t.Errorf("still mounted 10 s after SIGTERM under load")
	}
	waitAll(cs, 20*time.Second)
	if !d.exited(15 * time.Second) {
		t.Errorf("daemon did not exit within 15 s of its users leaving after SIGTERM; log: %s", redact(e.log()))
		d.signal(syscall.SIGTERM)
		if !d.exited(10 * time.Second) {
			t.Fatalf("daemon did not exit on a second SIGTERM")
		}
	}
	if c := d.exitCode(); c != 0 {
		t.Errorf("exit %d after SIGTERM under load", c)
	}

	// 3. A second SIGTERM stops the daemon at once, users or not.
	d2 := e.start()
	hold, err := os.Open(filepath.Join(e.mnt, ".env")) // a user that never leaves
	must(t, err)
	defer hold.Close()
	cs = load(3)
	time.Sleep(500 * time.Millisecond)
	d2.signal(syscall.SIGTERM)
	// The second SIGTERM only counts as a second one once the first was
	// taken (two pending signals merge into one): the detach shows it.
	if !eventually(10*time.Second, func() bool { return !mounted(e.mnt) }) {
		t.Errorf("still mounted 10 s after the first SIGTERM under load")
	}
	d2.signal(syscall.SIGTERM)
	stopped := d2.exited(10 * time.Second)
	waitAll(cs, 20*time.Second)
	if !stopped {
		t.Errorf("BUG: the daemon did not exit within 10 s of a second SIGTERM while a file stays open in the mount (it exited only after: %v); log: %s",
			d2.exited(15*time.Second), redact(e.log()))
	}
	hold.Close()
	if !d2.exited(20 * time.Second) {
		t.Fatalf("daemon still running 20 s after its last user left")
	}
	if mounted(e.mnt) {
		t.Errorf("%s still mounted after the daemon exited", e.mnt)
	}
}

// TestDamagedStore: a store damaged while unmounted makes `faciofs mount`
// refuse in one line, exit non-zero, mount nothing.
func TestDamagedStore(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	good, err := os.ReadFile(templateStore)
	must(t, err)
	flip := func(b []byte, offs ...int) []byte {
		c := bytes.Clone(b)
		for _, o := range offs {
			c[o] ^= 0x5a
		}
		return c
	}
	// The format record: key "format" then a big-endian u32 version.
	// Every copy is patched: bbolt may keep an older page with it.
	fmtKey := append([]byte("format"), 0, 0, 0, 1)
	fmtAt := bytes.Index(good, fmtKey)
	cases := map[string][]byte{
		"truncated to half":      good[:len(good)/2],
		"truncated to 100 bytes": good[:100],
		"empty":                  {},
		"garbage":                bytes.Repeat([]byte("not a store, just garbage\n"), 2000),
		"bytes flipped in every non-zero page": func() []byte {
			c := bytes.Clone(good)
			for p := 2 * 4096; p+4096 <= len(c); p += 4096 {
				page := c[p : p+4096]
				// flip bytes near the start, middle and end of each used page
				for _, o := range []int{16, 200, 1000, 2048, 4000} {
					if page[o] != 0 {
						page[o] ^= 0x5a
					}
				}
			}
			return c
		}(),
		"both meta pages flipped": flip(good, 20, 40, 4096+20, 4096+40),
	}
	if fmtAt >= 0 {
		v := bytes.Clone(good)
		for i := bytes.Index(v, fmtKey); i >= 0; i = bytes.Index(v, fmtKey) {
			binary.BigEndian.PutUint32(v[i+6:], 99)
		}
		cases["format version 99"] = v
	} else {
		t.Logf("format record not found in the store file: wrong-version case skipped")
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			must(t, os.WriteFile(e.store, content, 0o600))
			d := e.spawn()
			if !d.exited(30 * time.Second) {
				t.Fatalf("faciofs mount with a damaged store did not exit: %s", redact(d.stdout.String()))
			}
			errText := strings.TrimSpace(e.log())
			lines := strings.Split(errText, "\n")
			if d.exitCode() == 0 {
				t.Errorf("faciofs mount with a damaged store exited 0")
			}
			if strings.Contains(d.stdout.String(), readyPrefix) {
				t.Errorf("faciofs mount served a damaged store")
			}
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "faciofs: ") || len(lines[0]) < 20 {
				t.Errorf("want one clear error line, got %d lines: %q", len(lines), redact(errText))
			}
			if strings.Contains(strings.ToLower(errText), "panic") || strings.Contains(errText, "goroutine") || strings.Contains(errText, "runtime error") {
				t.Errorf("panic on a damaged store: %s", redact(errText))
			}
			if mounted(e.mnt) {
				t.Errorf("a failed mount left %s mounted", e.mnt)
			}
			t.Logf("exit %d: %s", d.exitCode(), redact(errText))
		})
	}
}

// TestPolicyGarbageReload: the policy file is replaced with garbage and
// SIGHUP sent, several times, while a consumer reads in a loop. The old
// policy stays: every consumer read resolves; each failure is audited.
func TestPolicyGarbageReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.start()
	must(t, os.WriteFile(filepath.Join(e.mnt, ".env"), []byte("A="+ph("REL_A")+"\n"), 0o644))
	exp := filepath.Join(e.exp, "exp")
	must(t, os.WriteFile(exp, []byte("A="+creds["REL_A"]+"\n"), 0o600))
	c := helper(context.Background(), asConsumer, "readloop", filepath.Join(e.mnt, ".env"), exp, "4")
	var out bytes.Buffer
	c.Stdout = &out
	must(t, c.Start())
	garbage := []string{
		"\x00\x01\x02 not yaml {{{ [[[",
		"version: 1\nconsumers:\n  - name: x\n    match: {exe: [/bin/sh]}\n    credentials: [\"*\"]\n    paths: [\"/abs\"]\n",
		"version: 2\n",
	}
	failedReloads := func() int {
		aout, _, _ := e.faciofs("audit", "--event", "policy.reload_failed", "--json")
		return strings.Count(aout, "policy.reload_failed")
	}
	for i, g := range garbage {
		time.Sleep(400 * time.Millisecond)
		must(t, os.WriteFile(e.policy, []byte(g), 0o600))
		d.signal(syscall.SIGHUP)
		// Wait for this reload's record: two SIGHUPs that arrive before
		// the daemon takes the first are one signal (standard signals
		// do not queue).
		if !eventually(10*time.Second, func() bool { return failedReloads() > i }) {
			t.Errorf("garbage policy %d: no policy.reload_failed record", i)
		}
	}
	must(t, c.Wait())
	res := out.String()
	var reads, bad, errs int
	fmt.Sscanf(res, "reads=%d bad=%d errs=%d", &reads, &bad, &errs)
	if reads == 0 || bad != 0 || errs != 0 {
		t.Errorf("consumer during %d garbage reloads: %s; want every read resolved", len(garbage), redact(res))
	}
	t.Logf("consumer during garbage reloads: %s", strings.TrimSpace(redact(res)))
	time.Sleep(300 * time.Millisecond)
	aout, aerr, code := e.faciofs("audit", "--event", "policy.reload_failed", "--json")
	if code != 0 {
		t.Fatalf("faciofs audit: exit %d: %s", code, redact(aerr))
	}
	if n := strings.Count(aout, "policy.reload_failed"); n < len(garbage) {
		t.Errorf("%d failed reloads, %d policy.reload_failed records", len(garbage), n)
	}
	// The old policy is still in force after the loop too.
	if got, errs := readAs(t, asConsumer, filepath.Join(e.mnt, ".env")); got != "A="+creds["REL_A"]+"\n" {
		t.Errorf("consumer after garbage reloads: %d bytes, %s", len(got), errs)
	}
	if got, _ := readAs(t, asAgent, filepath.Join(e.mnt, ".env")); got != "A="+ph("REL_A")+"\n" {
		t.Errorf("agent after garbage reloads: %q", redact(got))
	}
	// A policy file truncated to nothing (an interrupted editor, a stray
	// `> policy.yaml`) is no policy: the reload must fail too.
	must(t, os.WriteFile(e.policy, nil, 0o600))
	d.signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	if got, _ := readAs(t, asConsumer, filepath.Join(e.mnt, ".env")); got != "A="+creds["REL_A"]+"\n" {
		t.Errorf("BUG: an empty policy file is accepted on SIGHUP as \"nobody is a consumer\" (policy.Load accepts a file without `version`); the old policy is not kept; consumer now reads %d raw bytes", len(got))
	}
}
