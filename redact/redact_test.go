package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/faciofs/faciofs/resolve"
)

// Fake values only. V2 has characters that url, json and shell forms change.
var testKnown = []resolve.Known{
	{Name: "V1", Value: []byte("FAKE-sk-test-0001-xyz")},
	{Name: "V2", Value: []byte("FAKE/tok+en=0002 \"q\" 'x'")},
	{Name: "V3", Value: []byte("FAKE-abcd")},
	{Name: "V4", Value: []byte{0xfa, 0xfb, 0x00, 0x10, 0xff, 0x7f, 0x80, 0x01}},
	{Name: "SHORT", Value: []byte("abc")},
}

// urlEncode is an independent copy of RFC 3986 percent-encoding.
func urlEncode(v []byte, upper bool) string {
	var b strings.Builder
	for _, c := range v {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		s := fmt.Sprintf("%%%02x", c)
		if upper {
			s = strings.ToUpper(s)
		}
		b.WriteString(s)
	}
	return b.String()
}

// formsOf are whole-value encodings computed independently of the package.
func formsOf(v []byte) []string {
	return []string{
		string(v),
		base64.StdEncoding.EncodeToString(v),
		base64.RawStdEncoding.EncodeToString(v),
		base64.URLEncoding.EncodeToString(v),
		base64.RawURLEncoding.EncodeToString(v),
		hex.EncodeToString(v),
		strings.ToUpper(hex.EncodeToString(v)),
		urlEncode(v, true),
		urlEncode(v, false),
	}
}

// noForms fails if out holds any form of any usable test value.
func noForms(t testing.TB, out []byte) {
	t.Helper()
	for _, k := range testKnown {
		if len(k.Value) < resolve.MinValueLen {
			continue
		}
		for i, f := range formsOf(k.Value) {
			if bytes.Contains(out, []byte(f)) {
				t.Fatalf("output holds %s form #%d", k.Name, i)
			}
		}
	}
}

// reference redacts data in one piece with Find, as a Writer must.
func reference(m *Matcher, data []byte) []byte {
	var out []byte
	last := 0
	m.Find(data, func(s, e int, name, _ string) bool {
		out = append(out, data[last:s]...)
		out = append(out, "[REDACTED:"+name+"]"...)
		last = e
		return true
	})
	return append(out, data[last:]...)
}

// writeChunks writes data through a new Writer in chunks sized by next.
func writeChunks(t testing.TB, m *Matcher, data []byte, next func() int) ([]byte, int) {
	t.Helper()
	var out bytes.Buffer
	w := NewWriter(&out, m)
	for len(data) > 0 {
		n := min(max(next(), 1), len(data))
		if k, err := w.Write(data[:n]); err != nil || k != n {
			t.Fatalf("Write: %d, %v", k, err)
		}
		data = data[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), w.Count()
}

// childStream is what a child might print: noise, then each value raw and
// in each form, separated by more noise, binary or text.
func childStream(r *rand.Rand, binary bool) ([]byte, map[string]int) {
	noise := func() []byte {
		b := make([]byte, r.IntN(200))
		for i := range b {
			if binary {
				b[i] = byte(r.Uint32())
			} else {
				b[i] = " \nabcdefghijklmnopqrstuvwxyz.,:;"[r.IntN(32)]
			}
		}
		return b
	}
	want := make(map[string]int)
	var data []byte
	data = append(data, noise()...)
	for _, k := range testKnown {
		if len(k.Value) < resolve.MinValueLen {
			continue
		}
		for _, f := range formsOf(k.Value) {
			data = append(data, f...)
			data = append(data, '\n')
			data = append(data, noise()...)
			want[k.Name]++
		}
	}
	return data, want
}

func TestWriterChildStream(t *testing.T) {
	m := NewMatcher(testKnown)
	for _, binary := range []bool{false, true} {
		r := rand.New(rand.NewPCG(1, uint64(len(fmt.Sprint(binary)))))
		data, want := childStream(r, binary)
		ref := reference(m, data)
		noForms(t, ref)
		for name, n := range want {
			if got := bytes.Count(ref, []byte("[REDACTED:"+name+"]")); got != n {
				t.Errorf("binary=%v: %d markers for %s, want %d", binary, got, name, n)
			}
		}
		if bytes.Contains(ref, []byte("[REDACTED:SHORT]")) {
			t.Error("a short value was redacted")
		}
		chunkings := map[string]func() int{
			"one byte":   func() int { return 1 },
			"random":     func() int { return r.IntN(50) },
			"random big": func() int { return r.IntN(5000) },
			"whole":      func() int { return len(data) },
		}
		for cname, next := range chunkings {
			out, count := writeChunks(t, m, data, next)
			if !bytes.Equal(out, ref) {
				t.Errorf("binary=%v, %s: chunked output differs from the one-piece reference", binary, cname)
			}
			if total := sum(want); count != total {
				t.Errorf("binary=%v, %s: Count %d, want %d", binary, cname, count, total)
			}
		}
	}
}

func sum(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// TestWriterPreservesOtherBytes: with nothing to redact the output is the
// input, byte for byte, whatever the chunking.
func TestWriterPreservesOtherBytes(t *testing.T) {
	m := NewMatcher(testKnown)
	r := rand.New(rand.NewPCG(2, 2))
	data := make([]byte, 300_000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	noForms(t, data) // astronomically unlikely to fail
	out, n := writeChunks(t, m, data, func() int { return r.IntN(70_000) })
	if n != 0 || !bytes.Equal(out, data) {
		t.Fatalf("clean binary data changed (%d redactions)", n)
	}
}

// TestBase64Alignments encodes random prefix + value + random suffix in
// every alphabet and padding, and checks that the value's stable middle
// characters (those that depend on value bits only) are replaced, that
// nothing before them changes, and that at most the partial character and
// the padding after them go too.
func TestBase64Alignments(t *testing.T) {
	m := NewMatcher(testKnown)
	r := rand.New(rand.NewPCG(3, 3))
	encs := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}
	for _, k := range testKnown {
		if len(k.Value) < resolve.MinValueLen {
			continue
		}
		n := len(k.Value)
		for p := 0; p < 9; p++ {
			for _, s := range []int{0, 1, 2, 3, 7} {
				for _, enc := range encs {
					plain := make([]byte, p+n+s)
					for i := range plain {
						plain[i] = byte(r.Uint32())
					}
					copy(plain[p:], k.Value)
					e := enc.EncodeToString(plain)
					lo, hi := (8*p+5)/6, 8*(p+n)/6
					marker := "[REDACTED:" + k.Name + "]"
					out := string(reference(m, []byte(e)))
					i := strings.Index(out, marker)
					if i < 0 || strings.Count(out, "[REDACTED:") != 1 {
						t.Fatalf("%s prefix %d suffix %d: want one marker, got %q", k.Name, p, s, out)
					}
					if i != lo || out[:i] != e[:lo] {
						t.Errorf("%s prefix %d suffix %d: the marker starts at %d, want %d", k.Name, p, s, i, lo)
					}
					rest := out[i+len(marker):]
					y := len(e) - len(rest)
					if y < hi || y > hi+3 || e[y:] != rest {
						t.Errorf("%s prefix %d suffix %d: the marker ends at %d of %d, want %d..%d", k.Name, p, s, y, len(e), hi, hi+3)
					}
					if s == 0 && y != len(e) {
						t.Errorf("%s prefix %d at the end: %d trailing characters kept", k.Name, p, len(e)-y)
					}
					// The same through a one-byte-at-a-time Writer.
					got, _ := writeChunks(t, m, []byte(e), func() int { return 1 })
					if string(got) != out {
						t.Errorf("%s prefix %d suffix %d: byte-wise Writer differs", k.Name, p, s)
					}
				}
			}
		}
	}
}

func TestFormsLabelled(t *testing.T) {
	m := NewMatcher(testKnown)
	v := testKnown[1].Value
	cases := map[string]string{
		string(v):                                  "raw",
		hex.EncodeToString(v):                      "hex",
		strings.ToUpper(hex.EncodeToString(v)):     "HEX",
		base64.StdEncoding.EncodeToString(v):       "base64",
		base64.RawURLEncoding.EncodeToString(v):    "base64", // or base64url
		urlEncode(v, true):                         "url",
		urlEncode(v, false):                        "url",
		"x" + base64.StdEncoding.EncodeToString(v): "base64",
	}
	for in, want := range cases {
		var got []string
		m.Find([]byte(in), func(_, _ int, name, form string) bool {
			got = append(got, name+" "+form)
			return true
		})
		if len(got) != 1 || !strings.HasPrefix(got[0], "V2 "+want) {
			t.Errorf("form %q: got %v", want, got)
		}
	}
	// Offset 1 inside a stream.
	e := base64.StdEncoding.EncodeToString(append([]byte{'z'}, v...))
	var forms []string
	m.Find([]byte(e), func(_, _ int, _, form string) bool { forms = append(forms, form); return true })
	if len(forms) != 1 || !strings.HasPrefix(forms[0], "base64") || !strings.HasSuffix(forms[0], "offset 1") {
		t.Errorf("base64 at offset 1: forms %v", forms)
	}
}

// TestURLVariants: the percent-encodings that libraries actually print are
// found, each inside a longer URL, with the standard library's encoders
// where it has them (independent of the matcher's own escaping).
func TestURLVariants(t *testing.T) {
	m := NewMatcher(testKnown)
	v := string(testKnown[1].Value) // '/', '+', '=', space, quotes
	jsEncodeURIComponent := strings.NewReplacer("+", "%20", "%21", "!", "%27", "'", "%28", "(", "%29", ")", "%2A", "*").Replace(url.QueryEscape(v))
	for label, enc := range map[string]string{
		"QueryEscape":        url.QueryEscape(v),
		"PathEscape":         url.PathEscape(v),
		"Python quote()":     strings.ReplaceAll(urlEncode([]byte(v), true), "%2F", "/"),
		"encodeURIComponent": jsEncodeURIComponent,
	} {
		if enc == v {
			t.Fatalf("%s: the test value needs escaping", label)
		}
		in := "https://h.example/cb?a=1&token=" + enc + "&b=2"
		var got []string
		m.Find([]byte(in), func(_, _ int, name, form string) bool {
			got = append(got, name+" "+form)
			return true
		})
		if len(got) != 1 || got[0] != "V2 url" {
			t.Errorf("%s (%q): found %v", label, enc, got)
		}
	}
}

func TestSkippedAndEmpty(t *testing.T) {
	var out bytes.Buffer
	w := New(&out, testKnown)
	if s := w.Skipped(); len(s) != 1 || s[0] != "SHORT" {
		t.Errorf("Skipped = %v", s)
	}
	w.Write([]byte("abc abc"))
	w.Close()
	if out.String() != "abc abc" {
		t.Errorf("short value changed the output: %q", out.String())
	}
	out.Reset()
	w = New(&out, nil)
	w.Write([]byte("anything"))
	if out.String() != "anything" {
		t.Errorf("with no values, output held back: %q", out.String())
	}
	w.Close()
}

// TestHoldBack: a Writer holds back exactly MaxLen()-1 bytes once it has
// seen that many, and nothing more.
func TestHoldBack(t *testing.T) {
	m := NewMatcher(testKnown)
	var out bytes.Buffer
	w := NewWriter(&out, m)
	hold := m.MaxLen() - 1
	data := bytes.Repeat([]byte("0123456789 "), 100)
	for i := range data {
		w.Write(data[i : i+1])
		if want := max(0, i+1-hold); out.Len() != want {
			t.Fatalf("after %d bytes, %d written, want %d", i+1, out.Len(), want)
		}
	}
	w.Close()
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("output differs")
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

func TestWriterError(t *testing.T) {
	w := New(&failWriter{n: 10}, testKnown)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = w.Write([]byte("some text "))
	}
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("error %v, want the underlying one", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("second Write: %v", err)
	}
	if err := w.Close(); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Close: %v", err)
	}
}

func TestScan(t *testing.T) {
	m := NewMatcher(testKnown)
	v1 := string(testKnown[0].Value)
	text := "line one\nkey=" + v1 + "\n\n\nx " + hex.EncodeToString([]byte(v1)) + " " + v1 + "\n" +
		strings.Repeat("filler line\n", 20000) + "tail " + base64.StdEncoding.EncodeToString([]byte(v1))
	var got []string
	err := m.Scan(&oneByteReader{strings.NewReader(text)}, func(h Hit) bool {
		got = append(got, fmt.Sprintf("%d:%d:%s:%s", h.Line, h.Offset, h.Name, h.Form))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	off := func(s string, from int) int { return strings.Index(text[from:], s) + from }
	i2 := off(hex.EncodeToString([]byte(v1)), 0)
	want := []string{
		fmt.Sprintf("2:%d:V1:raw", off(v1, 0)),
		fmt.Sprintf("5:%d:V1:hex", i2),
		fmt.Sprintf("5:%d:V1:raw", off(v1, i2+10)),
		fmt.Sprintf("20006:%d:V1:base64", off("tail ", 0)+5),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Scan hits\n got %v\nwant %v", got, want)
	}
	n := 0
	m.Scan(strings.NewReader(text), func(Hit) bool { n++; return false })
	if n != 1 {
		t.Errorf("Scan did not stop when fn returned false: %d calls", n)
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 7 {
		p = p[:7]
	}
	return o.r.Read(p)
}

func FuzzRedactChunks(f *testing.F) {
	m := NewMatcher(testKnown)
	r := rand.New(rand.NewPCG(4, 4))
	data, _ := childStream(r, true)
	f.Add(data, uint64(1))
	data, _ = childStream(r, false)
	f.Add(data, uint64(7))
	for _, k := range testKnown {
		for _, fm := range formsOf(k.Value) {
			f.Add([]byte("x"+fm+"y"+fm), uint64(len(fm)))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		r := rand.New(rand.NewPCG(seed, seed>>7))
		whole, n1 := writeChunks(t, m, data, func() int { return len(data) })
		maxChunk := int(seed%97) + 1
		chunked, n2 := writeChunks(t, m, data, func() int { return r.IntN(maxChunk) + 1 })
		if !bytes.Equal(whole, chunked) || n1 != n2 {
			t.Fatalf("chunks of up to %d bytes change the output", maxChunk)
		}
		noForms(t, whole)
	})
}

func BenchmarkRedact10Values(b *testing.B) {
	var known []resolve.Known
	for i := range 10 {
		known = append(known, resolve.Known{Name: fmt.Sprintf("KEY_%d", i), Value: []byte(fmt.Sprintf("FAKE-sk-live-%02d-%s", i, strings.Repeat("q7Zx", 8)))})
	}
	m := NewMatcher(known)
	// Clean-ish text: log-like lines, one value every ~64 KiB.
	r := rand.New(rand.NewPCG(5, 5))
	var data []byte
	for len(data) < 4<<20 {
		line := fmt.Sprintf("2026-01-02T03:04:05Z INFO request id=%08x path=/api/v1/items/%d status=%d bytes=%d\n",
			r.Uint32(), r.IntN(100000), 200+r.IntN(300), r.IntN(1<<20))
		data = append(data, line...)
		if r.IntN(600) == 0 {
			data = append(data, known[r.IntN(10)].Value...)
		}
	}
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("write%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				w := NewWriter(io.Discard, m)
				for p := data; len(p) > 0; {
					n := min(size, len(p))
					w.Write(p[:n])
					p = p[n:]
				}
				w.Close()
			}
		})
	}
}
