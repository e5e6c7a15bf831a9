package mountpoint

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:              "/plain",
		`/with\040space`:      "/with space",
		`/tab\011and\134back`: "/tab\tand\\back",
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	if err := Prepare(dir); err != nil {
		t.Errorf("an empty directory: %v", err)
	}
	f := filepath.Join(dir, "file")
	os.WriteFile(f, nil, 0o600)
	if err := Prepare(dir); err == nil {
		t.Error("a non-empty directory was accepted")
	}
	if err := Prepare(f); err == nil {
		t.Error("a file was accepted as mountpoint")
	}
	if err := Prepare(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing mountpoint was accepted")
	}
	if m, _, err := Mounted("/proc"); err != nil || !m {
		t.Errorf("Mounted(/proc) = %v, %v", m, err)
	}
	if m, _, _ := Mounted(dir); m {
		t.Error("a temp directory reported as a mount point")
	}
}

func TestUnmountNotMounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("unmount(2) answers EPERM before EINVAL without root")
	}
	if err := Unmount(t.TempDir(), false); !errors.Is(err, ErrNotMounted) {
		t.Errorf("unmount of a plain directory: %v, want ErrNotMounted", err)
	}
}
