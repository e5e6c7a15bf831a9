package readpassword

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fakePassword = "FAKE-master-password-0001"

func writePw(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSourceOrder(t *testing.T) {
	dir := t.TempDir()
	flag := writePw(t, dir, "flag", "from-flag\n", 0o600)
	env := writePw(t, dir, "env", "from-env\r\n", 0o600)
	credDir := filepath.Join(dir, "creds")
	os.Mkdir(credDir, 0o700)
	writePw(t, credDir, "faciofs-password", "from-systemd", 0o600)

	t.Setenv("FACIOFS_PASSWORD_FILE", env)
	t.Setenv("CREDENTIALS_DIRECTORY", credDir)
	for _, c := range []struct {
		src  Source
		env  bool
		want string
	}{
		{Source{File: flag}, true, "from-flag"},
		{Source{}, true, "from-env"},
		{Source{}, false, "from-systemd"},
	} {
		if !c.env {
			t.Setenv("FACIOFS_PASSWORD_FILE", "")
		}
		got, err := c.src.Password("Master password", false)
		if err != nil || string(got) != c.want {
			t.Errorf("Password() = %q, %v; want %q", got, err, c.want)
		}
	}
}

func TestReadFileRefusals(t *testing.T) {
	dir := t.TempDir()
	open := writePw(t, dir, "open", fakePassword, 0o644)
	if _, err := ReadFile(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a 0644 password file: %v, want a refusal naming chmod 600", err)
	}
	if _, err := ReadFile(dir); err == nil {
		t.Error("a directory as password file was accepted")
	}
	empty := writePw(t, dir, "empty", "\n", 0o600)
	if _, err := (Source{File: empty}).Password("x", false); err == nil {
		t.Error("an empty password file was accepted")
	}
	big := writePw(t, dir, "big", strings.Repeat("x", MaxLen+2), 0o600)
	if _, err := ReadFile(big); err == nil {
		t.Error("an over-long password file was accepted")
	}
	for _, p := range []string{open, dir, empty, big} {
		if _, err := ReadFile(p); err != nil && strings.Contains(err.Error(), fakePassword) {
			t.Errorf("an error message repeats the file's content")
		}
	}
}

func TestValueFromPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.Write([]byte("FAKE-value-0001\n"))
		w.Close()
	}()
	v, err := Value(r, "Value")
	if err != nil || string(v) != "FAKE-value-0001" {
		t.Errorf("Value from a pipe = %q, %v", v, err)
	}
}

func TestNoTerminal(t *testing.T) {
	t.Setenv("FACIOFS_PASSWORD_FILE", "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	if _, err := openTerminal(); err == nil {
		t.Skip("this test runs with a terminal attached")
	}
	if _, err := (Source{}).Password("x", false); err != ErrNoTerminal {
		t.Errorf("no file and no terminal: %v, want ErrNoTerminal", err)
	}
}
