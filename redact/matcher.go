// Package redact removes known credential values, and their encoded forms,
// from byte streams (Writer) and reports where they occur in files (Scan).
// Both run on one resolve.Matcher built by NewMatcher, so the exec output
// redactor and the scan command find exactly the same things.
//
// # What is matched
//
// For each value of at least resolve.MinValueLen bytes, everything
// resolve.NewMatcher matches (raw, json, url with upper or lower hex, padded
// standard base64, single-quoted shell word), plus:
//
//   - the other percent-encodings libraries print, upper-case hex:
//     space as '+' (url.QueryEscape, Python quote_plus, HTML forms),
//     url.PathEscape, Python's quote() (keeps '/'), and JavaScript's
//     encodeURIComponent and encodeURI;
//   - hex, lower and upper case (byte-aligned, so no alignment question);
//   - base64 in the standard (+/) and URL (-_) alphabets, at the three
//     alignments a value can have inside a longer base64 stream. A value of
//     n bytes starting at byte offset a (mod 3) of the encoded stream covers
//     bits [8a, 8(a+n)) of its first 3-byte group onwards; output character
//     k covers bits [6k, 6k+6). The characters that depend on the value's
//     bits only are k in [ceil(8a/6), floor(8(a+n)/6)): that "stable middle"
//     is matched whatever precedes or follows the value. It is at least 4
//     characters for n >= 4.
//   - the same, where the value ends the stream: the middle plus the final
//     partial character (the encoder's zero bits fill it) with and without
//     '=' padding. For a = 0 that is the whole encoding of the value alone.
//   - the forms resolve.NewMatcher derives from each of these (for example a
//     base64 form percent-encoded in a URL, or inside a shell word).
//
// What can survive: the one partial character on each side of a stable
// middle mixes value bits with neighbouring bits and is left as is, so at
// most 4 bits of the value's first byte and 4 bits of its last byte stay
// visible. Encodings with separators (line-wrapped base64 as base64(1)
// prints past 76 columns, hex dumps with spaces such as od or xxd without
// -p, hex split over lines) are not matched where a separator falls inside
// the value's encoding. Values shorter than resolve.MinValueLen are not
// matched at all; Skipped names them so the caller can warn.
package redact

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/faciofs/faciofs/resolve"
)

// Matcher is a resolve.Matcher built over the values and every extra form
// above, with the name of the form each pattern stands for. It is read-only
// after NewMatcher and safe for concurrent use. It encodes the values: treat
// it like the values themselves.
type Matcher struct {
	m *resolve.Matcher
	// extra maps the synthetic names given to extra forms to the real name
	// and the form's label. Synthetic names start with a NUL byte, which no
	// valid credential name holds.
	extra map[string]extraForm
}

type extraForm struct{ name, form string }

// NewMatcher builds the matcher for known. Values are copied; the caller may
// wipe known afterwards.
func NewMatcher(known []resolve.Known) *Matcher {
	rm := &Matcher{extra: make(map[string]extraForm)}
	all := make([]resolve.Known, 0, len(known)*24)
	all = append(all, known...) // originals first: their raw forms win ties
	var scratch [][]byte
	add := func(name, form string, v []byte) {
		key := "\x00" + strconv.Itoa(len(rm.extra))
		rm.extra[key] = extraForm{name, form}
		all = append(all, resolve.Known{Name: key, Value: v})
		scratch = append(scratch, v)
	}
	for _, k := range known {
		n := len(k.Value)
		if n < resolve.MinValueLen {
			continue
		}
		// Percent-encodings other than resolve's (which escapes all but
		// the unreserved characters, space as %20): what query builders,
		// path escapers and JavaScript's encoders print. Each is added
		// once, and only where it differs from the value and from the
		// forms already there.
		seen := map[string]bool{string(k.Value): true, string(resolve.FilterURL.Apply(k.Value)): true}
		for _, u := range urlVariants {
			if enc := u.escape(k.Value); !seen[string(enc)] {
				seen[string(enc)] = true
				add(k.Name, "url", enc)
			}
		}
		add(k.Name, "hex", []byte(hex.EncodeToString(k.Value)))
		add(k.Name, "HEX", []byte(strings.ToUpper(hex.EncodeToString(k.Value))))
		for _, alpha := range []struct {
			label string
			enc   *base64.Encoding
		}{{"base64", base64.RawStdEncoding}, {"base64url", base64.RawURLEncoding}} {
			for a := 0; a < 3; a++ {
				shifted := make([]byte, a+n)
				copy(shifted[a:], k.Value)
				enc := alpha.enc.EncodeToString(shifted)
				lo := (8*a + 5) / 6
				hi := 8 * (a + n) / 6
				label := alpha.label
				if a > 0 {
					label += " at offset " + strconv.Itoa(a)
				}
				add(k.Name, label, []byte(enc[lo:hi]))
				if hi < len(enc) { // a partial final character exists
					tail := enc[lo:]
					add(k.Name, label, []byte(tail))
					if pad := (4 - len(enc)%4) % 4; pad > 0 {
						add(k.Name, label, []byte(tail+strings.Repeat("=", pad)))
					}
				}
				clear(shifted)
			}
		}
	}
	rm.m = resolve.NewMatcher(all)
	for _, b := range scratch {
		clear(b)
	}
	return rm
}

// Skipped names the values too short to match (sorted): they pass through a
// Writer and Scan unreported. Tell the human.
func (m *Matcher) Skipped() []string { return m.m.Skipped() }

// MaxLen is the longest pattern; a stream must hold back MaxLen()-1 bytes.
func (m *Matcher) MaxLen() int { return m.m.MaxLen() }

// Find calls fn for each leftmost-longest, non-overlapping occurrence in src
// of a value or form, in order, with the credential's name and the form's
// label ("raw", "json", "url", "base64", "shell", "hex", "HEX",
// "base64url at offset 2", "url of base64", ...). fn returns false to stop.
func (m *Matcher) Find(src []byte, fn func(start, end int, name, form string) bool) {
	m.m.Find(src, func(start, end int, name string, f resolve.Filter) bool {
		name, form := m.label(name, f)
		return fn(start, end, name, form)
	})
}

func (m *Matcher) label(name string, f resolve.Filter) (string, string) {
	if e, ok := m.extra[name]; ok {
		if f == resolve.FilterNone {
			return e.name, e.form
		}
		return e.name, f.String() + " of " + e.form
	}
	if f == resolve.FilterNone {
		return name, "raw"
	}
	return name, f.String()
}

// urlVariant is one way of percent-encoding: the bytes kept besides the
// unreserved ones (A-Z a-z 0-9 - . _ ~), and whether a space becomes '+'.
type urlVariant struct {
	keep      string
	spacePlus bool
}

var urlVariants = []urlVariant{
	{"", true},                  // url.QueryEscape, Python quote_plus, form encoding
	{"$&+,:;=@", false},         // url.PathEscape
	{"/", false},                // Python quote() with its default safe='/'
	{"!*'()", false},            // JavaScript encodeURIComponent
	{";,/?:@&=+$#!*'()", false}, // JavaScript encodeURI
}

func (u urlVariant) escape(v []byte) []byte {
	const upper = "0123456789ABCDEF"
	out := make([]byte, 0, len(v)*3)
	for _, b := range v {
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '-', b == '.', b == '_', b == '~':
			out = append(out, b)
		case b == ' ' && u.spacePlus:
			out = append(out, '+')
		case b < 0x80 && strings.IndexByte(u.keep, b) >= 0:
			out = append(out, b)
		default:
			out = append(out, '%', upper[b>>4], upper[b&0xF])
		}
	}
	return out
}
