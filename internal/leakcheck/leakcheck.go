// Package leakcheck is the tests' one definition of "a value leaked": the
// value itself and every encoding of it an observer could recognise. The
// filesystem, CLI, integration and reliability tests all assert with it,
// so a form added here is checked everywhere.
//
// It reports credential names and form kinds, never the values.
package leakcheck

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Form is one recognisable spelling of one value.
type Form struct {
	Name, Kind string
	Text       []byte
}

// Set holds the forms of a set of values.
type Set []Form

// New lists the forms of every value: raw; base64 (standard and URL
// alphabets, without the last, alignment-dependent character, so padded,
// unpadded and continued encodings all match; and the part of a longer
// stream that is the value's alone when it starts 1 or 2 bytes in); hex in both cases; JSON- and
// URL-escaped; and for values longer than 24 bytes every 12-byte window,
// so that a partial leak counts too.
func New(values map[string]string) Set {
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	var s Set
	for _, name := range names {
		v := values[name]
		b := []byte(v)
		add := func(kind, text string) {
			if text == "" {
				return
			}
			for _, f := range s {
				if f.Name == name && string(f.Text) == text {
					return
				}
			}
			s = append(s, Form{name, kind, []byte(text)})
		}
		b64 := func(enc *base64.Encoding) string {
			e := strings.TrimRight(enc.EncodeToString(b), "=")
			if len(b)%3 != 0 && len(e) > 0 {
				e = e[:len(e)-1]
			}
			return e
		}
		// The characters of a longer base64 stream that depend on the
		// value's bits alone, when it starts 1 or 2 bytes (mod 3) in.
		shifted := func(enc *base64.Encoding, a int) string {
			e := enc.EncodeToString(append(make([]byte, a), b...))
			lo, hi := (8*a+5)/6, 8*(a+len(b))/6
			return e[lo:hi]
		}
		add("raw", v)
		add("base64-std", b64(base64.StdEncoding))
		add("base64-url", b64(base64.URLEncoding))
		for a := 1; a < 3; a++ {
			add("base64-std at offset "+strconv.Itoa(a), shifted(base64.RawStdEncoding, a))
			add("base64-url at offset "+strconv.Itoa(a), shifted(base64.RawURLEncoding, a))
		}
		add("hex-lower", hex.EncodeToString(b))
		add("hex-upper", strings.ToUpper(hex.EncodeToString(b)))
		if j, err := json.Marshal(v); err == nil {
			add("json", string(j[1:len(j)-1]))
		}
		add("url-query", url.QueryEscape(v))
		add("url-path", url.PathEscape(v))
		for i := 0; len(v) > 24 && i+12 <= len(v); i += 6 {
			add("window", v[i:i+12])
		}
	}
	return s
}

// Find names the first form found in data as "NAME (kind)", or "".
func (s Set) Find(data []byte) string {
	for _, f := range s {
		if bytes.Contains(data, f.Text) {
			return f.Name + " (" + f.Kind + ")"
		}
	}
	return ""
}

// Redact replaces every form in str by a marker, for failure messages.
// Longer forms go first, so a window never leaves the rest of its value.
func (s Set) Redact(str string) string {
	forms := append(Set(nil), s...)
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i].Text) > len(forms[j].Text) })
	for _, f := range forms {
		str = strings.ReplaceAll(str, string(f.Text), "<REDACTED:"+f.Name+">")
	}
	return str
}

// Check fails t if data holds any form, naming where and the credential,
// never the value.
func (s Set) Check(t testing.TB, where string, data []byte) {
	t.Helper()
	if f := s.Find(data); f != "" {
		t.Errorf("LEAK: %s holds %s", where, f)
	}
}

// CheckTree is Check on every regular file under dir, except files named
// in except (a test's own password file, which holds a value on purpose).
func (s Set) CheckTree(t testing.TB, dir string, except ...string) {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || slices.Contains(except, d.Name()) {
			return err
		}
		f, err := s.FindInFile(p)
		if f != "" {
			found = append(found, p+" holds "+f)
		}
		return err
	})
	for _, f := range found {
		t.Errorf("LEAK: %s", f)
	}
	if err != nil {
		t.Errorf("walking %s: %v", dir, err)
	}
}

// FindInFile is Find over a file of any size, read in 1 MiB windows that
// overlap by the longest form, so no form is missed at a window's edge.
func (s Set) FindInFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	overlap := 0
	for _, form := range s {
		overlap = max(overlap, len(form.Text))
	}
	buf := make([]byte, 1<<20+overlap)
	kept := 0
	for {
		n, err := io.ReadFull(f, buf[kept:])
		if found := s.Find(buf[:kept+n]); found != "" {
			return found, nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		kept = min(overlap, kept+n)
		copy(buf, buf[len(buf)-kept:])
	}
}
