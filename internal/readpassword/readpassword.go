// Package readpassword obtains the master password and credential values
// from a human.
//
// Threat model: the agent can read argv and environment variables of
// processes it starts, and can often read files in its workspace. So a
// password or value is never taken from argv or from an environment
// variable's value: only from a hidden terminal prompt, from a file the
// human points at (whose permissions must keep other users out), or, for a
// value, from standard input.
package readpassword

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/term"
)

// MaxLen bounds what is read from a file or stdin, so a wrong path (a
// device, a huge log) fails clearly instead of filling memory.
const MaxLen = 64 << 10

// Source says where the master password comes from. The first non-empty
// field wins: File (a flag), then $FACIOFS_PASSWORD_FILE, then
// $CREDENTIALS_DIRECTORY/faciofs-password (systemd's LoadCredential=), then
// the terminal.
type Source struct {
	File string
}

// ErrNoTerminal is returned when a prompt is needed and there is no
// terminal to show it on.
var ErrNoTerminal = errors.New("no terminal to ask for the master password: use --password-file or $FACIOFS_PASSWORD_FILE")

// file returns the password file to use, or "".
func (s Source) file() string {
	if s.File != "" {
		return s.File
	}
	if f := os.Getenv("FACIOFS_PASSWORD_FILE"); f != "" {
		return f
	}
	if d := os.Getenv("CREDENTIALS_DIRECTORY"); d != "" {
		p := filepath.Join(d, "faciofs-password")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Password reads the master password. With confirm, a terminal prompt asks
// twice and the answers must agree (used when a password is being chosen).
func (s Source) Password(prompt string, confirm bool) ([]byte, error) {
	if f := s.file(); f != "" {
		pw, err := ReadFile(f)
		if err != nil {
			return nil, err
		}
		if len(pw) == 0 {
			return nil, fmt.Errorf("password file %s is empty", f)
		}
		return pw, nil
	}
	return Terminal(prompt, confirm)
}

// Terminal asks on the terminal only, ignoring password files: for a new
// password, which must not be the file that holds the current one.
func Terminal(prompt string, confirm bool) ([]byte, error) {
	tty, err := openTerminal()
	if err != nil {
		return nil, ErrNoTerminal
	}
	if tty != os.Stdin {
		defer tty.Close()
	}
	pw, err := ask(tty, prompt)
	if err != nil {
		return nil, err
	}
	if len(pw) == 0 {
		return nil, errors.New("the master password must not be empty")
	}
	if confirm {
		again, err := ask(tty, "Repeat "+prompt)
		if err != nil {
			return nil, err
		}
		same := bytes.Equal(pw, again)
		clear(again)
		if !same {
			clear(pw)
			return nil, errors.New("the two passwords do not match; nothing was changed")
		}
	}
	return pw, nil
}

// ReadFile reads a password file: its content without one trailing newline.
// A file that other users can read is refused, as ssh refuses such keys.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("password file %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("password file %s can be read by other users (mode %04o); run: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := readLimited(f)
	if err != nil {
		return nil, fmt.Errorf("password file %s: %w", path, err)
	}
	return trimNewline(b), nil
}

// Value reads a credential value: from a hidden prompt when stdin is a
// terminal, else all of stdin (one trailing newline removed, so that
// `printf 'x\n' | faciofs secret set X` stores "x").
func Value(stdin *os.File, prompt string) ([]byte, error) {
	if term.IsTerminal(int(stdin.Fd())) {
		v, err := ask(stdin, prompt)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
	b, err := readLimited(stdin)
	if err != nil {
		return nil, fmt.Errorf("reading the value from standard input: %w", err)
	}
	return trimNewline(b), nil
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxLen+2))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxLen+1 {
		clear(b)
		return nil, fmt.Errorf("more than %d bytes", MaxLen)
	}
	return b, nil
}

func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// openTerminal prefers the process's controlling terminal, so a password
// can be typed even when stdin carries the value.
func openTerminal() (*os.File, error) {
	if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		if term.IsTerminal(int(tty.Fd())) {
			return tty, nil
		}
		tty.Close()
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		return os.Stdin, nil
	}
	return nil, ErrNoTerminal
}

// ask shows prompt on the terminal and reads a line without echo.
func ask(tty *os.File, prompt string) ([]byte, error) {
	out := io.Writer(tty)
	if tty == os.Stdin {
		out = os.Stderr
	}
	fmt.Fprint(out, prompt+": ")
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(out)
	if err != nil {
		return nil, fmt.Errorf("reading from the terminal: %w", err)
	}
	return b, nil
}
