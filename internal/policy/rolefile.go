package policy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxRoleFileLines bounds a custom role's file: the shell has far fewer
// commands than this.
const MaxRoleFileLines = 1024

// Rejected is one refused line of a role file.
type Rejected struct {
	Line    int
	Command string
	Why     string
}

// RoleFileError refuses a role file, naming every rejected command (Luna's
// user role import: "The rejection message will name any rejected
// commands").
type RoleFileError struct{ Rejected []Rejected }

func (e *RoleFileError) Error() string {
	parts := make([]string, len(e.Rejected))
	for i, r := range e.Rejected {
		parts[i] = fmt.Sprintf("line %d %q (%s)", r.Line, r.Command, r.Why)
	}
	return fmt.Sprintf("role file rejected: %d command(s) refused: %s", len(e.Rejected), strings.Join(parts, ", "))
}

// ParseRoleFile reads a custom role's file: the profile's shell commands,
// one per line, UNIX line endings, exact case. A role starts from nothing
// and gets exactly the commands named; the audit role's commands are
// never given. Blank lines are skipped and a repeated command counts
// once. Any refused line refuses the whole file.
func (t *Table) ParseRoleFile(data []byte) ([]string, error) {
	if len(t.Commands) == 0 {
		return nil, fmt.Errorf("the %s profile has no custom roles", t.Name)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("role file: not UTF-8 text")
	}
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > MaxRoleFileLines+1 {
		return nil, fmt.Errorf("role file: more than %d lines", MaxRoleFileLines)
	}
	var cmds []string
	var bad []Rejected
	for i, raw := range lines {
		line := string(raw)
		if strings.HasSuffix(line, "\r") {
			return nil, fmt.Errorf("role file: line %d ends in CR: the file must be in UNIX format (LF line endings)", i+1)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.ContainsFunc(line, unicode.IsControl) {
			bad = append(bad, Rejected{Line: i + 1, Command: line, Why: "control characters"})
			continue
		}
		cmd, ok := t.Command(line)
		switch {
		case ok && cmd.Audit:
			bad = append(bad, Rejected{Line: i + 1, Command: line, Why: "a command of the audit role"})
		case ok:
			if !slices.Contains(cmds, line) {
				cmds = append(cmds, line)
			}
		case t.commandFold(line) != "":
			bad = append(bad, Rejected{Line: i + 1, Command: line, Why: "wrong case: the command is " + t.commandFold(line)})
		default:
			bad = append(bad, Rejected{Line: i + 1, Command: line, Why: "unknown command"})
		}
	}
	if len(bad) > 0 {
		return nil, &RoleFileError{Rejected: bad}
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("role file: no command; a custom role starts from nothing and gets the commands its file names")
	}
	return cmds, nil
}

func (t *Table) commandFold(s string) string {
	for _, c := range t.Commands {
		if strings.EqualFold(c.Name, s) {
			return c.Name
		}
	}
	return ""
}
