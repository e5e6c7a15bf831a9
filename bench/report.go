package main

import (
	"debug/buildinfo"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type stat struct{ med, min, max float64 }

func summarize(xs []float64) (stat, bool) {
	if len(xs) == 0 {
		return stat{}, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med, s[0], s[len(s)-1]}, true
}

func (r *results) get(metric, sys string) (stat, bool) {
	return summarize(r.v[metric][sys])
}

// metricInfo: unit and whether higher is better.
type metricInfo struct {
	unit   string
	higher bool
}

var metrics = []struct {
	name string
	metricInfo
}{
	{mSeqWrite, metricInfo{"MiB/s", true}},
	{mSeqCold, metricInfo{"MiB/s", true}},
	{mSeqWarm, metricInfo{"MiB/s", true}},
	{mUntar, metricInfo{"s", false}},
	{mSha, metricInfo{"s", false}},
	{mLs, metricInfo{"s", false}},
	{mRm, metricInfo{"s", false}},
	{mCreate, metricInfo{"ops/s", true}},
	{mStat, metricInfo{"ops/s", true}},
	{mUnlink, metricInfo{"ops/s", true}},
	{mPlain4k, metricInfo{"µs", false}},
	{mPlain4k99, metricInfo{"µs", false}},
}

// speed is how fast a is relative to b (>1: a is faster), whatever the unit.
func speed(a, b float64, higher bool) float64 {
	if a == 0 || b == 0 {
		return math.NaN()
	}
	if higher {
		return a / b
	}
	return b / a
}

func num(x float64) string {
	switch {
	case math.IsNaN(x):
		return "–"
	case x >= 1000:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 1, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 2, 64)
	default:
		return strconv.FormatFloat(x, 'f', 3, 64)
	}
}

func cell(s stat, ok bool) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.med), num(s.min), num(s.max))
}

// bestFuse is the better median of bindfs and go-fuse loopback.
func (r *results) bestFuse(metric string, higher bool) (float64, string) {
	b, okb := r.get(metric, "bindfs")
	l, okl := r.get(metric, "loopback")
	switch {
	case !okb && !okl:
		return math.NaN(), ""
	case !okl || (okb && speed(b.med, l.med, higher) >= 1):
		return b.med, "bindfs"
	default:
		return l.med, "loopback"
	}
}

type target struct {
	name     string
	ok       bool
	measured string
	workload string // what profileMisses reruns under perf
}

func evalTargets(r *results) []target {
	var ts []target
	fac := func(m string) float64 { s, _ := r.get(m, "faciofs"); return s.med }
	nat := func(m string) float64 { s, _ := r.get(m, "native"); return s.med }
	for _, m := range []struct{ metric, wl string }{{mSeqWrite, "seqwrite"}, {mSeqCold, "seqcold"}, {mSeqWarm, "seqwarm"}} {
		x := speed(fac(m.metric), nat(m.metric), true)
		ts = append(ts, target{fmt.Sprintf("plain %s ≥ 0.9× native", m.metric), x >= 0.9,
			fmt.Sprintf("%s× native (%s vs %s MiB/s)", num(x), num(fac(m.metric)), num(nat(m.metric))), m.wl})
	}
	for _, m := range []struct {
		metric, wl string
		higher     bool
	}{{mCreate, "metadata", true}, {mStat, "metadata", true}, {mUnlink, "metadata", true},
		{mUntar, "tree", false}, {mSha, "tree", false}, {mLs, "tree", false}, {mRm, "tree", false}} {
		best, who := r.bestFuse(m.metric, m.higher)
		x := speed(fac(m.metric), best, m.higher)
		ts = append(ts, target{fmt.Sprintf("%s at least as fast as bindfs and go-fuse loopback", m.metric), x >= 1,
			fmt.Sprintf("%s× the best (%s)", num(x), who), m.wl})
	}
	c, _ := r.get("tmpl median", "consumer")
	ts = append(ts, target{"templated consumer open+read+close median ≤ 50 µs", c.med <= 50,
		fmt.Sprintf("%s µs", num(c.med)), "tmpl"})
	p := fac(mPlain4k)
	ts = append(ts, target{"templated consumer median ≤ 3× plain 4 KiB through faciofs", c.med <= 3*p,
		fmt.Sprintf("%s× (%s µs vs %s µs)", num(c.med/p), num(c.med), num(p)), "tmpl"})
	rss, _ := r.get("RSS", "faciofs")
	rss0, _ := r.get("RSS0", "faciofs")
	ts = append(ts, target{fmt.Sprintf("daemon RSS ≤ 100 MiB at %d files", cfg.rssFiles), rss.med <= 100,
		fmt.Sprintf("%s MiB (%s MiB right after mounting, before any file was touched)", num(rss.med), num(rss0.med)), "rss"})
	return ts
}

type profileReport struct {
	workload string
	file     string
	self     []string
	facio    []string
	err      string
}

// profileMisses reruns, once each, the workloads whose target missed with
// `perf record -g` attached to the faciofs daemon.
func profileMisses(e *benchEnv, ts []target) []profileReport {
	want := map[string]bool{}
	var order []string
	for _, t := range ts {
		if !t.ok && !want[t.workload] && t.workload != "rss" {
			want[t.workload] = true
			order = append(order, t.workload)
		}
	}
	os.RemoveAll(cfg.profDir) // reports of an earlier run
	if len(order) == 0 {
		return nil
	}
	if err := os.MkdirAll(cfg.profDir, 0o755); err != nil {
		fatalf("%v", err)
	}
	if _, err := exec.LookPath("perf"); err != nil {
		return []profileReport{{workload: strings.Join(order, ", "), err: "perf is not installed; not profiled"}}
	}
	root := e.faciofs.root
	seq := filepath.Join(root, "seq.bin")
	work := map[string]func(){
		"seqwrite": func() { seqWrite(seq) },
		"seqcold":  func() { seqRead(seq) },
		"seqwarm":  func() { seqRead(seq) },
		"metadata": func() { metadata(filepath.Join(root, "meta")) },
		"tree": func() {
			dir := filepath.Join(root, "tree")
			os.MkdirAll(dir, 0o755)
			must(run(nil, nil, "tar", "-C", dir, "-xf", e.tarball))
			must(run(nil, nil, "/bin/sh", "-c", "cd '"+dir+"' && find . -type f -print0 | xargs -0 sha256sum > /dev/null && ls -lR . > /dev/null"))
			must(run(nil, nil, "rm", "-rf", dir))
		},
		"tmpl": func() {
			readloop(e.consumer, "-n", strconv.Itoa(4*cfg.latN), filepath.Join(root, "tmpl", "app.env"))
		},
	}
	var out []profileReport
	for _, wl := range order {
		logf("profiling %s", wl)
		switch wl {
		case "seqcold", "seqwarm":
			seqWrite(seq)
			if wl == "seqcold" {
				dropCaches()
			} else {
				seqRead(seq)
			}
		}
		data := filepath.Join(cfg.work, "perf-"+wl+".data")
		pr := exec.Command("perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-p", strconv.Itoa(e.faciofs.dmn.pid()), "-o", data)
		pr.Stdout, pr.Stderr = nil, nil
		if err := pr.Start(); err != nil {
			out = append(out, profileReport{workload: wl, err: err.Error()})
			continue
		}
		recordPid(pr.Process.Pid)
		time.Sleep(500 * time.Millisecond)
		work[wl]()
		pr.Process.Signal(syscall.SIGINT)
		pr.Wait()
		os.Remove(seq)
		rep := profileReport{workload: wl, file: filepath.Join(cfg.profDir, wl+".txt")}
		self, err1 := run(nil, nil, "perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none", "--sort", "sym", "--percent-limit", "0.5")
		children, err2 := run(nil, nil, "perf", "report", "-i", data, "--stdio", "--children", "-g", "none", "--sort", "sym", "--percent-limit", "2")
		if err1 != nil || err2 != nil {
			rep.err = fmt.Sprint("perf report: ", err1, err2)
			out = append(out, rep)
			continue
		}
		os.WriteFile(rep.file, []byte("# perf record -e cpu-clock -g on the faciofs daemon during workload "+wl+
			"\n# self time per symbol\n"+self+"\n# inclusive (children) time per symbol\n"+children), 0o644)
		rep.self = topLines(self, 12, "")
		rep.facio = topLines(children, 15, "faciofs/")
		out = append(out, rep)
	}
	return out
}

func topLines(report string, n int, mustContain string) []string {
	var out []string
	for _, l := range strings.Split(report, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || !strings.Contains(l, "%") {
			continue
		}
		if mustContain != "" && !strings.Contains(l, mustContain) {
			continue
		}
		out = append(out, strings.Join(strings.Fields(l), " "))
		if len(out) == n {
			break
		}
	}
	return out
}

func buildRev(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "unknown"
	}
	rev, mod := gitHead(), ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				mod = " (with uncommitted changes)"
			}
		}
	}
	return rev + mod
}

// gitHead reads the checked-out commit from .git without running git
// (the binary carries no vcs stamp when git is not usable at build time).
func gitHead() string {
	head, err := os.ReadFile(".git/HEAD")
	if err != nil {
		return "unknown"
	}
	h := strings.TrimSpace(string(head))
	ref, isRef := strings.CutPrefix(h, "ref: ")
	if !isRef {
		return h
	}
	if b, err := os.ReadFile(filepath.Join(".git", ref)); err == nil {
		return strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(".git/packed-refs"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[1] == ref {
				return f[0]
			}
		}
	}
	return "unknown"
}

func depVersion(bin, path string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "unknown"
	}
	if bi.Main.Path == path {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			return d.Version
		}
	}
	return "unknown"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return fmt.Sprintf("%.1f GiB", kb/1024/1024)
		}
	}
	return "?"
}

func render(e *benchEnv, r *results, ts []target, profs []profileReport) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	var uts syscall.Utsname
	syscall.Uname(&uts)
	rel := func(x [65]int8) string {
		var s []byte
		for _, c := range x {
			if c == 0 {
				break
			}
			s = append(s, byte(c))
		}
		return string(s)
	}
	goVer := strings.TrimSpace(must(run(nil, nil, "go", "version")))
	w("# faciofs benchmarks\n\n")
	w("Generated by `bench/run.sh` on %s; the whole run took %v.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), r.elapsed.Round(time.Second))
	w("## Machine\n\n")
	w("| | |\n|---|---|\n")
	w("| CPUs (nproc) | %d |\n| memory | %s |\n| kernel | %s %s |\n| Go | %s (this program: %s) |\n", runtime.NumCPU(), memTotal(), rel(uts.Sysname), rel(uts.Release), goVer, runtime.Version())
	w("| faciofs commit | %s |\n| bindfs | %s |\n| go-fuse (loopback example) | %s |\n", e.versions["faciofs"], e.versions["bindfs"], e.versions["go-fuse"])
	w("| backing filesystem | %s |\n", strings.TrimSpace(sh("df -T '"+cfg.work+"' | awk 'NR==2{print $1\" \"$2}'")))
	w("| load average (1, 5, 15 min) at start / end | %s / %s |\n\n", r.loadStart, r.loadEnd)
	w("**Noise:** this is a shared 2-CPU VM; the load average above shows what else ran (the benchmark itself adds about 1). ")
	w("To spread noise evenly, every workload runs on all systems back to back in each run, the order of the systems rotates from run to run, ")
	w("and every figure is the median of %d runs with (min–max). Ratios compare medians.\n\n", cfg.runs)
	w("## Parameters\n\n")
	w("- sequential file: %d MiB (`SIZE`, in MiB; the issue asks for 512), written in 1 MiB writes then `fsync`; read back in 1 MiB reads, cold after `echo 3 > /proc/sys/vm/drop_caches` and warm.\n", cfg.sizeMiB)
	w("- source tree: `%s` (%d files) as a tar file (`TREE`), extracted with `tar -xf`, then `find -type f | xargs sha256sum`, `ls -lR`, `rm -rf`.\n", cfg.tree, e.treeFiles)
	w("- metadata: create (open O_CREAT|O_EXCL, write 20 bytes, close), `lstat`, `unlink` of %d files in one directory (`FILES`), single-threaded.\n", cfg.files)
	w("- open+read+close: `bench/readloop`, %d timed iterations after 200 warm-up ones (`LAT_N`); throughput: %v per level (`TPUT_MS`).\n", cfg.latN, cfg.tputDur)
	w("- RSS: a fresh mount over %d empty files in directories of 1000 (`RSS_FILES`), every file `lstat`ed through the mount, then VmRSS/VmHWM from `/proc/PID/status`.\n", cfg.rssFiles)
	w("- faciofs runs with a policy naming one consumer (a copy of `readloop`) on `tmpl/**`; plain-file workloads run as root (an agent) outside `tmpl/`, the path a policy normally leaves uncovered. bindfs runs with default options (`-f` only), go-fuse's loopback with `-q`.\n")
	for _, n := range cfg.scaleNote {
		w("- %s\n", n)
	}
	w("\n## Results\n\n")
	w("Cells: median (min–max). *×native* and *×best FUSE* are faciofs's speed relative to native and to the faster of bindfs and go-fuse loopback (>1 = faciofs faster; for times and latencies the inverse ratio of the medians).\n\n")
	w("| workload | unit | native | bindfs | go-fuse loopback | faciofs | faciofs ×native | faciofs ×best FUSE |\n|---|---|---|---|---|---|---|---|\n")
	for _, m := range metrics {
		row := []string{m.name, m.unit}
		for _, s := range []string{"native", "bindfs", "loopback", "faciofs"} {
			st, ok := r.get(m.name, s)
			row = append(row, cell(st, ok))
		}
		f, _ := r.get(m.name, "faciofs")
		n, _ := r.get(m.name, "native")
		best, who := r.bestFuse(m.name, m.higher)
		row = append(row, num(speed(f.med, n.med, m.higher)), num(speed(f.med, best, m.higher))+" ("+who+")")
		w("| %s |\n", strings.Join(row, " | "))
	}
	w("\n### faciofs templated files\n\n")
	w("`tmpl/app.env`: 4096 bytes, 5 placeholders (the consumer reads it resolved). *plain 4 KiB* rows are the same 4 KiB file without placeholders: outside `tmpl/` (uncovered, the agent) and inside it (covered: the consumer gets a view node). Ratio: median latency relative to the agent's plain 4 KiB file through faciofs (%s µs).\n\n", num(func() float64 { s, _ := r.get(mPlain4k, "faciofs"); return s.med }()))
	w("| measurement | unit | consumer | agent | consumer ÷ plain | agent ÷ plain |\n|---|---|---|---|---|---|\n")
	plain, _ := r.get(mPlain4k, "faciofs")
	for _, m := range []struct{ name, label, unit string }{
		{"tmpl median", "templated open+read+close, median", "µs"},
		{"tmpl p99", "templated open+read+close, p99", "µs"},
		{"covered plain median", "plain 4 KiB in tmpl/, median", "µs"},
		{"covered plain p99", "plain 4 KiB in tmpl/, p99", "µs"},
		{"tmpl throughput c=1", "templated, 1 reader", "opens/s"},
		{"tmpl throughput c=2", "templated, 2 concurrent readers", "opens/s"},
		{"tmpl throughput c=8", "templated, 8 concurrent readers", "opens/s"},
	} {
		c, okc := r.get(m.name, "consumer")
		a, oka := r.get(m.name, "agent")
		rc, ra := "", ""
		if m.unit == "µs" && !strings.HasSuffix(m.name, "p99") {
			rc, ra = num(c.med/plain.med)+"×", num(a.med/plain.med)+"×"
		}
		w("| %s | %s | %s | %s | %s | %s |\n", m.label, m.unit, cell(c, okc), cell(a, oka), rc, ra)
	}
	w("\n### Daemon memory after `lstat` of %d files\n\n", cfg.rssFiles)
	w("| | faciofs | go-fuse loopback |\n|---|---|---|\n")
	for _, m := range []struct{ name, label string }{{"RSS0", "VmRSS right after mounting, MiB"}, {"RSS", "VmRSS after the walk, MiB"}, {"HWM", "VmHWM (peak), MiB"}, {"stat walk", "stat walk through the fresh mount, files/s"}} {
		f, okf := r.get(m.name, "faciofs")
		l, okl := r.get(m.name, "loopback")
		w("| %s | %s | %s |\n", m.label, cell(f, okf), cell(l, okl))
	}
	w("\n## Targets\n\n")
	met := 0
	for _, t := range ts {
		mark := "**missed**"
		if t.ok {
			mark = "met"
			met++
		}
		w("- %s: %s — %s\n", t.name, mark, t.measured)
	}
	w("\n%d of %d targets met in this run.", met, len(ts))
	w(" Ratios near 1.0 are within this machine's noise (compare each min–max range).\n")
	w("\n## Reading these numbers\n\n")
	if cfg.sizeMiB > 64 {
		w("- faciofs rescans a file written by the agent when it is closed and replaces any known value by its placeholder, but only up to 64 MiB (ARCHITECTURE.md). The %d MiB sequential file is above that limit, so *seq write* does not include the rescan; smaller files pay a full read and scan at close (run with `SIZE=16` to see it; `create` and `untar` pay it per file).\n", cfg.sizeMiB)
	} else {
		w("- faciofs rescans a file written by the agent when it is closed and replaces any known value by its placeholder (up to 64 MiB, ARCHITECTURE.md): the %d MiB *seq write* includes that rescan.\n", cfg.sizeMiB)
	}
	w("- faciofs's peak RSS (VmHWM) is the unlock's argon2id work area (`store.DefaultKDF`: 256 MiB); the daemon returns it to the system right after unlocking, so VmRSS right after mounting is small. go-fuse's loopback unlocks nothing.\n")
	w("- In the perf reports, `pvm_irq_enable` is kernel time of this paravirtualized VM (samples land where interrupts are re-enabled): the daemon's syscalls and scheduling.\n")
	w("- Paths under `tmpl/` are covered by a consumer rule: every open there identifies the caller (from `/proc`) and gives it a per-view node with a zero entry timeout, so each open is a LOOKUP, an OPEN and a RELEASE; a consumer's open also renders the file and writes an audit record before it returns. Plain-file rows are outside `tmpl/`: read-only opens there are an OPEN and a RELEASE (no FLUSH; passthrough reads). What remains of every figure above is mostly the cost of each FUSE round trip through go-fuse on this VM (`pvm_irq_enable`, scheduling): go-fuse's own loopback is as slow or slower on every metadata row, so the gap to bindfs (libfuse, C) is per-request overhead, not faciofs's work.\n")
	if len(profs) > 0 {
		w("\n## Profiles of the missed targets\n\n")
		w("Each missed workload was rerun once on faciofs under `perf record -e cpu-clock -g -p DAEMON_PID` (faciofs has no pprof switch; perf sees Go symbols through frame pointers). Full reports: `%s/`. Listed: the hottest symbols by self time, then the faciofs functions by inclusive time.\n\n", cfg.profDir)
		for _, p := range profs {
			w("### %s\n\n", p.workload)
			if p.err != "" {
				w("Not profiled: %s\n\n", p.err)
				continue
			}
			if len(p.self) == 0 {
				w("perf recorded no samples in the daemon: the kernel served this workload without it (passthrough).\n\n")
				continue
			}
			w("```\n# self\n%s\n# faciofs functions, inclusive\n%s\n```\n\n", strings.Join(p.self, "\n"), strings.Join(p.facio, "\n"))
		}
	}
	return b.String()
}
