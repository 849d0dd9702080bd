package cloudhsmcli

import (
	"errors"
	"strings"
)

// splitWords splits an interactive command line into words the way a
// shell would for plain commands: blanks separate words; single quotes
// keep everything literally; double quotes keep everything but a
// backslash before " or \; a backslash outside quotes keeps the next
// character. Nothing is expanded. It refuses a quote left open.
func splitWords(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	in := false // inside a word (a quoted empty string is a word too)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if in {
				words, in = append(words, w.String()), false
				w.Reset()
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			w.WriteString(line[i+1 : i+1+j])
			in, i = true, i+1+j
		case c == '"':
			in = true
			closed := false
			for i++; i < len(line); i++ {
				if line[i] == '"' {
					closed = true
					break
				}
				if line[i] == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					i++
				}
				w.WriteByte(line[i])
			}
			if !closed {
				return nil, errors.New("unterminated double quote")
			}
		case c == '\\':
			if i+1 == len(line) {
				return nil, errors.New("a backslash ends the line")
			}
			i++
			w.WriteByte(line[i])
			in = true
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}
