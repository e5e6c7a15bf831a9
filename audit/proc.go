package audit

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Self describes the calling process, for records a command writes about
// itself. The command line is left out: a command's own arguments are
// summarised by the record's event, path and credential names.
func Self() Actor {
	pid := os.Getpid()
	exe, _ := os.Executable()
	return Actor{Pid: pid, Tgid: pid, Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Exe: exe, Cgroup: cgroupOf(pid)}
}

// Process fills in what /proc says about the process behind thread id pid:
// thread group, executable, command line and cgroup. It is best effort: a
// process that exited, or that the caller may not inspect, yields only what
// could be read, never an error. The command line is the raw argv joined by
// spaces; callers that may see values in it (a consumer run with a password
// on its command line) must redact it before it goes into a record.
func Process(pid int) Actor {
	a := Actor{Pid: pid, Tgid: pid}
	if pid <= 0 {
		return a
	}
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err == nil {
		for ln := range bytes.SplitSeq(st, []byte("\n")) {
			if v, ok := bytes.CutPrefix(ln, []byte("Tgid:")); ok {
				if n, err := strconv.Atoi(string(bytes.TrimSpace(v))); err == nil {
					a.Tgid = n
				}
				break
			}
		}
	}
	dir := "/proc/" + strconv.Itoa(a.Tgid) + "/"
	a.Exe, _ = os.Readlink(dir + "exe")
	// Read all of it (bounded), so that redaction sees whole values before
	// the record cuts the line to MaxCmdline bytes.
	if cl, err := readLimited(dir+"cmdline", 1<<20); err == nil {
		a.Cmdline = strings.TrimRight(strings.ReplaceAll(string(cl), "\x00", " "), " ")
	}
	a.Cgroup = cgroupOf(a.Tgid)
	return a
}

func cgroupOf(pid int) string {
	b, err := readLimited("/proc/"+strconv.Itoa(pid)+"/cgroup", 4096)
	if err != nil {
		return ""
	}
	for ln := range strings.SplitSeq(string(b), "\n") {
		if cg, ok := strings.CutPrefix(ln, "0::"); ok {
			return cg
		}
	}
	return ""
}

func readLimited(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(n)))
}

// DefaultDir is the log directory of the store at storePath: "audit"
// beside the store file (its anchor is "audit.anchor" beside that).
func DefaultDir(storePath string) string {
	return filepath.Join(filepath.Dir(storePath), "audit")
}
