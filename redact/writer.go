package redact

import (
	"bytes"
	"errors"
	"io"

	"github.com/faciofs/faciofs/resolve"
)

// chunk bounds how much of one Write is matched at a time, so that a huge
// Write is not copied whole into the buffer, and so that a value somewhere
// in a large Write sends only its own window through the automaton (the
// prefilter clears the others). A window is at least 2*MaxLen.
const chunk = 4 << 10

func (m *Matcher) window() int { return max(chunk, 2*m.MaxLen()) }

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("redact: write after close")

// step decides the start of buf. Matches that start before limit are
// final: every byte a pattern starting there could cover is in buf (hold is
// MaxLen()-1, and Find gives the longest pattern at each offset). step calls
// fn for each of them, in order, and returns the cut: buf[:cut] is decided
// (plain bytes and whole matches), buf[cut:] must be kept for the next call.
// A later call on buf[cut:]+more gives what one call on everything would:
// no match starts in [last match end, limit), and the longest pattern at an
// offset depends only on the bytes from that offset on.
func (m *Matcher) step(buf []byte, final bool, fn func(start, end int, name, form string)) int {
	limit := len(buf)
	if !final {
		limit -= max(m.MaxLen()-1, 0)
	}
	if limit <= 0 {
		return 0
	}
	last := 0
	m.Find(buf, func(s, e int, name, form string) bool {
		if s >= limit {
			return false
		}
		fn(s, e, name, form)
		last = e
		return true
	})
	return max(last, limit)
}

// Writer replaces every value and form NewMatcher describes with
// [REDACTED:NAME] on its way to the underlying writer. It holds back the
// last MaxLen()-1 bytes written (less while no full window has arrived),
// since they may be the start of a value; Close writes them. Output order
// and every other byte are unchanged. Whatever the chunking of the writes,
// the output is what one Write of everything followed by Close gives.
//
// A Writer is not safe for concurrent use. Close does not close the
// underlying writer.
type Writer struct {
	w      io.Writer
	m      *Matcher
	buf    []byte
	out    []byte
	count  int
	err    error
	closed bool
}

// New returns a Writer redacting known (see NewMatcher) into w.
func New(w io.Writer, known []resolve.Known) *Writer {
	return NewWriter(w, NewMatcher(known))
}

// NewWriter returns a Writer using m, which may be shared between Writers
// (for example a child's stdout and stderr).
func NewWriter(w io.Writer, m *Matcher) *Writer {
	return &Writer{w: w, m: m}
}

// Write accepts p whole unless the underlying writer fails; the first
// failure is returned again by every later call.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, ErrClosed
	}
	n := 0
	win := w.m.window()
	for len(p) > 0 {
		c := min(len(p), win)
		w.buf = append(w.buf, p[:c]...)
		p = p[c:]
		if err := w.flush(false); err != nil {
			return n, err
		}
		n += c
	}
	return n, nil
}

// Close writes the held-back bytes (redacted). It does not close the
// underlying writer. Calling it again does nothing.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	err := w.flush(true)
	clear(w.buf)
	w.buf = nil
	return err
}

// Count is the number of values and forms replaced so far.
func (w *Writer) Count() int { return w.count }

// Skipped names the values too short to be redacted (see Matcher.Skipped).
func (w *Writer) Skipped() []string { return w.m.Skipped() }

func (w *Writer) flush(final bool) error {
	buf := w.buf
	out := w.out[:0]
	last := 0
	matched := false
	cut := w.m.step(buf, final, func(s, e int, name, _ string) {
		matched = true
		out = append(out, buf[last:s]...)
		out = append(out, "[REDACTED:"...)
		out = append(out, name...)
		out = append(out, ']')
		last = e
		w.count++
	})
	if cut == 0 {
		return nil
	}
	var err error
	if matched {
		out = append(out, buf[last:cut]...)
		err = writeAll(w.w, out)
		clear(out) // it held the bytes around the matches
		w.out = out[:0]
	} else {
		err = writeAll(w.w, buf[:cut])
	}
	rest := copy(buf, buf[cut:])
	clear(buf[rest:])
	w.buf = buf[:rest]
	if err != nil {
		w.err = err
	}
	return err
}

func writeAll(w io.Writer, p []byte) error {
	n, err := w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return err
}

// Hit is one occurrence found by Scan.
type Hit struct {
	Offset int64 // of the first byte
	Line   int   // 1-based line of the first byte
	Name   string
	Form   string // see Matcher.Find
}

// Scan reads r to the end and calls fn for each value or form in it, in
// order, with the same matches a Writer would redact; fn returns false to
// stop early. It holds at most MaxLen()-1 bytes plus one window.
func (m *Matcher) Scan(r io.Reader, fn func(Hit) bool) error {
	win := m.window()
	buf := make([]byte, 0, win+m.MaxLen())
	var base int64 // offset of buf[0]
	line := 1
	counted := 0 // newlines in buf[:counted] are in line
	defer func() { clear(buf[:cap(buf)]) }()
	for {
		n, err := io.ReadFull(r, buf[len(buf):len(buf)+win])
		buf = buf[:len(buf)+n]
		final := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !final {
			return err
		}
		stop := false
		cut := m.step(buf, final, func(s, e int, name, form string) {
			if stop {
				return
			}
			line += bytes.Count(buf[counted:s], nl)
			counted = s
			stop = !fn(Hit{Offset: base + int64(s), Line: line, Name: name, Form: form})
		})
		if stop || final {
			return nil
		}
		line += bytes.Count(buf[counted:cut], nl)
		rest := copy(buf, buf[cut:])
		buf = buf[:rest]
		base += int64(cut)
		counted = 0
	}
}

var nl = []byte{'\n'}
