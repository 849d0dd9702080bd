// Package hsmquorum is the hsm-quorum command: quorum tokens (generate,
// list, delete) and quorum policy (values per service, timeouts), as
// cloudhsm-cli's quorum token-sign commands.
package hsmquorum

import (
	"fmt"
	"io"
	"strconv"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cli/clustercli"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/quorum"
)

// Main runs hsm-quorum and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := cli.NewEnv(args, stdin, stdout, stderr)
	mutating := func(extra ...ucli.Flag) []ucli.Flag {
		return append(append([]ucli.Flag{clustercli.SessionFlag()}, clustercli.TargetFlags()...), extra...)
	}
	app := &ucli.App{
		Usage:       "quorum (M-of-N) tokens and policy of a CloudHSM cluster (simulated)",
		Description: "Quorum (M-of-N) approval: an admin generates a token, approvers sign copies offline with hsm-sign, and the merged token approves one operation. This command makes and lists tokens and sets the policy: each service's quorum value and the token timeouts.",
		UsageText:   "hsm-quorum set-value --service user --value 2\nhsm-quorum generate --service user --token admin.token\nhsm-quorum list",
		Commands: []*ucli.Command{
			{Name: "generate", Description: "Writes a quorum token of the logged-in admin for one service to --token FILE: one record per HSM, for approvers to sign offline with hsm-sign. One active token per user and service; it expires after the generated timeout.", UsageText: "hsm-quorum generate --service user --token admin.token", Usage: "write a token for the logged-in admin: one record per HSM, for others to sign",
				Flags: mutating(
					&ucli.StringFlag{Name: "service", Usage: "user, quorum, registration, key-management or key-usage"},
					&ucli.StringFlag{Name: "token", Usage: "`FILE` to write the unsigned token to"},
					&ucli.StringSliceFlag{Name: "filter", Usage: "key-management, key-usage: the `TERM`s (key-reference=0x… or attr.NAME=VALUE) that select the key the token is bound to"}),
				Action: func(c *ucli.Context) error { return generate(c, env) }},
			{Name: "list", Description: "Lists the active tokens: their user and service, approvals required and so far, seconds left, and whether every HSM holds them.", UsageText: "hsm-quorum list\nhsm-quorum -o json list", Usage: "list the tokens: approvals required, approvals so far, seconds left, coverage",
				Action: func(c *ucli.Context) error { return list(c, env) }},
			{Name: "delete", Description: "Deletes your own tokens (--scope user) or, as an admin, every token (--scope all).", UsageText: "hsm-quorum delete --scope user", Usage: "delete your tokens (--scope user) or every token (--scope all)",
				Flags:  mutating(&ucli.StringFlag{Name: "scope", Usage: "user or all"}),
				Action: func(c *ucli.Context) error { return deleteTokens(c, env) }},
			{Name: "list-values", Description: "Shows each service's quorum value (1 is off) as the first reachable HSM enforces it; warns on stderr when another HSM enforces a different one.", UsageText: "hsm-quorum list-values", Usage: "show the quorum value of each service",
				Action: func(c *ucli.Context) error { return listValues(c, env) }},
			{Name: "set-value", Description: "Sets a service's quorum value. Raising a value from 1 needs no token while the quorum service's value is 1; any other change needs a quorum-service token with as many approvals as the higher of the value changed and the quorum service's own. A value above the number of admins with a registered key is refused.", UsageText: "hsm-quorum set-value --service user --value 2\nhsm-quorum set-value --service user --value 1 --approval q.token", Usage: "set a service's quorum value (1 = off, 2-8)",
				Flags: mutating(
					&ucli.StringFlag{Name: "service", Usage: "user or quorum"},
					&ucli.StringFlag{Name: "value", Usage: "the quorum value `N`"},
					approvalFlag()),
				Action: func(c *ucli.Context) error { return setValue(c, env) }},
			{Name: "list-timeouts", Description: "Shows how long a generated token waits for approval and how long an approved token stays usable, in seconds.", UsageText: "hsm-quorum list-timeouts", Usage: "show the token timeouts in seconds",
				Action: func(c *ucli.Context) error { return listTimeouts(c, env) }},
			{Name: "set-timeout", Description: "Sets the generated and/or approved token timeout. Needs a quorum-service token with as many approvals as the highest quorum value in force, when that is above 1.", UsageText: "hsm-quorum set-timeout --generated 900", Usage: "set the generated and/or approved token timeout in seconds",
				Flags: mutating(
					&ucli.IntFlag{Name: "generated", Usage: "`SECONDS` a generated token waits for approval"},
					&ucli.IntFlag{Name: "approved", Usage: "`SECONDS` an approved token stays usable"},
					approvalFlag()),
				Action: func(c *ucli.Context) error { return setTimeout(c, env) }},
		},
	}
	return cli.Run(app, env, args)
}

func generate(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, clustercli.Mutating)
	if err != nil {
		return err
	}
	service, path := c.String("service"), c.String("token")
	if service == "" || path == "" {
		return cli.Usagef("generate needs --service user|quorum|registration|key-management|key-usage and --token FILE")
	}
	if _, err := quorum.ParseService(service); err != nil {
		return cli.Usagef("--service: %v", err)
	}
	if err := cli.CheckOutputPath("--token", path); err != nil {
		return err
	}
	var res *hsm.Result
	next := "have admins sign it (hsm-sign sign) and pass it with --approval"
	switch {
	case c.IsSet("filter"):
		f, ferr := hsm.ParseKeyFilter(c.StringSlice("filter"))
		if ferr != nil {
			return cli.Usagef("--filter: %v", ferr)
		}
		res, err = req.Client.GenerateKeyToken(req.Targeting, req.Auth, service, f, path)
		next = "have the key's owner and shared users sign it (hsm-sign sign) and pass it with --approval"
	default:
		res, err = req.Client.GenerateToken(req.Targeting, req.Auth, service, path)
		if service == hsm.ServiceRegistration {
			next = "sign it with your own key (hsm-sign sign) and pass it to hsm-user change-quorum register --signed-token"
		}
	}
	return req.Outcome(res, err, hsm.Written(path), "wrote the "+service+" token to "+path+"; "+next)
}

func list(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, 0)
	if err != nil {
		return err
	}
	tokens, warnings, err := req.Client.ListTokens(hsm.Nobody{})
	env.Warn(warnings)
	if err != nil {
		return err
	}
	return req.Emit(map[string]any{"tokens": tokens}, func(w io.Writer) error {
		rows := make([][]string, len(tokens))
		for i, t := range tokens {
			rows[i] = []string{t.Username, t.Service, strconv.Itoa(t.ApprovalsRequired.Value), strconv.Itoa(t.Approvals.Value), strconv.Itoa(t.TimeoutSeconds.Value), t.Coverage}
		}
		return cli.Table(w, []string{"Username", "Service", "Approvals required", "Approvals", "Seconds left", "Cluster coverage"}, rows)
	})
}

func deleteTokens(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, clustercli.Mutating)
	if err != nil {
		return err
	}
	if scope := c.String("scope"); scope != "user" && scope != "all" {
		return cli.Usagef("delete needs --scope user|all")
	}
	res, err := req.Client.DeleteTokens(req.Targeting, req.Auth, c.String("scope"))
	return req.Outcome(res, err, "Deletion of quorum token(s) successful", "Deletion of quorum token(s) successful")
}

func listValues(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, 0)
	if err != nil {
		return err
	}
	q, warnings, err := req.Client.QuorumPolicy()
	env.Warn(warnings)
	if err != nil {
		return err
	}
	data := hsm.ValuesOf(q)
	return req.Emit(data, func(w io.Writer) error {
		return cli.Table(w, []string{"Service", "Quorum value"}, [][]string{{"user", strconv.Itoa(data.User)}, {"quorum", strconv.Itoa(data.Quorum)}})
	})
}

func setValue(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, clustercli.Mutating)
	if err != nil {
		return err
	}
	if c.String("service") == "" || c.String("value") == "" {
		return cli.Usagef("set-value needs --service user|quorum and --value N")
	}
	if svc := c.String("service"); svc != hsm.ServiceUser && svc != hsm.ServiceQuorum {
		return cli.Usagef("--service %q: want user or quorum", svc)
	}
	v, err := strconv.Atoi(c.String("value"))
	if err != nil {
		return cli.Usagef("--value %q: want a whole number", c.String("value"))
	}
	a, err := clustercli.Approval(c)
	if err != nil {
		return err
	}
	res, err := req.Client.SetQuorumValue(req.Targeting, req.Auth, c.String("service"), v, a)
	return req.Outcome(res, err, "Set Quorum Value successful", fmt.Sprintf("Set Quorum Value successful: %s = %d", c.String("service"), v))
}

func listTimeouts(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, 0)
	if err != nil {
		return err
	}
	q, warnings, err := req.Client.QuorumPolicy()
	env.Warn(warnings)
	if err != nil {
		return err
	}
	data := hsm.TimeoutsOf(q)
	return req.Emit(data, func(w io.Writer) error {
		return cli.Table(w, []string{"Timeout", "Seconds"}, [][]string{{"generated", strconv.Itoa(q.Generated)}, {"approved", strconv.Itoa(q.Approved)}})
	})
}

func setTimeout(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, clustercli.Mutating)
	if err != nil {
		return err
	}
	g, a := c.Int("generated"), c.Int("approved")
	if !c.IsSet("generated") && !c.IsSet("approved") {
		return cli.Usagef("set-timeout needs --generated SECONDS and/or --approved SECONDS")
	}
	if (c.IsSet("generated") && g < 1) || (c.IsSet("approved") && a < 1) {
		return cli.Usagef("timeouts are whole seconds from 1 to 86400")
	}
	ap, err := clustercli.Approval(c)
	if err != nil {
		return err
	}
	res, err := req.Client.SetTimeouts(req.Targeting, req.Auth, g, a, ap)
	return req.Outcome(res, err, "Set token timeout successful", "Set token timeout successful")
}

// approvalFlag is --approval on the policy commands: a change of a quorum
// value or timeout needs a quorum-service token with as many approvals as
// the value in force (docs/design.md, "Quorum").
func approvalFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "approval", Usage: "signed quorum-service token `FILE` (needed while the value being changed or the quorum service's value is above 1)"}
}
