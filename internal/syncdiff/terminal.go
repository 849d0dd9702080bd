package syncdiff

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/hsmkit/hsmkit/internal/fileio"
)

// A capture is what a terminal kept: the command lines that produced it,
// perhaps other commands and their output, and the output of the one
// command that lists users. The importers read that output and nothing
// else; docs/design.md ("Captures as terminals keep them") lists the
// shapes.

// readCapture reads at most MaxCapture bytes of a capture, as UTF-8
// text (see textOf).
func readCapture(name string, r io.Reader) ([]byte, error) {
	data, err := fileio.ReadAll(r, MaxCapture, name)
	if err != nil {
		return nil, err
	}
	return textOf(name, data)
}

// textOf returns a capture as UTF-8 without its byte-order mark.
// Windows PowerShell's ">" writes UTF-16 with a byte-order mark; it is
// decoded, which keeps every line on its line.
func textOf(name string, data []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, bom):
		return data[len(bom):], nil
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}), bytes.HasPrefix(data, []byte{0xfe, 0xff}):
	default:
		return data, nil
	}
	if len(data)%2 != 0 {
		return nil, fmt.Errorf("%s:%d: UTF-16 text of an odd number of bytes: the capture is cut short", name, 1+bytes.Count(data, []byte{'\n'}))
	}
	units := make([]uint16, 0, len(data)/2-1)
	for i := 2; i < len(data); i += 2 {
		if data[0] == 0xff {
			units = append(units, uint16(data[i])|uint16(data[i+1])<<8)
		} else {
			units = append(units, uint16(data[i])<<8|uint16(data[i+1]))
		}
	}
	out := make([]byte, 0, len(units))
	for _, r := range utf16.Decode(units) {
		out = utf8.AppendRune(out, r)
	}
	return out, nil
}

// reCommand is a line a terminal shows a command on: cloudhsm-cli's and
// CMU's prompts ("aws-cloudhsm > ", "aws-cloudhsm>", "server0>"), a shell
// prompt ("$ ", "[ec2-user@ip-10-0-0-5 ~]$ ", "root@host:~# ") or a
// Windows one ("PS C:\> ", "C:\Program Files\Amazon\CloudHSM\bin\> ").
// The command follows in group 1. No line of either listing starts so: a
// JSON line starts with a bracket, a quote or a value, a CMU line with a
// word or a number.
var reCommand = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[ \t]*(?:(?:aws-cloudhsm|server ?\d{1,4})[ \t]*>|(?:\[[^\]\n]*\]|[\w.@:~/-]+)?[$#]|PS [^>\n]*>|[A-Za-z]:\\[^>\n]*>)(.*)$`)
})

var (
	// reCLIList is cloudhsm-cli's user list, typed at its prompt or run
	// from a shell; the output may follow on the same line (the prompt
	// glued to the JSON).
	reCLIList = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[ \t]*(?:sudo[ \t]+|&[ \t]*)?(?:(?:'[^'\n]*[/\\]|"[^"\n]*[/\\]|\S*[/\\])?cloudhsm-cli(?:\.exe)?['"]?[ \t]+)?user[ \t]+list(?:[ \t]|$|\{)`)
	})
	// reCMUList is CMU's listUsers, or its documented abbreviation listU.
	reCMUList = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[ \t]*listU(?:sers)?[ \t]*$`) })
)

// listingOf returns text with every byte that is not the user listing
// turned to a space, newlines kept, so the listing's offsets and line
// numbers stay those of the file. Command lines are blanked. When a
// command line runs the listing command (isList), the output of every
// other command is blanked too, and a second listing command is an error;
// without one, every line that is not a command line is kept. ran says
// whether the listing command is there.
func listingOf(name string, text []byte, isList func(cmd []byte) bool) (listing []byte, ran bool, err error) {
	type cmdLine struct {
		off, end, line int
		list           bool
		glued          int // offset of output on the command's own line, -1 none
	}
	var cmds []cmdLine
	listAt := -1
	n := 0
	eachLine(text, func(off int, line []byte) bool {
		n++
		m := reCommand().FindSubmatchIndex(line)
		if m == nil {
			return true
		}
		c := cmdLine{off: off, end: off + len(line), line: n, glued: -1}
		if cmd := line[m[2]:m[3]]; isList(cmd) {
			if listAt >= 0 {
				err = fmt.Errorf("%s:%d: a second user listing (the first is at line %d): keep one listing per capture", name, n, cmds[listAt].line)
				return false
			}
			c.list, listAt = true, len(cmds)
			if i := bytes.IndexByte(cmd, '{'); i >= 0 {
				c.glued = off + m[2] + i
			}
		}
		cmds = append(cmds, c)
		return true
	})
	if err != nil {
		return nil, false, err
	}
	if len(cmds) == 0 {
		return text, false, nil
	}
	out := bytes.Clone(text)
	blank := func(from, to int) {
		for i := from; i < to; i++ {
			if out[i] != '\n' {
				out[i] = ' '
			}
		}
	}
	for i, c := range cmds {
		end := c.end
		if c.glued >= 0 {
			end = c.glued
		}
		blank(c.off, end)
		if listAt >= 0 && !c.list {
			// Another command's output runs to the next command line.
			next := len(text)
			if i+1 < len(cmds) {
				next = cmds[i+1].off
			}
			blank(c.end, next)
		}
	}
	return out, listAt >= 0, nil
}

func isCLIList(cmd []byte) bool { return reCLIList().Match(cmd) }
func isCMUList(cmd []byte) bool { return reCMUList().Match(cmd) }

// firstByte is the first byte of text that is not white space (0 none).
func firstByte(text []byte) byte {
	if t := bytes.TrimLeft(text, " \t\r\n"); len(t) > 0 {
		return t[0]
	}
	return 0
}
