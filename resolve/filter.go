package resolve

import (
	"encoding/base64"
	"fmt"
	"unicode/utf8"
)

// Filter is how a value is encoded where a raw value would break the file's
// syntax: ${credentials.NAME|json} and so on.
type Filter uint8

const (
	// FilterNone inserts the value as it is.
	FilterNone Filter = iota
	// FilterJSON inserts the content of a JSON string literal, without the
	// quotes, so that "key": "${credentials.X|json}" is valid JSON. '"', '\\'
	// and control characters are escaped, U+2028/U+2029 too; invalid UTF-8 is
	// replaced by \ufffd, as encoding/json does.
	FilterJSON
	// FilterURL percent-encodes every byte except the unreserved characters
	// A-Z a-z 0-9 - . _ ~ (RFC 3986), uppercase hex. That is safe in userinfo,
	// path segments and query values alike; a space becomes %20, never '+'.
	FilterURL
	// FilterBase64 is standard, padded base64 (RFC 4648 §4).
	FilterBase64
	// FilterShell is one single-quoted POSIX shell word: 'it'\''s'.
	FilterShell

	numFilters
)

var filterNames = [numFilters]string{"", "json", "url", "base64", "shell"}

// String returns the filter's name as written after '|', or "none".
func (f Filter) String() string {
	if f == FilterNone {
		return "none"
	}
	if f < numFilters {
		return filterNames[f]
	}
	return fmt.Sprintf("Filter(%d)", uint8(f))
}

func parseFilter(word []byte) (Filter, bool) {
	for f := FilterJSON; f < numFilters; f++ {
		if string(word) == filterNames[f] {
			return f, true
		}
	}
	return FilterNone, false
}

// Apply returns value encoded by f. For FilterNone it returns value itself;
// otherwise a new slice. An unknown Filter returns nil: never the raw value.
func (f Filter) Apply(value []byte) []byte {
	if f == FilterNone {
		return value
	}
	return f.appendTo(nil, value)
}

func (f Filter) appendTo(dst, v []byte) []byte {
	switch f {
	case FilterNone:
		return append(dst, v...)
	case FilterJSON:
		return appendJSON(dst, v)
	case FilterURL:
		return appendURL(dst, v, upperHex)
	case FilterBase64:
		return base64.StdEncoding.AppendEncode(dst, v)
	case FilterShell:
		return appendShell(dst, v)
	}
	return dst
}

const (
	upperHex = "0123456789ABCDEF"
	lowerHex = "0123456789abcdef"
)

func appendJSON(dst, v []byte) []byte {
	for i := 0; i < len(v); {
		b := v[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '"' || b == '\\':
				dst = append(dst, '\\', b)
			case b == '\n':
				dst = append(dst, '\\', 'n')
			case b == '\r':
				dst = append(dst, '\\', 'r')
			case b == '\t':
				dst = append(dst, '\\', 't')
			case b < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[b>>4], lowerHex[b&0xF])
			default:
				dst = append(dst, b)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(v[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028':
			dst = append(dst, `\u2028`...)
		case r == '\u2029':
			dst = append(dst, `\u2029`...)
		default:
			dst = append(dst, v[i:i+size]...)
		}
		i += size
	}
	return dst
}

func isUnreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '-' || b == '.' || b == '_' || b == '~'
}

func appendURL(dst, v []byte, hex string) []byte {
	for _, b := range v {
		if isUnreserved(b) {
			dst = append(dst, b)
		} else {
			dst = append(dst, '%', hex[b>>4], hex[b&0xF])
		}
	}
	return dst
}

func appendShell(dst, v []byte) []byte {
	dst = append(dst, '\'')
	for _, b := range v {
		if b == '\'' {
			dst = append(dst, `'\''`...)
		} else {
			dst = append(dst, b)
		}
	}
	return append(dst, '\'')
}
