// Package clustercli is the part of the command-line plumbing that knows
// the cluster: target flags, the session, who acts, opening the engine,
// and reporting per-HSM outcomes. It is apart from internal/cli so that
// hsm-sign, an offline tool, links neither the engine nor the state.
//
// A command parses its flags once, with Parse, into a Request; calls one
// engine operation with what the Request holds; and renders the result
// through it.
package clustercli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/safetext"
)

// SessionFlag is --session for commands that use a login.
func SessionFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "session", Usage: "session `FILE` (default .hsm-session beside the config)", EnvVars: []string{"HSM_SESSION"}}
}

// TargetFlags choose the HSMs a mutating command acts on.
func TargetFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "allow-partial", Usage: "act on the reachable HSMs the config lists even if others are missed (leaves drift; exits 1)"},
		&ucli.StringFlag{Name: "server", Usage: "act on this one HSM `ID` only (repair mode)"},
	}
}

// Targeting reads the target flags.
func Targeting(c *ucli.Context) (hsm.Targeting, error) {
	t := hsm.Targeting{AllowPartial: c.Bool("allow-partial"), Server: c.String("server")}
	if c.IsSet("server") && t.Server == "" {
		// An empty --server "$ID" must not quietly mean every HSM.
		return t, cli.Usagef("--server: empty HSM id (hsm-sim list shows the cluster's HSMs)")
	}
	if t.AllowPartial && t.Server != "" {
		return t, cli.Usagef("--allow-partial and --server do not go together")
	}
	return t, nil
}

// SessionPath is --session, HSM_SESSION, or .hsm-session beside the config.
func SessionPath(c *ucli.Context) string {
	if p := c.String("session"); p != "" {
		return p
	}
	return filepath.Join(filepath.Dir(cli.ConfigPath(c)), ".hsm-session")
}

// OpenClient loads the config and state (whose cluster keeps the simulated
// clock) with the lock wait from the environment.
func OpenClient(c *ucli.Context, env cli.Env) (*hsm.Client, error) {
	opts, err := EngineOptions(c, env)
	if err != nil {
		return nil, err
	}
	return hsm.Open(cli.ConfigPath(c), opts)
}

// EngineOptions reads HSM_LOCK_TIMEOUT. The time is not the client's to
// choose: the engine takes it from the cluster.
func EngineOptions(c *ucli.Context, env cli.Env) (hsm.Options, error) {
	wait := 10 * time.Second
	if v := env.Getenv("HSM_LOCK_TIMEOUT"); v != "" {
		var err error
		if wait, err = time.ParseDuration(v); err != nil || wait <= 0 {
			return hsm.Options{}, cli.Usagef("HSM_LOCK_TIMEOUT=%q: want a duration such as 10s", v)
		}
	}
	// After a second of waiting for the lock, say for whom (stderr).
	waiting := func(msg string) { env.Warnf("%s", msg) }
	return hsm.Options{LockWait: wait, Waiting: waiting, Who: env.Name + " " + c.Command.FullName()}, nil
}

// Auth is who the command acts as: a one-shot login from the environment
// (EnvPIN), else the session file, else nobody. Credentials given in the
// environment always win over a session file, and are verified: a wrong
// CLOUDHSM_PIN never falls back to the session's user.
func Auth(c *ucli.Context, env cli.Env) (hsm.Authenticator, error) {
	if p, err := EnvPIN(env); p != nil || err != nil {
		return p, err
	}
	sf, err := hsm.LoadSession(SessionPath(c))
	if err != nil {
		return nil, cli.Trouble(err, "")
	}
	if sf == nil {
		return hsm.Nobody{}, nil
	}
	return sf, nil
}

// EnvPIN reads a single-command login from the environment: hsmkit's
// HSM_PIN/HSM_ROLE or cloudhsm-cli's CLOUDHSM_PIN/CLOUDHSM_ROLE (nil when
// neither is set). Both set to different logins is refused rather than
// guessed between.
func EnvPIN(env cli.Env) (*hsm.PIN, error) {
	var got []*hsm.PIN
	for _, v := range [][2]string{{"HSM_PIN", "HSM_ROLE"}, {"CLOUDHSM_PIN", "CLOUDHSM_ROLE"}} {
		pin := env.Getenv(v[0])
		if pin == "" {
			continue
		}
		p, err := hsm.ParsePINVars(v[0], v[1], pin, env.Getenv(v[1]))
		if err != nil {
			return nil, cli.Usagef("%v", err)
		}
		got = append(got, p)
	}
	switch {
	case len(got) == 0:
		return nil, nil
	case len(got) == 2 && *got[0] != *got[1]:
		return nil, cli.Usagef("HSM_PIN and CLOUDHSM_PIN (or their roles) name different logins: set one")
	}
	return got[0], nil
}

// Outcome reports a mutating command: on success the line for people (or
// data for programs); when --allow-partial missed some HSMs, one line per
// HSM on stderr and the error (exit 1).
func Outcome(c *ucli.Context, env cli.Env, res *hsm.Result, err error, data any, human string) error {
	var partial *hsm.PartialError
	if errors.As(err, &partial) {
		PrintOutcomes(env.Stderr, env.Name, res)
	}
	if err != nil {
		return err
	}
	return cli.Emit(c, data, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, human)
		return err
	})
}

// PrintOutcomes writes one line per HSM.
func PrintOutcomes(w io.Writer, name string, res *hsm.Result) {
	if res == nil {
		return
	}
	for _, o := range res.Outcomes {
		line := fmt.Sprintf("%s: %s: %s", name, o.HSM, o.Status)
		if o.Err != nil {
			line += fmt.Sprintf(" (%v)", o.Err)
		}
		fmt.Fprintln(w, safetext.Escape(line)) // one line, no terminal control
	}
}

// Approval reads the token file an --approval flag names (nil when the
// flag is not given): bounded, a regular file, an error naming the flag.
func Approval(c *ucli.Context) (*hsm.Approval, error) {
	p := c.String("approval")
	if p == "" {
		return nil, nil
	}
	data, err := cli.ReadInput("--approval", p)
	if err != nil {
		return nil, err
	}
	return &hsm.Approval{Path: p, Data: data}, nil
}
