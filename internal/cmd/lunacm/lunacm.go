// Package lunacm is the lunacm command: LunaCM, the client tool for the
// HSM's and partitions' roles of a simulated Luna 7 cluster (hsm-sim init
// --profile luna). It takes LunaCM's command lines (role login -name co)
// and prints its outputs; the engine decides everything (docs/design.md,
// "The Luna 7 profile").
package lunacm

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cli/clustercli"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
)

// success is how LunaCM ends a command that worked.
const success = "\nCommand Result : No Error\n"

// Main runs lunacm and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := cli.NewEnv(args, stdin, stdout, stderr)
	name := func() ucli.Flag { return &ucli.StringFlag{Name: "name", Usage: "`ROLE`: so, au, po, co, lco or cu"} }
	partition := func() ucli.Flag {
		return &ucli.StringFlag{Name: "partition", Usage: "the partition `NAME` (LunaCM's slot); the session's own when logged in to one"}
	}
	session := &ucli.StringFlag{Name: "session", Usage: "session `FILE` (default .lunacm-session beside the config)", EnvVars: []string{"LUNACM_SESSION"}}
	withPassword := func(flags ...ucli.Flag) []ucli.Flag {
		return append(append(flags, session), cli.PasswordFlags()...)
	}
	app := &ucli.App{
		Usage:       "LunaCM, the HSM and partition roles of a simulated Thales Luna 7 cluster",
		Description: "Logs the HSM's roles (so, au) and a partition's (po, co, lco, cu) in and out on every member of a simulated Luna cluster, keeping the session in --session FILE (default .lunacm-session beside the config, mode 0600), and runs LunaCM's role commands with it. The HSM SO and the Auditor log in only after an appliance login: LUNASH_USER and LUNASH_PASSWORD of an appliance user whose role allows it (admin for so, audit for au). Passwords come from -password (as LunaCM takes it), -password-stdin or HSM_PASSWORD.",
		UsageText:   "LUNASH_USER=admin LUNASH_PASSWORD=\"$PW\" lunacm role login -name so -password-stdin < sopw\nlunacm partition init -label par1 -password-stdin < popw",
		Commands: []*ucli.Command{
			{Name: "role", Usage: "log roles in and out, initialize them, change and reset their passwords", Description: "LunaCM's role commands.", UsageText: "lunacm role login -name co -partition par1 -password-stdin < pw",
				Subcommands: []*ucli.Command{
					{Name: "login", Usage: "log a role in on every member and keep the session", Description: "Logs the role in on every member. Wrong passwords count: 3 for the SO zeroize the HSM, 10 for a PO zeroize its partition, 10 for a CO (partition policy 20, which its PO may lower) lock the CO and the CU.", UsageText: "lunacm role login -name co -partition par1 -password-stdin < pw",
						Flags: withPassword(name(), partition(), &ucli.StringFlag{Name: "keyring", Usage: "the keyring `LABEL` (krso, krco)"}), Action: func(c *ucli.Context) error { return login(c, env) }},
					{Name: "logout", Usage: "end the session", Description: "Ends the session on every member it reached and removes the session file.", UsageText: "lunacm role logout",
						Flags: []ucli.Flag{session}, Action: func(c *ucli.Context) error { return logout(c, env) }},
					{Name: "init", Usage: "initialize a role: co by the po, lco and cu by the co", Description: "Initializes a role of the session's partition in the documented order; its password is valid for its first login only, which must change it (role changepw).", UsageText: "lunacm role init -name co -password-stdin < copw",
						Flags: withPassword(name()), Action: func(c *ucli.Context) error { return initRole(c, env) }},
					{Name: "changepw", Usage: "change the logged-in role's password", Description: "Changes the password of the role the session is logged in as. With -oldpw (as LunaCM takes it) the current password is checked too, a wrong one counting as a failed login; the new one comes from -newpw (LunaCM's), -password, -password-stdin or HSM_PASSWORD.", UsageText: "lunacm role changepw -name co -password-stdin < newpw\nlunacm role changepw -name co -oldpw \"$OLD\" -newpw \"$NEW\"",
						Flags:  withPassword(name(), &ucli.StringFlag{Name: "oldpw", Usage: "the current `PASSWORD` (visible to other users)"}, &ucli.StringFlag{Name: "newpw", Usage: "the new `PASSWORD` (visible to other users)"}),
						Action: func(c *ucli.Context) error { return changepw(c, env) }},
					{Name: "resetpw", Usage: "reset a role's password: cu and lco by the co, co by the po under HSM policy 15", Description: "Sets a role's password without its current one, unlocking it; the new password is valid for the first login only.", UsageText: "lunacm role resetpw -name cu -password-stdin < pw",
						Flags: withPassword(name()), Action: func(c *ucli.Context) error { return resetpw(c, env) }},
					{Name: "show", Usage: "show a role's state", Description: "Shows whether a role is initialized, and whether it is locked out or its first password still expired.", UsageText: "lunacm role show -name co",
						Flags: []ucli.Flag{name(), partition(), session}, Action: func(c *ucli.Context) error { return show(c, env, true) }},
					{Name: "list", Usage: "list the roles of the HSM and of the partition", Description: "Lists the HSM's roles and the partition's, with their state.", UsageText: "lunacm role list",
						Flags: []ucli.Flag{partition(), session}, Action: func(c *ucli.Context) error { return show(c, env, false) }},
				}},
			{Name: "partition", Usage: "initialize partitions, change their policies", Description: "LunaCM's partition commands.", UsageText: "lunacm partition init -label par1 -password-stdin < popw",
				Subcommands: []*ucli.Command{
					{Name: "init", Usage: "make a partition and its PO (the HSM SO)", Description: "Makes a partition on every member with its Partition Security Officer's password (LunaCM's partition create and partition init as one).", UsageText: "lunacm partition init -label par1 -password-stdin < popw",
						Flags: withPassword(&ucli.StringFlag{Name: "label", Usage: "the partition's `NAME`"}), Action: func(c *ucli.Context) error { return partitionInit(c, env) }},
					{Name: "changepolicy", Usage: "change a partition policy (the PO): 20, the CO's failed logins, lower only", Description: "Sets partition policy 20 (\"Max failed user logins allowed\") of the session's partition: 1 to 10.", UsageText: "lunacm partition changepolicy -policy 20 -value 3",
						Flags: []ucli.Flag{&ucli.IntFlag{Name: "policy", Usage: "policy `NUMBER`"}, &ucli.IntFlag{Name: "value", Usage: "new `VALUE`"}, session}, Action: func(c *ucli.Context) error { return changePolicy(c, env, "partition-policy-") }},
				}},
			{Name: "keyring", Usage: "the cluster's keyrings", Description: "Keyrings of the cluster: each has a KRSO and a KRCO, held by one person with one password (changing either's changes both), kept apart from the PO of the partition that holds the cluster.", UsageText: "lunacm keyring create -label kr1 -password-stdin < krpw",
				Subcommands: []*ucli.Command{
					{Name: "create", Usage: "create a keyring (the PO of the partition that holds the cluster)", Description: "Creates a keyring on every member with its KRSO/KRCO password, valid for their first login only; the PO's own password is refused. The first keyring makes the PO's partition the one that holds the cluster.", UsageText: "lunacm keyring create -label kr1 -password-stdin < krpw",
						Flags: withPassword(&ucli.StringFlag{Name: "label", Usage: "the keyring's `LABEL`"}), Action: func(c *ucli.Context) error { return keyringCreate(c, env) }},
				}},
			{Name: "hsm", Usage: "the HSM's policies", Description: "LunaCM's hsm commands.", UsageText: "lunacm hsm changehsmpolicy -policy 15 -value 1",
				Subcommands: []*ucli.Command{
					{Name: "changehsmpolicy", Usage: "change an HSM policy (the SO): 15, the PO's reset of the CO's password", Description: "Sets HSM policy 15 (\"Enable SO reset of partition PIN\"): turning it on erases every partition.", UsageText: "lunacm hsm changehsmpolicy -policy 15 -value 1",
						Flags: []ucli.Flag{&ucli.IntFlag{Name: "policy", Usage: "policy `NUMBER`"}, &ucli.IntFlag{Name: "value", Usage: "new `VALUE`"}, session}, Action: func(c *ucli.Context) error { return changePolicy(c, env, "hsm-policy-") }},
				}},
		},
	}
	return cli.Run(app, env, args)
}

func sessionPath(c *ucli.Context) string {
	if p := c.String("session"); p != "" {
		return p
	}
	return filepath.Join(filepath.Dir(cli.ConfigPath(c)), ".lunacm-session")
}

// open checks the arguments and opens the cluster.
func open(c *ucli.Context, env cli.Env) (*hsm.Client, error) {
	if err := cli.NoArgs(c); err != nil {
		return nil, err
	}
	cl, err := clustercli.OpenClient(c, env)
	if err != nil {
		return nil, err
	}
	if len(cl.Policy().Specs) == 0 {
		return nil, cli.Trouble(fmt.Errorf("cluster %s has the %s profile, which has no HSM or partition roles (hsm-sim init --profile luna)", cl.Cluster.ID, cl.Policy().Name), "")
	}
	return cl, nil
}

// loggedIn is the session the command acts with; without one, LunaCM's
// own refusal.
func loggedIn(c *ucli.Context, env cli.Env) (*hsm.SessionFile, error) {
	return loggedInTo(c, env, "run this command")
}

// loggedInTo is loggedIn, saying what the role must be logged in for
// (docs/design.md, "The Luna 7 profile", Outputs).
func loggedInTo(c *ucli.Context, env cli.Env, what string) (*hsm.SessionFile, error) {
	sf, err := hsm.LoadSession(sessionPath(c))
	if err != nil {
		return nil, cli.Trouble(err, "")
	}
	if sf == nil {
		fmt.Fprintf(env.Stdout, "A role must be logged in to %s.\n", what)
		fmt.Fprintln(env.Stdout, "Error in execution: command cancelled.")
		fmt.Fprintln(env.Stdout, "\nCommand Result : 0xb (User Cancelled Operation)")
		return nil, cli.QuietExit(cli.ExitFailed)
	}
	return sf, nil
}

// role reads -name: LunaCM's options are case-insensitive.
func role(c *ucli.Context) (policy.Role, error) {
	r := strings.ToLower(c.String("name"))
	if r == "" {
		return "", cli.Usagef("-name is required (so, au, po, co, lco or cu)")
	}
	return policy.Role(r), nil
}

// With -o json, the envelope's data is data (nil: the result alone).
func done(c *ucli.Context, data any, lines ...string) error {
	if data == nil {
		data = map[string]any{"result": "No Error"}
	}
	return cli.EmitLines(c, data, success, lines...)
}

func login(c *ucli.Context, env cli.Env) error {
	cl, err := open(c, env)
	if err != nil {
		return err
	}
	r, err := role(c)
	if err != nil {
		return err
	}
	spec, ok := cl.Policy().Specs[r]
	if !ok || spec.Level != policy.LevelHSM && spec.Level != policy.LevelPartition && spec.Level != policy.LevelKeyring {
		return cli.Usagef("-name %s: want so, au, po, co, lco, cu, krso or krco", r)
	}
	scope := hsm.HSMScope
	switch spec.Level {
	case policy.LevelPartition:
		if scope = c.String("partition"); scope == "" {
			return cli.Usagef("-partition is required for the %s", r)
		}
	case policy.LevelKeyring:
		if scope = c.String("keyring"); scope == "" {
			return cli.Usagef("-keyring is required for the %s", r)
		}
	}
	var via hsm.Authenticator
	if u, pw := env.Getenv("LUNASH_USER"), env.Getenv("LUNASH_PASSWORD"); u != "" {
		via = &hsm.PIN{User: u, Password: pw}
	}
	// One role per session (docs/design.md, "The Luna 7 profile"); the
	// engine checks again under the lock.
	if old, err := hsm.LoadSession(sessionPath(c)); err != nil {
		return cli.Trouble(err, "")
	} else if old != nil {
		return cli.Refused(fmt.Errorf("USER_ALREADY_LOGGED_IN: %s is logged in on this session (%s)", old.Username, sessionPath(c)), "lunacm role logout first")
	}
	pw, err := cli.ReadPassword(c, env, "enter password: ", false)
	if err != nil {
		return err
	}
	if _, _, err := cl.LoginVia(hsm.Targeting{}, sessionPath(c), policy.RecordName(r, scope), pw, via); err != nil {
		return err
	}
	return done(c, nil)
}

func logout(c *ucli.Context, env cli.Env) error {
	cl, err := open(c, env)
	if err != nil {
		return err
	}
	sf, err := loggedIn(c, env)
	if err != nil {
		return err
	}
	if _, _, err := cl.Logout(sf); err != nil {
		return err
	}
	return done(c, nil)
}

// acting opens the cluster with the session and reads -name and a new
// password.
func acting(c *ucli.Context, env cli.Env, what string) (*hsm.Client, *hsm.SessionFile, policy.Role, string, error) {
	cl, err := open(c, env)
	if err != nil {
		return nil, nil, "", "", err
	}
	r, err := role(c)
	if err != nil {
		return nil, nil, "", "", err
	}
	sf, err := loggedInTo(c, env, what)
	if err != nil {
		return nil, nil, "", "", err
	}
	pw, err := cli.ReadPassword(c, env, "enter new password: ", true)
	return cl, sf, r, pw, err
}

func initRole(c *ucli.Context, env cli.Env) error {
	cl, sf, r, pw, err := acting(c, env, "initialize a role")
	if err != nil {
		return err
	}
	if _, err := cl.InitRole(hsm.Targeting{}, sf, r, "", pw); err != nil {
		return err
	}
	return done(c, nil)
}

func partitionInit(c *ucli.Context, env cli.Env) error {
	return labelled(c, env, func(cl *hsm.Client, sf *hsm.SessionFile, label, pw string) error {
		_, err := cl.InitRole(hsm.Targeting{}, sf, policy.PartSO, label, pw)
		return err
	})
}

// labelled runs a command that makes something named by -label with a
// new password, as the session's role.
func labelled(c *ucli.Context, env cli.Env, fn func(cl *hsm.Client, sf *hsm.SessionFile, label, pw string) error) error {
	cl, err := open(c, env)
	if err != nil {
		return err
	}
	label := c.String("label")
	if label == "" {
		return cli.Usagef("-label is required")
	}
	sf, err := loggedIn(c, env)
	if err != nil {
		return err
	}
	pw, err := cli.ReadPassword(c, env, "enter new password: ", true)
	if err != nil {
		return err
	}
	if err := fn(cl, sf, label, pw); err != nil {
		return err
	}
	return done(c, nil)
}

func changepw(c *ucli.Context, env cli.Env) error {
	if c.IsSet("newpw") && (c.IsSet("password") || c.Bool("password-stdin")) {
		return cli.Usagef("-newpw and -password (or -password-stdin) do not go together")
	}
	var cl *hsm.Client
	var sf *hsm.SessionFile
	var r policy.Role
	var pw string
	var err error
	if c.IsSet("newpw") {
		env.Warnf("-newpw is visible to other users of this machine; prefer -password-stdin or HSM_PASSWORD")
		if cl, err = open(c, env); err != nil {
			return err
		}
		if r, err = role(c); err != nil {
			return err
		}
		if sf, err = loggedInTo(c, env, "change password"); err != nil {
			return err
		}
		pw = c.String("newpw")
	} else if cl, sf, r, pw, err = acting(c, env, "change password"); err != nil {
		return err
	}
	// The logged-in role's own: a session of another role is refused by
	// the table (it may not change another's password). -oldpw proves
	// the current password as a one-shot login of that role.
	var auth hsm.Authenticator = sf
	if c.IsSet("oldpw") {
		env.Warnf("-oldpw is visible to other users of this machine")
		auth = &hsm.PIN{User: sf.Username, Password: c.String("oldpw")}
	}
	_, scope, _ := policy.SplitRecord(sf.Username)
	if _, err := cl.ChangePassword(hsm.Targeting{}, auth, policy.RecordName(r, scope), "", pw, nil); err != nil {
		return err
	}
	return done(c, nil)
}

func resetpw(c *ucli.Context, env cli.Env) error {
	cl, sf, r, pw, err := acting(c, env, "reset a password")
	if err != nil {
		return err
	}
	if _, err := cl.ResetRole(hsm.Targeting{}, sf, r, pw); err != nil {
		return err
	}
	return done(c, nil)
}

func changePolicy(c *ucli.Context, env cli.Env, prefix string) error {
	cl, err := open(c, env)
	if err != nil {
		return err
	}
	if !c.IsSet("policy") || !c.IsSet("value") {
		return cli.Usagef("-policy and -value are required")
	}
	sf, err := loggedIn(c, env)
	if err != nil {
		return err
	}
	if _, err := cl.ChangePolicy(hsm.Targeting{}, sf, fmt.Sprintf("%s%d", prefix, c.Int("policy")), c.Int("value")); err != nil {
		return err
	}
	return done(c, nil)
}

// show prints role show (one role) or role list (every role of the HSM
// and the partition), in hsmkit's own format (docs/design.md, "The Luna 7
// profile", Outputs).
func show(c *ucli.Context, env cli.Env, one bool) error {
	cl, err := open(c, env)
	if err != nil {
		return err
	}
	var r policy.Role
	if one {
		if r, err = role(c); err != nil {
			return err
		}
	}
	sf, err := loggedIn(c, env)
	if err != nil {
		return err
	}
	part := c.String("partition")
	if _, scope, _ := policy.SplitRecord(sf.Username); scope != hsm.HSMScope {
		part = scope
	}
	views, err := cl.Roles(sf, part)
	if err != nil {
		return err
	}
	if one {
		for _, v := range views {
			if v.Role == string(r) {
				return done(c, v, fmt.Sprintf("Role: %s (%s)", v.Name, v.Role), "Scope: "+v.Scope, "Initialized: "+v.Initialized,
					"Status: "+status(v.Status), fmt.Sprintf("Failed logins: %d", v.Failures))
			}
		}
		return cli.Usagef("-name %s: no such role here (want so, au, or with a partition po, co, lco, cu)", r)
	}
	lines := []string{fmt.Sprintf("%-6s %-28s %-8s %-12s %s", "Role", "Name", "Scope", "Initialized", "Status")}
	for _, v := range views {
		lines = append(lines, fmt.Sprintf("%-6s %-28s %-8s %-12s %s", v.Role, v.Name, v.Scope, v.Initialized, status(v.Status)))
	}
	return done(c, map[string]any{"roles": views}, lines...)
}

// status says a role's state in LunaCM's words where it has them.
func status(s string) string {
	switch s {
	case "locked out":
		return "Locked out"
	case "expired":
		return "Password expired (change it: role changepw)"
	case "ok":
		return "OK"
	}
	return s
}

func keyringCreate(c *ucli.Context, env cli.Env) error {
	return labelled(c, env, func(cl *hsm.Client, sf *hsm.SessionFile, label, pw string) error {
		_, err := cl.CreateKeyring(hsm.Targeting{}, sf, label, pw)
		return err
	})
}
