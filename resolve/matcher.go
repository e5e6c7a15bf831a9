package resolve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"slices"
)

// MinValueLen is the shortest value a Matcher looks for. Shorter values would
// match all over ordinary files ("on", "1234" is already borderline) and
// replacing them would wreck the files; NewMatcher skips them and lists their
// names in Skipped so the caller can warn the human who stored them.
const MinValueLen = 4

// Known is one credential value that must never reach the backing directory.
type Known struct {
	Name  string
	Value []byte
}

// Matcher finds known values, and their encoded forms, in bytes. Build it
// once per set of values with NewMatcher; it is read-only afterwards and safe
// for concurrent use. Reverse, the streaming output redactor and the scan
// command all use it.
//
// For each value it looks for the raw bytes (reported as FilterNone) and for
// every encoded form that differs from the raw bytes: the json, url, base64
// and shell filters' output, plus two equivalent spellings a consumer's own
// encoder may produce: encoding/json's HTML-safe escaping (\u003c, \u0026)
// reported as FilterJSON, and lowercase percent-encoding reported as
// FilterURL. When two patterns are the same bytes, raw forms win over filtered
// ones, then the earlier Known wins.
//
// Matching is Aho-Corasick over the reversed patterns, run from the end of the
// input, which gives the longest pattern starting at each offset in one pass;
// a forward greedy walk then picks leftmost-longest, non-overlapping matches.
// States near the root use dense rows (the hot path); deeper states, which
// long values such as private keys create in large numbers, use sparse edges
// and failure links, so memory stays linear in the total pattern length.
//
// A Matcher encodes the values in its automaton: treat it like the values
// themselves (never log or serialise it, drop it when the store locks).
type Matcher struct {
	pats    []pattern
	class   [256]uint16 // byte -> column; 0 is every byte no pattern uses
	ncls    int
	ndense  int     // states [0, ndense) have a dense row in delta
	delta   []int32 // ndense*ncls
	fail    []int32
	edgeLo  []int32 // edges of state s: edges[edgeLo[s]:edgeLo[s+1]]
	edges   []edge
	longest []int32 // per state: longest pattern that ends here, or -1
	short   []string
	maxLen  int // longest pattern
	pre     prefilter
}

// prefilter answers "certainly no pattern here" for most inputs at about a
// nanosecond a byte, so that clean files (nearly all of them) never run the
// automaton, whose table lookups miss the cache. Every pattern is at least
// MinValueLen (4) bytes long, so every match starts with one of the
// patterns' first two bytes: a 64 Ki-bit set indexed by those two bytes
// rejects almost every offset, and an exact check of the four-byte head and
// of the pattern rejects the rest.
type prefilter struct {
	pairs [1 << 10]uint64 // bit (b0 | b1<<8) set: some pattern starts b0 b1
	heads map[uint32][]int32
	fwd   [][]byte // forward pattern bytes, parallel to Matcher.pats
}

func (p *prefilter) add(pat []byte, idx int32) {
	pair := uint32(pat[0]) | uint32(pat[1])<<8
	p.pairs[pair>>6] |= 1 << (pair & 63)
	w := binary.LittleEndian.Uint32(pat)
	if p.heads == nil {
		p.heads = make(map[uint32][]int32)
	}
	p.heads[w] = append(p.heads[w], idx)
	p.fwd = append(p.fwd, pat)
}

// mayContain is false only if src holds no pattern. Inputs crafted to pass
// the cheap checks often (many true prefixes) exhaust a budget of exact
// comparisons proportional to len(src), and get true: the automaton, which
// is linear whatever the input, then decides.
func (p *prefilter) mayContain(src []byte) bool {
	if len(src) < MinValueLen {
		return false
	}
	budget := len(src)/16 + 64
	pairs := &p.pairs
	// Pairs starting at 0 .. len-MinValueLen; the loop sees the pair that
	// ends at each byte of src[1 : len-MinValueLen+2]. uint16 arithmetic
	// lets the compiler drop the bounds check on pairs.
	prev := uint16(src[0])
	for i, b := range src[1 : len(src)-MinValueLen+2] {
		pair := prev | uint16(b)<<8
		prev = uint16(b)
		if pairs[pair>>6]&(1<<(pair&63)) == 0 {
			continue
		}
		w := binary.LittleEndian.Uint32(src[i:])
		for _, pi := range p.heads[w] {
			budget--
			if budget < 0 || bytes.HasPrefix(src[i:], p.fwd[pi]) {
				return true
			}
		}
	}
	return false
}

type pattern struct {
	name   string
	filter Filter
	n      int
}

type edge struct {
	cls uint16
	to  int32
}

// maxDense bounds the dense transition table (states × byte classes).
const maxDense = 1 << 18

// NewMatcher builds a Matcher for known. Values shorter than MinValueLen are
// skipped (see Skipped). Names are not checked; pass valid names, or Reverse
// writes placeholders that do not render.
func NewMatcher(known []Known) *Matcher {
	m := &Matcher{}
	seen := make(map[string]bool)
	var forms [][]byte // reversed pattern bytes, parallel to m.pats
	add := func(name string, f Filter, p []byte) {
		if len(p) == 0 || seen[string(p)] {
			return
		}
		seen[string(p)] = true
		r := slices.Clone(p)
		slices.Reverse(r)
		forms = append(forms, r)
		m.pre.add(slices.Clone(p), int32(len(m.pats)))
		m.pats = append(m.pats, pattern{name, f, len(p)})
		m.maxLen = max(m.maxLen, len(p))
	}
	var usable []Known
	for _, k := range known {
		if len(k.Value) < MinValueLen {
			m.short = append(m.short, k.Name)
			continue
		}
		usable = append(usable, k)
		add(k.Name, FilterNone, k.Value)
	}
	slices.Sort(m.short)
	m.short = slices.Compact(m.short)
	for _, k := range usable {
		for f := FilterJSON; f < numFilters; f++ {
			add(k.Name, f, f.appendTo(nil, k.Value))
		}
		if b, err := json.Marshal(string(k.Value)); err == nil {
			add(k.Name, FilterJSON, b[1:len(b)-1])
		}
		add(k.Name, FilterURL, appendURL(nil, k.Value, lowerHex))
	}
	m.build(forms)
	return m
}

// Skipped returns the names of values too short to look for (sorted). Those
// values can reach the backing directory as written; tell the human.
func (m *Matcher) Skipped() []string { return slices.Clone(m.short) }

// MaxLen is the length of the longest pattern. A streaming caller that feeds
// Find successive windows must carry MaxLen()-1 bytes over between them.
func (m *Matcher) MaxLen() int { return m.maxLen }

func (m *Matcher) build(forms [][]byte) {
	ncls := 1
	for _, p := range forms {
		for _, b := range p {
			if m.class[b] == 0 {
				m.class[b] = uint16(ncls)
				ncls++
			}
		}
	}
	m.ncls = ncls

	// Trie with per-node edge lists, then renumbered in BFS order so that
	// shallow states get the small ids and the dense rows.
	type node struct {
		edges []edge
		term  int32
	}
	nodes := []node{{term: -1}}
	for pi, p := range forms {
		s := int32(0)
		for _, b := range p {
			c := m.class[b]
			next := int32(-1)
			for _, e := range nodes[s].edges {
				if e.cls == c {
					next = e.to
					break
				}
			}
			if next < 0 {
				next = int32(len(nodes))
				nodes = append(nodes, node{term: -1})
				nodes[s].edges = append(nodes[s].edges, edge{c, next})
			}
			s = next
		}
		if nodes[s].term < 0 {
			nodes[s].term = int32(pi)
		}
	}

	order := make([]int32, 0, len(nodes)) // BFS order: new id -> old id
	newID := make([]int32, len(nodes))
	order = append(order, 0)
	for q := 0; q < len(order); q++ {
		for _, e := range nodes[order[q]].edges {
			newID[e.to] = int32(len(order))
			order = append(order, e.to)
		}
	}
	n := len(order)
	m.edgeLo = make([]int32, n+1)
	m.fail = make([]int32, n)
	m.longest = make([]int32, n)
	for id, old := range order {
		m.edgeLo[id] = int32(len(m.edges))
		for _, e := range nodes[old].edges {
			m.edges = append(m.edges, edge{e.cls, newID[e.to]})
		}
		m.longest[id] = nodes[old].term
	}
	m.edgeLo[n] = int32(len(m.edges))

	m.ndense = min(n, max(1, maxDense/ncls))
	raw := make([]int32, m.ndense*ncls) // dense rows holding plain state ids
	stepRaw := func(s int32, c uint16) int32 {
		for {
			if int(s) < m.ndense {
				return raw[int(s)*ncls+int(c)]
			}
			for _, e := range m.children(s) {
				if e.cls == c {
					return e.to
				}
			}
			s = m.fail[s]
		}
	}
	// BFS ids are in depth order, so fail[s] < s is final before s is reached.
	for s := 0; s < n; s++ {
		if s < m.ndense {
			row := raw[s*ncls : (s+1)*ncls]
			if s > 0 {
				f := int(m.fail[s])
				copy(row, raw[f*ncls:(f+1)*ncls])
			}
			for _, e := range m.children(int32(s)) {
				row[e.cls] = e.to
			}
		}
		for _, e := range m.children(int32(s)) {
			if s > 0 {
				m.fail[e.to] = stepRaw(m.fail[s], e.cls)
			}
			if m.longest[e.to] < 0 {
				m.longest[e.to] = m.longest[m.fail[e.to]]
			}
		}
	}
	for i, t := range raw {
		raw[i] = m.encode(t)
	}
	m.delta = raw
}

// The scan loop keeps its state encoded so that one load per byte does the
// work: bit 0 says a pattern ends here, bit 1 that the state is sparse, and
// the rest is the state's row offset in delta (dense) or its id (sparse).
const (
	encMatch  = 1
	encSparse = 2
)

func (m *Matcher) encode(s int32) int32 {
	var e int32
	if int(s) < m.ndense {
		e = s * int32(m.ncls) << 2
	} else {
		e = s<<2 | encSparse
	}
	if m.longest[s] >= 0 {
		e |= encMatch
	}
	return e
}

func (m *Matcher) decode(e int32) int32 {
	if e&encSparse != 0 {
		return e >> 2
	}
	return (e >> 2) / int32(m.ncls)
}

func (m *Matcher) children(s int32) []edge { return m.edges[m.edgeLo[s]:m.edgeLo[s+1]] }

// stepSparse is the transition from a sparse state, following failure links
// down to a dense row; it returns the encoded next state.
func (m *Matcher) stepSparse(s int32, c uint16) int32 {
	for int(s) >= m.ndense {
		for _, e := range m.children(s) {
			if e.cls == c {
				return m.encode(e.to)
			}
		}
		s = m.fail[s]
	}
	return m.delta[int(s)*m.ncls+int(c)]
}

type hit struct {
	start int
	pat   int32
}

// hits appends, in descending order of start, the longest pattern starting
// at each offset of src where one starts. It runs the automaton of reversed
// patterns from the end of src.
func (m *Matcher) hits(src []byte, hits []hit) []hit {
	delta := m.delta
	class := &m.class
	e := int32(0)
	for i := len(src) - 1; i >= 0; i-- {
		c := int32(class[src[i]])
		if e&encSparse == 0 {
			e = delta[e>>2+c]
		} else {
			e = m.stepSparse(e>>2, uint16(c))
		}
		if e&encMatch != 0 {
			hits = append(hits, hit{i, m.longest[m.decode(e)]})
		}
	}
	return hits
}

// Find calls fn for each leftmost-longest, non-overlapping occurrence of a
// known value or one of its forms in src, in order; fn returns false to stop.
// name and f say which placeholder stands for src[start:end].
func (m *Matcher) Find(src []byte, fn func(start, end int, name string, f Filter) bool) {
	if len(m.pats) == 0 || !m.pre.mayContain(src) {
		return
	}
	hits := m.hits(src, nil)
	next := 0
	for k := len(hits) - 1; k >= 0; k-- {
		h := hits[k]
		if h.start < next {
			continue
		}
		p := &m.pats[h.pat]
		next = h.start + p.n
		if !fn(h.start, next, p.name, p.filter) {
			return
		}
	}
}

// Contains reports whether src holds any known value or form.
func (m *Matcher) Contains(src []byte) bool {
	found := false
	m.Find(src, func(int, int, string, Filter) bool {
		found = true
		return false
	})
	return found
}
