package resolve

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestReverseLongestFirst(t *testing.T) {
	known := []Known{{"SHORT", []byte("abcd")}, {"LONG", []byte("abcdef")}}
	tests := []struct{ src, want string }{
		{"abcdef", "${credentials.LONG}"},
		{"abcde", "${credentials.SHORT}e"},
		{"xabcdefabcd", "x${credentials.LONG}${credentials.SHORT}"},
		{"abcabcdef", "abc${credentials.LONG}"},
	}
	for _, tt := range tests {
		got, _ := Reverse([]byte(tt.src), known)
		if string(got) != tt.want {
			t.Errorf("Reverse(%q) = %q, want %q", tt.src, got, tt.want) // toy values, not credentials
		}
	}
}

func TestReverseOverlapping(t *testing.T) {
	// "FAKE1234" and "1234WXYZ" overlap in "FAKE1234WXYZ": leftmost wins,
	// and the remainder is not a value.
	known := []Known{{"X", []byte("FAKE1234")}, {"Y", []byte("1234WXYZ")}}
	got, names := Reverse([]byte("FAKE1234WXYZ 1234WXYZ"), known)
	if string(got) != "${credentials.X}WXYZ ${credentials.Y}" || !slices.Equal(names, []string{"X", "Y"}) {
		t.Errorf("overlap: got %q names %v", got, names)
	}
	// A value inside another: the longer one starts first.
	known = []Known{{"OUTER", []byte("xxFAKEinnerxx")}, {"INNER", []byte("FAKEinner")}}
	got, _ = Reverse([]byte("xxFAKEinnerxx FAKEinner"), known)
	if string(got) != "${credentials.OUTER} ${credentials.INNER}" {
		t.Errorf("nested: got %q", got)
	}
}

func TestReverseFilteredForms(t *testing.T) {
	v := []byte(`FAKE p@ss/w"rd'&<x>` + "\n")
	known := []Known{{"PW", v}}
	htmlJSON, _ := json.Marshal(string(v))
	for _, tt := range []struct {
		form []byte
		f    Filter
	}{
		{v, FilterNone},
		{FilterJSON.Apply(v), FilterJSON},
		{htmlJSON[1 : len(htmlJSON)-1], FilterJSON},
		{FilterURL.Apply(v), FilterURL},
		{[]byte(strings.ToLower(string(FilterURL.Apply(v)))), FilterURL}, // no letters in v besides the hex change below
		{FilterBase64.Apply(v), FilterBase64},
		{FilterShell.Apply(v), FilterShell},
	} {
		src := append(append([]byte("pre "), tt.form...), " post"...)
		got, names := Reverse(src, known)
		want := "pre " + string(AppendPlaceholder(nil, "PW", tt.f)) + " post"
		if tt.f == FilterURL && !bytes.Equal(tt.form, FilterURL.Apply(v)) {
			// lowercasing also lowercased the value's letters; build the real lowercase-hex form
			src = append(append([]byte("pre "), appendURL(nil, v, lowerHex)...), " post"...)
			got, names = Reverse(src, known)
		}
		if string(got) != want || !slices.Equal(names, []string{"PW"}) {
			t.Errorf("%v form not replaced by its placeholder", tt.f)
		}
		if bytes.Contains(got, v) {
			t.Errorf("%v: value left in output", tt.f)
		}
	}
}

func TestReverseFormEqualToRawUsesPlain(t *testing.T) {
	// For an unreserved-only value the url form equals the raw value.
	got, _ := Reverse([]byte("FAKE-token_1.2~x"), []Known{{"T", []byte("FAKE-token_1.2~x")}})
	if string(got) != "${credentials.T}" {
		t.Errorf("got %q", got)
	}
}

func TestReverseManyOccurrences(t *testing.T) {
	v := "FAKE-sk-test-many"
	src := strings.Repeat("k="+v+"\n", 1000)
	got, names := Reverse([]byte(src), []Known{{"K", []byte(v)}})
	if string(got) != strings.Repeat("k=${credentials.K}\n", 1000) || !slices.Equal(names, []string{"K"}) {
		t.Error("not every occurrence replaced")
	}
}

func TestReverseEmptyAndShort(t *testing.T) {
	if got, names := Reverse(nil, []Known{{"A", []byte("FAKE-x")}}); len(got) != 0 || names != nil {
		t.Error("nil input")
	}
	src := []byte("nothing here")
	if got, _ := Reverse(src, nil); &got[0] != &src[0] {
		t.Error("no values: want src back")
	}
	m := NewMatcher([]Known{{"TINY", []byte("abc")}, {"EMPTY", nil}, {"OK", []byte("abcd")}})
	if !slices.Equal(m.Skipped(), []string{"EMPTY", "TINY"}) {
		t.Errorf("Skipped = %v", m.Skipped())
	}
	got, names, err := m.Reverse([]byte("abc abcd"))
	if err != nil || string(got) != "abc ${credentials.OK}" || !slices.Equal(names, []string{"OK"}) {
		t.Errorf("short values: got %q %v %v", got, names, err)
	}
}

func TestReverseDuplicateValues(t *testing.T) {
	known := []Known{{"FIRST", []byte("FAKE-same")}, {"SECOND", []byte("FAKE-same")}}
	got, names := Reverse([]byte("FAKE-same"), known)
	if string(got) != "${credentials.FIRST}" || !slices.Equal(names, []string{"FIRST"}) {
		t.Errorf("got %q %v", got, names)
	}
}

func TestReverseDollarBefore(t *testing.T) {
	// Documented loss: "$" + value becomes an escape. The value is gone.
	got, _ := Reverse([]byte("$FAKE-value"), []Known{{"V", []byte("FAKE-value")}})
	if string(got) != "$${credentials.V}" {
		t.Errorf("got %q", got)
	}
}

func TestReverseFixedPoint(t *testing.T) {
	// A value ending in '$' re-forms across the placeholder it inserted.
	v := []byte("FAKEpw$")
	src := []byte("FAKEpwFAKEpw$")
	got, _, err := NewMatcher([]Known{{"P", v}}).Reverse(src)
	if err != nil || bytes.Contains(got, v) {
		t.Fatalf("value left behind (err %v)", err)
	}
	// A value that is placeholder syntax can never be removed.
	got, _, err = NewMatcher([]Known{{"A", []byte("{credentials.A}")}}).Reverse([]byte("x{credentials.A}"))
	if err != ErrNoFixedPoint || got != nil {
		t.Fatalf("want ErrNoFixedPoint and nil, got err %v", err)
	}
	if out, _ := Reverse([]byte("{credentials.A}"), []Known{{"A", []byte("{credentials.A}")}}); out != nil {
		t.Fatal("package Reverse must return nil when it cannot remove a value")
	}
}

func TestReverseRenderRoundTrip(t *testing.T) {
	tmpl := `{"mcpServers":{"x":{"env":{"OPENAI_API_KEY":"${credentials.OPENAI_API_KEY}",` +
		`"DB":"postgres://u:${credentials.DB_PASSWORD|url}@db/x","P":"${credentials.DB_PASSWORD|json}"}}}}` +
		"\nexport P=${credentials.DB_PASSWORD|shell}\nB64=${credentials.A|base64}\nX=${credentials.NOPE}\n"
	rendered, _ := Render([]byte(tmpl), fakeLookup)
	var known []Known
	for n, v := range fakes {
		known = append(known, Known{n, v})
	}
	back, _ := Reverse(rendered, known)
	// A json form equal to the raw value comes back as the plain placeholder.
	if got, _ := Reverse([]byte(`"${credentials.OPENAI_API_KEY|json}"`), known); string(got) != `"${credentials.OPENAI_API_KEY|json}"` {
		t.Error("Reverse touched a placeholder")
	}
	if string(back) != tmpl {
		t.Errorf("Reverse(Render(t)) != t (lengths %d, %d)", len(back), len(tmpl))
	}
}

func TestMatcherFindStops(t *testing.T) {
	m := NewMatcher([]Known{{"A", []byte("FAKE")}})
	n := 0
	m.Find([]byte("FAKE FAKE FAKE"), func(int, int, string, Filter) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("Find called fn %d times", n)
	}
}

func TestMatcherLongValuesSparse(t *testing.T) {
	// Long values (PEM keys) push most states out of the dense table.
	var known []Known
	for i := range 20 {
		v := bytes.Repeat([]byte{byte('A' + i)}, 8)
		v = append(v, bytes.Repeat([]byte("FAKE-pem-line-0123456789+/=\n"), 150)...)
		known = append(known, Known{string(rune('A' + i)), v})
	}
	m := NewMatcher(known)
	src := append([]byte("head "), known[7].Value...)
	src = append(src, " tail "...)
	src = append(src, known[19].Value[:100]...) // a prefix only: no match
	got, names, err := m.Reverse(src)
	if err != nil || !slices.Equal(names, []string{"H"}) || !bytes.HasPrefix(got, []byte("head ${credentials.H} tail ")) {
		t.Errorf("long values: names %v err %v", names, err)
	}
}

// TestPrefilterNeverHidesAMatch: whatever the offset of a value or form,
// including the very start and the last bytes of the input, the prefilter
// lets the automaton see it; and on clean input Contains is false.
func TestPrefilterNeverHidesAMatch(t *testing.T) {
	known := []Known{{"A", []byte("FAKE-val-A1")}, {"B", []byte("zzzz")}, {"C", []byte("FAKE\"q'uote")}}
	m := NewMatcher(known)
	filler := []byte("plain text 0123456789 with no secret in it at all; ")
	for _, k := range known {
		for f := FilterNone; f < numFilters; f++ {
			form := f.Apply(k.Value)
			for _, pre := range []int{0, 1, 2, 3, 7, 50} {
				for _, post := range []int{0, 1, 3, 9} {
					src := append(append(append([]byte{}, filler[:pre]...), form...), filler[:post]...)
					if !m.Contains(src) {
						t.Errorf("%s form %v at offset %d with %d bytes after: not found", k.Name, f, pre, post)
					}
				}
			}
		}
	}
	if m.Contains(filler) || m.Contains(nil) || m.Contains([]byte("FAK")) {
		t.Error("Contains is true on clean input")
	}
}
