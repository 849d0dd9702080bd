package cli

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	ucli "github.com/urfave/cli/v2"
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
	_, err := w.Write(b.Bytes())
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
	_, err := w.Write(b.Bytes())
	return err
}

// Table prints rows under a header for people.
func Table(w io.Writer, header []string, rows [][]string) error {
	// Headers as given: the default upper-cases and splits them, which
	// mangles HSM ids used as column names.
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	t.Header(header)
	if err := t.Bulk(rows); err != nil {
		return err
	}
	return t.Render()
}

// Emit prints data as the JSON envelope in JSON mode, else calls human to
// print it for people.
func Emit(c *ucli.Context, data any, human func(w io.Writer) error) error {
	mode, err := Output(c)
	if err != nil {
		return err
	}
	if mode == "json" {
		return WriteJSON(c.App.Writer, 0, data)
	}
	return human(c.App.Writer)
}
