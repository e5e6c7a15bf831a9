package audit

import (
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultSegmentSize is the size at which a segment file is closed and the
// next one started.
const DefaultSegmentSize = 16 << 20

const (
	defaultQueue = 8192
	maxBatch     = 4096
	segPrefix    = "seg-"
	segSuffix    = ".jsonl"
	lockName     = "lock"
)

// ErrClosed is returned by Append and Post after Close.
var ErrClosed = errors.New("audit log is closed")

// Options tune Open.
type Options struct {
	// Key is the MAC key (store.Keyring.AuditKey). Nil writes unsealed
	// records: hash-chained, with an empty mac.
	Key []byte
	// Anchor is the anchor file; "" means Dir + ".anchor", beside the
	// log directory rather than in it.
	Anchor string
	// SegmentSize is when to start a new segment (DefaultSegmentSize).
	SegmentSize int64
	// Queue bounds the records waiting to be written; Append and Post
	// block while it is full.
	Queue int
	// OnError is told when a batch holding records given to Post could not
	// be written (Append returns its error instead).
	OnError func(error)
	// SyncInterval, when set, lets a batch count as written once write(2)
	// has taken it, and fsyncs at most that often (and when the log goes
	// idle, and at Close). write(2) is where a full disk or an I/O error
	// shows, and what it took survives the writer being killed; only a
	// power loss can lose the last interval. The daemon sets it so that a
	// consumer's open does not wait for the disk; zero fsyncs every batch.
	SyncInterval time.Duration
}

// AnchorPath is where the anchor of the log in dir is kept by default.
func AnchorPath(dir string) string { return filepath.Clean(dir) + ".anchor" }

// Log appends records to the log in one directory. Safe for concurrent use;
// other processes may append to the same directory at the same time.
type Log struct {
	dir, anchor string
	opt         Options
	self        Actor

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *request
	done   chan struct{}
	lockf  *os.File
	anchf  *os.File // nil without a key

	// Only the committer goroutine touches the fields below.
	mac        hash.Hash
	seg        *os.File
	segName    string
	segSize    int64
	seq        uint64
	prev       string
	tailSealed bool
	valid      bool  // the fields above match the files
	repaired   int64 // bytes of a partial line removed, not yet audited
	buf        []byte
	unsynced   bool      // written since the last fsync (SyncInterval only)
	lastSync   time.Time // SyncInterval only
}

type request struct {
	rec  Record
	done chan error // nil for Post
}

// Open opens (creating if needed, mode 0700) the log directory dir.
func Open(dir string, opt Options) (*Log, error) {
	if opt.SegmentSize <= 0 {
		opt.SegmentSize = DefaultSegmentSize
	}
	if opt.Queue <= 0 {
		opt.Queue = defaultQueue
	}
	if opt.Anchor == "" {
		opt.Anchor = AnchorPath(dir)
	}
	opt.Key = bytes.Clone(opt.Key) // the caller may wipe its copy
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &Log{
		dir: dir, anchor: opt.Anchor, opt: opt, self: Self(),
		queue: make(chan *request, opt.Queue), done: make(chan struct{}),
		lockf: lf, mac: newMAC(opt.Key),
	}
	if l.mac != nil {
		if l.anchf, err = openAnchor(opt.Anchor); err != nil {
			lf.Close()
			return nil, fmt.Errorf("audit log: %w", err)
		}
	}
	go l.run()
	return l, nil
}

// Dir is the log directory.
func (l *Log) Dir() string { return l.dir }

// Append writes r and returns once it is on disk (written and fsynced with
// the rest of its batch; with SyncInterval, written), or with the reason it
// is not. Seq, Prev and MAC
// are filled in; a zero Time is now.
func (l *Log) Append(r Record) error {
	q := &request{rec: r, done: make(chan error, 1)}
	if err := l.send(q); err != nil {
		return err
	}
	return <-q.done
}

// Post queues r and returns without waiting for the disk; a failure to
// write it goes to Options.OnError. It blocks only while the queue is full.
func (l *Log) Post(r Record) error { return l.send(&request{rec: r}) }

func (l *Log) send(q *request) error {
	if q.rec.Time.IsZero() {
		q.rec.Time = time.Now()
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.queue <- q
	return nil
}

// Close writes what is queued and closes the files.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.queue)
	l.mu.Unlock()
	<-l.done
	if l.seg != nil {
		l.seg.Close()
	}
	if l.anchf != nil {
		l.anchf.Close()
	}
	return l.lockf.Close()
}

func (l *Log) run() {
	defer close(l.done)
	batch := make([]*request, 0, 64)
	for {
		var q *request
		var ok bool
		if l.unsynced {
			// Something is written but not yet on disk: sync when the
			// interval is up, unless more records arrive first.
			select {
			case q, ok = <-l.queue:
			case <-time.After(l.opt.SyncInterval):
				l.syncNow()
				continue
			}
		} else {
			q, ok = <-l.queue
		}
		if !ok {
			l.syncNow()
			return
		}
		batch = append(batch[:0], q)
	drain:
		for len(batch) < maxBatch {
			select {
			case q, ok := <-l.queue:
				if !ok {
					break drain
				}
				batch = append(batch, q)
			default:
				break drain
			}
		}
		err := l.commit(batch)
		posted := false
		for i, q := range batch {
			if q.done != nil {
				q.done <- err
			} else {
				posted = true
			}
			batch[i] = nil
		}
		if err != nil && posted && l.opt.OnError != nil {
			l.opt.OnError(err)
		}
	}
}

// syncNow fsyncs what SyncInterval let through unsynced, then moves the
// anchor forward to it: the anchor never names a record that is not on disk.
func (l *Log) syncNow() {
	if !l.unsynced {
		return
	}
	if err := flock(l.lockf, syscall.LOCK_EX); err != nil {
		return
	}
	defer flock(l.lockf, syscall.LOCK_UN)
	err := l.seg.Sync()
	if err == nil && l.mac != nil {
		err = writeAnchor(l.anchf, l.opt.Key, l.seq, l.prev)
	}
	if err != nil {
		if l.opt.OnError != nil {
			l.opt.OnError(fmt.Errorf("audit log: %w", err))
		}
		return
	}
	l.unsynced, l.lastSync = false, time.Now()
}

// commit writes one batch under the directory lock: one write, one fsync,
// then the anchor.
func (l *Log) commit(batch []*request) error {
	if err := flock(l.lockf, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("audit log: lock: %w", err)
	}
	defer flock(l.lockf, syscall.LOCK_UN)
	if err := l.sync(); err != nil {
		l.valid = false
		return err
	}
	if l.anchf != nil {
		if fi, err := l.anchf.Stat(); err != nil || fi.Size() == 0 {
			if err == nil {
				err = writeAnchor(l.anchf, l.opt.Key, l.seq, l.prev)
			}
			if err != nil {
				return fmt.Errorf("audit log: anchor: %w", err)
			}
		}
	}
	seq, prev := l.seq, l.prev
	buf := l.buf[:0]
	add := func(r *Record) {
		seq++
		r.Seq, r.Prev, r.MAC = seq, prev, ""
		start := len(buf)
		buf = encode(buf, r, l.mac)
		prev = lineHash(buf[start:])
		buf = append(buf, '\n')
	}
	now := time.Now()
	if l.repaired > 0 {
		add(&Record{Time: now, Event: EventRepair, Outcome: OutcomeOK, Actor: l.self,
			Detail: fmt.Sprintf("removed a partial last line (%d bytes) left by an interrupted write", l.repaired)})
	}
	if l.mac != nil && !l.tailSealed && seq > 0 {
		add(&Record{Time: now, Event: EventSeal, Outcome: OutcomeOK, Actor: l.self,
			Detail: fmt.Sprintf("seals the records up to seq %d, written without the key", seq)})
	}
	for _, q := range batch {
		add(&q.rec)
	}
	l.buf = buf
	if l.seg == nil || l.segSize >= l.opt.SegmentSize {
		if err := l.rotate(); err != nil {
			l.valid = false
			return err
		}
	}
	n, err := l.seg.Write(buf)
	synced := l.opt.SyncInterval == 0 || time.Since(l.lastSync) >= l.opt.SyncInterval
	if err == nil && synced {
		err = l.seg.Sync()
	}
	if err != nil {
		// Leave no partial line behind: the records were not written.
		if n > 0 {
			_ = l.seg.Truncate(l.segSize)
		}
		l.valid = false
		return fmt.Errorf("audit log: writing %s: %w", l.segName, err)
	}
	l.segSize += int64(n)
	l.seq, l.prev, l.repaired = seq, prev, 0
	l.tailSealed = l.mac != nil
	if !synced {
		l.unsynced = true
		return nil
	}
	l.unsynced, l.lastSync = false, time.Now()
	if l.mac != nil {
		if err := writeAnchor(l.anchf, l.opt.Key, seq, prev); err != nil {
			return fmt.Errorf("audit log: anchor: %w", err)
		}
	}
	return nil
}

// rotate starts the segment whose first record will be l.seq+1.
func (l *Log) rotate() error {
	name := segName(l.seq + 1)
	f, err := os.OpenFile(filepath.Join(l.dir, name), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if fi.Size() != 0 {
		f.Close()
		return fmt.Errorf("audit log: new segment %s is not empty", name)
	}
	if l.seg != nil {
		l.seg.Close()
	}
	l.seg, l.segName, l.segSize = f, name, 0
	return nil
}

// sync makes the writer's idea of the tail match the files: cheap when
// nobody else wrote since this process's last batch.
func (l *Log) sync() error {
	if l.valid && l.seg != nil {
		fi, err := os.Stat(filepath.Join(l.dir, l.segName))
		ours, err2 := l.seg.Stat()
		if err == nil && err2 == nil && os.SameFile(fi, ours) && fi.Size() == l.segSize {
			if _, err := os.Lstat(filepath.Join(l.dir, segName(l.seq+1))); errors.Is(err, os.ErrNotExist) {
				return nil
			}
		}
	}
	return l.reload()
}

// reload reads the tail of the newest segment, removing a partial last line.
func (l *Log) reload() error {
	if l.seg != nil {
		l.seg.Close()
		l.seg = nil
	}
	l.seq, l.prev, l.tailSealed, l.segName, l.segSize = 0, "", true, "", 0
	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		l.valid = true
		return nil
	}
	f, err := os.OpenFile(filepath.Join(l.dir, segs[len(segs)-1]), os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	size, cut, last, err := readTail(f)
	if err == nil && cut < size {
		if err = f.Truncate(cut); err == nil {
			err = f.Sync()
		}
		l.repaired += size - cut
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log %s: %w", segs[len(segs)-1], err)
	}
	l.seg, l.segName, l.segSize = f, segs[len(segs)-1], cut
	// An empty newest segment (just started) continues the one before.
	for i := len(segs) - 2; last == nil && i >= 0; i-- {
		pf, err := os.Open(filepath.Join(l.dir, segs[i]))
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		_, pcut, plast, err := readTail(pf)
		pf.Close()
		if err != nil || pcut == 0 {
			return fmt.Errorf("audit log %s: damaged or empty segment; run `faciofs audit verify`", segs[i])
		}
		last = plast
	}
	if last != nil {
		var ln line
		if err := ln.parse(last); err != nil {
			return fmt.Errorf("audit log %s: the last record is damaged (%v); run `faciofs audit verify`, then move the audit directory aside to start a new log", l.segName, err)
		}
		l.seq, l.prev, l.tailSealed = ln.seq, lineHash(last), len(ln.mac) > 0
	}
	l.valid = true
	return nil
}

// readTail returns f's size, the length up to its last newline, and the
// last complete line (nil if there is none).
func readTail(f *os.File) (size, cut int64, last []byte, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, nil, err
	}
	size = fi.Size()
	win := min(size, 2*maxRecordLen)
	buf := make([]byte, win)
	if _, err := f.ReadAt(buf, size-win); err != nil && err != io.EOF {
		return 0, 0, nil, err
	}
	nl := bytes.LastIndexByte(buf, '\n')
	if nl < 0 {
		if win < size {
			return 0, 0, nil, errors.New("no record boundary near the end of the file")
		}
		return size, 0, nil, nil
	}
	cut = size - win + int64(nl) + 1
	body := buf[:nl]
	start := bytes.LastIndexByte(body, '\n') + 1
	if start == 0 && win < size {
		return 0, 0, nil, errors.New("the last record is too long")
	}
	return size, cut, body[start:], nil
}

func segName(first uint64) string { return fmt.Sprintf("%s%020d%s", segPrefix, first, segSuffix) }

// listSegments returns the segment files of dir, oldest first.
func listSegments(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("audit log: %w", err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, segPrefix) && strings.HasSuffix(n, segSuffix) && len(n) == len(segPrefix)+20+len(segSuffix) && e.Type().IsRegular() {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
