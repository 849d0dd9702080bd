package cli

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// zeros is endless input without a line ending, as /dev/zero.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestReadLine(t *testing.T) {
	const max = 8
	read := func(r io.Reader, n int) (lines []string, last error) {
		br := bufio.NewReaderSize(r, 16)
		for i := 0; i < n; i++ {
			l, err := ReadLine(br, max)
			if err != nil {
				return lines, err
			}
			lines = append(lines, l)
		}
		return lines, nil
	}
	for _, tc := range []struct {
		name  string
		in    io.Reader
		n     int
		lines []string
		err   error
	}{
		{"lines", strings.NewReader("a\nbc\r\n"), 2, []string{"a", "bc"}, nil},
		{"last line without newline", strings.NewReader("a\nxyz"), 2, []string{"a", "xyz"}, nil},
		{"end of input", strings.NewReader("a\n"), 2, []string{"a"}, io.EOF},
		{"exactly max", strings.NewReader("12345678\nz\n"), 2, []string{"12345678", "z"}, nil},
		{"too long, then the next line", strings.NewReader(strings.Repeat("x", 100) + "\nnext\n"), 1, nil, ErrLineTooLong},
		{"endless, no line ending", zeros{}, 1, nil, ErrNoLineEnd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := read(tc.in, tc.n)
			if !errors.Is(err, tc.err) || strings.Join(lines, "|") != strings.Join(tc.lines, "|") {
				t.Fatalf("got %q, %v; want %q, %v", lines, err, tc.lines, tc.err)
			}
		})
	}
	// After a too-long line, the next read starts at the following line.
	br := bufio.NewReaderSize(strings.NewReader(strings.Repeat("x", 100)+"\nnext\n"), 16)
	if _, err := ReadLine(br, max); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("first read: %v", err)
	}
	if l, err := ReadLine(br, max); l != "next" || err != nil {
		t.Fatalf("second read = %q, %v; want next", l, err)
	}
}
