// Command bench measures faciofs against the native filesystem, bindfs and
// go-fuse's loopback example in one run on one machine (issue 9). It is
// driven by bench/run.sh, which builds the binaries it needs, and writes
// bench/RESULTS.md. Every mount and process it starts is recorded in
// WORK/pids and WORK/mnt, so that run.sh's EXIT trap can remove them even
// if this program dies.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	work      string // scratch directory; everything lives below it
	bin       string // directory of faciofs, loopback, readloop
	out       string // RESULTS.md
	profDir   string // perf reports for missed targets
	sizeMiB   int
	runs      int
	tree      string
	files     int
	rssFiles  int
	latN      int
	tputDur   time.Duration
	profile   bool
	scaleNote []string
}

var cfg config

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	return def
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	cleanupAll()
	os.Exit(1)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func main() {
	flag.StringVar(&cfg.work, "work", "", "scratch directory (required)")
	flag.StringVar(&cfg.bin, "bin", "", "directory holding faciofs, loopback and readloop (required)")
	flag.StringVar(&cfg.out, "out", "bench/RESULTS.md", "Markdown output")
	flag.StringVar(&cfg.profDir, "profiles", "bench/profiles", "where perf reports of missed targets go")
	flag.Parse()
	if cfg.work == "" || cfg.bin == "" {
		fatalf("-work and -bin are required")
	}
	cfg.sizeMiB = envInt("SIZE", 512)
	cfg.runs = envInt("RUNS", 3)
	cfg.tree = os.Getenv("TREE")
	if cfg.tree == "" {
		cfg.tree = "/usr/local/go/src"
	}
	cfg.files = envInt("FILES", 10000)
	cfg.rssFiles = envInt("RSS_FILES", 100000)
	cfg.latN = envInt("LAT_N", 5000)
	cfg.tputDur = time.Duration(envInt("TPUT_MS", 2000)) * time.Millisecond
	cfg.profile = os.Getenv("PROFILE") != "0"
	if cfg.sizeMiB != 512 {
		cfg.scaleNote = append(cfg.scaleNote, fmt.Sprintf("scaled down: the sequential file is %d MiB, not the issue's 512 MiB (SIZE=%d)", cfg.sizeMiB, cfg.sizeMiB))
	}
	if cfg.rssFiles != 100000 || cfg.files != 10000 {
		cfg.scaleNote = append(cfg.scaleNote, fmt.Sprintf("scaled: FILES=%d, RSS_FILES=%d (the issue asks for 10000 and 100000)", cfg.files, cfg.rssFiles))
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fatalf("got %v, cleaning up", s)
	}()

	start := time.Now()
	env := setup()
	res := newResults()
	res.loadStart = loadavg()
	for r := 0; r < cfg.runs; r++ {
		logf("run %d/%d", r+1, cfg.runs)
		oneRun(env, res, r)
	}
	for r := 0; r < cfg.runs; r++ {
		logf("RSS run %d/%d", r+1, cfg.runs)
		rssRun(env, res, r)
	}
	res.loadEnd = loadavg()
	res.elapsed = time.Since(start)
	targets := evalTargets(res)
	var profs []profileReport
	if cfg.profile {
		profs = profileMisses(env, targets)
	}
	res.elapsed = time.Since(start)
	if err := os.WriteFile(cfg.out, []byte(render(env, res, targets, profs)), 0o644); err != nil {
		fatalf("%v", err)
	}
	cleanupAll()
	logf("wrote %s in %v", cfg.out, time.Since(start).Round(time.Second))
}

// ---- processes and mounts ----

type daemon struct {
	name string
	cmd  *exec.Cmd
	mnt  string
	done chan struct{}
	term bool // stop with SIGTERM (faciofs) rather than by unmounting
}

var (
	daemonsMu sync.Mutex
	daemons   []*daemon
)

func recordPid(pid int) {
	f, err := os.OpenFile(filepath.Join(cfg.work, "pids"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err == nil {
		fmt.Fprintln(f, pid)
		f.Close()
	}
}

func isMounted(mnt string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[1] == mnt {
			return true
		}
	}
	return false
}

// startDaemon starts argv as a FUSE server for mnt and waits until mnt is
// mounted (and, with ready != "", until a stdout line starts with ready).
func startDaemon(name, mnt, ready string, term bool, environ []string, argv ...string) *daemon {
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = environ
	logFile, err := os.Create(filepath.Join(cfg.work, "logs", name+".log"))
	if err != nil {
		fatalf("%v", err)
	}
	c.Stderr = logFile
	stdout, err := c.StdoutPipe()
	if err != nil {
		fatalf("%v", err)
	}
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		fatalf("starting %s: %v", name, err)
	}
	recordPid(c.Process.Pid)
	d := &daemon{name: name, cmd: c, mnt: mnt, done: make(chan struct{}), term: term}
	daemonsMu.Lock()
	daemons = append(daemons, d)
	daemonsMu.Unlock()
	readyCh := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := ready == ""
		if signalled {
			close(readyCh)
		}
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if !signalled && strings.HasPrefix(sc.Text(), ready) {
				signalled = true
				close(readyCh)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { c.Wait(); logFile.Close(); close(d.done) }()
	deadline := time.After(90 * time.Second)
	for {
		select {
		case <-d.done:
			fatalf("%s exited before serving; see %s", name, logFile.Name())
		case <-deadline:
			fatalf("%s not serving after 90s; see %s", name, logFile.Name())
		case <-time.After(20 * time.Millisecond):
		}
		select {
		case <-readyCh:
			if isMounted(mnt) {
				return d
			}
		default:
		}
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) stop() {
	select {
	case <-d.done:
	default:
		if d.term {
			d.cmd.Process.Signal(syscall.SIGTERM)
		} else {
			syscall.Unmount(d.mnt, 0)
		}
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(5 * time.Second):
				d.cmd.Process.Kill()
				<-d.done
			}
		}
	}
	if isMounted(d.mnt) {
		syscall.Unmount(d.mnt, syscall.MNT_DETACH)
	}
	daemonsMu.Lock()
	for i, x := range daemons {
		if x == d {
			daemons = append(daemons[:i], daemons[i+1:]...)
			break
		}
	}
	daemonsMu.Unlock()
}

var cleanupOnce sync.Once

func cleanupAll() {
	cleanupOnce.Do(func() {
		daemonsMu.Lock()
		ds := append([]*daemon(nil), daemons...)
		daemonsMu.Unlock()
		for i := len(ds) - 1; i >= 0; i-- {
			ds[i].stop()
		}
	})
}

func run(stdin io.Reader, environ []string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = environ
	c.Stdin = stdin
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func must(s string, err error) string {
	if err != nil {
		fatalf("%v", err)
	}
	return s
}

func sh(script string) string {
	return must(run(nil, nil, "/bin/sh", "-c", script))
}

// ---- setup ----

// The five fake credentials of the benchmark store (not secrets: bench data).
var credNames = []string{"BENCH_C1", "BENCH_C2", "BENCH_C3", "BENCH_C4", "BENCH_C5"}

func credValue(i int) string { return fmt.Sprintf("bench-value-%d-0123456789abcdef", i+1) }

type system struct {
	name  string // table heading
	key   string
	root  string // directory the workloads run in
	dmn   *daemon
	fuse  bool
	facio bool
}

type benchEnv struct {
	systems     []*system
	faciofs     *system
	facioEnv    []string
	facioEnvRSS []string
	policy      string
	agentExe    string
	consumer    string
	tarball     string
	treeFiles   int
	rssBacking  string
	versions    map[string]string
}

func setup() *benchEnv {
	e := &benchEnv{versions: map[string]string{}}
	for _, d := range []string{"logs", "backing", "mnt", "store", "consumer", "rss"} {
		if err := os.MkdirAll(filepath.Join(cfg.work, d), 0o755); err != nil {
			fatalf("%v", err)
		}
	}
	faciofs := filepath.Join(cfg.bin, "faciofs")
	e.agentExe = filepath.Join(cfg.bin, "readloop")
	// The consumer is a copy of readloop: a rule's exe matches by device and
	// inode, so the agent's readloop (another inode) stays raw.
	e.consumer = filepath.Join(cfg.work, "consumer", "readloop-consumer")
	b, err := os.ReadFile(e.agentExe)
	if err != nil {
		fatalf("%v", err)
	}
	if err := os.WriteFile(e.consumer, b, 0o755); err != nil {
		fatalf("%v", err)
	}

	// Store with a 0600 password file, as cmd/faciofs's tests do.
	pw := filepath.Join(cfg.work, "store", "pw")
	if err := os.WriteFile(pw, []byte("bench-master-password\n"), 0o600); err != nil {
		fatalf("%v", err)
	}
	e.facioEnv = append(os.Environ(), "FACIOFS_STORE="+filepath.Join(cfg.work, "store", "store.db"), "FACIOFS_PASSWORD_FILE="+pw)
	must(run(nil, e.facioEnv, faciofs, "init"))
	for i, n := range credNames {
		must(run(strings.NewReader(credValue(i)+"\n"), e.facioEnv, faciofs, "secret", "set", n))
	}
	// A second copy of the store for the RSS mounts, which run while the
	// main faciofs mount holds the first one.
	if err := os.MkdirAll(filepath.Join(cfg.work, "store-rss"), 0o700); err != nil {
		fatalf("%v", err)
	}
	db, err := os.ReadFile(filepath.Join(cfg.work, "store", "store.db"))
	if err != nil {
		fatalf("%v", err)
	}
	if err := os.WriteFile(filepath.Join(cfg.work, "store-rss", "store.db"), db, 0o600); err != nil {
		fatalf("%v", err)
	}
	e.facioEnvRSS = append(os.Environ(), "FACIOFS_STORE="+filepath.Join(cfg.work, "store-rss", "store.db"), "FACIOFS_PASSWORD_FILE="+pw)
	e.policy = filepath.Join(cfg.work, "policy.yaml")
	pol := fmt.Sprintf(`version: 1
consumers:
  - name: bench-consumer
    match:
      exe: [%s]
    credentials: [%s]
    paths: ["tmpl/**"]
`, e.consumer, strings.Join(credNames, ", "))
	if err := os.WriteFile(e.policy, []byte(pol), 0o600); err != nil {
		fatalf("%v", err)
	}
	must(run(nil, e.facioEnv, faciofs, "policy", "check", e.policy))

	// The source tree tarball, made once and read from the page cache.
	e.tarball = filepath.Join(cfg.work, "tree.tar")
	must(run(nil, nil, "tar", "-C", filepath.Dir(cfg.tree), "-cf", e.tarball, filepath.Base(cfg.tree)))
	n, _ := strconv.Atoi(strings.TrimSpace(sh("tar -tf " + e.tarball + " | grep -vc '/$'")))
	e.treeFiles = n

	mk := func(name, key string, fuse bool) *system {
		backing := filepath.Join(cfg.work, "backing", key)
		if err := os.MkdirAll(backing, 0o755); err != nil {
			fatalf("%v", err)
		}
		s := &system{name: name, key: key, root: backing, fuse: fuse}
		if fuse {
			s.root = filepath.Join(cfg.work, "mnt", key)
			if err := os.MkdirAll(s.root, 0o755); err != nil {
				fatalf("%v", err)
			}
		}
		return s
	}
	native := mk("native", "native", false)
	bind := mk("bindfs", "bindfs", true)
	bind.dmn = startDaemon("bindfs", bind.root, "", false, nil, "bindfs", "-f", filepath.Join(cfg.work, "backing", "bindfs"), bind.root)
	loop := mk("go-fuse loopback", "loopback", true)
	loop.dmn = startDaemon("loopback", loop.root, "", false, nil, filepath.Join(cfg.bin, "loopback"), "-q", loop.root, filepath.Join(cfg.work, "backing", "loopback"))
	fac := mk("faciofs", "faciofs", true)
	fac.facio = true
	fac.dmn = startFaciofs(e, "faciofs", filepath.Join(cfg.work, "backing", "faciofs"), fac.root, e.facioEnv)
	e.systems = []*system{native, bind, loop, fac}
	e.faciofs = fac

	// The templated config: 4 KiB with 5 placeholders, and a plain 4 KiB
	// file both on an uncovered path and on a covered one.
	tmpl := templated()
	plain := strings.Repeat("PLAIN_SETTING=ordinary configuration value, no placeholder here\n", 64)[:4096]
	for _, s := range e.systems {
		writeFile(filepath.Join(s.root, "plain4k"), plain)
	}
	if err := os.MkdirAll(filepath.Join(fac.root, "tmpl"), 0o755); err != nil {
		fatalf("%v", err)
	}
	writeFile(filepath.Join(fac.root, "tmpl", "app.env"), tmpl)
	writeFile(filepath.Join(fac.root, "tmpl", "plain4k"), plain)
	// Check the two views before timing them.
	agentView := must(run(nil, nil, e.agentExe, "-cat", filepath.Join(fac.root, "tmpl", "app.env")))
	consumerView := must(run(nil, nil, e.consumer, "-cat", filepath.Join(fac.root, "tmpl", "app.env")))
	if agentView != tmpl {
		fatalf("the agent's view of tmpl/app.env is not the stored template")
	}
	for i := range credNames {
		if !strings.Contains(consumerView, credValue(i)) || strings.Contains(consumerView, "${credentials.") {
			fatalf("the consumer's view of tmpl/app.env is not resolved; check %s", e.policy)
		}
	}

	// The RSS tree: RSS_FILES empty files in directories of 1000.
	e.rssBacking = filepath.Join(cfg.work, "rss", "backing")
	for i := 0; i < cfg.rssFiles; i++ {
		dir := filepath.Join(e.rssBacking, fmt.Sprintf("d%04d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				fatalf("%v", err)
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%06d", i)))
		if err != nil {
			fatalf("%v", err)
		}
		f.Close()
	}

	e.versions["bindfs"] = strings.TrimSpace(must(run(nil, nil, "bindfs", "--version")))
	e.versions["faciofs"] = buildRev(faciofs)
	e.versions["go-fuse"] = depVersion(filepath.Join(cfg.bin, "loopback"), "github.com/hanwen/go-fuse/v2")
	return e
}

func startFaciofs(e *benchEnv, name, backing, mnt string, environ []string) *daemon {
	return startDaemon(name, mnt, "faciofs: serving", true, environ,
		filepath.Join(cfg.bin, "faciofs"), "mount", "--policy", e.policy, backing, mnt)
}

func writeFile(p, s string) {
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		fatalf("%v", err)
	}
}

// templated returns a 4096-byte .env-style file with five placeholders.
func templated() string {
	var b strings.Builder
	for i, n := range credNames {
		fmt.Fprintf(&b, "SECRET_%d=${credentials.%s}\n", i+1, n)
		for j := 0; j < 11; j++ {
			fmt.Fprintf(&b, "SETTING_%d_%02d=an ordinary value that stays as written\n", i, j)
		}
	}
	s := b.String()
	for len(s) < 4096 {
		s += "# padding to exactly four KiB #################################\n"
	}
	return s[:4095] + "\n"
}

// ---- measurements ----

type results struct {
	mu        sync.Mutex
	v         map[string]map[string][]float64 // metric -> system key -> values
	loadStart string
	loadEnd   string
	elapsed   time.Duration
}

func newResults() *results { return &results{v: map[string]map[string][]float64{}} }

func (r *results) add(metric, sys string, x float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.v[metric] == nil {
		r.v[metric] = map[string][]float64{}
	}
	r.v[metric][sys] = append(r.v[metric][sys], x)
}

func dropCaches() {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200); err != nil {
		fatalf("drop caches: %v", err)
	}
}

func timeIt(f func()) float64 {
	t0 := time.Now()
	f()
	return time.Since(t0).Seconds()
}

func seqWrite(path string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		fatalf("%v", err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + i>>8)
	}
	for i := 0; i < cfg.sizeMiB; i++ {
		if _, err := f.Write(buf); err != nil {
			fatalf("%v", err)
		}
	}
	if err := f.Sync(); err != nil {
		fatalf("fsync %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		fatalf("%v", err)
	}
}

func seqRead(path string) {
	f, err := os.Open(path)
	if err != nil {
		fatalf("%v", err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	total := 0
	for {
		n, err := f.Read(buf)
		total += n
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fatalf("%v", err)
		}
	}
	if total != cfg.sizeMiB<<20 {
		fatalf("read %d bytes of %s, want %d", total, path, cfg.sizeMiB<<20)
	}
}

// metadata creates, stats and unlinks cfg.files small files in dir and
// returns the three rates in operations per second.
func metadata(dir string) (create, stat, unlink float64) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatalf("%v", err)
	}
	names := make([]string, cfg.files)
	for i := range names {
		names[i] = filepath.Join(dir, fmt.Sprintf("small%05d", i))
	}
	payload := []byte("small file contents\n")
	tc := timeIt(func() {
		for _, n := range names {
			fd, err := syscall.Open(n, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
			if err != nil {
				fatalf("create %s: %v", n, err)
			}
			syscall.Write(fd, payload)
			syscall.Close(fd)
		}
	})
	var st syscall.Stat_t
	ts := timeIt(func() {
		for _, n := range names {
			if err := syscall.Lstat(n, &st); err != nil {
				fatalf("stat %s: %v", n, err)
			}
		}
	})
	tu := timeIt(func() {
		for _, n := range names {
			if err := syscall.Unlink(n); err != nil {
				fatalf("unlink %s: %v", n, err)
			}
		}
	})
	os.Remove(dir)
	f := float64(cfg.files)
	return f / tc, f / ts, f / tu
}

type loopResult struct {
	Bytes     int     `json:"bytes"`
	MedianNs  float64 `json:"median_ns"`
	P99Ns     float64 `json:"p99_ns"`
	OpsPerSec float64 `json:"ops_per_s"`
}

func readloop(exe string, args ...string) loopResult {
	out := must(run(nil, nil, append([]string{exe}, args...)...))
	var r loopResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		fatalf("readloop output %q: %v", out, err)
	}
	return r
}

// rotated returns the systems starting at index r, so that no system is
// always first after a cache drop or always last in a run.
func rotated(s []*system, r int) []*system {
	out := make([]*system, 0, len(s))
	for i := range s {
		out = append(out, s[(i+r)%len(s)])
	}
	return out
}

// Metric names; the report lists them in this order.
const (
	mSeqWrite  = "seq write + fsync"
	mSeqCold   = "seq read, cold"
	mSeqWarm   = "seq read, warm"
	mUntar     = "untar"
	mSha       = "sha256sum all files"
	mLs        = "ls -lR"
	mRm        = "rm -rf"
	mCreate    = "create"
	mStat      = "stat"
	mUnlink    = "unlink"
	mPlain4k   = "plain 4 KiB open+read+close, median"
	mPlain4k99 = "plain 4 KiB open+read+close, p99"
)

func oneRun(e *benchEnv, res *results, r int) {
	order := rotated(e.systems, r)
	seq := func(s *system) string { return filepath.Join(s.root, "seq.bin") }
	mib := float64(cfg.sizeMiB)
	for _, s := range order {
		dt := timeIt(func() { seqWrite(seq(s)) })
		res.add(mSeqWrite, s.key, mib/dt)
	}
	for _, s := range order {
		dropCaches()
		res.add(mSeqCold, s.key, mib/timeIt(func() { seqRead(seq(s)) }))
	}
	for _, s := range order {
		seqRead(seq(s)) // make sure it is cached
		res.add(mSeqWarm, s.key, mib/timeIt(func() { seqRead(seq(s)) }))
	}
	for _, s := range order {
		os.Remove(seq(s))
	}
	logf("run %d: sequential done", r+1)

	for _, s := range order {
		dir := filepath.Join(s.root, "tree")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fatalf("%v", err)
		}
		res.add(mUntar, s.key, timeIt(func() { must(run(nil, nil, "tar", "-C", dir, "-xf", e.tarball)) }))
	}
	for _, s := range order {
		dir := filepath.Join(s.root, "tree")
		res.add(mSha, s.key, timeIt(func() {
			must(run(nil, nil, "/bin/sh", "-c", "cd '"+dir+"' && find . -type f -print0 | xargs -0 sha256sum > /dev/null"))
		}))
	}
	for _, s := range order {
		dir := filepath.Join(s.root, "tree")
		res.add(mLs, s.key, timeIt(func() { must(run(nil, nil, "/bin/sh", "-c", "ls -lR '"+dir+"' > /dev/null")) }))
	}
	for _, s := range order {
		dir := filepath.Join(s.root, "tree")
		res.add(mRm, s.key, timeIt(func() { must(run(nil, nil, "rm", "-rf", dir)) }))
	}
	logf("run %d: source tree done", r+1)

	for _, s := range order {
		c, st, u := metadata(filepath.Join(s.root, "meta"))
		res.add(mCreate, s.key, c)
		res.add(mStat, s.key, st)
		res.add(mUnlink, s.key, u)
	}
	logf("run %d: metadata done", r+1)

	n := strconv.Itoa(cfg.latN)
	for _, s := range order {
		lr := readloop(e.agentExe, "-n", n, filepath.Join(s.root, "plain4k"))
		res.add(mPlain4k, s.key, lr.MedianNs/1e3)
		res.add(mPlain4k99, s.key, lr.P99Ns/1e3)
	}

	// faciofs templated files: consumer and agent alternate.
	fac := e.faciofs.root
	tmplPath := filepath.Join(fac, "tmpl", "app.env")
	coveredPlain := filepath.Join(fac, "tmpl", "plain4k")
	for _, who := range []struct{ key, exe string }{{"consumer", e.consumer}, {"agent", e.agentExe}} {
		lr := readloop(who.exe, "-n", n, tmplPath)
		res.add("tmpl median", who.key, lr.MedianNs/1e3)
		res.add("tmpl p99", who.key, lr.P99Ns/1e3)
		if who.key == "consumer" && lr.Bytes == 4096 {
			fatalf("the consumer read %d bytes of the template: not resolved", lr.Bytes)
		}
		lr = readloop(who.exe, "-n", n, coveredPlain)
		res.add("covered plain median", who.key, lr.MedianNs/1e3)
		res.add("covered plain p99", who.key, lr.P99Ns/1e3)
	}
	for _, c := range []int{1, 2, 8} {
		for _, who := range []struct{ key, exe string }{{"consumer", e.consumer}, {"agent", e.agentExe}} {
			lr := readloop(who.exe, "-c", strconv.Itoa(c), "-d", cfg.tputDur.String(), tmplPath)
			res.add(fmt.Sprintf("tmpl throughput c=%d", c), who.key, lr.OpsPerSec)
		}
	}
	logf("run %d: templated done", r+1)
}

// rssRun mounts faciofs (and go-fuse's loopback, for reference) over the
// RSS tree, stats every file through the mount and reads the daemon's
// VmRSS and VmHWM.
func rssRun(e *benchEnv, res *results, r int) {
	type starter struct {
		key   string
		start func(mnt string) *daemon
	}
	starters := []starter{
		{"faciofs", func(mnt string) *daemon { return startFaciofs(e, "faciofs-rss", e.rssBacking, mnt, e.facioEnvRSS) }},
		{"loopback", func(mnt string) *daemon {
			return startDaemon("loopback-rss", mnt, "", false, nil, filepath.Join(cfg.bin, "loopback"), "-q", mnt, e.rssBacking)
		}},
	}
	if r%2 == 1 {
		starters[0], starters[1] = starters[1], starters[0]
	}
	for _, st := range starters {
		mnt := filepath.Join(cfg.work, "rss", "mnt-"+st.key)
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			fatalf("%v", err)
		}
		d := st.start(mnt)
		rss0, _ := vmRSS(d.pid())
		res.add("RSS0", st.key, rss0)
		var s syscall.Stat_t
		n := 0
		dt := timeIt(func() {
			dirs, err := os.ReadDir(mnt)
			if err != nil {
				fatalf("%v", err)
			}
			for _, dir := range dirs {
				names, err := os.ReadDir(filepath.Join(mnt, dir.Name()))
				if err != nil {
					fatalf("%v", err)
				}
				for _, f := range names {
					if err := syscall.Lstat(filepath.Join(mnt, dir.Name(), f.Name()), &s); err != nil {
						fatalf("%v", err)
					}
					n++
				}
			}
		})
		if n != cfg.rssFiles {
			fatalf("stat'ed %d files through %s, want %d", n, mnt, cfg.rssFiles)
		}
		rss, hwm := vmRSS(d.pid())
		res.add("RSS", st.key, rss)
		res.add("HWM", st.key, hwm)
		res.add("stat walk", st.key, float64(n)/dt)
		d.stop()
	}
}

func vmRSS(pid int) (rss, hwm float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		fatalf("%v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			kb, _ := strconv.ParseFloat(f[1], 64)
			if f[0] == "VmRSS:" {
				rss = kb / 1024
			} else {
				hwm = kb / 1024
			}
		}
	}
	return rss, hwm
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
