package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

const hostile = "x\ntouch pwned\r\x1b]0;owned\x07\x7f\u009b\u202egnp"

func noControls(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range out {
		if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			t.Fatalf("%s holds %U:\n%q", what, r, out)
		}
	}
}

func TestTableEscapes(t *testing.T) {
	var b bytes.Buffer
	if err := Table(&b, []string{"user", hostile}, [][]string{{"bob", hostile}}); err != nil {
		t.Fatal(err)
	}
	noControls(t, "table", b.String())
	if n := strings.Count(b.String(), "\n"); n != 5 {
		t.Errorf("table has %d lines, want 5:\n%s", n, b.String())
	}
	if !strings.Contains(b.String(), `x\x0atouch pwned\x0d\x1b]0;owned\x07\x7f\u009b\u202egnp`) {
		t.Errorf("table does not show the cell escaped:\n%s", b.String())
	}
}

// A vendor shell's lines (lunash, lunacm) are escaped one by one; its
// result line is printed as is.
func TestEmitLinesEscapes(t *testing.T) {
	var b bytes.Buffer
	set := flag.NewFlagSet("t", flag.ContinueOnError)
	set.String("output", "table", "")
	c := ucli.NewContext(&ucli.App{Writer: &b}, set, nil)
	if err := EmitLines(c, nil, "\nCommand Result : No Error\n", "Scope: "+hostile, "ok"); err != nil {
		t.Fatal(err)
	}
	want := "Scope: " + `x\x0atouch pwned\x0d\x1b]0;owned\x07\x7f\u009b\u202egnp` + "\nok\n\nCommand Result : No Error\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestWriteJSONEscapes(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, 0, map[string]string{"id": hostile}); err != nil {
		t.Fatal(err)
	}
	noControls(t, "JSON", b.String())
	var back struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Data["id"] != hostile {
		t.Fatalf("JSON does not read back the same: %v %q", err, back.Data["id"])
	}
	b.Reset()
	if err := WriteJSONPlain(&b, []string{hostile}); err != nil {
		t.Fatal(err)
	}
	noControls(t, "plain JSON", b.String())
}

func TestRunEscapesErrorsAndWarnings(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := Env{Name: "hsm-test", Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	app := &ucli.App{Commands: []*ucli.Command{{Name: "go", Action: func(c *ucli.Context) error {
		env.Warnf("capture %s", hostile)
		return &Error{Code: ExitTrouble, Err: errors.New("reading " + hostile), Hint: "rename " + hostile}
	}}}}
	if code := Run(app, env, []string{"hsm-test", "go"}); code != ExitTrouble {
		t.Fatalf("exit %d", code)
	}
	noControls(t, "stderr", stderr.String())
	want := "hsm-test: warning: capture " + `x\x0atouch pwned\x0d\x1b]0;owned\x07\x7f\u009b\u202egnp` + "\n" +
		"hsm-test: reading " + `x\x0atouch pwned\x0d\x1b]0;owned\x07\x7f\u009b\u202egnp` + "\n" +
		"hsm-test: hint: rename " + `x\x0atouch pwned\x0d\x1b]0;owned\x07\x7f\u009b\u202egnp` + "\n"
	if stderr.String() != want {
		t.Errorf("stderr\n%s\nwant\n%s", stderr.String(), want)
	}
}
