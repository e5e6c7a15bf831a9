package fs_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRenameFlags: RENAME_NOREPLACE refuses to overwrite and
// RENAME_EXCHANGE swaps, through the mount as on the backing directory.
func TestRenameFlags(t *testing.T) {
	tm := mountFS(t, consumerPolicy(), fakeValues)
	a, b := filepath.Join(tm.mnt, "a"), filepath.Join(tm.mnt, "b")
	if err := os.WriteFile(a, []byte("A"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("B"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE); err != unix.EEXIST {
		t.Errorf("RENAME_NOREPLACE onto an existing file: %v, want EEXIST", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("RENAME_EXCHANGE: %v", err)
	}
	for name, want := range map[string]string{"a": "B", "b": "A"} {
		for _, dir := range []string{tm.mnt, tm.backing} {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || string(got) != want {
				t.Errorf("%s/%s = %q, %v; want %q", dir, name, got, err, want)
			}
		}
	}
	c := filepath.Join(tm.mnt, "c")
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, c, unix.RENAME_NOREPLACE); err != nil {
		t.Errorf("RENAME_NOREPLACE to a new name: %v", err)
	}
}
