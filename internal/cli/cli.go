// Package cli holds what every hsmkit binary shares: the common flags, the
// output formats (tables for people, the cloudhsm-cli JSON envelope for
// programs), password input, and the mapping of errors to exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/safetext"
)

// Exit codes, the public contract documented in README.md.
const (
	ExitOK      = 0
	ExitFailed  = 1 // the operation was refused or failed
	ExitUsage   = 2 // bad flags or arguments
	ExitTrouble = 3 // config or state problem: missing, malformed, locked too long
)

// Error carries an exit code and an optional hint for the person reading stderr.
type Error struct {
	Code int
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// quietExit ends with an exit code and nothing more to say: the output
// already told (diff(1)'s exit 1 for differences found).
type quietExit struct{ code int }

func (q *quietExit) Error() string { return fmt.Sprintf("exit %d", q.code) }
func (q *quietExit) ExitCode() int { return q.code }

// QuietExit returns an error that only sets the exit code.
func QuietExit(code int) error { return &quietExit{code: code} }

// Usagef reports bad flags or arguments (exit 2).
func Usagef(format string, a ...any) error {
	return &Error{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// Trouble marks err as a config or state problem (exit 3).
func Trouble(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Code: ExitTrouble, Err: err, Hint: hint}
}

// Refused marks err as a refused or failed operation (exit 1) with a hint.
func Refused(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Code: ExitFailed, Err: err, Hint: hint}
}

// ExitCode picks the exit code for err: an *Error says its own; anything
// else is a refused or failed operation.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var coder interface{ ExitCode() int }
	if errors.As(err, &coder) {
		return coder.ExitCode()
	}
	return ExitFailed
}

// HintOf finds the hint an error carries, if any.
func HintOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Hint != "" {
		return e.Hint
	}
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		return h.Hint()
	}
	return ""
}

// Env is the process's outside world, injected so tests run in-process.
type Env struct {
	Name   string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// NewEnv builds an Env from Main's arguments.
func NewEnv(args []string, stdin io.Reader, stdout, stderr io.Writer) Env {
	name := "hsmkit"
	if len(args) > 0 {
		name = filepath.Base(args[0])
	}
	return Env{Name: name, Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv}
}

// Warnf prints a warning on stderr, prefixed by the binary's name. The
// message is escaped (safetext): it is one line, with no terminal control.
func (e Env) Warnf(format string, a ...any) {
	fmt.Fprintf(e.Stderr, "%s: warning: %s\n", safetext.Escape(e.Name), safetext.Escape(fmt.Sprintf(format, a...)))
}

// Common flags every command takes (docs/design.md, "The command contract").
func commonFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "client config `FILE`", EnvVars: []string{"HSM_CONFIG"}, Value: "cluster.yaml"},
		&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `FORMAT`: table or json", EnvVars: []string{"HSM_OUTPUT"}, Value: "table"},
	}
}

// commonFlagsBut leaves out the common flags a command names for itself
// (hsm-sign sign -o FILE, as docs/design.md has it); before the command's name
// they keep their common meaning.
func commonFlagsBut(own []ucli.Flag) []ucli.Flag {
	taken := map[string]bool{}
	for _, f := range own {
		for _, n := range f.Names() {
			taken[n] = true
		}
	}
	var out []ucli.Flag
	for _, f := range commonFlags() {
		if !slices.ContainsFunc(f.Names(), func(n string) bool { return taken[n] }) {
			out = append(out, f)
		}
	}
	return out
}

// Flag returns a string flag's value, preferring the innermost command on
// which it was given: the common flags are accepted both before and after
// the subcommand's name.
//
// A value the environment gave (HSM_CONFIG, HSM_OUTPUT) counts as set on
// every command that has the flag, so a value typed on the command line
// at an outer level must win over the environment's copy at an inner one.
func Flag(c *ucli.Context, name string) string {
	envVal, fromEnv := envValue(c, name)
	for _, ctx := range c.Lineage() {
		if !slices.Contains(localFlagNames(ctx), name) {
			continue
		}
		if v := ctx.String(name); !fromEnv || v != envVal {
			return v
		}
	}
	return c.String(name)
}

// envValue is the value the environment gives the flag called name, if
// one of its variables is set.
func envValue(c *ucli.Context, name string) (string, bool) {
	for _, ctx := range c.Lineage() {
		var flags []ucli.Flag
		switch {
		case ctx.Command != nil && ctx.Command.Name != "":
			flags = ctx.Command.Flags
		case ctx.App != nil:
			flags = ctx.App.Flags
		}
		for _, f := range flags {
			ef, ok := f.(interface{ GetEnvVars() []string })
			if !ok || !slices.Contains(f.Names(), name) {
				continue
			}
			for _, v := range ef.GetEnvVars() {
				if val, ok := os.LookupEnv(v); ok {
					return val, true
				}
			}
			return "", false
		}
	}
	return "", false
}

// localFlagNames is ctx.LocalFlagNames, which panics on a context whose
// flags failed to parse (it then has no flag set).
func localFlagNames(ctx *ucli.Context) (names []string) {
	defer func() {
		if recover() != nil {
			names = nil
		}
	}()
	return ctx.LocalFlagNames()
}

// Output returns the output mode, validated.
func Output(c *ucli.Context) (string, error) {
	o := Flag(c, "output")
	if JSONOnly(c.App) {
		// A vendor front end prints what its vendor prints: JSON. An
		// HSM_OUTPUT meant for the hsm-* commands is not an error here.
		if o == "" || o == "json" || o == os.Getenv("HSM_OUTPUT") || !isSetAnywhere(c, "output") {
			return "json", nil
		}
		return "", Usagef("%s prints JSON only (-o %s)", c.App.Name, o)
	}
	switch o {
	case "": // an empty HSM_OUTPUT means the default
		return "table", nil
	case "table", "json":
		return o, nil
	}
	return "", Usagef("unknown output format %q (want table or json)", o)
}

// jsonOnlyKey marks an app whose every output is JSON (cloudhsm-cli).
const jsonOnlyKey = "hsmkit/json-only"

// SetJSONOnly makes every output of app JSON: -o table is refused.
func SetJSONOnly(app *ucli.App) {
	if app.Metadata == nil {
		app.Metadata = map[string]any{}
	}
	app.Metadata[jsonOnlyKey] = true
}

// noEnvelopeKey marks an app whose failures never print the JSON envelope
// (hsm-kms: the AWS CLI prints errors on stderr only).
const noEnvelopeKey = "hsmkit/no-envelope"

// SetNoEnvelope makes app's failures print on stderr only.
func SetNoEnvelope(app *ucli.App) {
	if app.Metadata == nil {
		app.Metadata = map[string]any{}
	}
	app.Metadata[noEnvelopeKey] = true
}

func noEnvelope(app *ucli.App) bool {
	v, _ := app.Metadata[noEnvelopeKey].(bool)
	return v
}

// JSONOnly reports whether SetJSONOnly marked app.
func JSONOnly(app *ucli.App) bool {
	if app == nil {
		return false
	}
	v, _ := app.Metadata[jsonOnlyKey].(bool)
	return v
}

func isSetAnywhere(c *ucli.Context, name string) bool {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return true
		}
	}
	return false
}

// JSONMode says whether the command asked for JSON output.
func JSONMode(c *ucli.Context) bool {
	o, err := Output(c)
	return err == nil && o == "json"
}

// ConfigPath returns the client config file's path.
func ConfigPath(c *ucli.Context) string {
	if p := Flag(c, "config"); p != "" {
		return p
	}
	return "cluster.yaml" // an empty HSM_CONFIG means the default
}

// NoArgs refuses positional arguments; a stray flag after them gets a hint,
// since flags are parsed only before positional arguments.
func NoArgs(c *ucli.Context) error { return ExactArgs(c, 0) }

// ExactArgs checks the number of positional arguments.
func ExactArgs(c *ucli.Context, n int, names ...string) error {
	if err := NoStrayFlags(c); err != nil {
		return err
	}
	if c.NArg() != n {
		if n == 0 {
			return Usagef("%s takes no arguments (got %q)", c.Command.FullName(), c.Args().Slice())
		}
		return Usagef("%s needs %d argument(s): %s", c.Command.FullName(), n, strings.Join(names, " "))
	}
	return nil
}

// commandPath is the command's names from the top (user password), which
// Command.FullName gives for one level only.
func commandPath(c *ucli.Context) string {
	var names []string
	for _, ctx := range c.Lineage() {
		if ctx.Command != nil && ctx.Command.Name != "" {
			names = append([]string{ctx.Command.Name}, names...)
		}
	}
	if len(names) > 0 && names[0] == c.App.Name { // the app's own root command
		names = names[1:]
	}
	if len(names) == 0 {
		return c.Command.FullName()
	}
	return strings.Join(names, " ")
}

// NoStrayFlags refuses an argument that looks like a flag after a positional one.
func NoStrayFlags(c *ucli.Context) error {
	for _, a := range c.Args().Slice() {
		if strings.HasPrefix(a, "-") && a != "-" {
			return Usagef("flag %s after an argument: flags must come before arguments (try: %s %s %s ...)",
				a, c.App.Name, commandPath(c), a)
		}
	}
	return nil
}

// Run runs app with the shared conventions and returns the exit code. It
// never lets the library call os.Exit.
func Run(app *ucli.App, env Env, args []string) int {
	prepare(app, env)
	if describe := describeHook.Load(); describe != nil {
		(*describe)(app)
		return ExitOK
	}
	if refuseHSMNow(env) {
		return ExitUsage
	}
	var failedCtx *ucli.Context
	app.ExitErrHandler = func(c *ucli.Context, err error) {
		if failedCtx == nil {
			failedCtx = c
		}
	}

	err := app.RunContext(context.Background(), args)
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	var quiet *quietExit
	if errors.As(err, &quiet) {
		return code
	}
	// A JSON-only front end reports bad flags as its vendor's parser does,
	// on stderr alone; every other failure also as the JSON envelope.
	if failedCtx != nil && !noEnvelope(app) && JSONMode(failedCtx) && !(code == ExitUsage && JSONOnly(app)) {
		_ = WriteJSON(env.Stdout, 1, err.Error())
	}
	// Errors quote arguments, file names and file contents: escaped
	// (safetext), each message is one line with no terminal control.
	name := safetext.Escape(env.Name)
	fmt.Fprintf(env.Stderr, "%s: %s\n", name, safetext.Escape(err.Error()))
	if hint := HintOf(err); hint != "" {
		fmt.Fprintf(env.Stderr, "%s: hint: %s\n", name, safetext.Escape(hint))
	}
	if code == ExitUsage && failedCtx != nil && failedCtx.Command != nil && failedCtx.Command.Name != "" {
		fmt.Fprintf(env.Stderr, "%s: see '%s --help'\n", name, safetext.Escape(failedCtx.Command.HelpName))
	}
	return code
}

// refuseHSMNow stops every command when HSM_NOW is set. HSM_NOW once let
// any caller pick the time (reviving an expired quorum token, winning a
// recency tie in a repair); the cluster now keeps its own clock. Ignoring
// it silently would change scripted outputs without a word, so it is an
// error until removed.
func refuseHSMNow(env Env) bool {
	if env.Getenv("HSM_NOW") == "" {
		return false
	}
	fmt.Fprintf(env.Stderr, "%s: HSM_NOW no longer sets the time: the simulated cluster keeps its own clock (hsm-sim init --clock T, hsm-sim clock set T)\n", env.Name)
	fmt.Fprintf(env.Stderr, "%s: hint: unset HSM_NOW; hsm-sim clock show shows the cluster's time\n", env.Name)
	return true
}

// Warn prints each warning of a read.
func (e Env) Warn(warnings []string) {
	for _, w := range warnings {
		e.Warnf("%s", w)
	}
}
