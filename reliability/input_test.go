package reliability

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHugeFile: a file with a placeholder every 4 KiB (64 MiB; 1 GiB with
// FACIOFS_STRESS=long), written through the mount, read raw by the agent
// and resolved by a consumer; a file whose resolved view would pass the
// 256 MiB cap fails cleanly with EFBIG.
func TestHugeFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start()
	size := 64 << 20
	if long() {
		size = 1 << 30
	}
	block := []byte(ph("REL_A") + strings.Repeat("-", 4096-len(ph("REL_A"))-1) + "\n")
	rblock := bytes.Replace(block, []byte(ph("REL_A")), []byte(creds["REL_A"]), 1)
	chunk := bytes.Repeat(block, 256) // 1 MiB
	rchunk := bytes.Repeat(rblock, 256)
	rawH, resH := sha256.New(), sha256.New()
	p := filepath.Join(e.mnt, "huge.txt")
	f, err := os.Create(p)
	must(t, err)
	start := time.Now()
	for n := 0; n < size; n += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		rawH.Write(chunk)
		resH.Write(rchunk)
	}
	must(t, f.Close())
	t.Logf("wrote %d MiB through the mount in %v", size>>20, time.Since(start).Round(time.Millisecond))
	rawWant := fmt.Sprintf("%d %s", size, hex.EncodeToString(rawH.Sum(nil)))
	resSize := size / 4096 * len(rblock)
	resWant := fmt.Sprintf("%d %s", resSize, hex.EncodeToString(resH.Sum(nil)))

	start = time.Now()
	r := runHelper(t, asAgent, "sha", p)
	if strings.TrimSpace(r.stdout) != rawWant {
		t.Errorf("agent read of the huge file: %q (%s), want the raw bytes %q", r.stdout, r.stderr, rawWant)
	}
	t.Logf("agent read %d MiB raw in %v", size>>20, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	r = runHelper(t, asConsumer, "sha", p)
	if resSize <= 256<<20 {
		if strings.TrimSpace(r.stdout) != resWant {
			t.Errorf("consumer read of the huge file: %q (%s), want %q", r.stdout, strings.TrimSpace(r.stderr), resWant)
		}
		t.Logf("consumer read %d MiB (%d placeholders resolved) in %v", size>>20, size/4096, time.Since(start).Round(time.Millisecond))
	} else if r.code == 0 || !strings.Contains(r.stderr, "file too large") {
		t.Errorf("consumer read of a %d MiB resolved view: exit %d, %q; want EFBIG (file too large)", resSize>>20, r.code, strings.TrimSpace(r.stderr))
	} else {
		t.Logf("consumer read of a %d MiB view: %s (as documented: 256 MiB cap)", resSize>>20, strings.TrimSpace(r.stderr))
	}

	// Past the cap, cheaply: a 300 MiB sparse file with a placeholder at
	// each end.
	big := filepath.Join(e.mnt, "sparse.txt")
	f, err = os.Create(big)
	must(t, err)
	_, err = f.WriteString(ph("REL_A"))
	must(t, err)
	_, err = f.WriteAt([]byte(ph("REL_B")), 300<<20)
	must(t, err)
	must(t, f.Close())
	r = runHelper(t, asConsumer, "sha", big)
	if r.code == 0 || !strings.Contains(r.stderr, "file too large") {
		t.Errorf("consumer read of a 300 MiB templated file: exit %d, %q; want EFBIG", r.code, strings.TrimSpace(r.stderr))
	}
	noLeak(t, "consumer output on EFBIG", []byte(r.stdout+r.stderr))
	if st, err := os.Stat(big); err != nil || st.Size() != 300<<20+int64(len(ph("REL_B"))) {
		t.Errorf("stat of the sparse file: %v", err)
	}
	// The daemon survived and still serves.
	if got, errs := readAs(t, asAgent, filepath.Join(e.mnt, "huge.txt")); errs != "" || len(got) != size {
		t.Errorf("agent read after the EFBIG: %d bytes, %s", len(got), errs)
	}
}

// TestReadBoundaries: a small templated file read with pread at every
// offset in chunks of every size 1..len+1, by the consumer (resolved) and
// by the agent (raw): every placeholder split across every boundary.
func TestReadBoundaries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start()
	raw := "x" + ph("REL_A") + "-" + ph("REL_JSON") + "z"
	res := "x" + creds["REL_A"] + "-" + creds["REL_JSON"] + "z"
	must(t, os.WriteFile(filepath.Join(e.mnt, "b.txt"), []byte(raw), 0o644))
	expRes := filepath.Join(e.exp, "exp-res")
	must(t, os.WriteFile(expRes, []byte(res), 0o600))
	expRaw := filepath.Join(e.dir, "exp-raw")
	must(t, os.WriteFile(expRaw, []byte(raw), 0o644))
	for _, c := range []struct {
		w   who
		exp string
		n   int
	}{{asConsumer, expRes, len(res) + 1}, {asAgent, expRaw, len(raw) + 1}} {
		start := time.Now()
		r := runHelper(t, c.w, "chunks", filepath.Join(e.mnt, "b.txt"), c.exp, strconv.Itoa(c.n))
		if r.code != 0 {
			t.Errorf("%v: every-boundary reads: %s %s", c.w, r.stdout, redact(r.stderr))
		}
		if c.w == asAgent {
			noLeak(t, "agent boundary reads", []byte(r.stdout+r.stderr))
		}
		t.Logf("%v: %s in %v", c.w, strings.TrimSpace(r.stdout), time.Since(start).Round(time.Millisecond))
	}
}

// TestHostileContent: 100 000 placeholders in one file, invalid UTF-8
// around placeholders, names at the 128-character limit and one past it.
func TestHostileContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start()
	name128 := strings.Repeat("N", 128)
	name129 := strings.Repeat("N", 129)
	files := map[string][2]string{ // name: raw, resolved
		"many.txt": {strings.Repeat(ph("REL_A")+"\n", 100000), strings.Repeat(creds["REL_A"]+"\n", 100000)},
		"utf8.bin": {"\xff\xfe" + ph("REL_A") + "\xc3\x28" + ph("REL_B") + "\x80\xbf" + "${credentials.\xff}" + "\xed\xa0\x80" + ph("REL_A|base64") + "\xf8",
			"\xff\xfe" + creds["REL_A"] + "\xc3\x28" + creds["REL_B"] + "\x80\xbf" + "${credentials.\xff}" + "\xed\xa0\x80" + base64.StdEncoding.EncodeToString([]byte(creds["REL_A"])) + "\xf8"},
		"names.txt": {"128=" + ph(name128) + "\n129=" + ph(name129) + "\n129b=${credentials." + name129 + "|json}\n",
			"128=" + creds[name128] + "\n129=" + ph(name129) + "\n129b=${credentials." + name129 + "|json}\n"},
	}
	for name, c := range files {
		must(t, os.WriteFile(filepath.Join(e.mnt, name), []byte(c[0]), 0o644))
	}
	for name, c := range files {
		p := filepath.Join(e.mnt, name)
		start := time.Now()
		got, errs := readAs(t, asConsumer, p)
		if got != c[1] {
			t.Errorf("consumer %s: %d bytes (%s), want %d resolved bytes", name, len(got), errs, len(c[1]))
		}
		took := time.Since(start)
		if got, _ := readAs(t, asAgent, p); got != c[0] {
			t.Errorf("agent %s: %d bytes, want the %d raw bytes", name, len(got), len(c[0]))
		}
		if b, _ := os.ReadFile(filepath.Join(e.backing, name)); string(b) != c[0] {
			t.Errorf("backing %s changed", name)
		}
		t.Logf("%s: consumer read %d bytes in %v", name, len(c[1]), took.Round(time.Millisecond))
	}
}

// TestDeepTree: 100 nested directories and 255-byte file names through
// the mount; a 256-byte name is refused with ENAMETOOLONG.
func TestDeepTree(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start()
	p := e.mnt
	for i := range 100 {
		p = filepath.Join(p, fmt.Sprintf("d%02d", i))
		must(t, os.Mkdir(p, 0o755))
	}
	n255 := strings.Repeat("n", 250) + ".conf"
	f := filepath.Join(p, n255)
	must(t, os.WriteFile(f, []byte("K="+ph("REL_A")+"\n"), 0o644))
	if got, errs := readAs(t, asConsumer, f); got != "K="+creds["REL_A"]+"\n" {
		t.Errorf("consumer at depth 100 with a 255-byte name: %d bytes, %s", len(got), errs)
	}
	if got, errs := readAs(t, asAgent, f); got != "K="+ph("REL_A")+"\n" {
		t.Errorf("agent at depth 100: %q, %s", redact(got), errs)
	}
	// A 255-byte directory name too, and a rename between long names.
	d255 := filepath.Join(p, strings.Repeat("D", 255))
	must(t, os.Mkdir(d255, 0o755))
	must(t, os.Rename(f, filepath.Join(d255, strings.Repeat("m", 255))))
	if got, _ := readAs(t, asConsumer, filepath.Join(d255, strings.Repeat("m", 255))); got != "K="+creds["REL_A"]+"\n" {
		t.Errorf("consumer after a rename between 255-byte names: %d bytes", len(got))
	}
	err := os.WriteFile(filepath.Join(p, strings.Repeat("x", 256)), []byte("x"), 0o644)
	if !isErrno(err, syscall.ENAMETOOLONG) {
		t.Errorf("a 256-byte name: %v, want ENAMETOOLONG", err)
	}
	rel, _ := filepath.Rel(e.mnt, filepath.Join(d255, strings.Repeat("m", 255)))
	if b, err := os.ReadFile(filepath.Join(e.backing, rel)); err != nil || string(b) != "K="+ph("REL_A")+"\n" {
		t.Errorf("backing at depth 101: %q, %v", redact(string(b)), err)
	}
}
