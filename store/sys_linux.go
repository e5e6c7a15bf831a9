package store

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockedKeys is one anonymous page holding the data key and the keys
// derived from it. It is mlocked (not swapped out, best effort: the limit
// RLIMIT_MEMLOCK may refuse) and excluded from core dumps.
type lockedKeys struct {
	mem    []byte
	locked bool
}

func newLockedKeys() (*lockedKeys, error) {
	mem, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	k := &lockedKeys{mem: mem}
	k.locked = unix.Mlock(mem) == nil
	_ = unix.Madvise(mem, unix.MADV_DONTDUMP)
	return k, nil
}

func (k *lockedKeys) data() []byte  { return k.mem[0:32] }
func (k *lockedKeys) mac() []byte   { return k.mem[32:64] }
func (k *lockedKeys) audit() []byte { return k.mem[64:96] }

func (k *lockedKeys) destroy() {
	clear(k.mem)
	if k.locked {
		_ = unix.Munlock(k.mem)
	}
	_ = unix.Munmap(k.mem)
	k.mem = nil
}

// markNonDumpable stops core dumps and same-uid ptrace of this process,
// which from now on holds key material.
func markNonDumpable() {
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}

// lockHolder finds the pid holding a lock on path in /proc/locks, or 0.
// Lines look like "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF"
// (blocked waiters carry a "->" and are skipped).
func lockHolder(path string) int {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	inodeOnly := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil || pid <= 0 {
			continue
		}
		id := strings.Split(fields[5], ":")
		if len(id) != 3 {
			continue
		}
		ino, err1 := strconv.ParseUint(id[2], 10, 64)
		maj, err2 := strconv.ParseUint(id[0], 16, 32)
		mnr, err3 := strconv.ParseUint(id[1], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || ino != st.Ino {
			continue
		}
		if uint32(maj) == unix.Major(st.Dev) && uint32(mnr) == unix.Minor(st.Dev) {
			return pid
		}
		inodeOnly = pid // overlay filesystems may report another device
	}
	return inodeOnly
}

// fileMappings lists this process's memory mappings of the file at path
// (start address -> length), from /proc/self/maps.
func fileMappings(path string) map[uintptr]uintptr {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return nil
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[uintptr]uintptr{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 7f0000000000-7f0000008000 r--s 00000000 fe:00 9982385 /path
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[4] != strconv.FormatUint(st.Ino, 10) {
			continue
		}
		dev := strings.Split(fields[3], ":")
		if len(dev) != 2 {
			continue
		}
		maj, err1 := strconv.ParseUint(dev[0], 16, 32)
		mnr, err2 := strconv.ParseUint(dev[1], 16, 32)
		if err1 != nil || err2 != nil || uint32(maj) != unix.Major(st.Dev) || uint32(mnr) != unix.Minor(st.Dev) {
			continue
		}
		start, end, ok := strings.Cut(fields[0], "-")
		s, err1 := strconv.ParseUint(start, 16, 64)
		e, err2 := strconv.ParseUint(end, 16, 64)
		if ok && err1 == nil && err2 == nil && e > s {
			out[uintptr(s)] = uintptr(e - s)
		}
	}
	return out
}

// unmapNew removes mappings of path that are not in before. When bbolt
// panics inside bolt.Open its mmap is unreachable, and the mapping keeps
// the open file description, and so its flock, alive.
func unmapNew(path string, before map[uintptr]uintptr) {
	for start, n := range fileMappings(path) {
		if _, ok := before[start]; !ok {
			_, _, _ = unix.Syscall(unix.SYS_MUNMAP, start, n, 0)
		}
	}
}
