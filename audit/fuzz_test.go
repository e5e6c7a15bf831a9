package audit

import (
	"testing"
)

// FuzzParse: the audit reader takes any line (a damaged or forged log)
// without panicking, and what it accepts is stable under encoding: the
// first encoding may normalise (invalid UTF-8 becomes U+FFFD), after that
// an encode/parse round trip changes nothing.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-27T06:00:00.000000000Z","seq":1,"event":"resolve","outcome":"ok","actor":{"pid":1,"uid":0,"gid":0},"path":"a/.env","credentials":["X"],"prev":"","mac":""}`))
	f.Add([]byte(`{"seq":-1}`))
	f.Add([]byte(`{"time":"not a time","event":""}`))
	f.Add([]byte("\xff\xfe{"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := Parse(line)
		if err != nil {
			return
		}
		norm, err := Parse(encode(nil, &r, nil))
		if err != nil {
			t.Fatalf("a record that parsed does not parse after encoding: %v", err)
		}
		r = norm
		again, err := Parse(encode(nil, &r, nil))
		if err != nil {
			t.Fatalf("a normalised record does not parse after encoding: %v", err)
		}
		if again.Seq != r.Seq || again.Event != r.Event || again.Path != r.Path || !again.Time.Equal(r.Time) {
			t.Fatalf("round trip changed the record: %+v != %+v", again, r)
		}
	})
}
