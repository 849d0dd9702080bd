package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// MaxInput bounds a file read from a flag: tokens, keys and captures are
// small, and /dev/zero must not exhaust memory.
const MaxInput = 16 << 20

// ReadInput reads a regular file named by a flag, at most MaxInput bytes.
// Errors name the flag and the file; a missing or unreadable file is a
// usage error.
func ReadInput(flag, path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, Usagef("%s: %v", flag, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, Usagef("%s: %s is not a regular file", flag, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, Usagef("%s: %v", flag, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %v", flag, path, err)
	}
	if len(data) > MaxInput {
		return nil, fmt.Errorf("%s: %s is larger than %d MiB", flag, path, MaxInput>>20)
	}
	return data, nil
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
