package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	ucli "github.com/urfave/cli/v2"
)

// MainFunc is a command's entry point, as cmd/<name>/main.go calls it.
type MainFunc func(args []string, stdin io.Reader, stdout, stderr io.Writer) int

// The help pages: urfave's, with the command's Description and its
// examples (UsageText, which hsmkit keeps for examples: the synopsis is
// built from the flags and ArgsUsage) in their own sections.
const (
	appHelp = `NAME:
   {{template "helpNameTemplate" .}}

USAGE:
   {{.HelpName}} [global options] command [command options] [arguments...]{{if .Description}}

DESCRIPTION:
   {{template "descriptionTemplate" .}}{{end}}{{if .UsageText}}

EXAMPLES:
   {{wrap .UsageText 3}}{{end}}{{if .VisibleCommands}}

COMMANDS:{{template "visibleCommandTemplate" .}}{{end}}{{if .VisibleFlags}}

GLOBAL OPTIONS:{{template "visibleFlagTemplate" .}}{{end}}
`
	commandHelp = `NAME:
   {{template "helpNameTemplate" .}}

USAGE:
   {{.HelpName}}{{if .VisibleCommands}} command{{end}}{{if .VisibleFlags}} [command options]{{end}}{{if .ArgsUsage}} {{.ArgsUsage}}{{end}}{{if .Description}}

DESCRIPTION:
   {{template "descriptionTemplate" .}}{{end}}{{if .UsageText}}

EXAMPLES:
   {{wrap .UsageText 3}}{{end}}{{if .VisibleCommands}}

COMMANDS:{{template "visibleCommandTemplate" .}}{{end}}{{if .VisibleFlags}}

OPTIONS:{{template "visibleFlagTemplate" .}}{{end}}
`
)

// prepare gives app every convention hsmkit's commands share: the common
// flags on every command, --version, the completion command, help pages
// with descriptions and examples, usage errors (exit 2) that suggest the
// command or flag meant, and the process's streams.
func prepare(app *ucli.App, env Env) {
	app.Name = env.Name
	app.HelpName = env.Name
	app.Reader = env.Stdin
	app.Writer = env.Stdout
	app.ErrWriter = env.Stderr
	app.HideHelpCommand = true
	app.CustomAppHelpTemplate = appHelp
	// --version is hsmkit's own flag: urfave's adds -v, which a command may
	// want for itself one day. The version is read only when asked for.
	app.HideVersion = true
	app.Flags = append(append(commonFlags(), versionFlag), app.Flags...)
	app.EnableBashCompletion = true
	app.Commands = append(app.Commands, completionCommand(env.Name))
	before := app.Before
	app.Before = func(c *ucli.Context) error {
		if c.Bool(versionFlag.Name) {
			fmt.Fprintf(c.App.Writer, "%s version %s\n", c.App.Name, Version())
			return QuietExit(ExitOK)
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
	app.OnUsageError = onUsage
	if len(app.Commands) > 0 {
		app.Action = unknownOr(app.Action, "", app.Commands, ucli.ShowAppHelp)
	}
	prepareCommands(app.Commands, "")
}

var versionFlag = &ucli.BoolFlag{Name: "version", Usage: "print the version (module version, VCS revision and time) and exit"}

// onUsage makes every flag error a usage error (exit 2), with the flag
// meant when one is close.
func onUsage(c *ucli.Context, err error, _ bool) error {
	var flags []ucli.Flag
	if c != nil && c.Command != nil {
		flags = c.Command.Flags
	}
	if c != nil && (c.Command == nil || c.Command.Name == "") {
		flags = c.App.Flags
	}
	return &Error{Code: ExitUsage, Err: err, Hint: flagHint(err, flags)}
}

func prepareCommands(cmds []*ucli.Command, path string) {
	for _, cmd := range cmds {
		cmd.OnUsageError = onUsage
		cmd.CustomHelpTemplate = commandHelp
		cmd.HideHelpCommand = true // --help is the one way, as at the top
		cmd.Flags = append(commonFlagsBut(cmd.Flags), cmd.Flags...)
		full := strings.TrimSpace(path + " " + cmd.Name)
		if len(cmd.Subcommands) > 0 {
			cmd.Action = unknownOr(cmd.Action, full, cmd.Subcommands, ucli.ShowSubcommandHelp)
		}
		prepareCommands(cmd.Subcommands, full)
	}
}

// unknownOr is the action of a command that has subcommands: a word that
// names none of them is a usage error that suggests the one meant; no
// word at all runs the command's own action, or shows its help.
func unknownOr(action ucli.ActionFunc, path string, cmds []*ucli.Command, help ucli.ActionFunc) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		if c.NArg() > 0 {
			return unknownCommand(path, c.Args().First(), cmds)
		}
		if action != nil {
			return action(c)
		}
		return help(c)
	}
}

// completionCommand prints a shell's completion script for the command.
// bash and zsh ask the binary itself (urfave's --generate-bash-completion),
// so they follow its commands and flags as they change; fish's is generated
// from the definitions.
func completionCommand(name string) *ucli.Command {
	return &ucli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "Prints a script that completes " + name + "'s commands and flags in the shell named.\n" +
			"bash and zsh ask " + name + " itself as you type (it must be on PATH); fish's script lists them.",
		UsageText: "source <(" + name + " completion bash)                  # in ~/.bashrc\n" +
			name + " completion zsh > \"${fpath[1]}/_" + name + "\"     # then restart zsh\n" +
			name + " completion fish > ~/.config/fish/completions/" + name + ".fish",
		Action: func(c *ucli.Context) error {
			if err := ExactArgs(c, 1, "bash|zsh|fish"); err != nil {
				return err
			}
			var script string
			switch shell := c.Args().First(); shell {
			case "bash":
				script = bashCompletion(c.App.Name)
			case "zsh":
				script = zshCompletion(c.App.Name)
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				// Usage strings mark placeholders with backquotes
				// (`FILE`) for the help pages; a description shows them bare.
				script = strings.ReplaceAll(s, "`", "")
			default:
				return Usagef("completion: unknown shell %q (want bash, zsh or fish)", shell)
			}
			_, err := io.WriteString(c.App.Writer, script)
			return err
		},
	}
}

// shellIdent makes a command's name a shell function name.
func shellIdent(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
}

// bashCompletion runs the words typed so far (not eval'd: they are
// passed as they are) with --generate-bash-completion.
func bashCompletion(name string) string {
	fn := "_" + shellIdent(name) + "_complete"
	return `# bash completion for ` + name + `: source <(` + name + ` completion bash)
` + fn + `() {
  local cur="${COMP_WORDS[COMP_CWORD]}" opts
  if [[ "$cur" == -* ]]; then
    opts=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F ` + fn + ` ` + name + `
`
}

func zshCompletion(name string) string {
	fn := "_" + shellIdent(name)
	return `#compdef ` + name + `
# zsh completion for ` + name + `: ` + name + ` completion zsh > "${fpath[1]}/_` + name + `"
` + fn + `() {
  local -a opts
  local cur=${words[-1]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} "$cur" --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef ` + fn + ` ` + name + `
`
}

var (
	describeMu   sync.Mutex
	describeHook atomic.Pointer[func(*ucli.App)]
)

// Definition returns the command tree that main builds, with every
// convention Run adds, without running anything: for the man pages and
// the tests that walk every command. main must build its app and hand it
// to Run, as every hsmkit command does. While Definition runs, a Run in
// another goroutine would be caught too: it is for tools and tests.
func Definition(name string, main MainFunc) (*ucli.App, error) {
	describeMu.Lock()
	defer describeMu.Unlock()
	var app *ucli.App
	catch := func(a *ucli.App) { app = a }
	describeHook.Store(&catch)
	defer describeHook.Store(nil)
	main([]string{name}, strings.NewReader(""), io.Discard, io.Discard)
	if app == nil {
		return nil, fmt.Errorf("%s does not build its commands with cli.Run", name)
	}
	return app, nil
}
