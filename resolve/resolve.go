// Package resolve is the one placeholder grammar of faciofs.
//
// Every part of faciofs that looks for credential references goes through this
// package: rendering the consumer view of a file (Render), reverse substitution
// of known values before anything is written to the backing directory
// (Reverse, Matcher), and later the scan command, output redaction and the
// audit. There is exactly one scanner, Scan; nothing else parses placeholders.
//
// The grammar (product spec §4):
//
//	${credentials.NAME}          NAME = [A-Za-z_][A-Za-z0-9_]{0,127}
//	${credentials.NAME|FILTER}   FILTER = json | url | base64 | shell
//	$${credentials.NAME...}      escape: rendering emits ${credentials.NAME...}
//
// Anything else that starts with "${credentials." is Malformed: it is left
// exactly as written and counted, so the caller can audit it.
//
// Threat notes. Input is attacker-controlled bytes: any binary, any length,
// invalid UTF-8, placeholders at any offset. Scanning is linear and never
// panics on such input (fuzzed). Render puts a value in its output only where
// the caller's Lookup returned Resolved for that name; a Missing or Denied
// placeholder is left as written, byte for byte. Nothing in this package logs,
// and Report, Ref and every error carry names and counts, never values. The
// raw (agent) view of a file is never passed through Render at all.
package resolve

import (
	"bytes"
	"fmt"
)

// MaxNameLen is the longest credential name the grammar accepts.
const MaxNameLen = 128

const prefix = "${credentials."

var prefixBytes = []byte(prefix)

// Kind says what Scan found.
type Kind uint8

const (
	// Placeholder is a well-formed ${credentials.NAME} or ${credentials.NAME|FILTER}.
	Placeholder Kind = iota
	// Escaped is $${credentials.NAME...}: it renders as the literal text
	// without its first '$'. Only a well-formed placeholder can be escaped;
	// "$${credentials.bad-name}" is a '$' followed by a Malformed ref.
	Escaped
	// Malformed is any other text that starts with "${credentials.".
	Malformed
)

func (k Kind) String() string {
	switch k {
	case Placeholder:
		return "placeholder"
	case Escaped:
		return "escaped"
	case Malformed:
		return "malformed"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Ref is one reference found by Scan.
//
// Start and End are byte offsets of the whole token in the scanned input; for
// Escaped, Start is the offset of the extra '$'. For Malformed, End is just past
// the bytes that were examined as part of the token (the prefix, identifier
// characters, a '|' and filter word, a closing '}'); it never covers a '$', so a
// malformed token never swallows the start of the next reference. Name is set
// for Placeholder and Escaped, and for Malformed only when the name itself is
// valid (for example an unknown filter); otherwise it is empty.
type Ref struct {
	Start, End int
	Kind       Kind
	Name       string
	Filter     Filter
}

// Scan calls fn for every reference in src, in order; fn returns false to
// stop. Refs never overlap. Scan does not allocate except for names.
func Scan(src []byte, fn func(Ref) bool) {
	pos := 0
	for pos < len(src) {
		i := bytes.Index(src[pos:], prefixBytes)
		if i < 0 {
			return
		}
		i += pos
		r := parseAt(src, i)
		if r.Kind == Placeholder && i-1 >= pos && src[i-1] == '$' {
			r.Kind = Escaped
			r.Start = i - 1
		}
		if !fn(r) {
			return
		}
		pos = r.End
	}
}

// Contains reports whether src holds at least one Placeholder (escapes and
// malformed text do not count). It is the cheap test for "is this file
// templated"; it stops at the first placeholder.
func Contains(src []byte) bool {
	found := false
	Scan(src, func(r Ref) bool {
		found = r.Kind == Placeholder
		return !found
	})
	return found
}

// ValidName reports whether name is a credential name the grammar accepts.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen || isDigit(name[0]) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isIdent(name[i]) {
			return false
		}
	}
	return true
}

// AppendPlaceholder appends the placeholder text for name and f to dst:
// ${credentials.NAME} or ${credentials.NAME|FILTER}. The name is not checked.
func AppendPlaceholder(dst []byte, name string, f Filter) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, name...)
	if f != FilterNone {
		dst = append(dst, '|')
		dst = append(dst, f.String()...)
	}
	return append(dst, '}')
}

// parseAt parses the token whose "${credentials." prefix starts at i.
func parseAt(src []byte, i int) Ref {
	r := Ref{Start: i, Kind: Malformed}
	j := i + len(prefix)
	nameStart := j
	for j < len(src) && isIdent(src[j]) {
		j++
	}
	name := src[nameStart:j]
	nameOK := len(name) > 0 && len(name) <= MaxNameLen && !isDigit(name[0])
	ok := nameOK
	if j < len(src) && src[j] == '|' {
		j++
		fs := j
		for j < len(src) && isIdent(src[j]) {
			j++
		}
		f, fok := parseFilter(src[fs:j])
		r.Filter = f
		ok = ok && fok
	}
	if j < len(src) && src[j] == '}' {
		j++
	} else {
		ok = false
	}
	r.End = j
	if nameOK {
		r.Name = string(name)
	}
	if ok {
		r.Kind = Placeholder
	} else {
		r.Filter = FilterNone
	}
	return r
}

func isIdent(b byte) bool {
	return b == '_' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || isDigit(b)
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }
