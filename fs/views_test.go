package fs_test

// Real-process tests of per-view nodes: a consumer uid and an agent uid (and
// root, which the test policy treats as a non-consumer) read, map, copy and
// write templated files on a live mount with real system calls, and the
// agent must never obtain a value, nor the consumer a wrong byte.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faciofs/faciofs/internal/leakcheck"
)

// seg is one piece of a test file: its raw bytes and what a consumer of
// every credential reads in its place.
type seg struct{ raw, rendered string }

func lit(s string) seg { return seg{s, s} }

func filler(n int, c byte) seg {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i+int(c))%26
		if i%64 == 63 {
			b[i] = '\n'
		}
	}
	return lit(string(b))
}

// doc is a templated file with its rendered forms.
type doc []seg

func (d doc) raw() []byte {
	var b []byte
	for _, s := range d {
		b = append(b, s.raw...)
	}
	return b
}

func (d doc) rendered() []byte {
	var b []byte
	for _, s := range d {
		b = append(b, s.rendered...)
	}
	return b
}

const (
	phKey   = "${credentials.OPENAI_API_KEY}"
	phToken = "${credentials.API_TOKEN}"
)

func keySeg() seg   { return seg{phKey, fakeKey} }
func tokenSeg() seg { return seg{phToken, fakeToken} }

// bigDoc is about three pages with placeholders across both page
// boundaries, at odd offsets, a filter, an escape and binary bytes.
func bigDoc() doc { return bigDocEsc(true) }

// bigDocEsc is bigDoc, with or without the escape. Files that a consumer
// writes back cannot have one: Reverse does not restore escapes (documented
// in resolve.Matcher.Reverse).
func bigDocEsc(escape bool) doc {
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	d := doc{lit("OPENAI_API_KEY="), keySeg(), lit("\nTOKEN="), tokenSeg()}
	if escape {
		d = append(d, lit("\nESC="), seg{"$" + phKey, phKey}) // consumers get the literal
	}
	d = append(d, lit("\nB64="), seg{"${credentials.OPENAI_API_KEY|base64}", base64.StdEncoding.EncodeToString([]byte(fakeKey))},
		lit("\n"), lit(string(bin)))
	n := len(d.raw())
	d = append(d, filler(4096-n-7, 3), keySeg()) // key starts 7 bytes before 4096
	n = len(d.raw())
	d = append(d, filler(8192-n-11, 5), tokenSeg(), lit("x"), keySeg(), filler(1000, 9), keySeg())
	return d
}

// writeBacking puts a file straight into the backing directory.
func writeBacking(t *testing.T, tm *testMount, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(tm.backing, name)
	if err := os.WriteFile(p, data, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o666)
	return filepath.Join(tm.mnt, name)
}

func readBacking(t *testing.T, tm *testMount, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tm.backing, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantBytes compares without printing values: sizes and the first
// differing offset only.
func wantBytes(t *testing.T, label string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: got %d bytes, want %d; first difference at offset %d", label, len(got), len(want), i)
}

var readOps = []string{"read", "pread", "readv", "mmap-private", "mmap-shared", "sendfile", "splice", "cfr-out", "odirect"}

// TestViewsReadPaths runs every read path as the consumer, the agent and
// root: the agent and root get the raw bytes, the consumer the rendered
// bytes, and no non-consumer output holds a value in any encoding.
func TestViewsReadPaths(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	d := bigDoc()
	raw, rendered := d.raw(), d.rendered()
	p := writeBacking(t, tm, "big.env", raw)
	for _, op := range readOps {
		for _, r := range []role{consumerRole, agentRole, rootRole} {
			t.Run(op+"/"+r.name, func(t *testing.T) {
				got := mustHelper(t, r, op, p)
				if r == consumerRole {
					wantBytes(t, op, got, rendered)
					if !bytes.Contains(got, []byte(fakeKey)) {
						t.Errorf("%s: consumer output lacks the key", op)
					}
					return
				}
				assertNoLeak(t, r.name+" "+op, got)
				wantBytes(t, op, got, raw)
			})
		}
	}
	// Programs, not just syscalls.
	outDir := worldDir(t)
	os.Chmod(outDir, 0o777)
	for _, r := range []role{consumerRole, agentRole, rootRole} {
		t.Run("cat-cp/"+r.name, func(t *testing.T) {
			want := raw
			if r == consumerRole {
				want = rendered
			}
			got, err := runCmdAs(t, r, "cat", p)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(outDir, "cp-"+r.name)
			if _, err := runCmdAs(t, r, "cp", p, dst); err != nil {
				t.Fatal(err)
			}
			copied, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if r != consumerRole {
				assertNoLeak(t, r.name+" cat", got)
				assertNoLeak(t, r.name+" cp", copied)
			}
			wantBytes(t, "cat", got, want)
			wantBytes(t, "cp", copied, want)
		})
	}
	assertNoLeak(t, "backing after reads", readBacking(t, tm, "big.env"))
}

// TestViewsCopyInsideMount copies a templated file to a new file in the
// mount with copy_file_range (destination opened O_WRONLY as cp(1) does, and
// O_RDWR), and with cp(1) itself: the agent's copy is raw, the consumer's
// copy reads back rendered, and no copy holds a value in the backing dir.
func TestViewsCopyInsideMount(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	d := bigDocEsc(false)
	p := writeBacking(t, tm, "src.env", d.raw())
	for _, r := range []role{consumerRole, agentRole, rootRole} {
		for _, mode := range []string{"wronly", "rdwr"} {
			t.Run(r.name+"/"+mode, func(t *testing.T) {
				name := "copy-" + r.name + "-" + mode
				env := []string{envDest + "=" + filepath.Join(tm.mnt, name)}
				if mode == "rdwr" {
					env = append(env, envDestRW+"=1")
				}
				res := runHelperAs(t, r, "cfr-in", p, env...)
				if res.unsupported() {
					t.Skipf("not supported here: %s", res.stderr)
				}
				if res.code != 0 {
					if r == consumerRole && mode == "wronly" && strings.Contains(string(res.stderr), "bad file descriptor") {
						t.Errorf("FS-CREATE-WRONLY: consumer open(O_WRONLY|O_CREAT) of a new file fails: %s", strings.TrimSpace(string(res.stderr)))
						return
					}
					t.Fatalf("cfr-in: exit %d: %s", res.code, res.stderr)
				}
				got := res.out
				if r == consumerRole {
					wantBytes(t, "copy read back", got, d.rendered())
				} else {
					assertNoLeak(t, r.name+" copy read back", got)
					wantBytes(t, "copy read back", got, d.raw())
				}
				back := readBacking(t, tm, name)
				assertNoLeak(t, "backing of "+name, back)
				wantBytes(t, "backing of "+name, back, d.raw())
				// The agent reading the consumer's copy gets placeholders.
				assertNoLeak(t, "agent reading "+name, mustHelper(t, agentRole, "read", filepath.Join(tm.mnt, name)))
			})
		}
		t.Run(r.name+"/cp", func(t *testing.T) {
			name := "cp-" + r.name
			_, err := runCmdAs(t, r, "cp", p, filepath.Join(tm.mnt, name))
			if err != nil {
				if r == consumerRole && strings.Contains(err.Error(), "Bad file descriptor") {
					t.Errorf("FS-CREATE-WRONLY: consumer cp into the mount fails: %v", err)
					return
				}
				t.Fatal(err)
			}
			back := readBacking(t, tm, name)
			assertNoLeak(t, "backing of "+name, back)
			wantBytes(t, "backing of "+name, back, d.raw())
		})
	}
}

// TestViewsConsumerShellRedirect: a consumer creating a file the most
// common way, a shell's '>' (open O_WRONLY|O_CREAT|O_TRUNC), with a value
// in it: it works and the backing dir gets the placeholder.
func TestViewsConsumerShellRedirect(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	p := filepath.Join(tm.mnt, "redirect.env")
	_, err := runCmdAs(t, consumerRole, "sh", "-c", `printf 'KEY=%s\n' "$1" > "$2"`, "sh", fakeKey, p)
	if err != nil {
		if strings.Contains(err.Error(), "Bad file descriptor") {
			t.Errorf("FS-CREATE-WRONLY: consumer `printf ... > %s` fails: %v", filepath.Base(p), err)
			if b, err := os.ReadFile(filepath.Join(tm.backing, "redirect.env")); err == nil {
				assertNoLeak(t, "backing after failed redirect", b)
				t.Logf("the failed create still left a %d-byte file in the backing dir", len(b))
			}
			return
		}
		t.Fatal(err)
	}
	back := readBacking(t, tm, "redirect.env")
	assertNoLeak(t, "backing after consumer redirect", back)
	wantBytes(t, "backing after consumer redirect", back, []byte("KEY="+phKey+"\n"))
}

// TestViewsStatSizes: stat, fstat, statx and readdir sizes are the raw
// length for non-consumers and the rendered length for the consumer.
func TestViewsStatSizes(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	d := bigDoc()
	p := writeBacking(t, tm, "big.env", d.raw())
	rawLen, renLen := strconv.Itoa(len(d.raw())), strconv.Itoa(len(d.rendered()))
	if rawLen == renLen {
		t.Fatal("test file must render to another length")
	}
	// Each role after the others, twice, so that every role follows a
	// lookup by another view.
	order := []role{consumerRole, agentRole, rootRole, agentRole, consumerRole, rootRole, consumerRole}
	for i, r := range order {
		want := rawLen
		if r == consumerRole {
			want = renLen
		}
		for _, op := range []string{"stat", "statx", "fstat"} {
			got := string(mustHelper(t, r, op, p))
			if got != want {
				if r == consumerRole && got == rawLen && i > 0 && order[i-1] != consumerRole {
					t.Errorf("FS-RAW-DENTRY-SIZE: step %d: consumer %s right after a non-consumer's walk: raw size %s, want %s", i, op, got, want)
					continue
				}
				t.Errorf("step %d %s %s: size %s, want %s", i, r.name, op, got, want)
			}
		}
		ls := string(mustHelper(t, r, "readdir", tm.mnt))
		if !strings.Contains(ls, "big.env "+want+"\n") {
			t.Errorf("step %d %s readdir: %q, want size %s", i, r.name, ls, want)
		}
	}
}

// TestViewsXattr: extended attributes are the same for every view and
// never rendered.
func TestViewsXattr(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	p := writeBacking(t, tm, "x.env", []byte("K="+phKey+"\n"))
	if err := syscall.Setxattr(filepath.Join(tm.backing, "x.env"), "user.note", []byte("see "+phKey), 0); err != nil {
		t.Skipf("backing filesystem has no user xattrs: %v", err)
	}
	for _, r := range []role{consumerRole, agentRole, rootRole} {
		got := mustHelper(t, r, "xattr", p)
		assertNoLeak(t, r.name+" xattr", got)
		if !bytes.Contains(got, []byte("user.note=see "+phKey)) {
			t.Errorf("%s xattr: %q", r.name, got)
		}
	}
}

// TestXattrReverseSubstituted: an extended attribute a consumer sets with a
// value in it is stored with the placeholder instead, as file contents
// are, so the agent cannot read the value back through the mount or the
// backing file.
func TestXattrReverseSubstituted(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	p := writeBacking(t, tm, "x.env", []byte("K="+phKey+"\n"))
	if err := syscall.Setxattr(filepath.Join(tm.backing, "x.env"), "user.probe", []byte("x"), 0); err != nil {
		t.Skipf("backing filesystem has no user xattrs: %v", err)
	}
	value := "token " + fakeKey + " end"
	mustHelper(t, consumerRole, "setxattr", p, envXattr+"=user.note="+hex.EncodeToString([]byte(value)))
	buf := make([]byte, 4096)
	n, err := syscall.Getxattr(filepath.Join(tm.backing, "x.env"), "user.note", buf)
	if err != nil {
		t.Fatal(err)
	}
	assertNoLeak(t, "backing xattr", buf[:n])
	if got := string(buf[:n]); got != "token "+phKey+" end" {
		t.Errorf("stored xattr (%d bytes) is not the value replaced by its placeholder", len(got))
	}
	got := mustHelper(t, agentRole, "xattr", p)
	assertNoLeak(t, "agent xattr", got)
}

// TestNamesHoldingValuesRefused: a file, directory, link or rename target
// named with a value, or a symlink pointing at one, is refused (EPERM), so
// no value reaches the backing directory as a name; ordinary names work.
func TestNamesHoldingValuesRefused(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	writeBacking(t, tm, "ok.txt", []byte("x"))
	bad := filepath.Join(tm.mnt, "dump-"+fakeKey)
	for what, err := range map[string]error{
		"create":  func() error { f, err := os.Create(bad); f.Close(); return err }(),
		"mkdir":   os.Mkdir(bad, 0o755),
		"symlink": os.Symlink("ok.txt", bad),
		"target":  os.Symlink("to-"+fakeKey, filepath.Join(tm.mnt, "link")),
		"link":    os.Link(filepath.Join(tm.mnt, "ok.txt"), bad),
		"rename":  os.Rename(filepath.Join(tm.mnt, "ok.txt"), bad),
		"mkfifo":  syscall.Mkfifo(bad, 0o644),
	} {
		if !errors.Is(err, syscall.EPERM) {
			var errno syscall.Errno // the error's text would hold the name
			errors.As(err, &errno)
			t.Errorf("%s with a value in the name: errno %d (%v), want EPERM", what, errno, errno)
		}
	}
	ents, err := os.ReadDir(tm.backing)
	if err != nil {
		t.Fatal(err)
	}
	var names []byte
	for _, e := range ents {
		names = append(names, e.Name()+"\n"...)
	}
	assertNoLeak(t, "backing directory names", names)
	if err := os.Rename(filepath.Join(tm.mnt, "ok.txt"), filepath.Join(tm.mnt, "renamed.txt")); err != nil {
		t.Errorf("an ordinary rename: %v", err)
	}
}

// TestViewsMmapInterleavings: one role keeps a mapping whose pages it has
// touched while the other role maps the same file; then the first role
// reads its mapping again. Both orders, both mapping kinds.
func TestViewsMmapInterleavings(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	d := bigDoc()
	raw, rendered := d.raw(), d.rendered()
	p := writeBacking(t, tm, "m.env", raw)
	want := func(r role) []byte {
		if r == consumerRole {
			return rendered
		}
		return raw
	}
	check := func(t *testing.T, r role, label string, got []byte) {
		t.Helper()
		if r != consumerRole {
			assertNoLeak(t, r.name+" "+label, got)
		}
		wantBytes(t, r.name+" "+label, got, want(r))
	}
	for _, first := range []role{consumerRole, agentRole, rootRole} {
		for _, second := range []role{consumerRole, agentRole, rootRole} {
			if (first == consumerRole) == (second == consumerRole) {
				continue
			}
			for _, k1 := range []string{"private", "shared"} {
				for _, k2 := range []string{"private", "shared"} {
					t.Run(fmt.Sprintf("%s-%s_then_%s-%s", first.name, k1, second.name, k2), func(t *testing.T) {
						s1 := startSession(t, first)
						s1.must("open", p, "r")
						check(t, first, "first mapping", s1.must("mmap", k1))
						s2 := startSession(t, second)
						s2.must("open", p, "r")
						check(t, second, "second mapping", s2.must("mmap", k2))
						check(t, second, "second read(2)", s2.must("read"))
						check(t, first, "first mapping again", s1.must("mapread"))
						check(t, first, "first read(2) again", s1.must("read"))
						// A fresh process of the first role after both.
						check(t, first, "fresh mmap", mustHelper(t, first, "mmap-"+k1, p))
						s2.must("close")
						check(t, first, "first mapping after close", s1.must("mapread"))
						s1.must("close")
					})
				}
			}
		}
	}
}

// TestViewsOpenBeforeConsumerReads: the agent opens the file, the consumer
// reads it (all ways), then the agent reads through its old descriptor and
// maps it.
func TestViewsOpenBeforeConsumerReads(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	d := bigDoc()
	raw := d.raw()
	p := writeBacking(t, tm, "o.env", raw)
	for _, ar := range []role{agentRole, rootRole} {
		t.Run(ar.name, func(t *testing.T) {
			a := startSession(t, ar)
			a.must("open", p, "r")
			c := startSession(t, consumerRole)
			c.must("open", p, "r")
			wantBytes(t, "consumer read", c.must("read"), d.rendered())
			c.must("mmap", "shared")
			for _, op := range []string{"read", "mmap-private", "pread"} {
				wantBytes(t, "consumer "+op, mustHelper(t, consumerRole, op, p), d.rendered())
			}
			for _, cmd := range [][]string{{"read"}, {"mmap", "private"}, {"mapread"}, {"fstat"}} {
				got := a.must(cmd...)
				assertNoLeak(t, ar.name+" "+cmd[0], got)
				if cmd[0] == "fstat" {
					if string(got) != strconv.Itoa(len(raw)) {
						t.Errorf("agent fstat after consumer read: %s, want %d", got, len(raw))
					}
					continue
				}
				wantBytes(t, ar.name+" "+cmd[0], got, raw)
			}
			c.must("close")
			a.must("close")
		})
	}
}

// TestViewsStatRightAfterConsumer: a consumer reads and the agent stats the
// path at once, in one process pair that loops so the two fall into the same
// jiffy often. The size must be raw; a rendered size is the documented
// same-jiffy exception and is counted and reported.
func TestViewsStatRightAfterConsumer(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	d := bigDoc()
	p := writeBacking(t, tm, "s.env", d.raw())
	c := startSession(t, consumerRole)
	a := startSession(t, agentRole)
	rawLen, renLen := strconv.Itoa(len(d.raw())), strconv.Itoa(len(d.rendered()))
	const rounds = 300
	rendered, other := 0, 0
	for range rounds {
		c.must("open", p, "r")
		c.must("read")
		got := string(a.must("stat", p))
		c.must("close")
		switch got {
		case rawLen:
		case renLen:
			rendered++
		default:
			other++
		}
	}
	t.Logf("agent stat right after consumer read: %d/%d rendered sizes, %d other", rendered, rounds, other)
	if rendered > 0 || other > 0 {
		t.Errorf("agent saw the rendered size %d times and an unexpected size %d times in %d rounds (same-jiffy exception?)", rendered, other, rounds)
	}
}

// TestViewsConcurrentReaders: one consumer process and one agent process
// each read the same file 1000 times (open/read/close and mmap) at the same
// time. Zero leaks, zero wrong reads.
func TestViewsConcurrentReaders(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	d := bigDoc()
	p := writeBacking(t, tm, "c.env", d.raw())
	const n = 1000
	type proc struct {
		r        role
		cmd      *exec.Cmd
		out, err bytes.Buffer
		go_      io.WriteCloser
	}
	var procs []*proc
	for _, r := range []role{consumerRole, agentRole, rootRole} {
		want, leak := d.raw(), "1"
		if r == consumerRole {
			want, leak = d.rendered(), "0"
		}
		pr := &proc{r: r}
		pr.cmd = exec.Command(helperBinary(t))
		pr.cmd.Env = []string{envRole + "=" + r.name, envOp + "=loop", envPath + "=" + p,
			envN + "=" + strconv.Itoa(n), envExpect + "=" + hex.EncodeToString(want), envLeak + "=" + leak, goraceEnv}
		pr.cmd.SysProcAttr = r.attr()
		pr.cmd.Stdout, pr.cmd.Stderr = &pr.out, &pr.err
		w, err := pr.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		pr.go_ = w
		if err := pr.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, pr)
	}
	start := time.Now()
	waited := false
	t.Cleanup(func() {
		if !waited {
			for _, pr := range procs {
				pr.cmd.Process.Kill()
				pr.cmd.Wait()
			}
		}
	})
	for _, pr := range procs {
		io.WriteString(pr.go_, "go\n")
		pr.go_.Close()
	}
	// Generous for -race on a loaded machine, but ending before the test
	// binary's own deadline so that the loops' output is still reported.
	limit := 120 * time.Second
	if dl, ok := t.Deadline(); ok && time.Until(dl)-10*time.Second < limit {
		limit = time.Until(dl) - 10*time.Second
	}
	timeout := time.AfterFunc(limit, func() {
		t.Logf("loops still running after %v: killing them", limit)
		for _, pr := range procs {
			pr.cmd.Process.Kill()
		}
	})
	defer timeout.Stop()
	for _, pr := range procs {
		err := pr.cmd.Wait()
		res := pr.out.String()
		t.Logf("%s: %s", pr.r.name, res)
		if err != nil {
			t.Errorf("%s loop: %v: %s", pr.r.name, err, pr.err.String())
			continue
		}
		if !strings.Contains(res, "wrong=0 leaks=0 errors=0 ") {
			t.Errorf("%s loop: %s", pr.r.name, res)
		}
	}
	waited = true
	t.Logf("3 x %d rounds of read+mmap in %v", n, time.Since(start).Round(time.Millisecond))
}

// TestViewsConsumerRewrite: a consumer reads the resolved file and writes
// it back with an edit; the backing dir keeps placeholders (in every
// encoding's absence) and the edit.
func TestViewsConsumerRewrite(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	d := doc{lit("A="), keySeg(), lit("\nB64="),
		seg{"${credentials.OPENAI_API_KEY|base64}", base64.StdEncoding.EncodeToString([]byte(fakeKey))},
		lit("\nT="), tokenSeg(), filler(5000, 1), keySeg(), lit("\n")}
	p := writeBacking(t, tm, "rw.env", d.raw())
	c := startSession(t, consumerRole)
	c.must("open", p, "r")
	got := c.must("read")
	c.must("close")
	wantBytes(t, "consumer read", got, d.rendered())

	edit := []byte("\nEDITED=yes\n")
	c.must("open", p, "rwt")
	c.must("write", hex.EncodeToString(append(got, edit...)))
	// Not yet closed: the backing file must not hold a value already.
	assertNoLeak(t, "backing before close", readBacking(t, tm, "rw.env"))
	c.must("fsync")
	assertNoLeak(t, "backing after fsync", readBacking(t, tm, "rw.env"))
	c.must("close")
	back := readBacking(t, tm, "rw.env")
	assertNoLeak(t, "backing after close", back)
	wantBytes(t, "backing after rewrite", back, append(d.raw(), edit...))

	// Both views of the result.
	wantBytes(t, "consumer re-read", mustHelper(t, consumerRole, "read", p), append(d.rendered(), edit...))
	a := mustHelper(t, agentRole, "read", p)
	assertNoLeak(t, "agent after rewrite", a)
	wantBytes(t, "agent after rewrite", a, append(d.raw(), edit...))
}

// TestViewsAgentPastesValue: an agent that writes a known value into a new
// file ends up with the placeholder in the backing dir after close(2). New
// files opened O_RDWR|O_CREAT, O_WRONLY|O_CREAT (a shell's '>'), and an
// existing file opened O_WRONLY|O_TRUNC.
func TestViewsAgentPastesValue(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	content := "KEY=" + fakeKey + "\nTOKEN=" + fakeToken + "\n"
	want := []byte("KEY=" + phKey + "\nTOKEN=" + phToken + "\n")
	for _, r := range []role{agentRole, rootRole} {
		for _, mode := range []string{"rwc", "wc", "existing-wt", "shell"} {
			t.Run(r.name+"/"+mode, func(t *testing.T) {
				const rounds = 10
				late, never := 0, 0
				var worst time.Duration
				for i := range rounds {
					name := fmt.Sprintf("pasted-%s-%s-%d.env", r.name, mode, i)
					p := filepath.Join(tm.mnt, name)
					switch mode {
					case "shell":
						if _, err := runCmdAs(t, r, "sh", "-c", `printf '%s' "$1" > "$2"`, "sh", content, p); err != nil {
							t.Fatal(err)
						}
					default:
						flags := mode
						if mode == "existing-wt" {
							writeBacking(t, tm, name, []byte("old\n"))
							flags = "wt"
						}
						s := startSession(t, r)
						s.must("open", p, flags)
						s.must("write", hex.EncodeToString([]byte(content)))
						s.must("close")
						s.close()
					}
					// Right after close(2) returned, then for up to 2 s.
					start := time.Now()
					back := readBacking(t, tm, name)
					leakedAtClose := fakeForms.Find(back) != ""
					for fakeForms.Find(back) != "" && time.Since(start) < time.Second {
						time.Sleep(time.Millisecond)
						back = readBacking(t, tm, name)
					}
					waited := time.Since(start)
					switch {
					case fakeForms.Find(back) != "":
						never++
					case waited > 0 && !bytes.Equal(back, want):
						t.Errorf("backing after paste: %d bytes, want %d", len(back), len(want))
					}
					if leakedAtClose && fakeForms.Find(back) == "" {
						late++
						worst = max(worst, waited)
					}
					if i == 0 && fakeForms.Find(back) == "" {
						wantBytes(t, "backing after agent paste", back, want)
						wantBytes(t, "consumer read of pasted file", mustHelper(t, consumerRole, "read", p), []byte(content))
					}
					if never > 0 {
						t.Logf("round %d: value still in the backing file 1 s after close(2); stopping", i)
						break
					}
				}
				t.Logf("%d/%d rounds: value still in backing when close(2) returned (scrubbed within %v); %d never scrubbed", late, rounds, worst, never)
				if never > 0 {
					t.Errorf("FS-CREATE-WRONLY-SCRUB: %s wrote a value through a %s open: still in the backing file 1 s after close (%d never-scrubbed round(s))", r.name, mode, never)
				}
				if late > 0 {
					t.Errorf("FS-ASYNC-SCRUB: %s: value in the backing file after close(2) returned, for up to %v, in %d/%d rounds", r.name, worst, late, rounds)
				}
			})
		}
	}
}

// TestViewsConsumerCreates: a consumer creating a file with a value in it
// never puts the value in the backing dir, not even while the file is open;
// an agent that has the new file open reads no value meanwhile.
func TestViewsConsumerCreates(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	for _, size := range []int{0, 6000} { // small write, and one of whole pages
		t.Run(fmt.Sprintf("pad%d", size), func(t *testing.T) {
			name := fmt.Sprintf("new%d.env", size)
			p := filepath.Join(tm.mnt, name)
			content := append([]byte(filler(size, 2).raw), "\nKEY="+fakeKey+"\n"...)
			c := startSession(t, consumerRole)
			c.must("open", p, "rwc")
			c.must("write", hex.EncodeToString(content))
			assertNoLeak(t, "backing while open after write", readBacking(t, tm, name))
			// An agent reading the file while the consumer holds it.
			a := runHelperAs(t, agentRole, "read", p)
			assertNoLeak(t, "agent read while consumer writes", a.out)
			if a.code != 0 {
				t.Errorf("FS-IOMODE-EIO: agent read of a new file while the consumer that created it holds it open: exit %d: %s", a.code, strings.TrimSpace(string(a.stderr)))
			}
			am := runHelperAs(t, agentRole, "mmap-shared", p)
			assertNoLeak(t, "agent mmap while consumer writes", am.out)
			c.must("fsync")
			assertNoLeak(t, "backing after fsync", readBacking(t, tm, name))
			c.must("close")
			back := readBacking(t, tm, name)
			assertNoLeak(t, "backing after close", back)
			if !bytes.Contains(back, []byte("KEY="+phKey)) {
				t.Errorf("backing lacks the placeholder: %d bytes", len(back))
			}
			for _, op := range []string{"read", "mmap-shared", "mmap-private", "pread"} {
				got := mustHelper(t, agentRole, op, p)
				assertNoLeak(t, "agent "+op+" after consumer created", got)
				wantBytes(t, "agent "+op+" after consumer created", got, back)
			}
			if got := string(mustHelper(t, agentRole, "stat", p)); got != strconv.Itoa(len(back)) {
				t.Errorf("agent stat after consumer created: %s, want %d", got, len(back))
			}
			wantBytes(t, "consumer re-read", mustHelper(t, consumerRole, "read", p), content)
		})
	}
}

// TestViewsConsumerWritesPlainFileAgentHolds: the agent holds a plain
// (placeholder-free) file open and mapped while a consumer writes a value
// into it; the agent's descriptor and mapping must never show the value.
func TestViewsConsumerWritesPlainFileAgentHolds(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	plain := []byte(filler(8192, 4).raw)
	p := writeBacking(t, tm, "plain.txt", plain)
	a := startSession(t, agentRole)
	a.must("open", p, "r")
	a.must("read")
	a.must("mmap", "shared")
	c := startSession(t, consumerRole)
	if _, err := c.do("open", p, "rw"); err != nil {
		// The kernel refuses a cached open next to a passthrough one.
		t.Errorf("FS-IOMODE-EIO: consumer O_RDWR open of a plain file the agent holds open: %v", err)
		a.must("close")
		c.must("open", p, "rw")
	}
	c.must("write", hex.EncodeToString([]byte("KEY="+fakeKey+"\n"+filler(4096, 7).raw)))
	for _, cmd := range [][]string{{"read"}, {"mapread"}} {
		got, err := a.do(cmd...)
		if err == nil {
			assertNoLeak(t, "agent "+cmd[0]+" while consumer writes", got)
		}
	}
	assertNoLeak(t, "agent fresh read while consumer writes", runHelperAs(t, agentRole, "read", p).out)
	assertNoLeak(t, "agent fresh mmap while consumer writes", runHelperAs(t, agentRole, "mmap-private", p).out)
	c.must("close")
	assertNoLeak(t, "backing after consumer write", readBacking(t, tm, "plain.txt"))
	for _, cmd := range [][]string{{"read"}, {"mapread"}} {
		if got, err := a.do(cmd...); err == nil {
			assertNoLeak(t, "agent "+cmd[0]+" after consumer wrote", got)
		}
	}
	for _, op := range []string{"read", "mmap-shared", "mmap-private"} {
		assertNoLeak(t, "agent "+op+" after consumer wrote", mustHelper(t, agentRole, op, p))
	}
}

// TestViewsScopedCredentials: a consumer covered for OPENAI_API_KEY only
// gets that value; API_TOKEN stays a placeholder for it.
func TestViewsScopedCredentials(t *testing.T) {
	pol := consumerPolicy()
	pol.only = map[string]bool{"OPENAI_API_KEY": true}
	tm := mountFS(t, pol, fakeValues)
	d := doc{lit("K="), keySeg(), lit("\nT="), lit(phToken), lit("\n")} // token not rendered
	p := writeBacking(t, tm, "scoped.env", d.raw())
	for _, op := range []string{"read", "mmap-private", "pread"} {
		got := mustHelper(t, consumerRole, op, p)
		wantBytes(t, "scoped consumer "+op, got, d.rendered())
		if f := leakcheck.New(map[string]string{"API_TOKEN": fakeToken}).Find(got); f != "" {
			t.Errorf("scoped consumer %s got %s", op, f)
		}
	}
	a := mustHelper(t, agentRole, "read", p)
	assertNoLeak(t, "agent scoped", a)
	wantBytes(t, "agent scoped", a, d.raw())
}

// TestViewsMissingIsError: with missing: error, a consumer's open of a file
// naming an unknown credential fails with EIO; the agent reads it.
func TestViewsMissingIsError(t *testing.T) {
	pol := consumerPolicy()
	pol.missing = true
	tm := mountFS(t, pol, fakeValues)
	raw := []byte("K=" + phKey + "\nX=${credentials.NO_SUCH_CRED}\n")
	p := writeBacking(t, tm, "missing.env", raw)
	for _, op := range []string{"read", "mmap-shared"} {
		res := runHelperAs(t, consumerRole, op, p)
		if res.code == 0 {
			t.Errorf("consumer %s of a file with a missing credential succeeded", op)
			assertNoLeak(t, "consumer output on missing", res.out) // it must at least not be partial
		} else if !strings.Contains(string(res.stderr), syscall.EIO.Error()) {
			t.Errorf("consumer %s: %s, want EIO", op, strings.TrimSpace(string(res.stderr)))
		}
	}
	for _, r := range []role{agentRole, rootRole} {
		got := mustHelper(t, r, "read", p)
		assertNoLeak(t, r.name+" missing", got)
		wantBytes(t, r.name+" missing", got, raw)
	}
}

// TestViewsRotation: a value changed while mounted is what the consumer's
// next open sees, by read and by mmap, never the old one, even when the new
// value has the old one's length (nothing in the attributes changes).
func TestViewsRotation(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	d := bigDoc()
	p := writeBacking(t, tm, "rot.env", d.raw())
	c := startSession(t, consumerRole)
	c.must("open", p, "r")
	c.must("mmap", "shared") // a live mapping of the old rendering
	wantBytes(t, "before rotation", mustHelper(t, consumerRole, "mmap-private", p), d.rendered())

	rotated := "FAKE-sk-test-0009-abc" // same length as fakeKey
	if len(rotated) != len(fakeKey) {
		t.Fatal("rotated value must keep the length")
	}
	tm.secrets.set(map[string]string{"OPENAI_API_KEY": rotated, "API_TOKEN": fakeToken})
	oldForms := leakcheck.New(map[string]string{"OPENAI_API_KEY": fakeKey})
	for _, op := range []string{"read", "mmap-private", "mmap-shared", "pread", "fstat"} {
		got := mustHelper(t, consumerRole, op, p)
		if op == "fstat" {
			continue
		}
		if f := oldForms.Find(got); f != "" {
			t.Errorf("consumer %s after rotation still gets the old value (%s)", op, f)
		}
		if !bytes.Contains(got, []byte(rotated)) {
			t.Errorf("consumer %s after rotation lacks the new value", op)
		}
	}
	c.must("close")
	a := mustHelper(t, agentRole, "read", p)
	assertNoLeak(t, "agent after rotation", a)
	if bytes.Contains(a, []byte(rotated)) {
		t.Error("agent got the rotated value")
	}

	// Revocation: the credential is gone, the consumer gets placeholders.
	tm.secrets.set(map[string]string{"API_TOKEN": fakeToken})
	for _, op := range []string{"read", "mmap-private"} {
		got := mustHelper(t, consumerRole, op, p)
		if bytes.Contains(got, []byte(rotated)) || oldForms.Find(got) != "" {
			t.Errorf("consumer %s after revocation still gets a key value", op)
		}
		if !bytes.Contains(got, []byte("OPENAI_API_KEY="+phKey)) {
			t.Errorf("consumer %s after revocation: placeholder missing", op)
		}
	}
}

// TestViewsUnmountWithOpenFile: unmounting while a file is open returns (an
// error or success) without hanging.
func TestViewsUnmountWithOpenFile(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	p := writeBacking(t, tm, "open.env", []byte("K="+phKey+"\n"))
	c := startSession(t, consumerRole)
	c.must("open", p, "r")
	c.must("read")
	unmount := func(label string, fn func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			t.Logf("%s: %v", label, err)
			return err
		case <-time.After(15 * time.Second):
			t.Fatalf("%s hangs", label)
			return nil
		}
	}
	if err := unmount("umount(2) with an open file", func() error { return syscall.Unmount(tm.mnt, 0) }); err == nil {
		return // unmounted: cleanup has nothing left to do
	} else if !errors.Is(err, syscall.EBUSY) {
		t.Errorf("umount(2) with an open file: %v, want EBUSY or success", err)
	}
	// The mount still serves the open file.
	wantBytes(t, "read after failed unmount", c.must("read"), []byte("K="+fakeKey+"\n"))
	c.must("close")
	c.close()
	if err := unmount("server.Unmount after close", tm.server.Unmount); err != nil {
		t.Errorf("unmount after the file was closed: %v", err)
	}
}
