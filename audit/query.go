package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Filter selects records; zero fields select everything.
type Filter struct {
	Since, Until time.Time // inclusive bounds
	Event        Event
	Key          string // a credential name the record lists
	Pid          int    // the actor's pid or tgid
	Path         string // glob on the path: * within a segment, ** across segments
	Grep         *regexp.Regexp
}

// ParseTime reads a --since/--until argument: a duration back from now
// ("1h", "30m", "2h45m"), "7d" for days, or an RFC 3339 time.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: give a positive duration back from now", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateTime, s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration such as 1h or 7d nor a time such as 2026-01-02T15:04:05Z", s)
}

// matcher is a Filter prepared for a fast scan: cheap byte tests first, a
// parse without allocation next, the regular expression last.
type matcher struct {
	f            Filter
	since, until []byte
	evNeedle     []byte
	keyNeedle    []byte
	glob         []string
	ln           line
}

func newMatcher(f Filter) (*matcher, error) {
	m := &matcher{f: f}
	if !f.Since.IsZero() {
		m.since = []byte(formatTime(f.Since))
	}
	if !f.Until.IsZero() {
		m.until = []byte(formatTime(f.Until))
	}
	if f.Event != "" {
		m.evNeedle = appendString([]byte(`"event":`), string(f.Event), maxText)
	}
	if f.Key != "" {
		m.keyNeedle = appendString(nil, f.Key, maxText)
	}
	if f.Path != "" {
		m.glob = strings.Split(strings.TrimPrefix(f.Path, "/"), "/")
		for _, s := range m.glob {
			if _, err := path.Match(s, ""); err != nil {
				return nil, fmt.Errorf("bad path pattern %q: %w", f.Path, err)
			}
		}
	}
	return m, nil
}

func (m *matcher) match(raw []byte) bool {
	if m.evNeedle != nil && !bytes.Contains(raw, m.evNeedle) {
		return false
	}
	if m.keyNeedle != nil && !bytes.Contains(raw, m.keyNeedle) {
		return false
	}
	ln := &m.ln
	if ln.parse(raw) != nil {
		return false
	}
	if m.since != nil && bytes.Compare(ln.time, m.since) < 0 {
		return false
	}
	if m.until != nil && bytes.Compare(ln.time, m.until) > 0 {
		return false
	}
	if m.f.Event != "" && string(ln.event) != string(m.f.Event) {
		return false
	}
	if m.f.Key != "" {
		found := false
		for _, c := range ln.creds {
			if string(c) == m.f.Key || (bytes.IndexByte(c, '\\') >= 0 && unquote(c) == m.f.Key) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if m.f.Pid != 0 && ln.pid != int64(m.f.Pid) && ln.tgid != int64(m.f.Pid) {
		return false
	}
	if m.glob != nil && (len(ln.path) == 0 || !globMatch(m.glob, strings.Split(unquote(ln.path), "/"))) {
		return false
	}
	if m.f.Grep != nil && !m.f.Grep.Match(raw) {
		return false
	}
	return true
}

// globMatch matches path segments against pattern segments; "**" matches
// zero or more segments.
func globMatch(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if globMatch(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// Scan calls fn with every complete record in dir that f selects, oldest
// first. raw is one line without its newline, valid only during the call;
// Parse turns it into a Record. A partial last line is not a record and is
// skipped (Verify reports it).
func Scan(dir string, f Filter, fn func(raw []byte) error) error {
	m, err := newMatcher(f)
	if err != nil {
		return err
	}
	_, err = m.scanFrom(dir, cursor{}, fn)
	return err
}

// Follow is Scan, then waits for new records and passes them on as they
// are written, until ctx is done.
func Follow(ctx context.Context, dir string, f Filter, fn func(raw []byte) error) error {
	m, err := newMatcher(f)
	if err != nil {
		return err
	}
	var c cursor
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err = m.scanFrom(dir, c, fn); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// cursor is a position in the log: a segment and an offset just after a
// complete line.
type cursor struct {
	seg string
	off int64
}

const scanBuffer = 1 << 20

func (m *matcher) scanFrom(dir string, c cursor, fn func([]byte) error) (cursor, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return c, err
	}
	br := bufio.NewReaderSize(nil, scanBuffer)
	for _, s := range segs {
		if s < c.seg {
			continue
		}
		if s > c.seg {
			c = cursor{seg: s}
		}
		f, err := os.Open(filepath.Join(dir, s))
		if err != nil {
			return c, err
		}
		if _, err := f.Seek(c.off, io.SeekStart); err != nil {
			f.Close()
			return c, err
		}
		br.Reset(f)
		off, err := m.scanReader(br, c.off, fn)
		f.Close()
		c.off = off
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

// scanReader reads lines from br, which starts at offset off, and returns
// the offset after the last complete line.
func (m *matcher) scanReader(br *bufio.Reader, off int64, fn func([]byte) error) (int64, error) {
	long := false
	for {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = true // not a record this package writes: skip it
			off += int64(len(raw))
			continue
		}
		if err == io.EOF {
			return off, nil // a partial line stays for later
		}
		if err != nil {
			return off, err
		}
		off += int64(len(raw))
		if long {
			long = false
			continue
		}
		raw = raw[:len(raw)-1]
		if m.match(raw) {
			if err := fn(raw); err != nil {
				return off, err
			}
		}
	}
}
