package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hsmkit/hsmkit/internal/fileio"
)

// MaxInput bounds a file read from a flag: tokens, keys and captures are
// small, and /dev/zero must not exhaust memory.
const MaxInput = 16 << 20

// ReadInput reads a regular file named by a flag, at most MaxInput bytes.
// Errors name the flag and the file; a missing, unreadable or non-regular
// file is a usage error, one too large or failing mid-read a failure.
func ReadInput(flag, path string) ([]byte, error) {
	data, err := fileio.ReadFile(path, MaxInput)
	var pe *fs.PathError
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, fileio.ErrNotRegular):
		return nil, Usagef("%s: %s is not a regular file", flag, path)
	case errors.As(err, &pe) && pe.Op == "read":
		return nil, fmt.Errorf("%s: %v", flag, err)
	case errors.As(err, new(*fileio.TooLargeError)):
		return nil, fmt.Errorf("%s: %v", flag, err)
	}
	return nil, Usagef("%s: %v", flag, err)
}

// CheckOutputPath refuses an output path that is a directory or whose
// directory does not exist, before anything is changed.
func CheckOutputPath(flag, path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return Usagef("%s: %s is a directory", flag, path)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return Usagef("%s: directory %s does not exist", flag, filepath.Dir(path))
	}
	return nil
}
