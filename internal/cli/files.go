package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	ucli "github.com/urfave/cli/v2"

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

// formats are the words -o/--output takes: a file of that name is far
// more likely a slip than a wish.
var formats = []string{"table", "json"}

// OutFlags are --out FILE, the file a command writes its result to, and
// -o FILE, its older spelling after the command's name (hsm-sign sign -o
// FILE), kept for the scripts that use it but hidden: -o is the output
// format everywhere else (docs/design.md, "Command-line conventions").
func OutFlags(usage string) []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "out", Usage: usage},
		&ucli.StringFlag{Name: "o", Hidden: true, Usage: "the same as --out; refuses an output format's name"},
	}
}

// OutFile is the file OutFlags name ("" when neither is given). -o with
// a format's name (-o json) is refused: the user meant the format.
func OutFile(c *ucli.Context) (string, error) {
	if !c.IsSet("o") {
		return c.String("out"), nil
	}
	if c.IsSet("out") {
		return "", Usagef("-o and --out both name the output file: give --out alone")
	}
	o := c.String("o")
	if slices.Contains(formats, o) {
		return "", &Error{Code: ExitUsage,
			Err: fmt.Errorf("-o %s: after %q, -o names the output file, and %q is an output format", o, c.Command.Name, o),
			Hint: fmt.Sprintf("to write a file named %s, use --out %s; the output format goes before the command: %s -o %s %s ...",
				o, o, c.App.Name, o, c.Command.Name)}
	}
	return o, nil
}
