package clustercli

import (
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/hsm"
)

// Need says what a command needs beyond the client.
type Need uint8

const (
	// Targets reads --allow-partial and --server (commands that change HSMs).
	Targets Need = 1 << iota
	// Acting reads who acts: HSM_PIN and HSM_ROLE, else the session file.
	// Commands that never act as anyone (activate, login, reads) leave it
	// out, so a bad session file cannot stop them.
	Acting
)

// Mutating is what a command that changes HSMs as somebody needs.
const Mutating = Targets | Acting

// Request is one command's parsed flags and the client they chose, made
// once by Parse and handed to the engine call and the rendering.
type Request struct {
	Client      *hsm.Client
	Targeting   hsm.Targeting     // zero unless Parse was asked for Targets
	Auth        hsm.Authenticator // nil unless Parse was asked for Acting
	SessionPath string
	Output      string // "table" or "json"

	c   *ucli.Context
	env cli.Env
}

// Parse checks that no positional arguments were given and the output
// mode, opens the client, then reads what need asks for, in that order:
// the first problem found is the one reported, as it always was.
func Parse(c *ucli.Context, env cli.Env, need Need) (*Request, error) {
	if err := cli.NoArgs(c); err != nil {
		return nil, err
	}
	out, err := cli.Output(c)
	if err != nil {
		return nil, err
	}
	r := &Request{SessionPath: SessionPath(c), Output: out, c: c, env: env}
	if r.Client, err = OpenClient(c, env); err != nil {
		return nil, err
	}
	if need&Targets != 0 {
		if r.Targeting, err = Targeting(c); err != nil {
			return nil, err
		}
	}
	if need&Acting != 0 {
		if r.Auth, err = Auth(c, env); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Outcome reports a mutating operation's result (see the function Outcome).
func (r *Request) Outcome(res *hsm.Result, err error, data any, human string) error {
	return Outcome(r.c, r.env, res, err, data, human)
}

// Emit prints data as JSON or, for people, with human.
func (r *Request) Emit(data any, human func(w io.Writer) error) error {
	return cli.Emit(r.c, data, human)
}
