package integration

// The adversarial suite: one long-running probe under the agent's uid
// tries every read path of product.md §2 invariant 1 against templated
// files, through the real binary and a real policy file, while a consumer
// probe (a copy of the same program that the policy names) reads the same
// files. Whatever the agent obtains must be the raw bytes (placeholders)
// and hold no value in any form.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// advFile is a templated file: its raw bytes and what a consumer reads.
type advFile struct {
	name          string
	raw, resolved []byte
}

// advFiles builds the files: a small .env, a 200 KiB binary file with
// placeholders at page and read boundaries (plain, |base64 and |json), and
// a plain file.
func advFiles() []advFile {
	a, b := creds["ADV_A"], creds["ADV_B"]
	small := advFile{"small.env",
		[]byte("A=" + ph("ADV_A") + "\nB=" + ph("ADV_B|base64") + "\nC=" + ph("ADV_B") + "\n"),
		[]byte("A=" + a + "\nB=" + base64.StdEncoding.EncodeToString([]byte(b)) + "\nC=" + b + "\n")}
	// Deterministic filler without '$'.
	filler := func(n int, seed uint32) []byte {
		out := make([]byte, n)
		for i := range out {
			seed = seed*1664525 + 1013904223
			c := byte(seed >> 24)
			if c == '$' {
				c = 0
			}
			out[i] = c
		}
		return out
	}
	var raw, res bytes.Buffer
	add := func(r, v string) { raw.WriteString(r); res.WriteString(v) }
	fill := func(n int, seed uint32) { f := filler(n, seed); raw.Write(f); res.Write(f) }
	add(ph("ADV_A"), a) // at offset 0
	fill(4090-raw.Len(), 1)
	add(ph("ADV_B"), b) // across the first page boundary
	fill(65530-raw.Len(), 2)
	add(ph("ADV_A|json"), a) // across 64 KiB
	fill(131069-raw.Len(), 3)
	add(ph("ADV_B|base64"), base64.StdEncoding.EncodeToString([]byte(b)))
	fill(200000-raw.Len(), 4)
	add(ph("ADV_B"), b) // at the end
	big := advFile{"big.bin", raw.Bytes(), res.Bytes()}
	plain := advFile{"plain.txt", []byte("no placeholders here\n"), []byte("no placeholders here\n")}
	return []advFile{small, big, plain}
}

type adversary struct {
	t         *testing.T
	m         *mount
	agent     *session
	consumer  *session
	adv       string // mnt/adv
	files     map[string]advFile
	attempted int
	skipped   []string
}

// got checks what the agent obtained: no value in any form, and (when
// want is given) exactly the raw bytes.
func (a *adversary) got(label string, data, want []byte) {
	a.t.Helper()
	a.attempted++
	noLeak(a.t, "agent "+label, data)
	if want != nil && !bytes.Equal(data, want) {
		a.t.Errorf("agent %s: %d bytes, want the %d raw bytes", label, len(data), len(want))
	}
}

// try runs an agent command that must succeed (or be unsupported here,
// which is recorded and reported, never silent).
func (a *adversary) try(label string, want []byte, args ...string) {
	a.t.Helper()
	data, err := a.agent.do(args...)
	if err != nil {
		if strings.HasPrefix(err.Error(), "UNSUPPORTED ") {
			a.skipped = append(a.skipped, label+": "+err.Error())
			return
		}
		a.t.Errorf("agent %s: %s", label, redact(err.Error()))
		return
	}
	a.got(label, data, want)
}

// trySize is try for a size: the raw one, or (when exception is not "")
// the resolved length, which is logged, never a value.
func (a *adversary) trySize(label string, raw []byte, exception string, args ...string) {
	a.t.Helper()
	data, err := a.agent.do(args...)
	if err != nil {
		a.t.Errorf("agent %s: %s", label, redact(err.Error()))
		return
	}
	if exception != "" && string(data) == exception {
		a.attempted++
		a.t.Logf("agent %s: the resolved length (SECURITY.md's documented exception)", label)
		return
	}
	a.got(label, data, raw)
}

// consumerRead checks that the consumer reads the resolved bytes.
func (a *adversary) consumerRead(label, path string, want []byte) {
	a.t.Helper()
	data := a.consumer.must("cat", path)
	if !bytes.Equal(data, want) {
		a.t.Errorf("consumer %s: %d bytes, want the %d resolved bytes (redacted: %q)", label, len(data), len(want), redact(string(data[:min(len(data), 200)])))
	}
}

// denied checks that an agent command fails with EACCES or EPERM.
func (a *adversary) denied(label string, args ...string) {
	a.t.Helper()
	a.attempted++
	data, err := a.agent.do(args...)
	if err == nil {
		noLeak(a.t, "agent "+label, data)
		a.t.Errorf("agent %s succeeded (%d bytes), want EACCES", label, len(data))
		return
	}
	if !strings.Contains(err.Error(), "permission denied") && !strings.Contains(err.Error(), "operation not permitted") {
		a.t.Errorf("agent %s: %v, want EACCES", label, redact(err.Error()))
	}
}

func TestAdversarialAgent(t *testing.T) {
	t.Parallel()
	m := newMount(t)
	cprobe := m.consumerProbe(t)
	m.start(fmt.Sprintf(`version: 1
%sconsumers:
  - name: app
    match:
      exe: %s
    credentials: [ADV_A, ADV_B]
    paths: ["adv/**"]
`, agentRule, cprobe))
	a := &adversary{t: t, m: m, adv: filepath.Join(m.mnt, "adv"), files: map[string]advFile{}}
	a.agent = startSession(t, asAgent, agentProbe(t), "agent")
	a.consumer = startSession(t, asRoot, cprobe, "consumer")
	agentMkdir(t, a.adv)
	agentMkdir(t, filepath.Join(m.mnt, "elsewhere"))
	for _, f := range advFiles() {
		a.files[f.name] = f
		a.agent.must("write", filepath.Join(a.adv, f.name), hex.EncodeToString(f.raw))
	}
	// The copies below are the same templates under other names.
	for _, n := range []string{"r1", "r2", "r3", "r4", "r5"} {
		a.files[n] = advFile{n, a.files["small.env"].raw, a.files["small.env"].resolved}
		a.agent.must("write", filepath.Join(a.adv, n), hex.EncodeToString(a.files[n].raw))
	}
	for _, f := range a.files {
		a.consumerRead("cat "+f.name, filepath.Join(a.adv, f.name), f.resolved)
	}

	t.Run("read paths", func(t *testing.T) { a.t = t; a.readPaths("") })
	t.Run("mmap interleavings", func(t *testing.T) { a.t = t; a.mmaps() })
	t.Run("open before the consumer", func(t *testing.T) { a.t = t; a.openBefore() })
	t.Run("links", func(t *testing.T) { a.t = t; a.links() })
	t.Run("renames", func(t *testing.T) { a.t = t; a.renames() })
	t.Run("private files and the daemon", func(t *testing.T) { a.t = t; a.private() })
	t.Run("concurrent", func(t *testing.T) { a.t = t; a.concurrent() })
	a.t = t
	for _, s := range a.skipped {
		t.Logf("not possible here (reported, not a pass): %s", s)
	}
	t.Logf("%d agent attempts checked", a.attempted)
}

// readPaths tries every read system call on every templated file. The
// consumer has just read each file (caches warm).
func (a *adversary) readPaths(tag string) {
	for _, name := range []string{"small.env", "big.bin", "plain.txt"} {
		f := a.files[name]
		p := filepath.Join(a.adv, name)
		a.consumerRead("cat "+name, p, f.resolved)
		size := []byte(strconv.Itoa(len(f.raw)))
		a.agent.must("open", "h", p)
		for _, op := range []string{"read", "pread", "podd", "readv", "sendfile", "splice", "cfrout", "uring"} {
			a.try(tag+op+" "+name, f.raw, op, "h")
		}
		a.try(tag+"mmap private "+name, f.raw, "mmap", "h", "private")
		a.try(tag+"mmap shared "+name, f.raw, "mmap", "h", "shared")
		a.try(tag+"fstat "+name, size, "fstat", "h")
		a.try(tag+"copy_file_range into the mount "+name, f.raw, "cfrin", "h", filepath.Join(a.m.mnt, "elsewhere", "cfr-"+name))
		a.agent.must("close", "h")
		a.try(tag+"O_DIRECT "+name, f.raw, "odirect", p)
		a.try(tag+"AIO (O_DIRECT) "+name, f.raw, "aio", p)
		// With a consumer reading at the same time, a path's stat may
		// show the resolved length: SECURITY.md's documented exception.
		lengthException := ""
		if tag != "" {
			lengthException = strconv.Itoa(len(f.resolved))
		}
		a.trySize(tag+"stat "+name, size, lengthException, "stat", p)
		a.trySize(tag+"statx "+name, size, lengthException, "statx", p)
		a.trySize(tag+"lstat "+name, size, lengthException, "lstat", p)
		a.try(tag+"xattr "+name, nil, "xattr", p)
	}
	// readdir: names and sizes are the raw ones.
	var want bytes.Buffer
	data := a.agent.must("readdir", a.adv)
	a.got(tag+"readdir", data, nil)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, size, _ := strings.Cut(line, " ")
		f, ok := a.files[name]
		switch {
		case !ok || size == strconv.Itoa(len(f.raw)):
		case tag != "" && size == strconv.Itoa(len(f.resolved)):
			a.t.Logf("agent %sreaddir: %s has the resolved length (SECURITY.md's documented exception)", tag, name)
		default:
			fmt.Fprintf(&want, "%s has size %s, raw size %d; ", name, size, len(f.raw))
		}
	}
	if want.Len() > 0 {
		a.t.Errorf("agent readdir shows non-raw sizes: %s", want.String())
	}
	// An xattr the agent sets holds no value either way.
	a.try(tag+"setxattr", nil, "setxattr", filepath.Join(a.adv, "small.env"), "user.note", ph("ADV_A"))
	a.try(tag+"xattr after setxattr", nil, "xattr", filepath.Join(a.adv, "small.env"))
}

// mmaps: the agent's mappings before, during and after the consumer's.
func (a *adversary) mmaps() {
	for _, name := range []string{"small.env", "big.bin"} {
		f := a.files[name]
		p := filepath.Join(a.adv, name)
		for _, kind := range []string{"private", "shared"} {
			// During: the consumer maps and holds its mapping.
			a.consumer.must("open", "c", p)
			if got := a.consumer.must("mmap", "c", kind); !bytes.Equal(got, f.resolved) {
				a.t.Errorf("consumer mmap %s %s: not the resolved bytes", kind, name)
			}
			a.agent.must("open", "h", p)
			a.try("mmap private during the consumer's "+kind+" mapping of "+name, f.raw, "mmap", "h", "private")
			a.try("mmap shared during the consumer's "+kind+" mapping of "+name, f.raw, "mmap", "h", "shared")
			a.try("read during the consumer's mapping of "+name, f.raw, "pread", "h")
			if got := a.consumer.must("mapread", "c"); !bytes.Equal(got, f.resolved) {
				a.t.Errorf("consumer's %s mapping of %s changed after the agent's", kind, name)
			}
			// Before: the agent's mapping is older than a new consumer mapping.
			a.consumer.must("open", "c2", p)
			a.consumer.must("mmap", "c2", kind)
			a.try("old mapping re-read after the consumer's new "+kind+" mapping of "+name, f.raw, "mapread", "h")
			a.consumer.must("close", "c2")
			a.consumer.must("close", "c")
			// After: the consumer's mappings are gone.
			a.try("mapping re-read after the consumer closed "+name, f.raw, "mapread", "h")
			a.agent.must("close", "h")
			a.agent.must("open", "h", p)
			a.try("mmap "+kind+" after the consumer's mapping of "+name, f.raw, "mmap", "h", kind)
			a.agent.must("close", "h")
		}
	}
}

// openBefore: the agent opens first, the consumer reads and maps, then
// the agent reads through the old descriptor.
func (a *adversary) openBefore() {
	f := a.files["big.bin"]
	p := filepath.Join(a.adv, f.name)
	a.agent.must("open", "h", p)
	a.agent.must("open", "hd", p, "direct")
	a.consumerRead("cat", p, f.resolved)
	a.consumer.must("open", "c", p)
	a.consumer.must("mmap", "c", "shared")
	for _, op := range []string{"read", "pread", "readv", "splice", "sendfile", "uring"} {
		a.try(op+" through a descriptor opened before the consumer's read", f.raw, op, "h")
	}
	a.try("mmap through a descriptor opened before the consumer's read", f.raw, "mmap", "h", "shared")
	a.try("O_DIRECT descriptor opened before the consumer's read", f.raw, "pread", "hd")
	a.consumer.must("close", "c")
	a.agent.must("close", "h")
	a.agent.must("close", "hd")
}

// links: hard links and symlinks to templated files, made in the mount by
// the agent and in BACKING from outside (by root).
func (a *adversary) links() {
	small, big := a.files["small.env"], a.files["big.bin"]
	el := filepath.Join(a.m.mnt, "elsewhere")
	a.agent.must("link", filepath.Join(a.adv, "small.env"), filepath.Join(el, "hl"))
	a.agent.must("symlink", "../adv/big.bin", filepath.Join(el, "sl"))
	a.agent.must("link", filepath.Join(a.adv, "big.bin"), filepath.Join(a.adv, "hl-in-adv"))
	must(a.t, os.Link(filepath.Join(a.m.backing, "adv", "big.bin"), filepath.Join(a.m.backing, "outside-hl")))
	must(a.t, os.Symlink("adv/small.env", filepath.Join(a.m.backing, "outside-sl")))
	tmpLink := filepath.Join(a.m.dir, "tmp-sl")
	must(a.t, os.Symlink(filepath.Join(a.adv, "small.env"), tmpLink))
	for _, c := range []struct {
		path string
		f    advFile
	}{
		{filepath.Join(el, "hl"), small},
		{filepath.Join(el, "sl"), big},
		{filepath.Join(a.adv, "hl-in-adv"), big},
		{filepath.Join(a.m.mnt, "outside-hl"), big},
		{filepath.Join(a.m.mnt, "outside-sl"), small},
		{tmpLink, small},
	} {
		rel, _ := filepath.Rel(a.m.dir, c.path)
		// The consumer reads the link first, then the agent tries.
		_, _ = a.consumer.do("cat", c.path)
		a.try("cat via "+rel, c.f.raw, "cat", c.path)
		a.agent.must("open", "h", c.path)
		a.try("mmap via "+rel, c.f.raw, "mmap", "h", "private")
		a.try("sendfile via "+rel, c.f.raw, "sendfile", "h")
		a.agent.must("close", "h")
		a.try("stat via "+rel, []byte(strconv.Itoa(len(c.f.raw))), "stat", c.path)
		a.try("O_DIRECT via "+rel, c.f.raw, "odirect", c.path)
	}
	// The original names still give the consumer values and the agent
	// placeholders.
	a.consumerRead("cat after links", filepath.Join(a.adv, "big.bin"), big.resolved)
	a.try("cat after links", big.raw, "cat", filepath.Join(a.adv, "big.bin"))
}

// renames over and under open handles.
func (a *adversary) renames() {
	f := a.files["r1"]
	el := filepath.Join(a.m.mnt, "elsewhere")
	plain := a.files["plain.txt"]

	// The agent holds r1 open; r1 is renamed; the consumer reads the new
	// name; the agent reads its old handle and the new name.
	a.agent.must("open", "h", filepath.Join(a.adv, "r1"))
	a.agent.must("rename", filepath.Join(a.adv, "r1"), filepath.Join(a.adv, "r1b"))
	a.consumerRead("cat renamed r1b", filepath.Join(a.adv, "r1b"), f.resolved)
	a.try("read handle of a renamed file", f.raw, "pread", "h")
	a.try("mmap handle of a renamed file", f.raw, "mmap", "h", "shared")
	a.try("cat renamed r1b", f.raw, "cat", filepath.Join(a.adv, "r1b"))
	a.agent.must("close", "h")

	// The consumer holds r2 open (resolved) and mapped; the agent renames
	// a plain file over it, then a templated one.
	a.consumer.must("open", "c", filepath.Join(a.adv, "r2"))
	a.consumer.must("mmap", "c", "private")
	a.agent.must("write", filepath.Join(el, "plain-new"), hex.EncodeToString(plain.raw))
	a.agent.must("rename", filepath.Join(el, "plain-new"), filepath.Join(a.adv, "r2"))
	a.try("cat of a plain file renamed over a consumer's open file", plain.raw, "cat", filepath.Join(a.adv, "r2"))
	a.agent.must("rename", filepath.Join(a.adv, "r3"), filepath.Join(a.adv, "r2"))
	a.try("cat of a templated file renamed over a consumer's open file", f.raw, "cat", filepath.Join(a.adv, "r2"))
	a.agent.must("open", "h", filepath.Join(a.adv, "r2"))
	a.try("mmap of a templated file renamed over a consumer's open file", f.raw, "mmap", "h", "private")
	a.agent.must("close", "h")
	if got := a.consumer.must("mapread", "c"); !bytes.Equal(got, f.resolved) {
		a.t.Errorf("the consumer's mapping changed under a rename")
	}
	a.consumer.must("close", "c")

	// The consumer holds r4 open and mapped; the agent moves it out of the
	// consumer's paths and reads it there.
	a.consumer.must("open", "c", filepath.Join(a.adv, "r4"))
	a.consumer.must("mmap", "c", "shared")
	a.agent.must("rename", filepath.Join(a.adv, "r4"), filepath.Join(el, "r4"))
	a.try("cat of a consumer's open file moved away", f.raw, "cat", filepath.Join(el, "r4"))
	a.agent.must("open", "h", filepath.Join(el, "r4"))
	a.try("mmap of a consumer's open file moved away", f.raw, "mmap", "h", "shared")
	a.agent.must("close", "h")
	a.consumer.must("close", "c")

	// The agent holds r5 open; the consumer holds it open; the agent
	// renames r5 over another name and back.
	a.agent.must("open", "h", filepath.Join(a.adv, "r5"))
	a.consumer.must("open", "c", filepath.Join(a.adv, "r5"))
	a.consumer.must("pread", "c")
	a.agent.must("rename", filepath.Join(a.adv, "r5"), filepath.Join(a.adv, "small-copy"))
	a.agent.must("rename", filepath.Join(a.adv, "small-copy"), filepath.Join(a.adv, "r5"))
	a.try("read after rename round trip", f.raw, "read", "h")
	a.consumer.must("close", "c")
	a.agent.must("close", "h")
}

// private: BACKING, the store, the daemon's log and the daemon's /proc
// entries are out of the agent's reach.
func (a *adversary) private() {
	m := a.m
	for _, p := range []string{m.backing, filepath.Join(m.backing, "adv", "small.env"), m.store, m.logf, m.policy, m.pwFile} {
		rel, _ := filepath.Rel(m.dir, p)
		a.denied("read "+rel, "cat", p)
	}
	a.denied("readdir BACKING", "readdir", m.backing)
	pid := strconv.Itoa(m.pid())
	for _, e := range []string{"environ", "maps", "mem", "auxv", "stack"} {
		a.denied("read /proc/daemon/"+e, "cat", "/proc/"+pid+"/"+e)
	}
	a.denied("readdir /proc/daemon/fd", "readdir", "/proc/"+pid+"/fd")
	// cmdline is world-readable on Linux: it must hold no value.
	if data, err := a.agent.do("cat", "/proc/"+pid+"/cmdline"); err == nil {
		a.got("/proc/daemon/cmdline", data, nil)
	}
	// The consumer's /proc too (another uid).
	cpid := strconv.Itoa(a.consumer.pid())
	for _, e := range []string{"environ", "mem"} {
		a.denied("read /proc/consumer/"+e, "cat", "/proc/"+cpid+"/"+e)
	}

	// Same uid as the daemon but no capabilities: only a non-dumpable
	// daemon keeps its memory and environment from such a process.
	r := run(a.t, asRoot, "/", append(baseEnv("/"), roleEnv+"=nodump"), "", agentProbe(a.t), pid)
	if r.code != 0 {
		a.t.Fatalf("nodump probe: exit %d: %s", r.code, r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		name, res, _ := strings.Cut(line, " ")
		a.attempted++
		if h, ok := strings.CutPrefix(res, "ok:"); ok {
			b, _ := hex.DecodeString(h)
			noLeak(a.t, "capability-less root reading /proc/daemon/"+name, b)
			if name != "cmdline" {
				a.t.Errorf("a capability-less uid-0 process read the daemon's /proc/%s: the daemon is dumpable", name)
			}
		} else if name == "cmdline" {
			a.t.Errorf("/proc/daemon/cmdline: %s", res)
		}
	}
}

// concurrent: the consumer reads small.env and big.bin in a loop (read and
// mmap) while the agent, in one process, loops ≥ 2000 rounds over each.
func (a *adversary) concurrent() {
	small, big := a.files["small.env"], a.files["big.bin"]
	ps := filepath.Join(a.adv, small.name)
	pb := filepath.Join(a.adv, big.name)
	a.consumer.must("spin", ps+","+pb, hex.EncodeToString(small.resolved)+","+hex.EncodeToString(big.resolved))
	const rounds = 2000
	for _, f := range []advFile{small, big} {
		n := rounds
		if f.name == "big.bin" {
			n = rounds / 2
		}
		sum := string(a.agent.must("loop", filepath.Join(a.adv, f.name), strconv.Itoa(n), hex.EncodeToString(f.raw)))
		a.attempted += n
		fields := strings.Fields(sum)
		for _, fld := range fields {
			if h, ok := strings.CutPrefix(fld, "sample="); ok {
				b, _ := hex.DecodeString(h)
				noLeak(a.t, "agent loop read of "+f.name, b)
			}
		}
		summary := sum
		if i := strings.Index(summary, " sample="); i >= 0 {
			summary = summary[:i]
		}
		a.t.Logf("agent loop over %s while the consumer reads: %s", f.name, summary)
		if !strings.Contains(sum, " wrong=0 ") || !strings.Contains(sum, " errors=0 ") {
			a.t.Errorf("agent loop over %s: %s", f.name, summary)
		}
		if !strings.Contains(sum, " wrongsize=0 ") {
			a.t.Logf("stat/fstat sizes other than the raw size seen by the agent (SECURITY.md's documented length exception): %s", summary)
		}
	}
	// Every single-shot read path again, with the consumer still reading.
	a.readPaths("concurrent ")
	res := string(a.consumer.must("spinstop"))
	a.t.Logf("consumer loop: %s", res)
	if !strings.Contains(res, " wrong=0 ") || !strings.Contains(res, " errors=0 ") {
		a.t.Errorf("the consumer did not read the resolved bytes every time: %s", res)
	}
}
