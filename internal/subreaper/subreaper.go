// Package subreaper keeps every descendant of the daemon a descendant of
// the daemon, and reaps the ones that are not its own children.
//
// Threat model: a child of `faciofs exec` runs for an agent with credentials
// in its environment, and the mount must never serve it resolved files
// (it descends from the daemon, which is how the mount recognises it). A
// child that double-forks would otherwise leave that ancestry: its
// grandchild is reparented to pid 1 and could then run a consumer's program
// as an unknown process. Marked as a child subreaper (PR_SET_CHILD_SUBREAPER)
// the daemon adopts such orphans instead, so the ancestry holds for as long
// as the daemon runs.
//
// Adopted orphans have no one to wait for them but the daemon. Reaper waits
// for a zombie child only if it is neither a child someone registered (an
// exec child, which os/exec waits for itself) nor in the daemon's own process
// group (helpers such as fusermount that libraries start and wait for):
// reaping either would steal its exit status from the code waiting for it.
package subreaper

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reaper adopts and reaps orphaned descendants. The zero value and a nil
// *Reaper do nothing; Start makes one that works.
type Reaper struct {
	// starting is held shared while a registered child is being started
	// and registered, and exclusively while zombies are chosen: a child
	// that exits before it is registered is never taken for an orphan.
	starting sync.RWMutex
	mu       sync.Mutex
	owned    map[int]bool
	pgid     int
	sigs     chan os.Signal
	stop     chan struct{}
	done     chan struct{}
	// reaped counts orphans waited for; tests read it.
	reaped int
}

// Start marks the process a child subreaper and reaps adopted orphans
// whenever a child changes state, until Close.
func Start() (*Reaper, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("becoming a child subreaper: %w", err)
	}
	r := &Reaper{
		owned: make(map[int]bool),
		pgid:  syscall.Getpgrp(),
		sigs:  make(chan os.Signal, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.loop()
	return r, nil
}

// Close stops reaping and ends the subreaper mark. Orphans still running
// are adopted by the next subreaper above, or pid 1.
func (r *Reaper) Close() {
	if r == nil || r.stop == nil {
		return
	}
	signal.Stop(r.sigs)
	close(r.stop)
	<-r.done
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
}

// Starting is called before starting a child that its caller will wait
// for; the returned function must be called once the start is over, with
// the child's pid (0 if the start failed). Until Forget(pid) the reaper
// leaves that child alone.
func (r *Reaper) Starting() (started func(pid int)) {
	if r == nil || r.owned == nil {
		return func(int) {}
	}
	r.starting.RLock()
	return func(pid int) {
		if pid > 0 {
			r.mu.Lock()
			r.owned[pid] = true
			r.mu.Unlock()
		}
		r.starting.RUnlock()
	}
}

// Forget is called once a registered child has been waited for.
func (r *Reaper) Forget(pid int) {
	if r == nil || r.owned == nil {
		return
	}
	r.mu.Lock()
	delete(r.owned, pid)
	r.mu.Unlock()
	r.poke() // an orphan may have been passed over while pid was owned
}

// Reaped is how many orphans have been waited for.
func (r *Reaper) Reaped() int {
	if r == nil || r.owned == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reaped
}

func (r *Reaper) poke() {
	select {
	case r.sigs <- syscall.SIGCHLD:
	default:
	}
}

func (r *Reaper) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		case <-r.sigs:
			r.reap()
		}
	}
}

// reap waits for every zombie child that is an adopted orphan.
func (r *Reaper) reap() {
	r.starting.Lock()
	defer r.starting.Unlock()
	for _, pid := range children() {
		r.mu.Lock()
		owned := r.owned[pid]
		r.mu.Unlock()
		if owned {
			continue
		}
		state, pgid, err := stat(pid)
		if err != nil || state != 'Z' || pgid == r.pgid {
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
			r.mu.Lock()
			r.reaped++
			r.mu.Unlock()
		}
	}
}

// children lists this process's children: from /proc/self/task/*/children
// where the kernel has it (CONFIG_PROC_CHILDREN), else by scanning /proc
// for processes whose parent is this one.
func children() []int {
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	if len(tasks) > 0 {
		var pids []int
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			for _, f := range bytes.Fields(b) {
				if pid, err := strconv.Atoi(string(f)); err == nil {
					pids = append(pids, pid)
				}
			}
		}
		return pids
	}
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, err := parent(pid); err == nil && ppid == self {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stat reads a process's state and process group from /proc/PID/stat.
func stat(pid int) (state byte, pgid int, err error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, 0, err
	}
	pgid, err = strconv.Atoi(string(f[2]))
	return f[0][0], pgid, err
}

func parent(pid int) (int, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(f[1]))
}

// statFields are the fields after the command name: state, ppid, pgrp, ...
func statFields(pid int) ([][]byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("unexpected /proc stat format")
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return nil, errors.New("unexpected /proc stat format")
	}
	return f, nil
}
