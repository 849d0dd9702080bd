// Package lunash is the lunash command: LunaSH, the shell of a Thales
// Luna Network HSM 7 appliance, over a simulated Luna cluster (hsm-sim
// init --profile luna). It takes LunaSH's command lines (user add
// -username james) and prints LunaSH's outputs; the engine decides
// everything (docs/design.md, "The Luna 7 profile").
package lunash

import (
	"errors"
	"fmt"
	"io"
	"sort"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cli/clustercli"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
)

// success is how LunaSH ends every command that worked.
const success = "\nCommand Result : 0 (Success)\n"

// Main runs lunash and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := cli.NewEnv(args, stdin, stdout, stderr)
	username := func() ucli.Flag {
		return &ucli.StringFlag{Name: "username", Usage: "appliance user `NAME`"}
	}
	withPassword := func(flags ...ucli.Flag) []ucli.Flag { return append(flags, cli.PasswordFlags()...) }
	app := &ucli.App{
		Usage:       "LunaSH, the appliance shell of a simulated Thales Luna 7 cluster",
		Description: "Runs one LunaSH command on every member of a simulated Luna cluster (hsm-sim init --profile luna) as the appliance user LUNASH_USER, whose password is LUNASH_PASSWORD: the appliance login every command needs. New passwords come from -password (as LunaSH takes it), -password-stdin or HSM_PASSWORD. The predefined admin's first password is PASSWORD, valid until it is changed with my password set.",
		UsageText:   "LUNASH_USER=admin LUNASH_PASSWORD=\"$PW\" lunash user add -username james -password-stdin < pw\nLUNASH_USER=admin LUNASH_PASSWORD=\"$PW\" lunash user list",
		Commands: []*ucli.Command{
			{Name: "user", Usage: "manage the appliance's users (admin only)", Description: "LunaSH's user commands: add, delete, enable, disable, list, password, role. Users without the admin role run none of them.", UsageText: "lunash user list",
				Subcommands: []*ucli.Command{
					{Name: "add", Usage: "add an appliance user, without a role", Description: "Adds a user on every member. It can do nothing until the original admin gives it a role (user role add); its password is valid for its first login only.", UsageText: "lunash user add -username james -password-stdin < pw",
						Flags: withPassword(username()), Action: func(c *ucli.Context) error { return add(c, env) }},
					{Name: "delete", Usage: "delete an appliance user", Description: "Deletes a user from every member; the predefined admin, operator, monitor and audit stay.", UsageText: "lunash user delete -username james",
						Flags: []ucli.Flag{username()}, Action: func(c *ucli.Context) error { return deleteUser(c, env) }},
					{Name: "enable", Usage: "enable an appliance user", Description: "Lets a disabled user (the predefined operator, monitor and audit start disabled) log in.", UsageText: "lunash user enable -username audit",
						Flags: []ucli.Flag{username()}, Action: func(c *ucli.Context) error { return enable(c, env, true) }},
					{Name: "disable", Usage: "disable an appliance user", Description: "Stops a user from logging in; a session it holds grants nothing that needs a login.", UsageText: "lunash user disable -username monitor",
						Flags: []ucli.Flag{username()}, Action: func(c *ucli.Context) error { return enable(c, env, false) }},
					{Name: "list", Usage: "list the appliance users", Description: "Lists the appliance users with their role and status, as LunaSH does.", UsageText: "lunash user list",
						Action: func(c *ucli.Context) error { return list(c, env) }},
					{Name: "password", Usage: "set a user's password (expired: changed at its next login), or your own", Description: "With a username, sets that user's password, which it must change at its next login; without, your own.", UsageText: "lunash user password james -password-stdin < pw", ArgsUsage: "[USERNAME]",
						Flags: withPassword(), Action: func(c *ucli.Context) error { return password(c, env, true) }},
					{Name: "role", Usage: "give users roles; import custom roles", Description: "LunaSH's user role commands.", UsageText: "lunash user role add -username james -role operator",
						Subcommands: []*ucli.Command{
							{Name: "add", Usage: "give a user a role (the original admin only)", Description: "Gives a user one of admin, operator, monitor, audit, or a custom role; the predefined users keep theirs.", UsageText: "lunash user role add -username james -role operator",
								Flags: []ucli.Flag{username(), &ucli.StringFlag{Name: "role", Usage: "`ROLE`"}}, Action: func(c *ucli.Context) error { return roleAdd(c, env) }},
							{Name: "import", Usage: "import a custom role from a file of LunaSH commands", Description: "Makes a custom role from a file of LunaSH commands, one per line, UNIX line endings, exact case. The role gets those commands and nothing else; the file is refused whole, naming every rejected command, when a line is unknown, in the wrong case, or an audit command.", UsageText: "lunash user role import -file rolefile1 -role readers",
								Flags: []ucli.Flag{&ucli.StringFlag{Name: "file", Usage: "role `FILE`"}, &ucli.StringFlag{Name: "role", Usage: "the new role's `NAME`"}}, Action: func(c *ucli.Context) error { return roleImport(c, env) }},
						}},
				}},
			{Name: "hsm", Usage: "the member HSMs", Description: "LunaSH's hsm commands.", UsageText: "lunash hsm init -label myHSM -password-stdin < sopw",
				Subcommands: []*ucli.Command{
					{Name: "init", Usage: "initialize each member's HSM, setting its SO password (admin)", Description: "Initializes the HSM of every member: the HSM Security Officer's password is set (-password, -password-stdin or HSM_PASSWORD). A member whose HSM is initialized is refused: zeroize it first (hsm zeroize).", UsageText: "lunash hsm init -label myHSM -password-stdin < sopw",
						Flags: withPassword(&ucli.StringFlag{Name: "label", Usage: "the HSM's `LABEL`"}), Action: func(c *ucli.Context) error { return hsmInit(c, env) }},
					{Name: "zeroize", Usage: "zeroize each member's HSM (admin)", Description: "Erases the HSM of every member: its SO, Auditor, partitions and their roles and policies. The appliance's users and roles stay.", UsageText: "lunash hsm zeroize",
						Action: func(c *ucli.Context) error { return hsmZeroize(c, env) }},
				}},
			{Name: "audit", Usage: "the HSM's audit role", Description: "LunaSH's audit commands, the audit user's alone.", UsageText: "lunash audit init -password-stdin < aupw",
				Subcommands: []*ucli.Command{
					{Name: "init", Usage: "initialize the Auditor role (the audit user only)", Description: "Initializes the HSM's Auditor (au) role with a password, replacing an existing one.", UsageText: "lunash audit init -password-stdin < aupw",
						Flags: withPassword(), Action: func(c *ucli.Context) error { return auditInit(c, env) }},
				}},
			{Name: "my", Usage: "your own account", Description: "Commands about the logged-in user.", UsageText: "lunash my password set -password-stdin < pw",
				Subcommands: []*ucli.Command{
					{Name: "password", Usage: "your own password", Description: "Your own password.", UsageText: "lunash my password set -password-stdin < pw",
						Subcommands: []*ucli.Command{
							{Name: "set", Usage: "change your own password", Description: "Changes your own password: what every appliance user (operator and monitor too) does, and what a first login must do.", UsageText: "lunash my password set -password-stdin < pw",
								Flags: withPassword(), Action: func(c *ucli.Context) error { return password(c, env, false) }},
						}},
				}},
		},
	}
	return cli.Run(app, env, args)
}

// applianceLogin is who runs the command: LUNASH_USER with LUNASH_PASSWORD,
// the appliance login every LunaSH command needs. The role is the
// user's own, whatever it is.
func applianceLogin(env cli.Env) (*hsm.PIN, error) {
	user, pw := env.Getenv("LUNASH_USER"), env.Getenv("LUNASH_PASSWORD")
	if user == "" || pw == "" {
		return nil, cli.Usagef("log in to the appliance first: set LUNASH_USER and LUNASH_PASSWORD")
	}
	return &hsm.PIN{User: user, Password: pw}, nil
}

// request opens the cluster as the appliance user.
func request(c *ucli.Context, env cli.Env, args int, argNames ...string) (*hsm.Client, *hsm.PIN, error) {
	if err := cli.ExactArgs(c, args, argNames...); err != nil {
		return nil, nil, err
	}
	login, err := applianceLogin(env)
	if err != nil {
		return nil, nil, err
	}
	cl, err := clustercli.OpenClient(c, env)
	if err != nil {
		return nil, nil, err
	}
	if cl.Policy().Commands == nil {
		return nil, nil, cli.Trouble(fmt.Errorf("cluster %s has the %s profile, not an appliance shell (hsm-sim init --profile luna)", cl.Cluster.ID, cl.Policy().Name), "")
	}
	return cl, login, nil
}

func needFlag(c *ucli.Context, name string) (string, error) {
	v := c.String(name)
	if v == "" {
		return "", cli.Usagef("-%s is required", name)
	}
	return v, nil
}

// done prints LunaSH's lines and its success line.
// With -o json, the envelope's data is what the lines say, or data when
// given (user list's users).
func done(c *ucli.Context, data any, lines ...string) error {
	if data == nil {
		data = map[string]any{"output": lines}
	}
	return cli.EmitLines(c, data, success, lines...)
}

// command runs a LunaSH command with no argument: the appliance login,
// the flags it needs (each required), fn's engine call; then fn's lines
// and LunaSH's success line.
func command(c *ucli.Context, env cli.Env, need []string, fn func(cl *hsm.Client, login *hsm.PIN, v map[string]string) ([]string, error)) error {
	cl, login, err := request(c, env, 0)
	if err != nil {
		return err
	}
	v := map[string]string{}
	for _, name := range need {
		if v[name], err = needFlag(c, name); err != nil {
			return err
		}
	}
	lines, err := fn(cl, login, v)
	if err != nil {
		return err
	}
	return done(c, nil, lines...)
}

func add(c *ucli.Context, env cli.Env) error {
	return command(c, env, []string{"username"}, func(cl *hsm.Client, login *hsm.PIN, v map[string]string) ([]string, error) {
		pw, err := cli.ReadPassword(c, env, "Password: ", true)
		if err != nil {
			return nil, err
		}
		_, err = cl.CreateUser(hsm.Targeting{}, login, v["username"], policy.NoRole, pw, nil)
		// LunaSH restarts sshd to take the new account (docs/design.md,
		// "The Luna 7 profile", Outputs).
		return []string{"Stopping sshd: [ OK ]", "Starting sshd: [ OK ]"}, err
	})
}

func deleteUser(c *ucli.Context, env cli.Env) error {
	return command(c, env, []string{"username"}, func(cl *hsm.Client, login *hsm.PIN, v map[string]string) ([]string, error) {
		_, err := cl.DeleteUser(hsm.Targeting{}, login, v["username"], "", nil)
		return []string{fmt.Sprintf("User %s was successfully deleted.", v["username"])}, err
	})
}

func enable(c *ucli.Context, env cli.Env, on bool) error {
	return command(c, env, []string{"username"}, func(cl *hsm.Client, login *hsm.PIN, v map[string]string) ([]string, error) {
		_, err := cl.SetUserEnabled(hsm.Targeting{}, login, v["username"], on)
		what := "disabled"
		if on {
			what = "enabled"
		}
		return []string{fmt.Sprintf("%s was %s successfully.", v["username"], what)}, err
	})
}

func password(c *ucli.Context, env cli.Env, other bool) error {
	n := 0
	if other && c.Args().Len() > 0 {
		n = 1
	}
	req, login, err := request(c, env, n, "USERNAME")
	if err != nil {
		return err
	}
	name := login.User
	if n == 1 {
		name = c.Args().First()
	}
	pw, err := cli.ReadPassword(c, env, "New password: ", true)
	if err != nil {
		return err
	}
	if _, err := req.ChangePassword(hsm.Targeting{}, login, name, "", pw, nil); err != nil {
		return err
	}
	return done(c, nil, "passwd: all authentication tokens updated successfully.")
}

func roleAdd(c *ucli.Context, env cli.Env) error {
	return command(c, env, []string{"username", "role"}, func(cl *hsm.Client, login *hsm.PIN, v map[string]string) ([]string, error) {
		_, err := cl.AssignRole(hsm.Targeting{}, login, v["username"], v["role"])
		return []string{fmt.Sprintf("User %s was successfully modified.", v["username"])}, err
	})
}

func roleImport(c *ucli.Context, env cli.Env) error {
	return command(c, env, []string{"file", "role"}, func(cl *hsm.Client, login *hsm.PIN, v map[string]string) ([]string, error) {
		data, err := cli.ReadInput("-file", v["file"])
		if err != nil {
			return nil, err
		}
		if _, err := cl.ImportRole(hsm.Targeting{}, login, v["role"], data); err != nil {
			if errors.As(err, new(*policy.RoleFileError)) {
				return nil, cli.Refused(err, "fix or remove the rejected lines; a custom role gets exactly the commands its file names")
			}
			return nil, err
		}
		return []string{fmt.Sprintf("%q was successfully imported.", v["role"])}, nil
	})
}

// list prints LunaSH's user list table: the appliance's users (not the
// HSM's and partitions' role records), by name.
func list(c *ucli.Context, env cli.Env) error {
	req, login, err := request(c, env, 0)
	if err != nil {
		return err
	}
	users, warnings, err := req.ListUsers(login)
	if err != nil {
		return err
	}
	env.Warn(warnings)
	sort.Slice(users, func(i, j int) bool { return users[i].Username < users[j].Username })
	type row struct {
		Username string `json:"username"`
		Role     string `json:"role"`
		Status   string `json:"status"`
		RADIUS   string `json:"radius"`
	}
	rows := []row{}
	lines := []string{fmt.Sprintf("%20s    %8s    %8s    %8s", "Users", "Roles", "Status", "RADIUS"),
		fmt.Sprintf("%20s    %8s    %8s    %8s", "--------------------", "--------", "--------", "--------")}
	for _, u := range users {
		if _, _, ok := policy.SplitRecord(u.Username); ok {
			continue
		}
		r := row{Username: u.Username, Role: u.Role, Status: "enabled", RADIUS: "no"}
		switch u.Disabled {
		case "true":
			r.Status = "disabled"
		case "inconsistent":
			r.Status = "inconsistent"
		}
		rows = append(rows, r)
		lines = append(lines, fmt.Sprintf("%20s    %8s    %8s    %8s", r.Username, r.Role, r.Status, r.RADIUS))
	}
	return done(c, map[string]any{"users": rows}, lines...)
}

func hsmInit(c *ucli.Context, env cli.Env) error {
	return command(c, env, []string{"label"}, func(cl *hsm.Client, login *hsm.PIN, _ map[string]string) ([]string, error) {
		pw, err := cli.ReadPassword(c, env, "Please enter a password for the security officer: ", true)
		if err != nil {
			return nil, err
		}
		_, err = cl.InitHSM(hsm.Targeting{}, login, pw)
		return nil, err
	})
}

func hsmZeroize(c *ucli.Context, env cli.Env) error {
	return command(c, env, nil, func(cl *hsm.Client, login *hsm.PIN, _ map[string]string) ([]string, error) {
		for _, info := range cl.Cluster.HSMs {
			if err := cl.Zeroize(login, info.ID); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
}

func auditInit(c *ucli.Context, env cli.Env) error {
	return command(c, env, nil, func(cl *hsm.Client, login *hsm.PIN, _ map[string]string) ([]string, error) {
		pw, err := cli.ReadPassword(c, env, "Please enter a password for the Auditor: ", true)
		if err != nil {
			return nil, err
		}
		_, err = cl.InitAuditor(hsm.Targeting{}, login, pw)
		return nil, err
	})
}
