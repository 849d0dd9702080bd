// Package hsmuser is the hsm-user command: an admin's or crypto user's
// client that activates the cluster, logs in and out, and manages users.
package hsmuser

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cli/clustercli"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
)

// Main runs hsm-user and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := cli.NewEnv(args, stdin, stdout, stderr)
	userFlags := []ucli.Flag{
		&ucli.StringFlag{Name: "username", Usage: "user `NAME` (1-31 letters, digits, _)"},
		&ucli.StringFlag{Name: "role", Usage: "admin or crypto-user (CMU's CO, CU also work)"},
	}
	approvalFlag := &ucli.StringFlag{Name: "approval", Usage: "signed quorum token `FILE` approving this operation"}
	mutating := func(extra ...ucli.Flag) []ucli.Flag {
		f := append([]ucli.Flag{clustercli.SessionFlag()}, clustercli.TargetFlags()...)
		return append(f, extra...)
	}
	app := &ucli.App{
		Usage:       "manage the users of a CloudHSM cluster (simulated)",
		Description: "The client of an admin or crypto user: it activates the cluster, logs in and out, and creates, deletes and lists users and changes passwords on every HSM of the client config (-c, default ./cluster.yaml). Mutating commands first check that the config lists every HSM of the cluster and that each is reachable.",
		UsageText:   "echo \"$PW\" | hsm-user login --username admin --role admin --password-stdin\nHSM_PASSWORD=Alice-pass1 hsm-user create --username alice --role crypto-user\nhsm-user list",
		Commands: []*ucli.Command{
			{Name: "activate", Description: "Sets the password of the cluster's unactivated admin, which becomes an admin. All or nothing: every HSM of the cluster must be reachable and listed in the client config, and a cluster that has an admin anywhere is never activated again.", UsageText: "echo \"$PW\" | hsm-user activate --password-stdin", Usage: "activate the cluster: set the initial admin's password",
				Flags:  append(mutating(), cli.PasswordFlags()...),
				Action: func(c *ucli.Context) error { return activate(c, env) }},
			{Name: "login", Description: "Logs in on every HSM of the client config and keeps the session in --session FILE (default .hsm-session beside the config, mode 0600) for later commands. Five wrong passwords lock the account on that HSM.\nA user with MFA runs login twice with --mfa-token FILE: first to write the unsigned tokens, then, once they are signed, to log in.\nFor one command only, use HSM_PIN=username:password with HSM_ROLE instead: it leaves no session.", UsageText: "echo \"$PW\" | hsm-user login --username admin --role admin --password-stdin\nhsm-user login --username alice --role crypto-user --mfa-token mfa.json < pw   # twice, signing between", Usage: "log in on every HSM and keep the session for later commands",
				Flags: append(append(mutating(&ucli.StringFlag{Name: "mfa-token",
					Usage: "MFA token `FILE`: a user with MFA runs login twice, first to write the unsigned tokens there, then, once they are signed, to log in"}),
					userFlags...), cli.PasswordFlags()...),
				Action: func(c *ucli.Context) error { return login(c, env) }},
			{Name: "logout", Description: "Ends the session on every HSM it reached and removes the session file. If an HSM is unreachable, exits 1 and keeps the session for that HSM alone: run logout again once it is back.", UsageText: "hsm-user logout", Usage: "end the session",
				Flags:  []ucli.Flag{clustercli.SessionFlag()},
				Action: func(c *ucli.Context) error { return logout(c, env) }},
			{Name: "list", Description: "Lists every user with its role, lock state, MFA and quorum key registration, and whether every HSM holds the same record (cluster coverage). Needs no login.", UsageText: "hsm-user list\nhsm-user -o json list", Usage: "list the users of the cluster (no login needed)",
				Action: func(c *ucli.Context) error { return list(c, env) }},
			{Name: "create", Description: "Creates a user on every HSM. Needs an admin's session (or HSM_PIN); with the user quorum value above 1, an approved token (--approval). The password comes from --password-stdin, HSM_PASSWORD or a prompt.", UsageText: "echo \"$PW\" | hsm-user create --username alice --role crypto-user --password-stdin\nhsm-user create --username user1 --role crypto-user --approval approved.token < pwfile", Usage: "create a user on every HSM",
				Flags:  append(append(mutating(approvalFlag), userFlags...), cli.PasswordFlags()...),
				Action: func(c *ucli.Context) error { return create(c, env) }},
			{Name: "delete", Description: "Deletes a user from every HSM. Refuses a logged-in user and the last admin. Needs an admin's session; with the user quorum value above 1, an approved token.", UsageText: "hsm-user delete --username alice --role crypto-user", Usage: "delete a user from every HSM",
				Flags:  append(mutating(approvalFlag), userFlags...),
				Action: func(c *ucli.Context) error { return deleteUser(c, env) }},
			{Name: "change-password", Description: "Changes your own password, or as an admin anyone's; an admin's change unlocks a locked user. Another user's password needs an approved token when the user quorum value is above 1. --deregister-mfa and --deregister-quorum also remove the user's MFA or quorum key.", UsageText: "hsm-user change-password --username alice --role crypto-user --password-stdin < newpw\nHSM_PIN=kmsuser:Old-pass1 HSM_ROLE=crypto-user HSM_PASSWORD=New-pass1 hsm-user change-password --username kmsuser --role crypto-user", Usage: "change your own password, or as an admin anyone's (this unlocks a locked user)",
				Flags: append(append(mutating(approvalFlag,
					&ucli.BoolFlag{Name: "deregister-mfa", Usage: "also remove the user's MFA key, if present"},
					&ucli.BoolFlag{Name: "deregister-quorum", Usage: "also remove the user's quorum key, if present"}),
					userFlags...), cli.PasswordFlags()...),
				Action: func(c *ucli.Context) error { return changePassword(c, env) }},
			{Name: "change-mfa", Description: "Commands of a user's MFA: token-sign registers, rotates or deregisters the key whose signatures complete a login.", UsageText: "hsm-user change-mfa token-sign --username alice --role crypto-user --token mfa.json < newpw", Usage: "register, rotate or deregister a user's MFA key (and set its password)",
				Subcommands: []*ucli.Command{{
					Name:        "token-sign",
					Description: "Registers or rotates your MFA key (or, as an admin, anyone's) and sets the user's new password. The first run with --token FILE writes one unsigned token per HSM; sign each with the MFA private key (hsm-sign sign or openssl pkeyutl) and run again with --public-key. --deregister removes the key; --change-quorum also sets or removes the quorum key.",
					UsageText:   "hsm-user change-mfa token-sign --username alice --role crypto-user --token mfa.json < newpw\nhsm-sign sign --key alice.key --username alice --out mfa.json mfa.json\nhsm-user change-mfa token-sign --username alice --role crypto-user --token mfa.json --public-key alice.pub < newpw",
					Usage:       "token-sign MFA: run with --token FILE to get unsigned tokens, sign them, run again with --public-key; or --deregister",
					Flags: append(append(mutating(approvalFlag,
						&ucli.StringFlag{Name: "token", Usage: "MFA token `FILE`: written unsigned when it does not exist, read signed when it does"},
						&ucli.StringFlag{Name: "public-key", Usage: "the new MFA PEM public key `FILE` (RSA-2048), with the signed --token"},
						&ucli.BoolFlag{Name: "deregister", Usage: "remove the MFA key, if present"},
						&ucli.BoolFlag{Name: "change-quorum", Usage: "set (or with --deregister remove) the quorum key along with the MFA key"}),
						userFlags...), cli.PasswordFlags()...),
					Action: func(c *ucli.Context) error { return changeMFA(c, env) },
				}}},
			{Name: "change-quorum", Description: "Commands of your quorum (M-of-N) registration: register names the public key whose signatures approve quorum tokens.", UsageText: "hsm-user change-quorum register --public-key me.pub --signed-token reg.json", Usage: "register your quorum public key",
				Subcommands: []*ucli.Command{{
					Name: "register", Description: "Registers your quorum public key. The registration token (hsm-quorum generate --service registration), signed with the matching private key (hsm-sign sign), proves you hold it. Admins only.", UsageText: "hsm-quorum generate --service registration --token reg.json\nhsm-sign sign --key me.key --username admin --out reg.json reg.json\nhsm-user change-quorum register --public-key me.pub --signed-token reg.json", Usage: "register your quorum key: the signed registration token proves you hold its private key",
					Flags: mutating(
						&ucli.StringFlag{Name: "public-key", Usage: "PEM public key `FILE` (RSA-2048)"},
						&ucli.StringFlag{Name: "signed-token", Usage: "registration token `FILE` signed with the private key"}),
					Action: func(c *ucli.Context) error { return registerQuorum(c, env) },
				}}},
		},
	}
	return cli.Run(app, env, args)
}

func userAndRole(c *ucli.Context) (string, policy.Role, error) {
	user := c.String("username")
	if user == "" {
		return "", "", cli.Usagef("--username is required")
	}
	if c.String("role") == "" {
		return "", "", cli.Usagef("--role is required (admin or crypto-user)")
	}
	role, err := policy.ParseRole(c.String("role"))
	if err != nil {
		return "", "", cli.Usagef("--role: %v", err)
	}
	return strings.ToLower(user), role, nil
}

// parseForUser parses a command that names a user: the request, then
// --username and --role.
func parseForUser(c *ucli.Context, env cli.Env, need clustercli.Need) (*clustercli.Request, string, policy.Role, error) {
	req, err := clustercli.Parse(c, env, need)
	if err != nil {
		return nil, "", "", err
	}
	user, role, err := userAndRole(c)
	return req, user, role, err
}

func activate(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, clustercli.Targets)
	if err != nil {
		return err
	}
	pw, err := cli.ReadPassword(c, env, "Enter password: ", true)
	if err != nil {
		return err
	}
	res, err := req.Client.Activate(req.Targeting, pw)
	return req.Outcome(res, err, "Cluster activation successful", "Cluster activation successful: admin is now an admin; log in with hsm-user login --username admin --role admin")
}

func login(c *ucli.Context, env cli.Env) error {
	req, user, role, err := parseForUser(c, env, clustercli.Targets)
	if err != nil {
		return err
	}
	mfaPath := c.String("mfa-token")
	if c.IsSet("mfa-token") && mfaPath == "" {
		return cli.Usagef("--mfa-token: empty file name")
	}
	signed, err := existingMFAFile("--mfa-token", mfaPath)
	if err != nil {
		return err
	}
	pw, err := cli.ReadPassword(c, env, "Enter password: ", false)
	if err != nil {
		return err
	}
	if mfaPath != "" && signed == nil {
		res, err := req.Client.BeginMFALogin(req.Targeting, user, role, pw, mfaPath)
		return req.Outcome(res, err, map[string]string{"filepath": mfaPath}, signThen(mfaPath, user, "run this login again"))
	}
	var sf *hsm.SessionFile
	var res *hsm.Result
	if signed != nil {
		sf, res, err = req.Client.LoginMFA(req.Targeting, req.SessionPath, user, role, pw, *signed)
	} else {
		sf, res, err = req.Client.Login(req.Targeting, req.SessionPath, user, role, pw)
	}
	data := hsm.UserRef{Username: user, Role: string(role)}
	if sf != nil {
		data.Role = sf.Role
	}
	return req.Outcome(res, err, data, fmt.Sprintf("logged in as %s (%s) on %d HSM(s); session %s", user, data.Role, len(res.OK()), req.SessionPath))
}

func logout(c *ucli.Context, env cli.Env) error {
	// Not Acting: logout ends the session file's session, whatever
	// HSM_PIN says.
	req, err := clustercli.Parse(c, env, 0)
	if err != nil {
		return err
	}
	sf, err := hsm.LoadSession(req.SessionPath)
	if err != nil {
		return cli.Trouble(err, "")
	}
	if sf == nil {
		return cli.Refused(fmt.Errorf("not logged in (no session at %s)", req.SessionPath), "")
	}
	res, open, err := req.Client.Logout(sf)
	var partial *hsm.PartialError
	if err != nil && (len(open) == 0 || !errors.As(err, &partial)) {
		return err
	}
	PrintSkipped(env, res)
	if len(open) > 0 {
		return cli.Refused(fmt.Errorf("logged out on %d of %d HSM(s); the session stays open on %s, and %s keeps it for them",
			len(res.OK()), len(res.Outcomes), strings.Join(open, ", "), sf.Path),
			"run hsm-user logout again once they are reachable (hsm-sim list); until then that user cannot be deleted there")
	}
	return req.Emit("Logout successful", func(w io.Writer) error {
		_, err := fmt.Fprintln(w, "Logout successful")
		return err
	})
}

// PrintSkipped warns about the HSMs a logout did not act on.
func PrintSkipped(env cli.Env, res *hsm.Result) {
	if res == nil {
		return
	}
	for _, o := range res.Outcomes {
		if o.Status != "ok" {
			env.Warnf("%s: %s (%v)", o.HSM, o.Status, o.Err)
		}
	}
}

func list(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, 0)
	if err != nil {
		return err
	}
	// Nobody, where the profile lets anyone list (CloudHSM); else who
	// acts (HSM_PIN or the session): Luna's admin alone lists its users.
	var auth hsm.Authenticator = hsm.Nobody{}
	if !req.Client.Policy().Allowed(policy.Unauthenticated, policy.ListUsers) {
		if auth, err = clustercli.Auth(c, env); err != nil {
			return err
		}
	}
	users, warnings, err := req.Client.ListUsers(auth)
	env.Warn(warnings)
	if err != nil {
		return err
	}
	return req.Emit(map[string]any{"users": users}, func(w io.Writer) error {
		rows := make([][]string, len(users))
		for i, u := range users {
			rows[i] = []string{u.Username, u.Role, u.Locked, strategies(u.MFA), strategies(u.Quorum), u.Coverage}
		}
		return cli.Table(w, []string{"Username", "Role", "Locked", "MFA", "Quorum", "Cluster coverage"}, rows)
	})
}

func strategies(s []hsm.Strategy) string {
	var parts []string
	for _, x := range s {
		parts = append(parts, x.Strategy+" "+x.Status)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// manage is the common shape of create, delete and change-password.
func manage(c *ucli.Context, env cli.Env, needPassword bool, verb string,
	op func(cl *hsm.Client, t hsm.Targeting, auth hsm.Authenticator, user string, role policy.Role, pw string, a *hsm.Approval) (*hsm.Result, error)) error {
	req, user, role, err := parseForUser(c, env, clustercli.Mutating)
	if err != nil {
		return err
	}
	a, err := clustercli.Approval(c)
	if err != nil {
		return err
	}
	var pw string
	if needPassword {
		if pw, err = cli.ReadPassword(c, env, "Enter password: ", true); err != nil {
			return err
		}
	}
	res, err := op(req.Client, req.Targeting, req.Auth, user, role, pw, a)
	return req.Outcome(res, err, hsm.UserRef{Username: user, Role: string(role)}, fmt.Sprintf("%s %s (%s) on %d HSM(s)", verb, user, role, len(res.OK())))
}

func create(c *ucli.Context, env cli.Env) error {
	return manage(c, env, true, "created", func(cl *hsm.Client, t hsm.Targeting, auth hsm.Authenticator, user string, role policy.Role, pw string, a *hsm.Approval) (*hsm.Result, error) {
		return cl.CreateUser(t, auth, user, role, pw, a)
	})
}

func deleteUser(c *ucli.Context, env cli.Env) error {
	return manage(c, env, false, "deleted", func(cl *hsm.Client, t hsm.Targeting, auth hsm.Authenticator, user string, role policy.Role, _ string, a *hsm.Approval) (*hsm.Result, error) {
		return cl.DeleteUser(t, auth, user, role, a)
	})
}

func changePassword(c *ucli.Context, env cli.Env) error {
	opts := hsm.PasswordOptions{DeregisterMFA: c.Bool("deregister-mfa"), DeregisterQuorum: c.Bool("deregister-quorum")}
	return manage(c, env, true, "changed the password of", func(cl *hsm.Client, t hsm.Targeting, auth hsm.Authenticator, user string, role policy.Role, pw string, a *hsm.Approval) (*hsm.Result, error) {
		return cl.ChangePasswordWith(t, auth, user, role, pw, a, opts)
	})
}

// existingMFAFile reads the MFA token file a flag names when it exists
// (the second step: it holds signed tokens); nil when it does not yet
// (the first step writes it) or no file is named.
func existingMFAFile(flag, path string) (*hsm.MFAToken, error) {
	if path == "" {
		return nil, nil
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	data, err := cli.ReadInput(flag, path)
	if err != nil {
		return nil, err
	}
	return &hsm.MFAToken{Path: path, Data: data}, nil
}

// signThen is what to do with a freshly written MFA token file.
func signThen(path, user, next string) string {
	return fmt.Sprintf("wrote the unsigned MFA tokens to %s; sign them with the MFA private key (hsm-sign sign --key KEY --username %s -o %s %s, or openssl pkeyutl -sign -pkeyopt digest:sha256 per entry), then %s",
		path, user, path, path, next)
}

func changeMFA(c *ucli.Context, env cli.Env) error {
	req, user, role, err := parseForUser(c, env, clustercli.Mutating)
	if err != nil {
		return err
	}
	tokPath, pubPath, dereg := c.String("token"), c.String("public-key"), c.Bool("deregister")
	switch {
	case dereg && (tokPath != "" || pubPath != ""):
		return cli.Usagef("--deregister takes neither --token nor --public-key")
	case !dereg && tokPath == "":
		return cli.Usagef("token-sign needs --token FILE (to register or rotate a key) or --deregister")
	}
	a, err := clustercli.Approval(c)
	if err != nil {
		return err
	}
	signed, err := existingMFAFile("--token", tokPath)
	if err != nil {
		return err
	}
	r := hsm.ChangeMFARequest{Username: user, Role: role, Deregister: dereg, ChangeQuorum: c.Bool("change-quorum"), Approval: a, Signed: signed}
	data := hsm.UserRef{Username: user, Role: string(role)}
	switch {
	case !dereg && signed == nil:
		if pubPath != "" {
			return cli.Usagef("--token %s does not exist yet: run without --public-key to write the unsigned tokens there, sign them, then give --public-key", tokPath)
		}
		res, err := req.Client.BeginMFARegistration(req.Targeting, req.Auth, user, role, tokPath)
		return req.Outcome(res, err, map[string]string{"filepath": tokPath},
			signThen(tokPath, user, "run this command again with --public-key PUB and the user's new password"))
	case !dereg:
		if pubPath == "" {
			return cli.Usagef("--token %s exists: give the MFA public key with --public-key FILE to register it (or remove %s to start again)", tokPath, tokPath)
		}
		if r.PublicKey, err = cli.ReadInput("--public-key", pubPath); err != nil {
			return err
		}
		r.PublicKeyPath = pubPath
	}
	if r.Password, err = cli.ReadPassword(c, env, "Enter password: ", true); err != nil {
		return err
	}
	res, err := req.Client.ChangeMFA(req.Targeting, req.Auth, r)
	verb := "registered the MFA key of"
	if dereg {
		verb = "deregistered the MFA key of"
	}
	return req.Outcome(res, err, data, fmt.Sprintf("%s %s (%s) on %d HSM(s)", verb, user, role, len(res.OK())))
}

func registerQuorum(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, clustercli.Mutating)
	if err != nil {
		return err
	}
	pubPath, tokPath := c.String("public-key"), c.String("signed-token")
	if pubPath == "" || tokPath == "" {
		return cli.Usagef("register needs --public-key FILE and --signed-token FILE")
	}
	pub, err := cli.ReadInput("--public-key", pubPath)
	if err != nil {
		return err
	}
	tok, err := cli.ReadInput("--signed-token", tokPath)
	if err != nil {
		return err
	}
	sf, _ := req.Auth.(*hsm.SessionFile)
	res, err := req.Client.RegisterQuorumKey(req.Targeting, req.Auth, pubPath, pub, tokPath, tok)
	data := hsm.UserRef{}
	if sf != nil {
		data = hsm.UserRef{Username: sf.Username, Role: sf.Role}
	}
	return req.Outcome(res, err, data, "registered the quorum key of "+data.Username)
}
