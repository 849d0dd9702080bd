package cli

import (
	"bytes"
	"flag"
	"io"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

// countingWriter counts the writes it is given.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// A table reaches its writer in one write, so a reader that stops early
// (grep -q under pipefail) cannot cut it part-way.
func TestTableIsOneWrite(t *testing.T) {
	rows := make([][]string, 500)
	for i := range rows {
		rows[i] = []string{"user", "crypto-user", "false"}
	}
	var w countingWriter
	if err := Table(&w, []string{"Username", "Role", "Locked"}, rows); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 || strings.Count(w.String(), "\n") < 500 {
		t.Fatalf("%d writes for %d lines, want 1", w.writes, strings.Count(w.String(), "\n"))
	}
}

// Emit's text for people is one write too, however many prints make it.
func TestEmitIsOneWrite(t *testing.T) {
	var w countingWriter
	set := flag.NewFlagSet("t", flag.ContinueOnError)
	set.String("output", "table", "")
	c := ucli.NewContext(&ucli.App{Writer: &w}, set, nil)
	err := Emit(c, nil, func(out io.Writer) error {
		for i := range 100 {
			Linef(out, "line %d", i)
		}
		return Table(out, []string{"a"}, [][]string{{"b"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 {
		t.Fatalf("%d writes, want 1", w.writes)
	}
}

func TestVersionOf(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "(devel)"},
		{"test binary", &debug.BuildInfo{GoVersion: "go1.26.8"}, "(devel) (go1.26.8)"},
		{"go install @version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}}, "v1.2.0 (go1.26.8)"},
		{"checkout build", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "3f2a9c1d0b7e55aa0011223344556677889900aa"},
			{Key: "vcs.time", Value: "2026-05-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}, "(devel) revision 3f2a9c1d0b7e 2026-05-01T10:00:00Z modified (go1.26.8)"},
		{"clean checkout", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.1-0.20260501100000-3f2a9c1d0b7e"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "3f2a"}, {Key: "vcs.modified", Value: "false"},
		}}, "v0.3.1-0.20260501100000-3f2a9c1d0b7e revision 3f2a"},
	}
	for _, tt := range tests {
		if got := versionOf(tt.bi); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"activate", "login", "logout", "list", "create", "delete", "change-password", "change-quorum", "completion"}
	tests := []struct {
		typed string
		want  []string
	}{
		{"lst", []string{"list"}},
		{"crate", []string{"create"}},
		{"craete", []string{"create"}}, // a swap is one edit
		{"CREATE", []string{"create"}},
		{"logn", []string{"login"}},
		{"chnage-password", []string{"change-password"}},
		{"change", []string{"change-password", "change-quorum"}}, // the start of two
		{"token-sign", nil},
		{"x", nil},
		{"", nil},
		{"zzzzzzzz", nil},
	}
	for _, tt := range tests {
		if got := suggest(tt.typed, names); !slices.Equal(got, tt.want) {
			t.Errorf("suggest(%q) = %q, want %q", tt.typed, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"list", "list", 0}, {"lsit", "list", 1}, {"kitten", "sitting", 3}, {"ab", "ba", 1}} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// Definition hands over the prepared tree without running anything.
func TestDefinitionRunsNothing(t *testing.T) {
	ran := false
	main := func(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		app := &ucli.App{Commands: []*ucli.Command{{Name: "go", Action: func(*ucli.Context) error { ran = true; return nil }}}}
		return Run(app, NewEnv(args, stdin, stdout, stderr), append(args, "go"))
	}
	app, err := Definition("hsm-test", main)
	if err != nil {
		t.Fatal(err)
	}
	if ran || app.Name != "hsm-test" || app.Command("completion") == nil {
		t.Fatalf("ran=%v name=%q completion=%v", ran, app.Name, app.Command("completion"))
	}
	if _, err := Definition("none", func([]string, io.Reader, io.Writer, io.Writer) int { return 0 }); err == nil {
		t.Fatal("a main that never calls Run gave a definition")
	}
}

func TestManPageEscapes(t *testing.T) {
	app := &ucli.App{Name: "hsm-test", Usage: "test", Description: ".TH injected\n'quote \\ back",
		Commands: []*ucli.Command{{Name: "go", Usage: "go", UsageText: ".SH not a section"}}}
	prepare(app, Env{Name: "hsm-test", Getenv: func(string) string { return "" }})
	page := ManPage(app)
	for _, bad := range []string{"\n.TH injected", "\n'quote", "\n.SH not", `\ back`} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q unescaped:\n%s", bad, page)
		}
	}
	for _, want := range []string{`\&.TH injected`, `\&'quote \e back`, `\&.SH not a section`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
}
