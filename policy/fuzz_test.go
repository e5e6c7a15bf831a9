package policy

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that no input panics and that every error is a
// ParseError naming the file, with a line inside the input when it has one.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fullPolicy))
	f.Add([]byte(""))
	f.Add([]byte("version: 1\nagents: [{uid: 1}]\n"))
	f.Add([]byte("version: 1\nconsumers:\n  - &a {name: x}\n  - *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a ParseError", err)
			}
			// YAML breaks lines at \n, \r and (in yaml.v3) NEL, LS and PS.
			breaks := 0
			for _, r := range string(data) {
				if strings.ContainsRune("\n\r\u0085\u2028\u2029", r) {
					breaks++
				}
			}
			if !strings.HasPrefix(err.Error(), "fuzz.yaml:") || pe.Line < 0 || pe.Line > breaks+2 {
				t.Fatalf("bad error %q for %d line breaks", err, breaks)
			}
			return
		}
		// A policy that parses can decide without panicking.
		d := p.Decide(&Process{Tgid: 1, Exe: "/x", Cgroup: "/a"}, Caller{Pid: 1}, "a/.env")
		if d.View == ViewResolved && len(d.Consumers) == 0 {
			t.Fatalf("resolved without a consumer: %+v", d)
		}
	})
}
