package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
)

// Kinds of problem Verify reports.
const (
	KindEdited    = "edited"    // a record's bytes changed (MAC or chain), or a line is not a record
	KindRemoved   = "removed"   // records are missing from the middle or the start
	KindReordered = "reordered" // a record is out of sequence order
	KindInserted  = "inserted"  // a record repeats a sequence number already passed
	KindTruncated = "truncated" // the log ends before the anchor
	KindPartial   = "partial"   // a segment ends in a partial line (an interrupted write)
	KindAnchor    = "anchor"    // the anchor is missing, damaged or forged
)

// Problem is one finding, naming the record where it was found.
type Problem struct {
	Kind    string
	Seq     uint64 // the record concerned, 0 if none
	Segment string
	Line    int // 1-based line in Segment, 0 if none
	Text    string
}

func (p Problem) String() string {
	if p.Segment != "" {
		return fmt.Sprintf("%s: %s:%d: %s", p.Kind, p.Segment, p.Line, p.Text)
	}
	return fmt.Sprintf("%s: %s", p.Kind, p.Text)
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Key checks MACs; without it only the hash chain, sequence numbers and
	// the anchor's position are checked, which someone who can write the
	// files can forge.
	Key []byte
	// Anchor is the anchor file; "" means AnchorPath(dir).
	Anchor string
}

// Report is what Verify found.
type Report struct {
	Records     int
	LastSeq     uint64
	MACsChecked bool
	// Unsealed counts the records at the end written without the key:
	// chained, but not yet covered by a MAC. Not a problem by itself.
	Unsealed int
	Problems []Problem
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

type gap struct {
	lo, hi uint64
	where  string
}

// Verify reads the whole log in dir and checks the hash chain, sequence
// numbers, MACs (with a key), the anchor, and that every segment ends with
// a complete line. An error means the log could not be read at all.
func Verify(dir string, opt VerifyOptions) (*Report, error) {
	if opt.Anchor == "" {
		opt.Anchor = AnchorPath(dir)
	}
	rep := &Report{MACsChecked: len(opt.Key) > 0}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	v := verifier{rep: rep, mac: newMAC(opt.Key)}
	anc, haveAnchor, aerr := readAnchor(opt.Anchor, opt.Key)
	if aerr != nil {
		rep.Problems = append(rep.Problems, Problem{Kind: KindAnchor, Text: aerr.Error()})
	} else if haveAnchor {
		v.anchor = &anc
	}
	br := bufio.NewReaderSize(nil, scanBuffer)
	for i, s := range segs {
		f, err := os.Open(filepath.Join(dir, s))
		if err != nil {
			return nil, err
		}
		br.Reset(f)
		err = v.segment(s, br, i == len(segs)-1)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	for _, g := range v.gaps {
		text := fmt.Sprintf("record seq %d is missing (%s)", g.lo, g.where)
		if g.hi > g.lo {
			text = fmt.Sprintf("records seq %d to %d are missing (%s)", g.lo, g.hi, g.where)
		}
		rep.Problems = append(rep.Problems, Problem{Kind: KindRemoved, Seq: g.lo, Text: text})
	}
	switch {
	case v.anchor != nil && v.anchor.Seq > v.maxSeq:
		rep.Problems = append(rep.Problems, Problem{Kind: KindTruncated, Seq: v.maxSeq + 1,
			Text: fmt.Sprintf("the log ends at seq %d but the anchor records seq %d: records %d to %d were cut off", v.maxSeq, v.anchor.Seq, v.maxSeq+1, v.anchor.Seq)})
	case v.anchor != nil && !v.anchorSeen:
		// The anchored seq was passed over as a gap or duplicate, reported above.
	case v.anchor == nil && aerr == nil && v.sealed:
		rep.Problems = append(rep.Problems, Problem{Kind: KindAnchor,
			Text: fmt.Sprintf("the anchor %s is missing although the log holds sealed records: it was deleted, so a cut-off end cannot be detected", opt.Anchor)})
	}
	rep.LastSeq = v.maxSeq
	return rep, nil
}

type verifier struct {
	rep    *Report
	mac    hash.Hash
	anchor *anchor

	last       uint64 // seq of the last record in order
	lastWhere  string
	prev       [hashHexLen]byte // hash of that record's line
	dupPrev    []byte           // hash of a duplicate just seen, also accepted as prev
	suspect    bool             // the record before was unreadable or failed its MAC
	maxSeq     uint64
	gaps       []gap
	sealed     bool
	anchorSeen bool
	ln         line
}

func (v *verifier) problem(kind string, seq uint64, seg string, n int, format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, Problem{Kind: kind, Seq: seq, Segment: seg, Line: n, Text: fmt.Sprintf(format, args...)})
}

func (v *verifier) segment(seg string, br *bufio.Reader, lastSeg bool) error {
	var long []byte
	for n := 1; ; n++ {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, raw...)
			n--
			continue
		}
		if long != nil {
			raw = append(long, raw...)
			long = nil
		}
		if err == io.EOF {
			if len(raw) > 0 {
				what := "an interrupted write left a partial last line; the next writer removes it"
				if !lastSeg {
					what = "the segment ends in a partial line, but it is not the newest segment"
				}
				v.problem(KindPartial, 0, seg, n, "%s", what)
			}
			return nil
		}
		if err != nil {
			return err
		}
		v.record(seg, n, raw[:len(raw)-1])
	}
}

func (v *verifier) record(seg string, n int, raw []byte) {
	where := fmt.Sprintf("%s:%d", seg, n)
	var sum [sha256.Size]byte
	var h [hashHexLen]byte
	sum = sha256.Sum256(raw)
	hex.Encode(h[:], sum[:])
	suspect := v.suspect
	v.suspect = false
	dupPrev := v.dupPrev
	v.dupPrev = nil

	ln := &v.ln
	if err := ln.parse(raw); err != nil {
		v.problem(KindEdited, 0, seg, n, "the line is not a valid audit record (after seq %d)", v.last)
		v.suspect = true
		return
	}
	v.rep.Records++
	s := ln.seq
	macBad := false
	if len(ln.mac) > 0 {
		v.sealed = true
		v.rep.Unsealed = 0
		if v.mac != nil && !ln.macOK(v.mac) {
			v.problem(KindEdited, s, seg, n, "record seq %d fails its MAC: it was changed, or forged", s)
			macBad, v.suspect = true, true
		}
	} else {
		v.rep.Unsealed++
	}
	v.maxSeq = max(v.maxSeq, s)
	expect := v.last + 1
	switch {
	case s == expect:
		prevOK := bytes.Equal(ln.prev, v.prev[:]) || (v.last == 0 && len(ln.prev) == 0) || (dupPrev != nil && bytes.Equal(ln.prev, dupPrev))
		if !prevOK && !suspect && !macBad {
			v.problem(KindEdited, v.last, seg, n, "record seq %d (%s) was changed: record seq %d no longer chains to it", v.last, v.lastWhere, s)
		}
	case s > expect:
		v.gaps = append(v.gaps, gap{expect, s - 1, "before " + where})
	default:
		for i, g := range v.gaps {
			if s >= g.lo && s <= g.hi {
				v.problem(KindReordered, s, seg, n, "record seq %d is out of order: it comes after seq %d (%s)", s, v.last, v.lastWhere)
				switch {
				case g.lo == g.hi:
					v.gaps = append(v.gaps[:i], v.gaps[i+1:]...)
				case s == g.lo:
					v.gaps[i].lo++
				case s == g.hi:
					v.gaps[i].hi--
				default:
					v.gaps = append(v.gaps, gap{s + 1, g.hi, g.where})
					v.gaps[i].hi = s - 1
				}
				return
			}
		}
		if s == v.last {
			v.problem(KindInserted, s, seg, n, "record seq %d appears twice (%s and here): one of them was inserted", s, v.lastWhere)
		} else {
			v.problem(KindInserted, s, seg, n, "record seq %d appears again after seq %d (%s): a copied or forged record was inserted", s, v.last, v.lastWhere)
		}
		v.dupPrev = h[:]
		return
	}
	v.last, v.lastWhere, v.prev = s, where, h
	if v.anchor != nil && s == v.anchor.Seq {
		v.anchorSeen = true
		if string(h[:]) != v.anchor.Hash {
			v.problem(KindEdited, s, seg, n, "record seq %d does not match the anchor: it was changed or replaced", s)
		}
	}
}
