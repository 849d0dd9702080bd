// Package awscli is what hsm-kms shares with the AWS CLI (v2): how blob
// and map arguments are given, how output is printed (--output,
// --query), and how errors and exit codes are reported
// (docs/design.md, "The KMS custom key store", the AWS CLI's conventions).
package awscli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/safetext"
)

// The AWS CLI v2's exit codes.
const (
	ExitUsage   = 252 // bad syntax, unknown parameter, bad parameter value
	ExitConfig  = 253 // environment or configuration invalid
	ExitService = 254 // the service returned an error
	ExitOther   = 255 // anything else
)

// ParamError is a parameter the AWS CLI refuses before any request.
type ParamError struct{ Msg string }

func (e *ParamError) Error() string { return e.Msg }

// ExitCode is the AWS CLI's for a parameter error.
func (e *ParamError) ExitCode() int { return ExitUsage }

func paramErr(format string, a ...any) error { return &ParamError{fmt.Sprintf(format, a...)} }

// ReadFile reads a file named in a file:// or fileb:// argument.
type ReadFile func(path string) ([]byte, error)

// Blob reads a blob parameter as the AWS CLI v2 does: fileb://PATH is the
// file's bytes; otherwise the value (or a file://PATH's text) is base64,
// unless --cli-binary-format raw-in-base64-out makes it raw.
func Blob(param, value, binaryFormat string, read ReadFile) ([]byte, error) {
	raw := false
	switch binaryFormat {
	case "", "base64":
	case "raw-in-base64-out":
		raw = true
	default:
		return nil, paramErr("--cli-binary-format %q: want base64 or raw-in-base64-out", binaryFormat)
	}
	switch {
	case strings.HasPrefix(value, "fileb://"):
		return readArg(param, strings.TrimPrefix(value, "fileb://"), read)
	case strings.HasPrefix(value, "file://"):
		b, err := readArg(param, strings.TrimPrefix(value, "file://"), read)
		if err != nil {
			return nil, err
		}
		value = string(b)
	}
	if raw {
		return []byte(value), nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return nil, paramErr("Invalid base64: %q", clip(value))
	}
	return b, nil
}

// Text reads a string parameter: file://PATH is the file's text.
func Text(param, value string, read ReadFile) (string, error) {
	for _, p := range []string{"file://", "fileb://"} {
		if strings.HasPrefix(value, p) {
			b, err := readArg(param, strings.TrimPrefix(value, p), read)
			return string(b), err
		}
	}
	return value, nil
}

func readArg(param, path string, read ReadFile) ([]byte, error) {
	if path == "" {
		return nil, paramErr("Error parsing parameter '%s': Unable to load paramfile: no file name given", param)
	}
	b, err := read(path)
	if err != nil {
		return nil, paramErr("Error parsing parameter '%s': Unable to load paramfile %s: %v", param, path, err)
	}
	return b, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Map reads a map parameter (an encryption context) in the AWS CLI's
// shorthand, Key1=Value1,Key2=Value2, or as JSON ({"Key1":"Value1"}), or
// from a file:// path holding either.
func Map(param, value string, read ReadFile) (map[string]string, error) {
	value, err := Text(param, value, read)
	if err != nil {
		return nil, err
	}
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, nil
	}
	out := map[string]string{}
	if strings.HasPrefix(value, "{") {
		if err := json.Unmarshal([]byte(value), &out); err != nil {
			return nil, paramErr("Error parsing parameter '%s': Invalid JSON: %v", param, err)
		}
		return out, nil
	}
	for _, pair := range strings.Split(value, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return nil, paramErr("Error parsing parameter '%s': Expected: '=', received: %q for input: %s", param, clip(pair), clip(value))
		}
		if _, dup := out[k]; dup {
			return nil, paramErr("Error parsing parameter '%s': the key %q is given twice", param, clip(k))
		}
		out[k] = v
	}
	return out, nil
}

// Render prints a response as --output and --query ask: json (4-space
// indent, as the AWS CLI), or text. An empty response prints nothing.
func Render(w io.Writer, v any, output, query string) error {
	switch output {
	case "", "json", "text":
	default:
		return paramErr("--output %q: hsm-kms prints json or text", output)
	}
	if v == nil {
		return nil
	}
	if query == "" && output != "text" {
		b, err := JSON(v)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	doc, err := generic(v)
	if err != nil {
		return err
	}
	if query != "" {
		if doc, err = Query(doc, query); err != nil {
			return err
		}
	}
	if output == "text" {
		var b strings.Builder
		text(&b, "", doc)
		_, err := io.WriteString(w, b.String())
		return err
	}
	b, err := JSON(doc)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// JSON is a value as the AWS CLI prints it: 4-space indents, no HTML
// escaping, no final newline.
func JSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	// A store's name or a key's description is anyone's text: no
	// terminal control reaches the screen, as in every other JSON hsmkit
	// prints (cli.EscapeJSON; the document means the same).
	return bytes.TrimSuffix(cli.EscapeJSON(buf.Bytes()), []byte("\n")), nil
}

func generic(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return doc, d.Decode(&doc)
}

// Query evaluates the subset of JMESPath hsm-kms takes: field names
// joined by dots, each optionally followed by [N] or [*] (a projection
// over a list). Anything else is refused, not guessed.
func Query(doc any, q string) (any, error) {
	if len(q) > 512 {
		return nil, paramErr("--query is longer than 512 characters")
	}
	steps, err := parseQuery(q)
	if err != nil {
		return nil, err
	}
	return eval(doc, steps), nil
}

type step struct {
	field string
	index *int // nil: none
	all   bool
}

func parseQuery(q string) ([]step, error) {
	bad := paramErr("Bad value for --query %s: hsm-kms takes field names joined by '.', each optionally followed by [N] or [*]", clip(q))
	if q == "" {
		return nil, bad
	}
	var out []step
	for _, part := range strings.Split(q, ".") {
		var s step
		name, rest, hasIdx := strings.Cut(part, "[")
		if !validField(name) {
			return nil, bad
		}
		s.field = name
		for hasIdx {
			idx, after, ok := strings.Cut(rest, "]")
			if !ok {
				return nil, bad
			}
			st := step{}
			if idx == "*" {
				st.all = true
			} else {
				n, err := strconv.Atoi(idx)
				if err != nil {
					return nil, bad
				}
				st.index = &n
			}
			if s.field != "" || s.index != nil || s.all {
				out = append(out, s)
			}
			s = st
			if after == "" {
				hasIdx = false
				break
			}
			if !strings.HasPrefix(after, "[") {
				return nil, bad
			}
			rest = after[1:]
		}
		out = append(out, s)
	}
	return out, nil
}

func validField(s string) bool {
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func eval(v any, steps []step) any {
	for i, s := range steps {
		if s.field != "" {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[s.field]
		}
		switch {
		case s.all:
			l, ok := v.([]any)
			if !ok {
				return nil
			}
			out := []any{}
			for _, e := range l {
				if r := eval(e, steps[i+1:]); r != nil {
					out = append(out, r)
				}
			}
			return out
		case s.index != nil:
			l, ok := v.([]any)
			if !ok {
				return nil
			}
			n := *s.index
			if n < 0 {
				n += len(l)
			}
			if n < 0 || n >= len(l) {
				return nil
			}
			v = l[n]
		}
	}
	return v
}

// text prints a value in the AWS CLI's text format: scalars as they are,
// a list of scalars on one tab-separated line, an object's scalars on a
// line (keys in order), and its lists and objects below, each line of
// them led by the key in capitals.
func text(b *strings.Builder, label string, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("None\n")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var line []string
		for _, k := range keys {
			if s, ok := scalar(x[k]); ok {
				line = append(line, s)
			}
		}
		if len(line) > 0 {
			if label != "" {
				line = append([]string{label}, line...)
			}
			b.WriteString(strings.Join(line, "\t") + "\n")
		}
		for _, k := range keys {
			if _, ok := scalar(x[k]); !ok {
				text(b, strings.ToUpper(k), x[k])
			}
		}
	case []any:
		var line []string
		for _, e := range x {
			if s, ok := scalar(e); ok {
				line = append(line, s)
			} else {
				text(b, label, e)
			}
		}
		if len(line) > 0 {
			if label != "" {
				line = append([]string{label}, line...)
			}
			b.WriteString(strings.Join(line, "\t") + "\n")
		}
	default:
		s, _ := scalar(x)
		b.WriteString(s + "\n")
	}
}

// scalar is a value as the text format prints it. A string is escaped
// (internal/safetext): it may come from outside (a capture's cluster id,
// a key's description), and must not add lines or columns, or reach the
// terminal as a control; plain text is printed as it is.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		// Escaped (safetext) line by line: the newlines of a PEM trust
		// anchor stay, as the AWS CLI prints them, and nothing else
		// unsafe does.
		lines := strings.Split(x, "\n")
		for i, l := range lines {
			lines[i] = safetext.Escape(l)
		}
		return strings.Join(lines, "\n"), true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "True", true
		}
		return "False", true
	case nil:
		return "None", true
	}
	return "", false
}

// ServiceError prints a service exception as the AWS CLI does: a blank
// line, then "An error occurred (…) when calling the … operation: …".
// Its message quotes ids and names as given, so it is escaped (safetext)
// as every error hsmkit prints.
func ServiceError(w io.Writer, err error) {
	fmt.Fprintf(w, "\n%s\n", safetext.Escape(err.Error()))
}

// IsParam says whether err is a parameter error.
func IsParam(err error) bool { return errors.As(err, new(*ParamError)) }
