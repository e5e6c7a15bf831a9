// Package mountpoint checks and cleans the directory a mount goes on:
// stale FUSE mounts left by a killed daemon ("Transport endpoint is not
// connected"), directories that already hold a mount or files, and
// unmounting with a lazy fallback so users never keep a dead mount.
package mountpoint

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Mounted reports whether path is a mount point, and its filesystem type.
func Mounted(path string) (bool, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false, "", err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found, fstype := false, ""
	for sc.Scan() {
		// id parent major:minor root mountpoint opts ... - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		if unescape(fields[4]) != abs {
			continue
		}
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) {
				found, fstype = true, fields[i+1]
			}
		}
	}
	return found, fstype, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Stale reports whether path is a FUSE mount whose daemon is gone.
func Stale(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, syscall.ENOTCONN)
}

// Prepare makes path ready to mount on: a stale mount is removed; an
// existing live mount, a non-directory or a directory with entries is an
// error that says so.
func Prepare(path string) error {
	if Stale(path) {
		if err := Unmount(path, true); err != nil {
			return fmt.Errorf("mountpoint %s holds a stale mount that could not be removed: %w", path, err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("mountpoint %s is not a directory", path)
	}
	if m, fstype, err := Mounted(path); err == nil && m {
		return fmt.Errorf("mountpoint %s already has a %s filesystem mounted; run `faciofs unmount %s` first", path, fstype, path)
	}
	d, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	}
	defer d.Close()
	if names, _ := d.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("mountpoint %s is not empty; mounting would hide its files", path)
	}
	return nil
}

// ErrNotMounted is returned when there is no mount to remove.
var ErrNotMounted = errors.New("not a mount point")

// ErrBusy is returned when a mount is in use and lazy was not asked for.
var ErrBusy = errors.New("mount is busy (files are open or a process has its working directory there); close them or use --lazy")

// Unmount removes the mount at path. With lazy, a busy mount is detached
// now and cleaned up by the kernel when its last user leaves.
func Unmount(path string, lazy bool) error {
	flags := 0
	if lazy {
		flags = syscall.MNT_DETACH
	}
	err := syscall.Unmount(path, flags)
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EBUSY) {
		return ErrBusy
	}
	if errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("%s: %w", path, ErrNotMounted)
	}
	if errors.Is(err, syscall.EPERM) {
		// Not root: the setuid helper may unmount our own FUSE mounts.
		return fusermount(path, lazy)
	}
	return err
}

func fusermount(path string, lazy bool) error {
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	args = append(args, path)
	for _, bin := range []string{"fusermount3", "fusermount"} {
		p, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		out, err := exec.Command(p, args...).CombinedOutput()
		if err != nil {
			msg := strings.TrimSpace(string(out))
			if strings.Contains(msg, "busy") {
				return ErrBusy
			}
			return fmt.Errorf("%s: %s", bin, msg)
		}
		return nil
	}
	return errors.New("not permitted to unmount, and no fusermount3 found (apt-get install fuse3)")
}
