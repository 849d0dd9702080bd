package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// PasswordFlags are the ways a command can take a password (docs/design.md, "The command contract"):
// first line of stdin, env HSM_PASSWORD, --password (visible to other
// users, so it warns), or a no-echo prompt on a terminal.
func PasswordFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "password-stdin", Usage: "read the password from the first line of standard input"},
		&ucli.StringFlag{Name: "password", Usage: "the password (visible to other users in the process list; prefer --password-stdin or HSM_PASSWORD)"},
	}
}

// ReadPassword gets a password the documented ways. confirm asks twice on a
// terminal, for passwords being set.
func ReadPassword(c *ucli.Context, env Env, prompt string, confirm bool) (string, error) {
	switch {
	case c.Bool("password-stdin"):
		line, ok, tooLong := firstLine(env.Stdin)
		if !ok {
			return "", Usagef("--password-stdin: no password on standard input")
		}
		if tooLong {
			return "", Refused(fmt.Errorf("invalid password: 7 to 32 characters (the first line of standard input is longer than %d bytes)", maxSecretLine), "")
		}
		return newPassword(line, confirm)
	case c.IsSet("password"):
		env.Warnf("--password is visible to other users of this machine; prefer --password-stdin or HSM_PASSWORD")
		return newPassword(c.String("password"), confirm)
	case env.Getenv("HSM_PASSWORD") != "":
		return newPassword(env.Getenv("HSM_PASSWORD"), confirm)
	}
	f := env.Terminal()
	if f == nil {
		return "", Usagef("no password given: use --password-stdin, HSM_PASSWORD, or run on a terminal")
	}
	pw, err := promptNoEcho(env, f, prompt)
	if err != nil {
		return "", err
	}
	if confirm {
		again, err := promptNoEcho(env, f, "Confirm password: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", Usagef("the passwords do not match")
		}
	}
	return newPassword(pw, confirm)
}

// ReadSecret reads a secret (such as a key passphrase) that never comes from
// argv: from stdin when fromStdin, else the named env var, else a prompt.
func ReadSecret(env Env, fromStdin bool, envVar, prompt string) (string, error) {
	if fromStdin {
		line, ok, tooLong := firstLine(env.Stdin)
		if !ok {
			return "", Usagef("no secret on standard input")
		}
		if tooLong {
			return "", Refused(fmt.Errorf("the first line of standard input is longer than %d bytes; not a passphrase", maxSecretLine), "")
		}
		return line, nil
	}
	if v := env.Getenv(envVar); v != "" {
		return v, nil
	}
	f := env.Terminal()
	if f == nil {
		return "", Usagef("no secret given: set %s or pipe it on standard input", envVar)
	}
	return promptNoEcho(env, f, prompt)
}

// maxSecretLine bounds what is read from standard input for a password or
// passphrase: a stray pipe from a big file or /dev/zero must fail, not hang.
const maxSecretLine = 4096

// firstLine reads the first line of r, without its line ending, reading at
// most maxSecretLine+1 bytes. ok is false when r holds nothing; tooLong
// when the line does not end within the bound.
func firstLine(r io.Reader) (line string, ok, tooLong bool) {
	s, err := bufio.NewReader(io.LimitReader(r, maxSecretLine+1)).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && s != "") {
		return "", false, false
	}
	s = strings.TrimRight(s, "\r\n")
	return s, true, len(s) > maxSecretLine
}

// newPassword refuses, for a password being set (confirm), what no prompt
// or HSM_PIN could type back: control characters and invalid UTF-8. The
// message never echoes the password.
func newPassword(pw string, confirm bool) (string, error) {
	if !confirm {
		return pw, nil
	}
	if !utf8.ValidString(pw) {
		return "", Refused(errors.New("invalid password: not valid UTF-8 text"), "")
	}
	for _, r := range pw {
		if unicode.IsControl(r) {
			return "", Refused(fmt.Errorf("invalid password: control characters (such as NUL, tab or escape; here U+%04X) are not allowed", r), "")
		}
	}
	return pw, nil
}

func promptNoEcho(env Env, f *os.File, prompt string) (string, error) {
	fmt.Fprint(env.Stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(env.Stderr)
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	return string(b), nil
}
