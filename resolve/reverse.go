package resolve

import (
	"errors"
	"slices"
)

// ErrNoFixedPoint is returned by Matcher.Reverse when a value overlaps the
// placeholder text that replaces it so that every replacement recreates a
// value (a pathological value such as "{credentials.A}"). The caller must
// refuse the write: storing the bytes would store a value.
var ErrNoFixedPoint = errors.New("resolve: a stored value overlaps placeholder syntax; refusing to write it")

// maxReverseRounds bounds the passes Reverse makes. A pass can only create a
// new occurrence by overlapping placeholder text it inserted, which needs a
// value that shares bytes with "${credentials.NAME|filter}"; ordinary values
// converge in one pass, the rest in two or three.
const maxReverseRounds = 8

// Reverse returns src with every occurrence of a known value or form replaced
// by the placeholder that renders to it (see Matcher), leftmost-longest, and
// the names replaced (deduplicated, sorted). It returns src itself when
// nothing is replaced.
//
// Reverse is not the inverse of escapes: a consumer that read the literal
// ${credentials.X} produced by $${credentials.X} and writes it back writes a
// placeholder. And the grammar cannot express "a literal '$' followed by a
// value": a value right after a '$' becomes $${credentials.NAME}, an escape, so
// the value is gone from disk but the file renders differently. Both trade
// fidelity for the invariant that no value is ever stored.
//
// The result is checked: it never contains a known value or form. When that
// cannot be reached (ErrNoFixedPoint), out is nil.
func (m *Matcher) Reverse(src []byte) (out []byte, names []string, err error) {
	out = src
	for range maxReverseRounds {
		var inserted [][2]int
		out, inserted = m.reverseOnce(out, &names)
		if !m.recreated(out, inserted) {
			slices.Sort(names)
			return out, slices.Compact(names), nil
		}
	}
	slices.Sort(names)
	return nil, slices.Compact(names), ErrNoFixedPoint
}

// recreated reports whether out holds a match after a pass that inserted the
// placeholders at inserted. A pass leaves no match inside the text it kept
// (leftmost-longest would have taken it), so a new match must overlap an
// inserted placeholder: only the bytes within a pattern's length of one need
// looking at.
func (m *Matcher) recreated(out []byte, inserted [][2]int) bool {
	for i := 0; i < len(inserted); {
		lo := max(0, inserted[i][0]-m.maxLen+1)
		hi := min(len(out), inserted[i][1]+m.maxLen-1)
		// Merge placeholders whose windows touch.
		for i++; i < len(inserted) && inserted[i][0]-m.maxLen+1 <= hi; i++ {
			hi = min(len(out), inserted[i][1]+m.maxLen-1)
		}
		if m.Contains(out[lo:hi]) {
			return true
		}
	}
	return false
}

func (m *Matcher) reverseOnce(src []byte, names *[]string) ([]byte, [][2]int) {
	var out []byte
	var inserted [][2]int
	last := 0
	m.Find(src, func(start, end int, name string, f Filter) bool {
		if out == nil {
			out = make([]byte, 0, len(src)+64)
		}
		out = append(out, src[last:start]...)
		at := len(out)
		out = AppendPlaceholder(out, name, f)
		inserted = append(inserted, [2]int{at, len(out)})
		last = end
		*names = append(*names, name)
		return true
	})
	if out == nil {
		return src, nil
	}
	return append(out, src[last:]...), inserted
}

// Reverse is NewMatcher(known).Reverse(src) for a one-off call; build a
// Matcher once when the same values are matched repeatedly, and use it to
// learn which values were too short to look for (Matcher.Skipped). out is nil
// if the values cannot be removed (ErrNoFixedPoint): refuse the write.
func Reverse(src []byte, known []Known) (out []byte, names []string) {
	out, names, _ = NewMatcher(known).Reverse(src)
	return out, names
}
