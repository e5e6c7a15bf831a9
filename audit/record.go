package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"
	"unicode/utf8"
)

// Event names what happened. The names are the contract of `faciofs audit
// --event` and of the JSON output.
type Event string

// Events written today.
const (
	EventInit                Event = "init"
	EventSecretSet           Event = "secret.set"
	EventSecretReplace       Event = "secret.replace"
	EventSecretList          Event = "secret.list"
	EventPasswd              Event = "passwd"
	EventWrongPassword       Event = "wrong_password"
	EventMount               Event = "mount"
	EventUnmount             Event = "unmount"
	EventPolicyLoad          Event = "policy.load"
	EventPolicyReload        Event = "policy.reload"
	EventPolicyReloadFailed  Event = "policy.reload_failed"
	EventResolve             Event = "resolve"
	EventRawServed           Event = "raw_served"
	EventDenied              Event = "denied"
	EventMissing             Event = "missing"
	EventMalformed           Event = "malformed"
	EventReverseSubstitution Event = "reverse_substitution"
	// EventSeal is written by the first writer holding the key after
	// records written without it; its MAC covers them.
	EventSeal Event = "seal"
	// EventRepair is written when a writer removed a partial last line
	// that an interrupted write left behind.
	EventRepair Event = "repair"
)

// Events reserved for later issues (deletion with approval, requests, exec).
const (
	EventDeleteRequested     Event = "delete.requested"
	EventDeleteApproved      Event = "delete.approved"
	EventDeleteDenied        Event = "delete.denied"
	EventDeleteDone          Event = "delete.done"
	EventCredentialRequested Event = "credential.requested"
	EventCredentialFulfilled Event = "credential.fulfilled"
	EventCredentialDenied    Event = "credential.denied"
	EventExecStart           Event = "exec.start"
	EventExecEnd             Event = "exec.end"
	// EventScan is one scan request served by a mount: the files count,
	// the hits, and the credentials found.
	EventScan Event = "scan"
)

// Outcomes.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
)

// Field limits. They bound a record's size (a writer reads the tail of a
// segment to find the last record) and keep lines readable.
const (
	MaxCmdline   = 200
	maxText      = 1024
	maxNames     = 64
	maxRecordLen = 32 << 10
	hashHexLen   = 2 * sha256.Size
)

// Actor is who did it. For FUSE events it is the calling process as the
// daemon identified it; for CLI commands it is the command itself.
type Actor struct {
	Pid     int    `json:"pid"`
	Tgid    int    `json:"tgid"`
	Uid     uint32 `json:"uid"`
	Gid     uint32 `json:"gid"`
	Exe     string `json:"exe,omitempty"`
	Cmdline string `json:"cmdline,omitempty"` // at most MaxCmdline bytes
	Cgroup  string `json:"cgroup,omitempty"`
	// Rule is the policy rule that decided: "consumer:NAME[,NAME]" or the
	// agent rule's description; "" when none applies.
	Rule string `json:"rule,omitempty"`
}

// Record is one audit record. There is deliberately no field that could
// hold a value.
type Record struct {
	Time        time.Time `json:"time"`
	Seq         uint64    `json:"seq"`
	Event       Event     `json:"event"`
	Outcome     string    `json:"outcome"`
	Actor       Actor     `json:"actor"`
	Path        string    `json:"path,omitempty"` // relative to the mount root
	Credentials []string  `json:"credentials,omitempty"`
	Detail      string    `json:"detail,omitempty"`
	Prev        string    `json:"prev"` // hex SHA-256 of the previous line; "" for the first record
	MAC         string    `json:"mac"`  // hex HMAC-SHA256; "" when written without the key
}

// timeLayout is RFC 3339 in UTC with a fixed nine-digit fraction, so that
// times compare as bytes.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// encode appends r's line (no newline) to dst. The field order is fixed and
// mac is last: the MAC covers the line with an empty mac value, so a
// verifier can rebuild those bytes from the line alone.
func encode(dst []byte, r *Record, mac hash.Hash) []byte {
	start := len(dst)
	dst = append(dst, `{"time":"`...)
	dst = r.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"event":`...)
	dst = appendString(dst, string(r.Event), maxText)
	dst = append(dst, `,"outcome":`...)
	dst = appendString(dst, r.Outcome, maxText)
	a := &r.Actor
	dst = append(dst, `,"actor":{"pid":`...)
	dst = strconv.AppendInt(dst, int64(a.Pid), 10)
	dst = append(dst, `,"tgid":`...)
	dst = strconv.AppendInt(dst, int64(a.Tgid), 10)
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendUint(dst, uint64(a.Uid), 10)
	dst = append(dst, `,"gid":`...)
	dst = strconv.AppendUint(dst, uint64(a.Gid), 10)
	for _, f := range [...]struct {
		k, v string
		max  int
	}{{"exe", a.Exe, maxText}, {"cmdline", a.Cmdline, MaxCmdline}, {"cgroup", a.Cgroup, maxText}, {"rule", a.Rule, maxText}} {
		if f.v != "" {
			dst = append(dst, `,"`...)
			dst = append(dst, f.k...)
			dst = append(dst, `":`...)
			dst = appendString(dst, f.v, f.max)
		}
	}
	dst = append(dst, '}')
	if r.Path != "" {
		dst = append(dst, `,"path":`...)
		dst = appendString(dst, r.Path, maxText)
	}
	if len(r.Credentials) > 0 {
		dst = append(dst, `,"credentials":[`...)
		for i, n := range r.Credentials {
			if i == maxNames {
				break
			}
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, n, 160)
		}
		dst = append(dst, ']')
	}
	if r.Detail != "" {
		dst = append(dst, `,"detail":`...)
		dst = appendString(dst, r.Detail, maxText)
	}
	dst = append(dst, `,"prev":"`...)
	dst = append(dst, r.Prev...)
	dst = append(dst, `","mac":"`...)
	if mac != nil {
		mac.Reset()
		mac.Write(dst[start:])
		mac.Write([]byte(`"}`))
		var sum [sha256.Size]byte
		dst = hex.AppendEncode(dst, mac.Sum(sum[:0]))
	}
	return append(dst, `"}`...)
}

// appendString appends s as a JSON string, cut to at most max bytes of
// input at a rune boundary. Invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string, max int) []byte {
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

// line is a parsed record that still points into the bytes it was parsed
// from: the scanner's and the verifier's way of reading a million records
// without a million allocations. String fields hold raw JSON string
// contents (escapes not yet decoded).
type line struct {
	raw                                  []byte
	time, event, outcome, path, detail   []byte
	prev, mac                            []byte
	exe, cmdline, cgroup, rule           []byte
	seq                                  uint64
	pid, tgid                            int64
	uid, gid                             uint64
	creds                                [][]byte
	macStart                             int // offset of mac's value in raw
	hasSeq, hasTime, hasEvent, hasPrev   bool
	hasMAC, hasOutcome, hasActor, escAny bool
}

var errSyntax = errors.New("not a valid audit record")

// parse reads one record line. It accepts exactly the shape encode writes
// (any key order, no unknown keys), which is what Verify needs: an edited
// record that is not a record is reported, not half-read.
func (l *line) parse(b []byte) error {
	*l = line{raw: b, creds: l.creds[:0]}
	p := parser{b: b}
	if !p.obj(func(key []byte) bool {
		switch string(key) {
		case "time":
			l.time, l.hasTime = p.str(), true
		case "seq":
			l.seq, l.hasSeq = p.uint(), true
		case "event":
			l.event, l.hasEvent = p.str(), true
		case "outcome":
			l.outcome, l.hasOutcome = p.str(), true
		case "path":
			l.path = p.str()
		case "detail":
			l.detail = p.str()
		case "prev":
			l.prev, l.hasPrev = p.str(), true
		case "mac":
			l.macStart = p.i + 1
			l.mac, l.hasMAC = p.str(), true
		case "credentials":
			p.arr(func() { l.creds = append(l.creds, p.str()) })
		case "actor":
			l.hasActor = true
			return p.obj(func(key []byte) bool {
				switch string(key) {
				case "pid":
					l.pid = p.int()
				case "tgid":
					l.tgid = p.int()
				case "uid":
					l.uid = p.uint()
				case "gid":
					l.gid = p.uint()
				case "exe":
					l.exe = p.str()
				case "cmdline":
					l.cmdline = p.str()
				case "cgroup":
					l.cgroup = p.str()
				case "rule":
					l.rule = p.str()
				default:
					return false
				}
				return !p.bad
			})
		default:
			return false
		}
		return !p.bad
	}) || p.bad || p.i != len(b) {
		return errSyntax
	}
	if !l.hasSeq || !l.hasTime || !l.hasEvent || !l.hasPrev || !l.hasMAC || !l.hasOutcome || !l.hasActor {
		return errSyntax
	}
	if len(l.time) != len(timeLayout) || (len(l.prev) != 0 && len(l.prev) != hashHexLen) || (len(l.mac) != 0 && len(l.mac) != hashHexLen) {
		return errSyntax
	}
	l.escAny = p.esc
	return nil
}

// macOK reports whether the line's MAC is the HMAC of its canonical bytes.
func (l *line) macOK(mac hash.Hash) bool {
	if len(l.mac) != hashHexLen {
		return false
	}
	mac.Reset()
	mac.Write(l.raw[:l.macStart])
	mac.Write(l.raw[l.macStart+len(l.mac):])
	var sum, got [sha256.Size]byte
	if _, err := hex.Decode(got[:], l.mac); err != nil {
		return false
	}
	return hmac.Equal(mac.Sum(sum[:0]), got[:])
}

// record decodes the line into a Record (allocates).
func (l *line) record() (Record, error) {
	var r Record
	if !l.escAny {
		t, err := time.Parse(time.RFC3339Nano, string(l.time))
		if err != nil {
			return r, fmt.Errorf("%w: time", errSyntax)
		}
		r = Record{
			Time: t, Seq: l.seq, Event: Event(l.event), Outcome: string(l.outcome),
			Actor: Actor{Pid: int(l.pid), Tgid: int(l.tgid), Uid: uint32(l.uid), Gid: uint32(l.gid),
				Exe: string(l.exe), Cmdline: string(l.cmdline), Cgroup: string(l.cgroup), Rule: string(l.rule)},
			Path: string(l.path), Detail: string(l.detail), Prev: string(l.prev), MAC: string(l.mac),
		}
		for _, c := range l.creds {
			r.Credentials = append(r.Credentials, string(c))
		}
		return r, nil
	}
	err := json.Unmarshal(l.raw, &r)
	return r, err
}

// Parse decodes one line of the log.
func Parse(b []byte) (Record, error) {
	var l line
	if err := l.parse(bytes.TrimRight(b, "\n")); err != nil {
		return Record{}, err
	}
	return l.record()
}

// lineHash is the prev value of the record that follows raw.
func lineHash(raw []byte) string {
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:])
}

// unquote decodes a raw JSON string content from a line.
func unquote(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	var s string
	b := make([]byte, 0, len(raw)+2)
	b = append(append(append(b, '"'), raw...), '"')
	if json.Unmarshal(b, &s) != nil {
		return string(raw)
	}
	return s
}

// parser is a minimal JSON reader for the record shape: objects, arrays of
// strings, strings and unsigned or negative integers. No whitespace.
type parser struct {
	b   []byte
	i   int
	bad bool
	esc bool
}

func (p *parser) peek(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) obj(field func(key []byte) bool) bool {
	if !p.peek('{') {
		return false
	}
	if p.peek('}') {
		return true
	}
	for {
		k := p.str()
		if p.bad || !p.peek(':') || !field(k) {
			return false
		}
		if p.peek('}') {
			return true
		}
		if !p.peek(',') {
			return false
		}
	}
}

func (p *parser) arr(elem func()) {
	if !p.peek('[') {
		p.bad = true
		return
	}
	if p.peek(']') {
		return
	}
	for !p.bad {
		elem()
		if p.peek(']') {
			return
		}
		if !p.peek(',') {
			p.bad = true
		}
	}
}

func (p *parser) str() []byte {
	if !p.peek('"') {
		p.bad = true
		return nil
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s
		case c == '\\':
			p.esc = true
			p.i += 2
		case c < 0x20:
			p.bad = true
			return nil
		default:
			p.i++
		}
	}
	p.bad = true
	return nil
}

func (p *parser) uint() uint64 {
	start := p.i
	var v uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + uint64(p.b[p.i]-'0')
		p.i++
	}
	if p.i == start || p.i-start > 19 {
		p.bad = true
	}
	return v
}

func (p *parser) int() int64 {
	neg := p.peek('-')
	v := int64(p.uint())
	if neg {
		v = -v
	}
	return v
}

// newMAC returns the record MAC for key, nil for no key.
func newMAC(key []byte) hash.Hash {
	if len(key) == 0 {
		return nil
	}
	return hmac.New(sha256.New, key)
}
