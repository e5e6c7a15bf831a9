package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Secret is one decrypted value, handed out only by a Keyring. It never
// prints or marshals its value: every fmt verb, String, GoString and
// slog give "[secret NAME]"; JSON, text, binary and gob encodings fail.
// The value sits behind a pointer so that even a Secret copied into a
// struct and printed with %+v shows an address, not bytes.
type Secret struct {
	p *secretData
}

type secretData struct {
	name  string
	value []byte
}

// Name is the credential's name.
func (s Secret) Name() string { return s.p.name }

// Bytes is the plaintext. The caller must not retain it past Wipe, nor
// send it anywhere a non-permitted process can read it.
func (s Secret) Bytes() []byte { return s.p.value }

// Wipe zeroes the plaintext (best effort: copies the caller made are not
// reached). The Secret keeps its name.
func (s Secret) Wipe() {
	clear(s.p.value)
	s.p.value = nil
}

func (s Secret) String() string                { return "[secret " + s.p.name + "]" }
func (s Secret) GoString() string              { return s.String() }
func (s Secret) Format(f fmt.State, verb rune) { io.WriteString(f, s.String()) }
func (s Secret) LogValue() slog.Value          { return slog.StringValue(s.String()) }

func (s Secret) refuse(format string) error {
	return errors.New("store: refusing to encode secret " + s.p.name + " as " + format)
}

func (s Secret) MarshalJSON() ([]byte, error)   { return nil, s.refuse("JSON") }
func (s Secret) MarshalText() ([]byte, error)   { return nil, s.refuse("text") }
func (s Secret) MarshalBinary() ([]byte, error) { return nil, s.refuse("binary") }
func (s Secret) GobEncode() ([]byte, error)     { return nil, s.refuse("gob") }
