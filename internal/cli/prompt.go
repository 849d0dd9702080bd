package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// Terminal returns stdin as a terminal, or nil when it is not one.
func (e Env) Terminal() *os.File {
	f, ok := e.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return f
}

// PromptPassword asks for a password on the terminal f without echo.
func PromptPassword(env Env, f *os.File, prompt string) (string, error) {
	return promptNoEcho(env, f, prompt)
}

// CheckNewPassword refuses, for a password being set, what no prompt or
// single-command login could type back (see newPassword).
func CheckNewPassword(pw string) error {
	_, err := newPassword(pw, true)
	return err
}

// ErrLineTooLong is a line of input longer than ReadLine's bound; the
// next read starts at the line after it.
var ErrLineTooLong = errors.New("line too long")

// ErrNoLineEnd is input that runs on without a line ending far beyond
// ReadLine's bound (/dev/zero, a binary file): nothing after it is read.
var ErrNoLineEnd = errors.New("input without line endings")

// skipFactor bounds how far past a too-long line's bound ReadLine reads
// looking for its end, so the next line starts afresh.
const skipFactor = 16

// ReadLine reads one line from r, without its line ending, reading at most
// max bytes of it: a stray pipe from a big file or /dev/zero must fail,
// not hang or fill memory. It returns io.EOF when r holds nothing more.
func ReadLine(r *bufio.Reader, max int) (string, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max+1 { // +1: the newline itself
			// Drop the rest of the line so the next read starts afresh,
			// but not without bound.
			for skipped := len(line) + len(frag); errors.Is(err, bufio.ErrBufferFull); skipped += len(frag) {
				if skipped > skipFactor*max {
					return "", fmt.Errorf("%w: more than %d bytes without one", ErrNoLineEnd, skipFactor*max)
				}
				frag, err = r.ReadSlice('\n')
			}
			return "", fmt.Errorf("%w (more than %d bytes)", ErrLineTooLong, max)
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return string(line), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return string(line), nil
		default:
			return "", err
		}
	}
}
