package resolve

import (
	"bytes"
	"regexp"
	"testing"
)

var seeds = []string{
	"",
	"KEY=${credentials.A}\n",
	"$${credentials.A|json} $$${credentials.B}",
	`{"k":"${credentials.C|json}","u":"https://u:${credentials.C|url}@h","s":${credentials.C|shell},"b":"${credentials.B|base64}"}`,
	"${credentials.${credentials.A}}${credentials.D}${credentials.NOPE}",
	"\x00\xff${credentials.A|bad}\xc3${credentials.}${credentials.9}",
	"FAKE-sk-test-alpha and ${credentials.A}",
}

func FuzzScan(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	// Reference for well-formed refs: leftmost, non-overlapping regexp matches.
	re := regexp.MustCompile(`\$\{credentials\.([A-Za-z_][A-Za-z0-9_]{0,127})(?:\|(json|url|base64|shell))?\}`)
	f.Fuzz(func(t *testing.T, src []byte) {
		prev := 0
		var good [][2]int
		Scan(src, func(r Ref) bool {
			if r.Start < prev || r.End <= r.Start || r.End > len(src) {
				t.Fatalf("ref %d..%d out of order or bounds (prev end %d, len %d)", r.Start, r.End, prev, len(src))
			}
			prev = r.End
			tok := src[r.Start:r.End]
			switch r.Kind {
			case Placeholder:
				if !bytes.Equal(tok, AppendPlaceholder(nil, r.Name, r.Filter)) || !ValidName(r.Name) {
					t.Fatalf("placeholder at %d does not round-trip", r.Start)
				}
				good = append(good, [2]int{r.Start, r.End})
			case Escaped:
				if tok[0] != '$' || !bytes.Equal(tok[1:], AppendPlaceholder(nil, r.Name, r.Filter)) {
					t.Fatalf("escape at %d does not round-trip", r.Start)
				}
				good = append(good, [2]int{r.Start + 1, r.End})
			case Malformed:
				if !bytes.HasPrefix(tok, prefixBytes) || bytes.IndexByte(tok[1:], '$') >= 0 {
					t.Fatalf("malformed at %d swallows a '$'", r.Start)
				}
				if r.Name != "" && !ValidName(r.Name) {
					t.Fatalf("malformed at %d has an invalid name", r.Start)
				}
			default:
				t.Fatalf("kind %v", r.Kind)
			}
			return true
		})
		want := re.FindAllIndex(src, -1)
		if len(want) != len(good) {
			t.Fatalf("scanner found %d well-formed refs, regexp %d", len(good), len(want))
		}
		for i := range want {
			if want[i][0] != good[i][0] || want[i][1] != good[i][1] {
				t.Fatalf("ref %d: scanner %v, regexp %v", i, good[i], want[i])
			}
		}
		if Contains(src) != (countRefs(src) > 0) {
			t.Fatal("Contains disagrees with Scan")
		}
	})
}

func denyAll(string) ([]byte, Status) { return nil, Denied }

func FuzzRender(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		out, rep := Render(src, fuzzLookup(nil, true))
		if !bytes.Contains(src, prefixBytes) {
			if len(src) > 0 && &out[0] != &src[0] || len(out) != len(src) {
				t.Fatal("input without a reference changed")
			}
		}
		if len(rep.Resolved) == 0 && rep.Escaped == 0 && !bytes.Equal(out, src) {
			t.Fatal("nothing resolved or escaped but output differs")
		}
		// Denying everything only drops escape dollars.
		raw, drep := Render(src, denyAll)
		if len(drep.Resolved) != 0 || len(raw) != len(src)-drep.Escaped {
			t.Fatal("deny-all render resolved something")
		}
	})
}

// Fake values of the FuzzReverseRender world. B is the fuzzer's.
var (
	valA = []byte("FAKE-sk-test-alpha")
	valC = []byte(`FAKE p@ss'w"rd/&<`)
	valD = []byte("FAKE-denied-value-XYZ")
)

// fuzzLookup resolves A, B (if usable) and C, denies D and, if junk, hands
// back D's value with the refusal to check that Render ignores it.
func fuzzLookup(b []byte, junk bool) Lookup {
	return func(name string) ([]byte, Status) {
		switch name {
		case "A":
			return valA, Resolved
		case "B":
			if len(b) >= MinValueLen {
				return b, Resolved
			}
		case "C":
			return valC, Resolved
		case "D":
			if junk {
				return valD, Denied
			}
			return nil, Denied
		}
		return nil, Missing
	}
}

func FuzzReverseRender(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s), []byte("FAKE-b-value"))
	}
	f.Add([]byte("${credentials.B}${credentials.A}"), []byte("FAKE$"))
	f.Fuzz(func(t *testing.T, src, b []byte) {
		if len(b) > 64 {
			b = b[:64] // credential-sized; keeps NewMatcher cheap per exec
		}
		known := []Known{{"A", valA}, {"B", b}, {"C", valC}, {"D", valD}}
		m := NewMatcher(known)

		rendered, _ := Render(src, fuzzLookup(b, true))
		clean, _ := Render(src, fuzzLookup(b, false))
		if !bytes.Equal(rendered, clean) {
			t.Fatal("Render used a value its lookup refused")
		}

		back, _, err := m.Reverse(rendered)
		if err == nil && m.Contains(back) {
			t.Fatal("Reverse left a known value or form")
		}
		if err != nil {
			return // pathological b; the caller refuses the write
		}

		// Build what Render did by hand: the spans where values went and the
		// deny-all view, which is what Reverse must give back when the matcher
		// sees exactly those spans and nothing else.
		type span struct {
			start, end int
			name       string
			f          Filter
		}
		var spans []span
		var want []byte
		last, pos := 0, 0
		look := fuzzLookup(b, false)
		Scan(src, func(r Ref) bool {
			want = append(want, src[last:r.Start]...)
			switch {
			case r.Kind == Escaped:
				rendered := src[r.Start+1 : r.End]
				pos += r.Start - last + len(rendered)
				want = append(want, rendered...)
			case r.Kind == Placeholder:
				v, st := look(r.Name)
				n := r.End - r.Start
				if st == Resolved {
					n = len(r.Filter.Apply(v))
					spans = append(spans, span{pos + r.Start - last, pos + r.Start - last + n, r.Name, r.Filter})
				}
				pos += r.Start - last + n
				want = append(want, src[r.Start:r.End]...)
			default:
				pos += r.End - last
				want = append(want, src[r.Start:r.End]...)
			}
			last = r.End
			return true
		})
		want = append(want, src[last:]...)

		var found []span
		m.Find(rendered, func(s, e int, name string, f Filter) bool {
			found = append(found, span{s, e, name, f})
			return true
		})
		if len(found) != len(spans) || m.Contains(want) {
			return // a value or form occurs in src, or forms met across a boundary
		}
		for i := range found {
			if found[i] != spans[i] {
				return
			}
		}
		if !bytes.Equal(back, want) {
			t.Fatalf("Reverse(Render(t)) != t with escapes rendered (lengths %d, %d)", len(back), len(want))
		}
	})
}
