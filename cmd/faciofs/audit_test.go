package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// auditLines runs `faciofs audit --json ARGS...` and returns its records.
func (e *env) auditLines(args ...string) []map[string]any {
	e.t.Helper()
	r := e.ok("", append([]string{"audit", "--json"}, args...)...)
	var out []map[string]any
	for _, ln := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if ln == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			e.t.Fatalf("audit --json printed a line that is not JSON: %v", err)
		}
		out = append(out, m)
	}
	return out
}

// wantAudit checks that `audit --json ARGS...` finds at least one record
// and returns the first.
func (e *env) wantAudit(args ...string) map[string]any {
	e.t.Helper()
	got := e.auditLines(args...)
	if len(got) == 0 {
		e.t.Errorf("faciofs audit %s: no record", strings.Join(args, " "))
		return nil
	}
	return got[0]
}

// awaitAudit is wantAudit for records the daemon writes asynchronously
// (alog.Post): it retries the query for up to 10 s.
func (e *env) awaitAudit(args ...string) map[string]any {
	e.t.Helper()
	var got []map[string]any
	if !eventually(10*time.Second, func() bool { got = e.auditLines(args...); return len(got) > 0 }) {
		e.t.Errorf("faciofs audit %s: no record within 10s", strings.Join(args, " "))
		return nil
	}
	return got[0]
}

func actorField(m map[string]any, k string) any {
	a, _ := m["actor"].(map[string]any)
	return a[k]
}

// TestAuditEvents drives the real binary and a real mount through every
// event that exists today, then finds each with the query filters, checks
// the chain and greps every file for the fake values.
func TestAuditEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.ok("", "init")
	e.wantAudit("--event", "init")
	e.ok(valX+"\n", "secret", "set", "X")
	e.ok(valY+"\n", "secret", "set", "Y")
	e.ok(valX2+"\n", "secret", "set", "X")
	e.ok(valLocked+"\n", "secret", "set", "Z") // exists, but no rule covers it
	if m := e.wantAudit("--event", "secret.set", "--key", "Y"); m != nil && fmt.Sprint(m["credentials"]) != "[Y]" {
		t.Errorf("secret.set record names %v", m["credentials"])
	}
	e.wantAudit("--event", "secret.replace", "--key", "X")
	if got := e.auditLines("--event", "secret.set", "--key", "X"); len(got) != 1 {
		t.Errorf("--key X finds %d secret.set records, want 1 (the replace is secret.replace)", len(got))
	}
	e.ok("", "secret", "list")
	e.wantAudit("--event", "secret.list", "--key", "Z")
	bad := filepath.Join(e.dir, "badpw")
	writeFile(t, bad, "FAKE-not-the-password\n", 0o600)
	e.fail(3, "", []string{"--password-file", bad, "secret", "set", "X"}, "wrong master password")
	e.wantAudit("--event", "wrong_password")

	backing, mnt := e.mkdirs()
	exe := consumerExe(t, e.dir)
	pol := consumerPolicy(t, e.dir, exe)
	// NOPE is covered but does not exist (missing); Z exists but is not
	// covered (denied).
	writeFile(t, pol, strings.Replace(string(readFile(t, pol)), "[X, Y]", "[X, Y, NOPE]", 1), 0o600)
	d := e.startMount(mnt, "--policy", pol, backing)
	d.ready()
	if m := e.wantAudit("--event", "mount", "--pid", strconv.Itoa(d.pid())); m != nil && m["outcome"] != "ok" {
		t.Errorf("mount record: %v", m)
	}
	e.wantAudit("--event", "policy.load", "--grep", "test-consumer")

	if err := os.MkdirAll(filepath.Join(mnt, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mnt, "app", ".env"), "A=${credentials.X}\nB=${credentials.NOPE}\nC=${credentials.Z}\nD=${credentials.bad|nofilter}\n", 0o644)
	if got := readAs(t, exe, filepath.Join(mnt, "app", ".env")); !strings.Contains(got, "A="+valX2) {
		t.Fatalf("consumer read %q", redact(got))
	}
	if got := readAs(t, "cat", filepath.Join(mnt, "app", ".env")); strings.Contains(got, valX2) {
		t.Fatal("the agent read a value")
	}
	// The agent pastes a value; the close reverse-substitutes it.
	writeFile(t, filepath.Join(mnt, "app", "pasted.txt"), "token "+valY+"\n", 0o644)

	if m := e.wantAudit("--event", "resolve", "--key", "X", "--path", "app/*"); m != nil {
		if actorField(m, "exe") != exe || actorField(m, "rule") != "consumer:test-consumer" || m["path"] != "app/.env" {
			t.Errorf("resolve record: exe %v rule %v path %v", actorField(m, "exe"), actorField(m, "rule"), m["path"])
		}
		if pid, _ := actorField(m, "pid").(float64); pid <= 0 {
			t.Errorf("resolve record without a pid: %v", m)
		}
	}
	// These are posted to the log asynchronously: wait for them.
	e.awaitAudit("--event", "missing", "--key", "NOPE", "--path", "**/.env")
	e.awaitAudit("--event", "denied", "--key", "Z")
	e.awaitAudit("--event", "reverse_substitution", "--key", "Y", "--path", "app/pasted.txt")
	// The agent's cat of a templated file on a covered path, and the
	// consumer's read of a file with a malformed reference.
	e.awaitAudit("--event", "raw_served", "--path", "app/.env")
	e.awaitAudit("--event", "malformed", "--path", "app/.env")

	writeFile(t, pol, "version: 1\nconsumers: [ {name: x, nonsense: true} ]\n", 0o600)
	d.signal(syscall.SIGHUP)
	if !eventually(10*time.Second, func() bool { return len(e.auditLines("--event", "policy.reload_failed")) > 0 }) {
		t.Error("no policy.reload_failed record")
	}
	consumerPolicy(t, e.dir, exe)
	d.signal(syscall.SIGHUP)
	if !eventually(10*time.Second, func() bool { return len(e.auditLines("--event", "policy.reload")) > 0 }) {
		t.Error("no policy.reload record")
	}
	// Verify while the mount holds the store (a private copy is unlocked).
	e.ok("", "audit", "verify")

	d.signal(syscall.SIGTERM)
	if !d.exited(20 * time.Second) {
		t.Fatal("mount did not stop")
	}
	e.wantAudit("--event", "unmount")

	writeFile(t, filepath.Join(e.dir, "newpw"), newPassword+"\n", 0o600)
	e.ok("", "passwd", "--new-password-file", filepath.Join(e.dir, "newpw"))
	e.wantAudit("--event", "passwd")
	e.pwFile = filepath.Join(e.dir, "newpw")

	// Time filters and the table.
	if got := e.auditLines("--since", "1h", "--until", time.Now().Add(time.Minute).Format(time.RFC3339)); len(got) < 15 {
		t.Errorf("--since 1h finds %d records", len(got))
	}
	if got := e.auditLines("--until", "2000-01-01T00:00:00Z"); len(got) != 0 {
		t.Errorf("--until 2000 finds %d records", len(got))
	}
	table := e.ok("", "audit", "--event", "resolve").stdout
	if !strings.HasPrefix(table, "TIME") || !strings.Contains(table, "consumer:test-consumer") || !strings.Contains(table, "app/.env") {
		t.Errorf("table: %s", redact(table))
	}
	r := e.ok("", "audit", "verify")
	if !strings.Contains(r.stdout, "audit trail ok") || !strings.Contains(r.stdout, "MACs checked") {
		t.Errorf("verify: %s", redact(r.stdout))
	}
	noLeakTree(t, filepath.Dir(e.store))
	e.fail(2, "", []string{"audit", "--since", "yesterday"}, "--since")
}

// TestAuditVerifyTamper edits a real log in each way and expects `audit
// verify` to exit 1 naming the kind of edit.
func TestAuditVerifyTamper(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	for range 4 {
		e.ok("", "secret", "list")
	}
	e.ok(valY+"\n", "secret", "set", "Y") // seals the four
	e.ok("", "secret", "list")
	e.ok(valY+"\n", "secret", "set", "Y")
	e.ok("", "audit", "verify")
	dir := filepath.Join(filepath.Dir(e.store), "audit")
	seg := filepath.Join(dir, "seg-00000000000000000001.jsonl")
	orig := readFile(t, seg)
	ls := bytes.SplitAfter(orig, []byte("\n"))
	ls = ls[:len(ls)-1]
	if len(ls) != 9 { // 4 lists, seal, set, list, seal, set
		t.Fatalf("%d records, want 9", len(ls))
	}
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		name, want string
		data       []byte
	}{
		{"edit a field", "edited", join(ls[0], ls[1], bytes.Replace(ls[2], []byte(`"outcome":"ok"`), []byte(`"outcome":"no"`), 1), join(ls[3:]...))},
		{"remove a line", "removed", join(join(ls[:3]...), join(ls[4:]...))},
		{"swap two lines", "reordered", join(ls[0], ls[2], ls[1], join(ls[3:]...))},
		{"insert a copied line", "inserted", join(join(ls[:5]...), ls[1], join(ls[5:]...))},
		{"truncate the tail", "truncated", join(ls[:6]...)},
		{"partial last line", "partial", join(orig, ls[3][:40])},
	} {
		writeFile(t, seg, string(c.data), 0o600)
		r := e.run("", "audit", "verify")
		if r.code != 1 || !strings.Contains(r.stdout, c.want+":") || !strings.Contains(r.stdout, "seg-") && c.want != "truncated" && c.want != "removed" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 naming %q", c.name, r.code, r.stdout, r.stderr, c.want)
		}
	}
	// The partial last line (still there) is repaired, and audited, by
	// the next writer.
	e.ok("", "secret", "list")
	e.ok(valY+"\n", "secret", "set", "Y")
	e.ok("", "audit", "verify")
	e.wantAudit("--event", "repair")

	// Without a password source verify says how to proceed.
	e.pwFile = ""
	e.fail(2, "", []string{"audit", "verify"}, "--chain-only")
	if r := e.ok("", "audit", "verify", "--chain-only"); !strings.Contains(r.stdout, "NOT checked") {
		t.Errorf("chain-only: %s", r.stdout)
	}
}
