package fileio

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openAnonymous opens an unnamed file in dir (O_TMPFILE) and returns a
// function that gives it its name. The name comes by linkat through
// /proc/self/fd, which needs no privilege (AT_EMPTY_PATH would need
// CAP_DAC_READ_SEARCH). ok is false where either is missing.
func openAnonymous(dir string) (f *os.File, link func(path string) error, ok bool) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		return nil, nil, false
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, nil, false // EOPNOTSUPP, EISDIR on old kernels, …: use a named temp
	}
	f = os.NewFile(uintptr(fd), dir)
	link = func(path string) error {
		src := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		if err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW); err != nil {
			return &os.LinkError{Op: "link", Old: src, New: path, Err: err}
		}
		return nil
	}
	return f, link, true
}
