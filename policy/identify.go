package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Caller is who a FUSE request says it comes from: the header's pid, uid and
// gid. Pid is the calling thread's id, and 0 when the caller is outside the
// pid namespace the mount was made in. Uid and Gid are the caller's fsuid and
// fsgid; the kernel fills them in and the caller cannot forge them.
type Caller struct{ Pid, Uid, Gid uint32 }

// Process is an identified caller: its thread group, the image it runs and
// where it sits in the cgroup tree and the process tree. A Process is
// immutable and may be shared between goroutines.
type Process struct {
	Tgid int
	// StartTime is field 22 of /proc/PID/stat (clock ticks since boot);
	// with Tgid it names this process and no later one with the same pid.
	StartTime uint64
	// Exe is the path of the running image as /proc/PID/exe shows it; it
	// may end in " (deleted)". ExeDev and ExeIno are what is compared.
	Exe            string
	ExeDev, ExeIno uint64
	// Cgroup is the cgroup v2 path from the "0::" line of /proc/PID/cgroup,
	// "" when there is none (a host with cgroup v1 only).
	Cgroup string
	// Ancestors is the parent chain, parent first, ending with the process
	// whose parent is 0 (pid 1 of the daemon's pid namespace).
	Ancestors []Ancestor
}

// Ancestor is one process on the parent chain. Uid and Gid are the real
// ids from /proc/PID/status. Exe is "" (and ExeDev, ExeIno 0) when the
// daemon is not allowed to read it.
type Ancestor struct {
	Pid            int
	StartTime      uint64
	Exe            string
	ExeDev, ExeIno uint64
	Uid, Gid       uint32
	Cgroup         string
}

// ErrOutsideNamespace is returned for a caller with pid 0: the kernel could
// not name it in the mount's pid namespace, so it cannot be identified.
var ErrOutsideNamespace = errors.New("caller outside the mount's pid namespace (pid 0)")

// ErrExited is returned when the caller went away (or its pid was reused)
// while it was being identified.
var ErrExited = errors.New("caller exited while being identified")

const (
	maxAncestors  = 64
	cacheCapacity = 4096
)

type procKey struct {
	tgid  int
	start uint64
}

// Identifier turns callers into Processes. It caches identities by (tgid,
// start time); each call still pins the process, re-reads its start time,
// executable (dev, ino) and cgroup, so a cached identity is only reused for
// the same process running the same image in the same cgroup (an exec or a
// cgroup move is a cache miss). Ancestry is kept as first read: a process
// whose parent exits keeps the ancestry it was first seen with, which can
// only keep it an agent. Safe for concurrent use.
type Identifier struct {
	mu     sync.RWMutex
	cache  map[procKey]*Process
	recent map[recentKey]recentEntry
}

// recentKey names one thread: its id and its own start time, which a
// later thread reusing the id cannot share (start times are in clock ticks,
// and the whole pid space cannot be cycled within one tick).
type recentKey struct {
	tid   uint32
	start uint64
}

type recentEntry struct {
	p  *Process
	at time.Time
}

// NewIdentifier returns an Identifier with an empty cache.
func NewIdentifier() *Identifier {
	return &Identifier{cache: make(map[procKey]*Process), recent: make(map[recentKey]recentEntry)}
}

// Recent is Identify for the filesystem's hot path: a thread identified
// less than maxAge ago is not read again beyond its start time, which is
// what rules out pid reuse. What it gives up, for at most maxAge, is
// noticing an exec or a cgroup move of a process already identified: an
// agent that execs a consumer's binary keeps its earlier (raw) identity for
// that long, and a consumer that execs another program keeps its consumer
// identity for that long; ancestry never changes for a live process.
func (id *Identifier) Recent(c Caller, maxAge time.Duration) (*Process, error) {
	if c.Pid == 0 {
		return nil, ErrOutsideNamespace
	}
	start, _, err := readStat(int(c.Pid))
	if err != nil {
		return nil, err
	}
	k := recentKey{c.Pid, start}
	now := time.Now()
	id.mu.RLock()
	e, ok := id.recent[k]
	id.mu.RUnlock()
	if ok && now.Sub(e.at) < maxAge {
		return e.p, nil
	}
	p, err := id.Identify(c)
	if err != nil {
		return nil, err
	}
	id.mu.Lock()
	if len(id.recent) >= cacheCapacity {
		for k, e := range id.recent {
			if now.Sub(e.at) >= maxAge {
				delete(id.recent, k)
			}
		}
		for k := range id.recent { // still full: random eviction
			if len(id.recent) < cacheCapacity {
				break
			}
			delete(id.recent, k)
		}
	}
	id.recent[k] = recentEntry{p, now}
	id.mu.Unlock()
	return p, nil
}

// Identify identifies the process that made a request. Any error means the
// caller must get the raw view.
func (id *Identifier) Identify(c Caller) (*Process, error) {
	if c.Pid == 0 {
		return nil, ErrOutsideNamespace
	}
	pin, tgid, err := pinProcess(int(c.Pid))
	if err != nil {
		return nil, err
	}
	defer pin.release()

	start, ppid, err := readStat(tgid)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Stat(procPath(tgid, "exe"), &st); err != nil {
		return nil, procErr(tgid, "exe", err)
	}
	cgroup, err := readCgroup(tgid)
	if err != nil {
		return nil, err
	}

	key := procKey{tgid, start}
	id.mu.RLock()
	p := id.cache[key]
	id.mu.RUnlock()
	if p != nil && p.ExeDev == st.Dev && p.ExeIno == st.Ino && p.Cgroup == cgroup {
		if err := pin.check(tgid, start); err != nil {
			return nil, err
		}
		return p, nil
	}

	exe, err := os.Readlink(procPath(tgid, "exe"))
	if err != nil {
		return nil, procErr(tgid, "exe", err)
	}
	ancestors, err := readAncestors(ppid, start)
	if err != nil {
		return nil, err
	}
	p = &Process{
		Tgid: tgid, StartTime: start,
		Exe: exe, ExeDev: st.Dev, ExeIno: st.Ino,
		Cgroup: cgroup, Ancestors: ancestors,
	}
	// Everything above was read while the process was pinned; if it is
	// gone now, some of it may describe a successor with the same pid.
	if err := pin.check(tgid, start); err != nil {
		return nil, err
	}
	id.mu.Lock()
	if len(id.cache) >= cacheCapacity {
		for k := range id.cache { // map order is random: random eviction
			delete(id.cache, k)
			break
		}
	}
	id.cache[key] = p
	id.mu.Unlock()
	return p, nil
}

// CallerOf builds the Caller the kernel would put in a FUSE request from
// thread pid: its fsuid and fsgid. `faciofs policy explain --pid` uses it.
func CallerOf(pid int) (Caller, error) {
	if pid <= 0 || pid > 1<<31-1 {
		return Caller{}, fmt.Errorf("invalid pid %d", pid)
	}
	s, err := readStatus(pid)
	if err != nil {
		return Caller{}, err
	}
	return Caller{Pid: uint32(pid), Uid: s.fsuid, Gid: s.fsgid}, nil
}

// pin holds a pidfd for the thread group while it is read. Without pidfd
// support (old kernel, seccomp) it falls back to comparing start times.
type pin struct{ fd int }

func pinProcess(pid int) (pin, int, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
		return pin{fd}, pid, nil
	case err == unix.ESRCH:
		return pin{-1}, 0, ErrExited
	case err == unix.EINVAL || err == unix.ENOENT:
		// Not a thread group leader: pid is a thread id (EINVAL before
		// Linux 6.9, ENOENT since).
	case err == unix.ENOSYS || err == unix.EPERM:
		s, err := readStatus(pid)
		if err != nil {
			return pin{-1}, 0, err
		}
		return pin{-1}, s.tgid, nil
	default:
		return pin{-1}, 0, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	s, err := readStatus(pid)
	if err != nil {
		return pin{-1}, 0, err
	}
	fd, err = unix.PidfdOpen(s.tgid, 0)
	if err != nil {
		return pin{-1}, 0, ErrExited
	}
	// The thread might have exited and its id been reused between reading
	// its status and pinning the group; it must still be in the group.
	if err := unix.Access(procPath(s.tgid, "task/"+strconv.Itoa(pid)), unix.F_OK); err != nil {
		unix.Close(fd)
		return pin{-1}, 0, ErrExited
	}
	return pin{fd}, s.tgid, nil
}

// check confirms the pinned process still exists (it may be a zombie, which
// keeps its pid). Without a pidfd, the start time is read again.
func (p pin) check(tgid int, start uint64) error {
	if p.fd >= 0 {
		err := unix.PidfdSendSignal(p.fd, 0, nil, 0)
		if err == nil || err == unix.EPERM {
			return nil
		}
		return ErrExited
	}
	now, _, err := readStat(tgid)
	if err != nil || now != start {
		return ErrExited
	}
	return nil
}

func (p pin) release() {
	if p.fd >= 0 {
		unix.Close(p.fd)
	}
}

func readAncestors(ppid int, childStart uint64) ([]Ancestor, error) {
	var out []Ancestor
	for ppid != 0 {
		if len(out) >= maxAncestors {
			return nil, fmt.Errorf("process tree deeper than %d", maxAncestors)
		}
		a, next, err := readAncestor(ppid)
		if err != nil {
			return nil, err
		}
		// A parent never starts after its child: if this one did, the
		// parent exited and its pid was reused while we walked.
		if a.StartTime > childStart {
			return nil, fmt.Errorf("ancestor %d changed while being read", ppid)
		}
		out = append(out, a)
		childStart = a.StartTime
		ppid = next
	}
	return out, nil
}

func readAncestor(pid int) (Ancestor, int, error) {
	start, ppid, err := readStat(pid)
	if err != nil {
		return Ancestor{}, 0, err
	}
	s, err := readStatus(pid)
	if err != nil {
		return Ancestor{}, 0, err
	}
	// An ancestor the daemon may not inspect (pid 1 of an enclosing
	// container, a process in a parent user namespace) keeps an empty Exe
	// and matches no exe field. An agent cannot hide its executable this way
	// from a root daemon, which holds CAP_SYS_PTRACE over it.
	var exe string
	var st unix.Stat_t
	if exe, err = os.Readlink(procPath(pid, "exe")); err == nil {
		err = unix.Stat(procPath(pid, "exe"), &st)
	}
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		exe, st = "", unix.Stat_t{}
	} else if err != nil {
		return Ancestor{}, 0, procErr(pid, "exe", err)
	}
	cgroup, err := readCgroup(pid)
	if err != nil {
		return Ancestor{}, 0, err
	}
	if again, _, err := readStat(pid); err != nil || again != start {
		return Ancestor{}, 0, fmt.Errorf("ancestor %d changed while being read", pid)
	}
	return Ancestor{
		Pid: pid, StartTime: start,
		Exe: exe, ExeDev: st.Dev, ExeIno: st.Ino,
		Uid: s.uid, Gid: s.gid, Cgroup: cgroup,
	}, ppid, nil
}

func procPath(pid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

func procErr(pid int, name string, err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w (reading /proc/%d/%s)", ErrExited, pid, name)
	}
	return fmt.Errorf("reading /proc/%d/%s: %w", pid, name, err)
}

// readProc reads a small /proc file into buf without allocating an os.File.
func readProc(pid int, name string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(procPath(pid, name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, procErr(pid, name, err)
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, procErr(pid, name, err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

// readStat returns field 22 (starttime) and field 4 (ppid) of
// /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func readStat(pid int) (start uint64, ppid int, err error) {
	var buf [1024]byte
	b, err := readProc(pid, "stat", buf[:])
	if err != nil {
		return 0, 0, err
	}
	if len(b) == len(buf) {
		return 0, 0, fmt.Errorf("/proc/%d/stat: longer than %d bytes", pid, len(buf))
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	// After ")": field 3 (state) is index 0, ppid index 1, starttime index 19.
	f := b[i+1:]
	for idx := 0; idx <= 19; idx++ {
		f = bytes.TrimLeft(f, " ")
		end := bytes.IndexByte(f, ' ')
		if end < 0 {
			end = len(f)
		}
		switch idx {
		case 1:
			v, err := strconv.Atoi(string(f[:end]))
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/%d/stat: bad ppid", pid)
			}
			ppid = v
		case 19:
			v, err := strconv.ParseUint(string(bytes.TrimSpace(f[:end])), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/%d/stat: bad starttime", pid)
			}
			return v, ppid, nil
		}
		f = f[end:]
	}
	return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
}

type status struct {
	tgid, ppid   int
	uid, gid     uint32 // real
	fsuid, fsgid uint32
}

// readStatus parses the Tgid, PPid, Uid and Gid lines of /proc/PID/status,
// which come before the (possibly long) Groups line; it works for thread ids.
func readStatus(pid int) (status, error) {
	var buf [4096]byte
	b, err := readProc(pid, "status", buf[:])
	if err != nil {
		return status{}, err
	}
	if len(b) == len(buf) { // a long Groups line: drop the cut-off last line
		b = b[:bytes.LastIndexByte(b, '\n')+1]
	}
	var s status
	var seen int
	for len(b) > 0 && seen != 0b1111 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		fields := strings.Fields(string(val))
		switch string(key) {
		case "Tgid":
			s.tgid, err = atoiField(fields, 0)
			seen |= 1
		case "PPid":
			s.ppid, err = atoiField(fields, 0)
			seen |= 2
		case "Uid":
			s.uid, s.fsuid, err = idFields(fields)
			seen |= 4
		case "Gid":
			s.gid, s.fsgid, err = idFields(fields)
			seen |= 8
		}
		if err != nil {
			return status{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, key, err)
		}
	}
	if seen != 0b1111 {
		return status{}, fmt.Errorf("/proc/%d/status: unexpected format", pid)
	}
	return s, nil
}

func atoiField(f []string, i int) (int, error) {
	if i >= len(f) {
		return 0, errors.New("missing field")
	}
	return strconv.Atoi(f[i])
}

// idFields returns the real (first) and filesystem (fourth) id.
func idFields(f []string) (real, fs uint32, err error) {
	if len(f) < 4 {
		return 0, 0, errors.New("missing field")
	}
	r, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return 0, 0, err
	}
	v, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return 0, 0, err
	}
	return uint32(r), uint32(v), nil
}

// readCgroup returns the cgroup v2 path ("0::" line) of pid, or "".
func readCgroup(pid int) (string, error) {
	var buf [8192]byte
	b, err := readProc(pid, "cgroup", buf[:])
	if err != nil {
		return "", err
	}
	if len(b) == len(buf) {
		// The 0:: line comes last; a cut-off path could match a glob the
		// whole path would not.
		return "", fmt.Errorf("/proc/%d/cgroup: longer than %d bytes", pid, len(buf))
	}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if rest, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			return string(rest), nil
		}
	}
	return "", nil
}
