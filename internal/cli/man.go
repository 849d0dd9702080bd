package cli

import (
	"fmt"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// ManPage renders app's man page (section 1) in roff from the same
// definitions as its --help: every command and subcommand with its
// description, examples and options, then the exit codes and the
// environment. urfave's ToMan goes through Markdown and leaves out the
// commands' descriptions; this keeps them and needs nothing more. The page
// has no date, so it is the same for the same definitions.
func ManPage(app *ucli.App) string {
	var m man
	name := app.Name
	m.req("TH", roffQuote(strings.ToUpper(name)), "1", `""`, "hsmkit", `"User Commands"`)
	m.req("SH", "NAME")
	m.text(name + " - " + app.Usage)
	m.req("SH", "SYNOPSIS")
	m.req("B", roffEscape(name))
	m.raw(`[\fIglobal options\fR] \fIcommand\fR [\fIcommand options\fR] [\fIarguments\fR...]`)
	if app.Description != "" {
		m.req("SH", "DESCRIPTION")
		m.paragraphs(app.Description)
	}
	if app.UsageText != "" {
		m.req("SH", "EXAMPLES")
		m.example(app.UsageText)
	}
	m.req("SH", "GLOBAL OPTIONS")
	m.flags(app.VisibleFlags())
	m.req("SH", "COMMANDS")
	m.text("The global options are taken after a command's name too.")
	m.commands(name, app.VisibleCommands())
	m.req("SH", "EXIT STATUS")
	for _, e := range []struct {
		code int
		what string
	}{
		{ExitOK, "success"},
		{ExitFailed, "the operation was refused or failed"},
		{ExitUsage, "usage error: unknown command or flag, missing or stray argument"},
		{ExitTrouble, "config or state problem: missing or malformed config, stale config, unreachable HSM, corrupt or locked state"},
	} {
		m.req("TP")
		m.text(fmt.Sprint(e.code))
		m.text(e.what)
	}
	if env := envVars(app); len(env) > 0 {
		m.req("SH", "ENVIRONMENT")
		for _, e := range env {
			m.req("TP")
			m.raw(`\fB` + roffEscape(e[0]) + `\fR`)
			m.text(e[1])
		}
	}
	return m.String()
}

type man struct{ strings.Builder }

// req writes a request line (.SH NAME).
func (m *man) req(name string, args ...string) {
	m.WriteString("." + name)
	for _, a := range args {
		m.WriteString(" " + a)
	}
	m.WriteString("\n")
}

// raw writes a line of roff as it is.
func (m *man) raw(line string) { m.WriteString(line + "\n") }

// text writes lines of plain text, escaped.
func (m *man) text(s string) {
	for _, line := range strings.Split(s, "\n") {
		m.raw(roffLine(line))
	}
}

// paragraphs keeps the text's line breaks, a blank line starting a new paragraph.
func (m *man) paragraphs(s string) {
	for i, para := range strings.Split(strings.Trim(s, "\n"), "\n\n") {
		if i > 0 {
			m.req("PP")
		}
		for j, line := range strings.Split(para, "\n") {
			if j > 0 {
				m.req("br")
			}
			m.raw(roffLine(strings.TrimSpace(line)))
		}
	}
}

// example writes lines as they are, unfilled and indented.
func (m *man) example(s string) {
	m.req("PP")
	m.req("RS", "4")
	m.req("nf")
	for _, line := range strings.Split(strings.Trim(s, "\n"), "\n") {
		m.raw(roffLine(line))
	}
	m.req("fi")
	m.req("RE")
}

func (m *man) flags(flags []ucli.Flag) {
	for _, f := range flags {
		usage, placeholder := "", ""
		if d, ok := f.(ucli.DocGenerationFlag); ok {
			placeholder, usage = unquoteUsage(d.GetUsage())
			if d.TakesValue() && placeholder == "" {
				placeholder = "value"
			}
			if !d.TakesValue() {
				placeholder = ""
			}
			if def := d.GetDefaultText(); d.TakesValue() && def != "" && def != `""` {
				usage += fmt.Sprintf(" (default: %s)", def)
			}
			if env := d.GetEnvVars(); len(env) > 0 {
				usage += " (env " + strings.Join(env, ", ") + ")"
			}
		}
		names := f.Names()
		// The long name first, as --help shows it.
		slices.SortStableFunc(names, func(a, b string) int { return len(b) - len(a) })
		parts := make([]string, len(names))
		for i, n := range names {
			dash := "\\-\\-"
			if len(n) == 1 {
				dash = "\\-"
			}
			parts[i] = `\fB` + dash + roffEscape(n) + `\fR`
			if placeholder != "" {
				parts[i] += ` \fI` + roffEscape(placeholder) + `\fR`
			}
		}
		m.req("TP")
		m.raw(strings.Join(parts, ", "))
		m.text(usage)
	}
}

func (m *man) commands(path string, cmds []*ucli.Command) {
	for _, c := range cmds {
		full := path + " " + c.Name
		m.req("SS", roffQuote(full))
		m.text(c.Usage)
		synopsis := full
		if len(c.VisibleCommands()) > 0 {
			synopsis += " command"
		}
		if len(c.VisibleFlags()) > 0 {
			synopsis += " [options]"
		}
		if c.ArgsUsage != "" && strings.TrimSpace(c.ArgsUsage) != "" {
			synopsis += " " + c.ArgsUsage
		}
		m.req("PP")
		m.raw(`\fB` + roffEscape(synopsis) + `\fR`)
		if c.Description != "" {
			m.req("PP")
			m.paragraphs(c.Description)
		}
		if c.UsageText != "" {
			m.req("PP")
			m.text("Examples:")
			m.example(c.UsageText)
		}
		if flags := ownFlags(c); len(flags) > 0 {
			m.req("PP")
			m.text("Options:")
			m.req("RS", "4")
			m.flags(flags)
			m.req("RE")
		}
		m.commands(full, c.VisibleCommands())
	}
}

// ownFlags are a command's visible flags but the common ones, which the
// page lists once as global options.
func ownFlags(c *ucli.Command) []ucli.Flag {
	common := map[string]bool{}
	for _, f := range commonFlags() {
		common[strings.Join(f.Names(), ",")] = true
	}
	var out []ucli.Flag
	for _, f := range c.VisibleFlags() {
		if !common[strings.Join(f.Names(), ",")] && f != ucli.HelpFlag {
			out = append(out, f)
		}
	}
	return out
}

// envVars lists every environment variable a flag reads, with the first
// flag's usage, in the order met.
func envVars(app *ucli.App) [][2]string {
	var out [][2]string
	seen := map[string]bool{}
	var walk func(flags []ucli.Flag, cmds []*ucli.Command)
	walk = func(flags []ucli.Flag, cmds []*ucli.Command) {
		for _, f := range flags {
			d, ok := f.(ucli.DocGenerationFlag)
			if !ok {
				continue
			}
			for _, e := range d.GetEnvVars() {
				if !seen[e] {
					seen[e] = true
					_, usage := unquoteUsage(d.GetUsage())
					out = append(out, [2]string{e, usage})
				}
			}
		}
		for _, c := range cmds {
			walk(c.VisibleFlags(), c.VisibleCommands())
		}
	}
	walk(app.VisibleFlags(), app.VisibleCommands())
	return out
}

// roffEscape makes text safe inside a roff line: backslashes are the
// escape character, a minus is written \- so that options copy and paste
// as ASCII hyphens, and a character beyond ASCII (an ellipsis, a dash) is
// named \[uXXXX], since groff reads its input as Latin-1.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, `\[u%04X]`, r)
		}
	}
	return b.String()
}

// roffLine escapes a text line; one starting with a dot or a quote would
// be read as a request, so it starts with the zero-width \&.
func roffLine(s string) string {
	s = roffEscape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffQuote is an argument of a request: quoted, its quotes doubled.
func roffQuote(s string) string {
	return `"` + strings.ReplaceAll(roffEscape(s), `"`, `""`) + `"`
}

// unquoteUsage finds a flag's placeholder, the first `WORD` of its usage,
// as urfave's help does, and returns the usage without the backquotes.
func unquoteUsage(usage string) (placeholder, text string) {
	if i := strings.IndexByte(usage, '`'); i >= 0 {
		if j := strings.IndexByte(usage[i+1:], '`'); j >= 0 {
			placeholder = usage[i+1 : i+1+j]
			return placeholder, usage[:i] + placeholder + usage[i+2+j:]
		}
	}
	return "", usage
}
