// Package fileio is how every hsmkit tool reads and writes its own files
// (configs, tokens, keys, captures): one atomic, durable write and one
// bounded read, so no caller picks its own level of care.
//
// Writes go to a temp file in the target's directory (a rename is atomic
// only within one file system, and the system temp dir may be another),
// are fsynced, get their mode, are renamed into place, and the directory
// is fsynced so the rename itself survives a crash. Reads take regular
// files only, at most a given size: a FIFO, /dev/zero or a directory
// named by mistake fails at once instead of hanging or filling memory.
package fileio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/google/renameio/v2"
)

// WriteFile replaces path atomically with data, mode perm exactly (the
// umask is not applied, so 0600 stays 0600 and 0644 stays 0644). It
// refuses a symlink at path: replacing the link would quietly detach it
// from the file it points to. A write killed part-way leaves the old file
// and, at worst, a temp file ".BASE<digits>" beside it, never a torn file.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	if err := checkTarget(path); err != nil {
		return err
	}
	t, err := renameio.NewPendingFile(path,
		renameio.WithTempDir(filepath.Dir(path)),
		renameio.WithStaticPermissions(perm))
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer t.Cleanup()
	if _, err := t.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// CloseAtomicallyReplace fsyncs the temp file before the rename.
	if err := t.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncParent(path)
}

// WriteNew creates path with data and mode perm, failing with an error
// that matches fs.ErrExist if anything (even a dangling symlink) is
// already there: the data is written and fsynced in full before it gets
// its name, by a hard link that cannot replace an existing entry, so no
// reader ever sees a partial file. On Linux the data is first written to
// an unnamed file (O_TMPFILE), so a process killed mid-write leaves
// nothing at all behind: no private key in a forgotten temp file.
// Elsewhere the temp file is ".BASE.tmp<digits>", mode 0600 until it is
// complete, and removed on every error.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	if _, err := os.Lstat(path); err == nil {
		return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
	}
	if err := writeNew(path, data, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
		}
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncParent(path)
}

// noUnnamed makes WriteNew take the named-temp route, for tests.
var noUnnamed = false

// writeNew tries the unnamed temp file, falling back to a named one
// where the file system or kernel has no O_TMPFILE.
func writeNew(path string, data []byte, perm os.FileMode) error {
	if !noUnnamed {
		if f, link, ok := openAnonymous(filepath.Dir(path)); ok {
			defer f.Close()
			if err := fill(f, data, perm); err != nil {
				return err
			}
			return link(path)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // on success too: path is the second name
	err = fill(f, data, perm)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Link(tmp, path)
}

// fill writes data, sets the mode and fsyncs, so the file is complete
// before it gets its final name.
func fill(f *os.File, data []byte, perm os.FileMode) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	return f.Sync()
}

// checkTarget refuses to replace a symlink or anything but a regular file.
func checkTarget(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil // absent (or unreadable: the write will say why)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symlink; not replacing it (write to the file it points to instead)", path)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is a %s; not replacing it", path, kind(fi.Mode()))
	}
	return nil
}

func syncParent(path string) error {
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%s was written, but %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory, making the renames and links in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		// EINVAL: the file system cannot sync directories (some FUSE and
		// network file systems); there is nothing more to do there.
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// ErrNotRegular matches (errors.Is) every error ReadFile returns for a
// path that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// NotRegularError says what a path is instead of a regular file. ReadFile
// returns it inside an *fs.PathError with Op "read".
type NotRegularError struct {
	Kind string // "directory", "named pipe (FIFO)", "character device", …
}

func (e *NotRegularError) Error() string {
	if e.Kind == "directory" {
		return "is a directory" // as os.ReadFile says
	}
	return "is a " + e.Kind + ", not a regular file"
}

// Is makes a directory also match syscall.EISDIR, as os.ReadFile's error does.
func (e *NotRegularError) Is(target error) bool {
	return target == ErrNotRegular || e.Kind == "directory" && target == syscall.EISDIR
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "special file"
}

// TooLargeError is the error for input over its bound.
type TooLargeError struct {
	Name string // the path, or what the stream is ("stdin")
	Max  int64
}

func (e *TooLargeError) Error() string { return e.Name + " is larger than " + Size(e.Max) }

// Size shows a byte count as people write limits: 16 MiB, 4 KiB, 100 bytes.
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ReadFile reads the regular file at path (symlinks are followed: configs
// and sessions may be links), at most max bytes. A missing file is
// os.Stat's error; a FIFO, device, socket or directory is an *fs.PathError
// holding a *NotRegularError, returned before anything is opened, so a
// FIFO never blocks and no device is touched; more than max bytes is a
// *TooLargeError.
func ReadFile(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	// O_NONBLOCK: should a FIFO replace the file between the Stat and
	// here, the open still returns at once (and the check below refuses
	// it). O_NOCTTY: a terminal swapped in never becomes ours.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err // an *fs.PathError naming path
	}
	if int64(len(data)) > max {
		return nil, &TooLargeError{Name: path, Max: max}
	}
	return data, nil
}

func notRegular(path string, m fs.FileMode) error {
	return &fs.PathError{Op: "read", Path: path, Err: &NotRegularError{Kind: kind(m)}}
}

// ReadAll reads r to its end, at most max bytes: a stray pipe from a big
// file or /dev/zero fails instead of filling memory. Errors name what.
func ReadAll(r io.Reader, max int64, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if int64(len(data)) > max {
		return nil, &TooLargeError{Name: what, Max: max}
	}
	return data, nil
}
