package leakcheck

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestFindsEveryForm(t *testing.T) {
	const v = "FAKE-sk-test-0001-xyz/+\"q&long-enough"
	s := New(map[string]string{"K": v})
	for label, text := range map[string]string{
		"raw":            "x" + v + "y",
		"base64 at 0":    base64.StdEncoding.EncodeToString([]byte(v)),
		"base64 raw url": base64.RawURLEncoding.EncodeToString([]byte(v)),
		"hex upper":      strings.ToUpper(hex.EncodeToString([]byte(v))),
		"json":           `"FAKE-sk-test-0001-xyz/+\"q\u0026long-enough"`,
		"partial":        "…" + v[9:27] + "…", // any 18 bytes hold a whole window
	} {
		if s.Find([]byte(text)) == "" {
			t.Errorf("%s: not found", label)
		}
	}
	if got := s.Find([]byte("nothing secret here at all")); got != "" {
		t.Errorf("clean text: %s", got)
	}
	if r := s.Redact("a " + v + " b"); strings.Contains(r, "FAKE") {
		t.Errorf("Redact left part of the value: %q", r)
	}
}
