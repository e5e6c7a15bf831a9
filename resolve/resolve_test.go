package resolve

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// Obviously fake values; failure messages print names and offsets, never these.
var fakes = map[string][]byte{
	"OPENAI_API_KEY": []byte("FAKE-sk-test-0123456789abcdef"),
	"DB_PASSWORD":    []byte(`FAKE p@ss/w"rd'&<x>`),
	"A":              []byte("FAKE-a-value"),
	"B":              []byte("FAKE-b-value"),
	"DENIED_ONE":     []byte("FAKE-denied-value"),
}

func fakeLookup(name string) ([]byte, Status) {
	if name == "DENIED_ONE" {
		return []byte("FAKE-denied-value"), Denied // a sloppy caller; Render must ignore it
	}
	if v, ok := fakes[name]; ok {
		return v, Resolved
	}
	return nil, Missing
}

func refsOf(src string) []Ref {
	var refs []Ref
	Scan([]byte(src), func(r Ref) bool { refs = append(refs, r); return true })
	return refs
}

func TestScanGrammar(t *testing.T) {
	name128 := "N" + strings.Repeat("x", 127)
	name129 := name128 + "y"
	tests := []struct {
		name string
		src  string
		want []Ref
	}{
		{"plain", "${credentials.A}", []Ref{{0, 16, Placeholder, "A", FilterNone}}},
		{"json", "${credentials.A|json}", []Ref{{0, 21, Placeholder, "A", FilterJSON}}},
		{"url", "x${credentials.A|url}", []Ref{{1, 21, Placeholder, "A", FilterURL}}},
		{"base64", "${credentials.A|base64}", []Ref{{0, 23, Placeholder, "A", FilterBase64}}},
		{"shell", "${credentials.A|shell}", []Ref{{0, 22, Placeholder, "A", FilterShell}}},
		{"underscore start", "${credentials._x9}", []Ref{{0, 18, Placeholder, "_x9", FilterNone}}},
		{"escape", "$${credentials.A}", []Ref{{0, 17, Escaped, "A", FilterNone}}},
		{"escape filter", "a$${credentials.A|url}", []Ref{{1, 22, Escaped, "A", FilterURL}}},
		{"dollar then escape", "$$${credentials.A}", []Ref{{1, 18, Escaped, "A", FilterNone}}},
		{"escape of malformed", "$${credentials.1}", []Ref{{1, 17, Malformed, "", FilterNone}}},
		{"unknown filter", "${credentials.A|yaml}", []Ref{{0, 21, Malformed, "A", FilterNone}}},
		{"filter case", "${credentials.A|JSON}", []Ref{{0, 21, Malformed, "A", FilterNone}}},
		{"empty filter", "${credentials.A|}", []Ref{{0, 17, Malformed, "A", FilterNone}}},
		{"two filters", "${credentials.A|json|url}", []Ref{{0, 20, Malformed, "A", FilterNone}}},
		{"digit start", "${credentials.9A}", []Ref{{0, 17, Malformed, "", FilterNone}}},
		{"dash in name", "${credentials.A-B}", []Ref{{0, 15, Malformed, "A", FilterNone}}},
		{"empty name", "${credentials.}", []Ref{{0, 15, Malformed, "", FilterNone}}},
		{"128 chars", "${credentials." + name128 + "}", []Ref{{0, 143, Placeholder, name128, FilterNone}}},
		{"129 chars", "${credentials." + name129 + "}", []Ref{{0, 144, Malformed, "", FilterNone}}},
		{"unterminated", "${credentials.A", []Ref{{0, 15, Malformed, "A", FilterNone}}},
		{"unterminated filter", "${credentials.A|json", []Ref{{0, 20, Malformed, "A", FilterNone}}},
		{"prefix only at end", "x${credentials.", []Ref{{1, 15, Malformed, "", FilterNone}}},
		{"nested", "${credentials.${credentials.A}}", []Ref{
			{0, 14, Malformed, "", FilterNone},
			{14, 30, Placeholder, "A", FilterNone},
		}},
		{"adjacent", "${credentials.A}${credentials.B|json}", []Ref{
			{0, 16, Placeholder, "A", FilterNone},
			{16, 37, Placeholder, "B", FilterJSON},
		}},
		{"binary around", "\x00\xff${credentials.A}\xfe\x00", []Ref{{2, 18, Placeholder, "A", FilterNone}}},
		{"after invalid utf8", "\xc3${credentials.A}", []Ref{{1, 17, Placeholder, "A", FilterNone}}},
		{"not credentials", "${cred.A} ${CREDENTIALS.A} {credentials.A} $credentials.A", nil},
		{"space before brace", "${credentials.A }", []Ref{{0, 15, Malformed, "A", FilterNone}}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := refsOf(tt.src)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Scan = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestScanStops(t *testing.T) {
	n := 0
	Scan([]byte("${credentials.A}${credentials.B}"), func(Ref) bool { n++; return false })
	if n != 1 {
		t.Fatalf("fn called %d times after returning false", n)
	}
}

func TestContains(t *testing.T) {
	for src, want := range map[string]bool{
		"":                                   false,
		"no refs":                            false,
		"$${credentials.A}":                  false,
		"${credentials.A|nope}":              false,
		"$${credentials.A} ${credentials.B}": true,
		"\xff${credentials.A|shell}":         true,
	} {
		if got := Contains([]byte(src)); got != want {
			t.Errorf("Contains(%q) = %v, want %v", src, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"A": true, "_": true, "a_9": true, strings.Repeat("a", 128): true,
		"": false, "9a": false, "a-b": false, "a.b": false, strings.Repeat("a", 129): false,
	} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%.20q) != %v", name, want)
		}
	}
}

func TestFilters(t *testing.T) {
	tests := []struct {
		f        Filter
		in, want string
	}{
		{FilterNone, "a b", "a b"},
		{FilterJSON, `FAKE"\` + "\n\r\t\x01\x7f<&é\u2028\xff", `FAKE\"\\\n\r\t\u0001` + "\x7f<&é" + `\u2028\ufffd`},
		{FilterURL, "FAKE p@ss/w:rd+%~-._é", "FAKE%20p%40ss%2Fw%3Ard%2B%25~-._%C3%A9"},
		{FilterBase64, "FAKE-x", "RkFLRS14"},
		{FilterBase64, "FAKE-xy", "RkFLRS14eQ=="},
		{FilterShell, "FAKE it's", `'FAKE it'\''s'`},
		{FilterShell, "", "''"},
	}
	for _, tt := range tests {
		if got := string(tt.f.Apply([]byte(tt.in))); got != tt.want {
			t.Errorf("%v.Apply: got %q want %q", tt.f, got, tt.want) // fake inputs only
		}
	}
	if Filter(200).Apply([]byte("FAKE")) != nil {
		t.Error("unknown filter must not return the value")
	}
	for f := FilterNone; f < numFilters; f++ {
		if f == FilterNone {
			continue
		}
		p := string(AppendPlaceholder(nil, "X", f))
		if r := refsOf(p); len(r) != 1 || r[0].Kind != Placeholder || r[0].Filter != f {
			t.Errorf("placeholder for %v does not scan back", f)
		}
	}
}

func TestRender(t *testing.T) {
	key := string(fakes["OPENAI_API_KEY"])
	pw := fakes["DB_PASSWORD"]
	tests := []struct {
		name, src, want string
		rep             Report
	}{
		{"plain", "KEY=${credentials.OPENAI_API_KEY}\n", "KEY=" + key + "\n",
			Report{Resolved: []string{"OPENAI_API_KEY"}}},
		{"offset 0 and end", "${credentials.A}", "FAKE-a-value", Report{Resolved: []string{"A"}}},
		{"json", `{"k": "${credentials.DB_PASSWORD|json}"}`, `{"k": "` + string(FilterJSON.Apply(pw)) + `"}`,
			Report{Resolved: []string{"DB_PASSWORD"}}},
		{"url", "postgres://u:${credentials.DB_PASSWORD|url}@h/db", "postgres://u:" + string(FilterURL.Apply(pw)) + "@h/db",
			Report{Resolved: []string{"DB_PASSWORD"}}},
		{"base64", "${credentials.A|base64}", string(FilterBase64.Apply([]byte("FAKE-a-value"))),
			Report{Resolved: []string{"A"}}},
		{"shell", "export P=${credentials.DB_PASSWORD|shell}", "export P=" + string(FilterShell.Apply(pw)),
			Report{Resolved: []string{"DB_PASSWORD"}}},
		{"adjacent and repeated", "${credentials.A}${credentials.B}${credentials.A}", "FAKE-a-valueFAKE-b-valueFAKE-a-value",
			Report{Resolved: []string{"A", "B"}}},
		{"escape", "$${credentials.A} ${credentials.A}", "${credentials.A} FAKE-a-value",
			Report{Resolved: []string{"A"}, Escaped: 1}},
		{"missing stays", "x=${credentials.NOPE|json}", "x=${credentials.NOPE|json}", Report{Missing: []string{"NOPE"}}},
		{"denied stays", "${credentials.DENIED_ONE}${credentials.A}", "${credentials.DENIED_ONE}FAKE-a-value",
			Report{Resolved: []string{"A"}, Denied: []string{"DENIED_ONE"}}},
		{"malformed stays", "${credentials.A|yaml} ${credentials.} ${credentials.9}", "${credentials.A|yaml} ${credentials.} ${credentials.9}",
			Report{Malformed: 3}},
		{"nested", "${credentials.${credentials.A}}", "${credentials.FAKE-a-value}", Report{Resolved: []string{"A"}, Malformed: 1}},
		{"binary", "\x00\xff\xfe${credentials.A}\x00\xc3", "\x00\xff\xfeFAKE-a-value\x00\xc3", Report{Resolved: []string{"A"}}},
		{"sorted dedup", "${credentials.B}${credentials.Z}${credentials.A}${credentials.Y}${credentials.Z}${credentials.B}",
			"FAKE-b-value${credentials.Z}FAKE-a-value${credentials.Y}${credentials.Z}FAKE-b-value",
			Report{Resolved: []string{"A", "B"}, Missing: []string{"Y", "Z"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rep := Render([]byte(tt.src), fakeLookup)
			if string(got) != tt.want {
				t.Errorf("Render output differs from expected (len %d vs %d)", len(got), len(tt.want))
			}
			if !reportEqual(rep, tt.rep) {
				t.Errorf("Report = %+v, want %+v", rep, tt.rep)
			}
		})
	}
}

func reportEqual(a, b Report) bool {
	return slices.Equal(a.Resolved, b.Resolved) && slices.Equal(a.Missing, b.Missing) &&
		slices.Equal(a.Denied, b.Denied) && a.Malformed == b.Malformed && a.Escaped == b.Escaped
}

func TestRenderNoChangeReturnsSrc(t *testing.T) {
	for _, src := range []string{"plain text", "${credentials.NOPE}", "${credentials.A|bad}"} {
		in := []byte(src)
		out, _ := Render(in, fakeLookup)
		if len(in) > 0 && &out[0] != &in[0] {
			t.Errorf("Render(%q) copied an unchanged input", src)
		}
	}
	in := []byte("${credentials.A}")
	out, _ := Render(in, fakeLookup)
	if &out[0] == &in[0] {
		t.Error("Render aliased src although it changed")
	}
}

func TestRenderLookupOncePerName(t *testing.T) {
	calls := map[string]int{}
	Render([]byte(strings.Repeat("${credentials.A}${credentials.NOPE}", 50)), func(n string) ([]byte, Status) {
		calls[n]++
		return fakeLookup(n)
	})
	if calls["A"] != 1 || calls["NOPE"] != 1 {
		t.Errorf("lookup calls = %v", calls)
	}
	// Many distinct names stay correct once the cache switches to a map.
	var b bytes.Buffer
	for i := range 100 {
		b.WriteString("${credentials.N" + strings.Repeat("x", i) + "}")
	}
	b.WriteString("${credentials.A}")
	_, rep := Render(b.Bytes(), fakeLookup)
	if len(rep.Missing) != 100 || len(rep.Resolved) != 1 {
		t.Errorf("report sizes %d/%d", len(rep.Missing), len(rep.Resolved))
	}
}

func TestRenderUnknownStatusIsDenied(t *testing.T) {
	out, rep := Render([]byte("${credentials.A}"), func(string) ([]byte, Status) { return []byte("FAKE-x"), Status(9) })
	if string(out) != "${credentials.A}" || !slices.Equal(rep.Denied, []string{"A"}) {
		t.Error("unknown status must leave the placeholder and report denied")
	}
}
