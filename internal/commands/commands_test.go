package commands

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
)

// TestEveryBinaryRegistered fails when a cmd/<name> is missing from All
// (or All names no binary): the list is what the tests, testkit and the
// man pages see.
func TestEveryBinaryRegistered(t *testing.T) {
	entries, err := os.ReadDir("../../cmd")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if !slices.Equal(dirs, Names()) {
		t.Fatalf("cmd/ has %v, commands.All has %v: add the new command to All", dirs, Names())
	}
}

func definitions(t *testing.T) map[string]*ucli.App {
	t.Helper()
	apps := map[string]*ucli.App{}
	for _, name := range Names() {
		app, err := cli.Definition(name, All[name])
		if err != nil {
			t.Fatal(err)
		}
		apps[name] = app
	}
	return apps
}

// TestEveryCommandHasDescriptionAndExample walks every command tree: each
// command and subcommand, and the command itself, needs a Description and
// an example (UsageText) that runs it.
func TestEveryCommandHasDescriptionAndExample(t *testing.T) {
	n := 0
	for name, app := range definitions(t) {
		check := func(path, usage, desc, examples string) {
			n++
			if strings.TrimSpace(usage) == "" {
				t.Errorf("%s: no Usage (the one-line summary)", path)
			}
			if strings.TrimSpace(desc) == "" {
				t.Errorf("%s: no Description", path)
			}
			if !strings.Contains(examples, path) {
				t.Errorf("%s: no example (UsageText) running %q; got %q", path, path, examples)
			}
		}
		check(name, app.Usage, app.Description, app.UsageText)
		var walk func(path string, cmds []*ucli.Command)
		walk = func(path string, cmds []*ucli.Command) {
			for _, c := range cmds {
				if c.Hidden {
					continue
				}
				full := path + " " + c.Name
				check(full, c.Usage, c.Description, c.UsageText)
				walk(full, c.Subcommands)
			}
		}
		walk(name, app.Commands)
	}
	if n < 30 {
		t.Fatalf("walked only %d commands: the walk lost its way", n)
	}
}

// TestManPages generates each command's page and has groff read it with
// every warning on: a page it complains of, or one missing a command, a
// flag or a section, fails.
func TestManPages(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Fatal("groff is needed to check the man pages (Debian: groff-base; .ci/run installs it)")
	}
	known := []string{".TH ", ".SH ", ".SS ", ".PP", ".TP", ".B ", ".RS ", ".RE", ".nf", ".fi", ".br"}
	for name, app := range definitions(t) {
		page := cli.ManPage(app)
		for _, want := range []string{
			".TH " + `"` + strings.ReplaceAll(strings.ToUpper(name), "-", `\-`) + `" 1`,
			".SH NAME\n" + strings.ReplaceAll(name, "-", `\-`) + ` \- `,
			".SH SYNOPSIS", ".SH DESCRIPTION", ".SH EXAMPLES", ".SH GLOBAL OPTIONS", ".SH COMMANDS", ".SH EXIT STATUS",
			`\fB\-\-version\fR`, `\fB\-\-output\fR \fIFORMAT\fR`,
			`.SS "` + strings.ReplaceAll(name, "-", `\-`) + ` completion"`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("%s.1 lacks %q", name, want)
			}
		}
		var walk func(path string, cmds []*ucli.Command)
		walk = func(path string, cmds []*ucli.Command) {
			for _, c := range cmds {
				full := path + " " + c.Name
				if want := `.SS "` + strings.ReplaceAll(full, "-", `\-`) + `"`; !strings.Contains(page, want) {
					t.Errorf("%s.1 lacks %q", name, want)
				}
				for _, f := range c.VisibleFlags() {
					if want := `\-` + strings.ReplaceAll(f.Names()[0], "-", `\-`) + `\fR`; !strings.Contains(page, want) {
						t.Errorf("%s.1: %s lacks its flag %q", name, full, want)
					}
				}
				walk(full, c.Subcommands)
			}
		}
		walk(name, app.VisibleCommands())
		for i, line := range strings.Split(page, "\n") {
			if strings.HasPrefix(line, ".") && !slices.ContainsFunc(known, func(k string) bool { return strings.HasPrefix(line, k) }) {
				t.Errorf("%s.1:%d: unexpected request %q", name, i+1, line)
			}
		}
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = strings.NewReader(page)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff on %s.1: %v\n%s", name, err, out)
		}
	}
}
