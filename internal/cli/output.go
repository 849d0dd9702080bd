package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/safetext"
)

// envelope is cloudhsm-cli's JSON output: {"error_code":0,"data":…}.
type envelope struct {
	ErrorCode int `json:"error_code"`
	Data      any `json:"data"`
}

// WriteJSON prints data in the cloudhsm-cli envelope, indented as cloudhsm-cli does.
func WriteJSON(w io.Writer, code int, data any) error {
	// Not HTML-escaped: plans and messages hold <PLACEHOLDERS> that
	// people and jq should read as written.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(envelope{ErrorCode: code, Data: data}); err != nil {
		return err
	}
	_, err := w.Write(EscapeJSON(b.Bytes()))
	return err
}

// WriteJSONPlain prints data as indented JSON without the envelope: for
// documents people read and diff (hsm-sim dump).
func WriteJSONPlain(w io.Writer, data any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(data); err != nil {
		return err
	}
	_, err := w.Write(EscapeJSON(b.Bytes()))
	return err
}

// EscapeJSON writes as \uXXXX escapes the runes safetext finds unsafe
// that encoding/json leaves raw (DEL, C1 controls, bidi controls): JSON
// means the same, and a terminal showing it gets no control. They can
// only occur inside strings, since the rest of a JSON document is ASCII;
// the newlines of the indentation stay.
func EscapeJSON(doc []byte) []byte {
	out := make([]byte, 0, len(doc)+32)
	for i := 0; i < len(doc); {
		r, n := utf8.DecodeRune(doc[i:])
		if n > 0 && r != '\n' && safetext.UnsafeRune(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, doc[i:i+n]...)
		}
		i += n
	}
	return out
}

// Linef prints one line for people, its text escaped (safetext): a value
// it quotes (an HSM id from a capture's file name, a username) can neither
// add lines nor reach the terminal as a control.
func Linef(w io.Writer, format string, a ...any) {
	fmt.Fprintln(w, safetext.Escape(fmt.Sprintf(format, a...)))
}

// Table prints rows under a header for people, in one write: a reader
// that stops early (grep -q under pipefail) then cannot cut the table in
// the middle and kill the command with SIGPIPE part-way.
func Table(w io.Writer, header []string, rows [][]string) error {
	return OneWrite(w, func(w io.Writer) error { return renderTable(w, header, rows) })
}

func renderTable(w io.Writer, header []string, rows [][]string) error {
	// Headers as given: the default upper-cases and splits them, which
	// mangles HSM ids used as column names.
	// Every cell is escaped (safetext): a value from a capture or a file
	// name must not add lines or reach the terminal as a control.
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	h := make([]string, len(header))
	for i, s := range header {
		h[i] = safetext.Escape(s)
	}
	t.Header(h)
	safe := make([][]string, len(rows))
	for i, row := range rows {
		safe[i] = make([]string, len(row))
		for j, s := range row {
			safe[i][j] = safetext.Escape(s)
		}
	}
	if err := t.Bulk(safe); err != nil {
		return err
	}
	return t.Render()
}

// Emit prints data as the JSON envelope in JSON mode, else calls human to
// print it for people. Either way the output is one write (see Table).
func Emit(c *ucli.Context, data any, human func(w io.Writer) error) error {
	mode, err := Output(c)
	if err != nil {
		return err
	}
	if mode == "json" {
		return WriteJSON(c.App.Writer, 0, data)
	}
	return OneWrite(c.App.Writer, human)
}

// EmitLines prints a vendor shell's output (lunash, lunacm): each line
// escaped (Linef), as a table's cells are, since lines carry names
// from the command line and the state; then tail, the shell's result
// line, as is. In JSON mode it prints data instead.
func EmitLines(c *ucli.Context, data any, tail string, lines ...string) error {
	return Emit(c, data, func(w io.Writer) error {
		for _, l := range lines {
			Linef(w, "%s", l)
		}
		_, err := io.WriteString(w, tail)
		return err
	})
}

// OneWrite renders into a buffer, then writes it to w in one write (see
// Table): for any output a reader may stop reading early.
func OneWrite(w io.Writer, render func(w io.Writer) error) error {
	var b bytes.Buffer
	if err := render(&b); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}
