package control

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadRequest(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"op":"status"}` + "\n", ""},
		{`{"op":"status"}`, ""},
		{"", "empty request"},
		{"{", "malformed"},
		{`{"op":"status","x":1}`, "malformed"},
		{strings.Repeat("a", MaxMessage+1), "larger than"},
	} {
		_, err := readRequest(strings.NewReader(c.in))
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%.20q: %v, want %q", c.in, err, c.want)
		}
	}
	// The decoder's error never quotes the input.
	_, err := readRequest(bytes.NewReader([]byte(`{"op":"FAKE-secret-in-op-0001`)))
	if err == nil || strings.Contains(err.Error(), "FAKE") {
		t.Errorf("error quotes input: %v", err)
	}
}

func TestPendingExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	old := time.Now().Add(-2 * DefaultExpiry)
	e := &Engine{StorePath: path, Now: func() time.Time { return old }}
	var it Item
	if _, err := withPending(PendingPath(path), func(p *pendingFile) (bool, error) {
		var err error
		it, _, err = p.add(Item{Kind: KindDelete, Name: "X", When: old, Expires: old.Add(DefaultExpiry)})
		return true, err
	}); err != nil {
		t.Fatal(err)
	}
	expired, err := withPending(PendingPath(path), func(p *pendingFile) (bool, error) {
		if len(p.Items) != 0 {
			t.Errorf("expired item still listed: %+v", p.Items)
		}
		return false, nil
	})
	if err != nil || len(expired) != 1 || expired[0].ID != it.ID {
		t.Errorf("expired %+v, %v", expired, err)
	}
	_ = e
}
