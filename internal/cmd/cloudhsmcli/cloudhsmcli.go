// Package cloudhsmcli is the cloudhsm-cli command: AWS CloudHSM's SDK 5
// command-line tool, its command tree, flags, JSON and messages, run on
// the simulated cluster so that operators' own scripts run unchanged.
//
// It is a front end (docs/design.md, "cloudhsm-cli"): it translates
// cloudhsm-cli's command lines and output onto engine operations and holds
// no rule; every check is the engine's.
package cloudhsmcli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cli/clustercli"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmkey"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/quorum"
	"github.com/hsmkit/hsmkit/internal/safetext"
	"github.com/hsmkit/hsmkit/internal/state"
)

// Prompt is what interactive mode shows on a terminal before each command.
const Prompt = "aws-cloudhsm > "

// maxLine bounds a line read from standard input (a command or a
// password): nothing a person types is longer.
const maxLine = 64 << 10

// shell is one cloudhsm-cli process: its input, and the login it holds.
type shell struct {
	env         cli.Env
	in          *bufio.Reader // commands and password lines share stdin
	interactive bool
	clusterID   string           // interactive --cluster-id, for every command
	session     *hsm.SessionFile // this process's login, kept in memory
	sessionConf string           // the client config it logged in through
	failed      bool
}

// Main runs cloudhsm-cli and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := cli.NewEnv(args, stdin, stdout, stderr)
	sh := &shell{env: env, in: bufio.NewReader(stdin)}
	code := cli.Run(sh.app(), env, args)
	// A login lives as long as the process, as cloudhsm-cli's does: a
	// single command's login ends with it.
	if err := sh.endSession(); err != nil && code == cli.ExitOK {
		env.Warnf("logging out: %v", err)
		code = cli.ExitFailed
	}
	return code
}

func (sh *shell) app() *ucli.App {
	user := []ucli.Flag{
		&ucli.StringFlag{Name: "username", Usage: "username to access the HSM cluster"},
		&ucli.StringFlag{Name: "role", Usage: "role the user has in the cluster: crypto-user or admin"},
	}
	password := &ucli.StringFlag{Name: "password", Usage: "optional: plaintext user's password. If you do not include this argument you will be prompted for it"}
	approval := &ucli.StringFlag{Name: "approval", Usage: "filepath of signed quorum token file to approve operation"}
	service := &ucli.StringFlag{Name: "service", Usage: "service the token will be used for: user, quorum or registration"}
	with := func(fs ...[]ucli.Flag) []ucli.Flag {
		out := []ucli.Flag{clusterIDFlag()}
		for _, f := range fs {
			out = append(out, f...)
		}
		return out
	}
	one := func(f ...ucli.Flag) []ucli.Flag { return f }
	cmds := []*ucli.Command{
		{Name: "cluster", Usage: "cluster commands", Description: "Commands of the cluster as a whole.", UsageText: "cloudhsm-cli cluster activate --password \"$ADMIN_PW\"", Subcommands: []*ucli.Command{
			{Name: "activate", Usage: "activate a cluster", Description: "Sets the password of the cluster's unactivated admin, which becomes an admin, on every HSM. Refused once the cluster has an admin: \"Cluster has already been activated\".", UsageText: "cloudhsm-cli cluster activate --password \"$ADMIN_PW\"\ncloudhsm-cli cluster activate --cluster-id \"$CLUSTER_ID\"   # prompts for the password", Flags: with(one(password)), Action: sh.do(sh.activate)},
		}},
		{Name: "login", Usage: "login to your cluster", Description: "Logs in on every HSM. The login lasts as long as the process: in interactive mode, the session; in single-command mode it ends with the command unless HSM_SESSION=FILE keeps it (hsmkit's own). A user with MFA logs in with the mfa-token-sign subcommand.", UsageText: "cloudhsm-cli login --username admin --role admin --password \"$PW\"\nHSM_SESSION=admin.session cloudhsm-cli login --username admin --role admin", Flags: with(user, one(password)), Action: sh.do(sh.login),
			Subcommands: []*ucli.Command{
				{Name: "mfa-token-sign", Usage: "login with token-sign mfa", Description: "Logs in a user with MFA: writes one unsigned token per HSM to --token, asks for the signed file (press enter if the same file was signed in place), then logs in.", UsageText: "cloudhsm-cli login --username alice --role crypto-user mfa-token-sign --token tokens.json   # cloudhsm-cli login mfa-token-sign: login's flags come first", Flags: with(one(
					&ucli.StringFlag{Name: "token", Usage: "filepath where the unsigned token file will be written"})),
					Action: sh.do(sh.loginMFA)},
			}},
		{Name: "logout", Usage: "logout of your cluster", Description: "Ends this process's login (or HSM_SESSION's) on every HSM; its quorum tokens end with it.", UsageText: "cloudhsm-cli logout", Flags: with(), Action: sh.do(sh.logout)},
		{Name: "user", Usage: "user management", Description: "Commands of the cluster's users.", UsageText: "cloudhsm-cli user list", Subcommands: []*ucli.Command{
			{Name: "list", Usage: "list the users in your cluster", Description: "Lists every user with its role, lock state, MFA and quorum key status and cluster coverage; a property the HSMs disagree on reads \"inconsistent\". Needs no login.", UsageText: "cloudhsm-cli user list\ncloudhsm-cli user list | jq -r '.data.users[].username'", Flags: with(), Action: sh.do(sh.listUsers)},
			{Name: "create", Usage: "create a new user", Description: "Creates a user on every HSM. Needs an admin's login (CLOUDHSM_PIN for a single command); with the user quorum value above 1, an approved token (--approval). \"User already exists\" when it does.", UsageText: "CLOUDHSM_ROLE=admin CLOUDHSM_PIN=admin:\"$PW\" cloudhsm-cli user create --username kmsuser --role crypto-user --password \"$KMS_PW\"", Flags: with(user, one(password, approval)), Action: sh.do(sh.createUser)},
			{Name: "delete", Usage: "delete a user", Description: "Deletes a user from every HSM. Refuses a logged-in user, the last admin and a user who owns keys.", UsageText: "cloudhsm-cli user delete --username alice --role crypto-user", Flags: with(user, one(approval)), Action: sh.do(sh.deleteUser)},
			{Name: "change-password", Usage: "change a user's password", Description: "Changes your own password, or as an admin anyone's (which unlocks a locked user). --deregister-mfa and --deregister-quorum also remove the user's keys.", UsageText: "cloudhsm-cli user change-password --username alice --role crypto-user --password \"$NEW_PW\"", Flags: with(user, one(password, approval,
				&ucli.BoolFlag{Name: "deregister-mfa", Usage: "deregister the user's mfa public key, if present"},
				&ucli.BoolFlag{Name: "deregister-quorum", Usage: "deregister the user's quorum public key, if present"})),
				Action: sh.do(sh.changePassword)},
			{Name: "change-mfa", Usage: "change a user's mfa strategy", Description: "Commands of a user's MFA.", UsageText: "cloudhsm-cli user change-mfa token-sign --username alice --role crypto-user --token tokens.json", Subcommands: []*ucli.Command{
				{Name: "token-sign", Usage: "register or deregister a public key using token-sign mfa strategy", Description: "Registers or rotates a user's MFA key (one's own, or as an admin anyone's) and sets the user's new password: writes one unsigned token per HSM to --token, asks for the signed file and the public key PEM file. --deregister removes the key; --change-quorum changes the quorum key with it.", UsageText: "cloudhsm-cli user change-mfa token-sign --username alice --role crypto-user --change-password \"$NEW_PW\" --token tokens.json\ncloudhsm-cli user change-mfa token-sign --username alice --role crypto-user --deregister",
					Flags: with(user, one(
						&ucli.StringFlag{Name: "change-password", Usage: "optional: plaintext user's password. If you do not include this argument you will be prompted for it"},
						&ucli.StringFlag{Name: "token", Usage: "filepath where the unsigned token file will be written. Required for enabling MFA for a user"},
						approval,
						&ucli.BoolFlag{Name: "deregister", Usage: "deregister the MFA public key, if present"},
						&ucli.BoolFlag{Name: "change-quorum", Usage: "change the quorum public key along with the MFA key"})),
					Action: sh.do(sh.changeMFA)},
			}},
			{Name: "change-quorum", Usage: "change a user's quorum strategy", Description: "Commands of your quorum (M-of-N) registration.", UsageText: "cloudhsm-cli user change-quorum token-sign register --public-key me.pub --signed-token reg.json", Subcommands: []*ucli.Command{
				{Name: "token-sign", Usage: "token-sign quorum strategy of a user", Description: "The token-sign quorum strategy: register names the public key whose signatures approve tokens.", UsageText: "cloudhsm-cli user change-quorum token-sign register --public-key me.pub --signed-token reg.json", Subcommands: []*ucli.Command{
					{Name: "register", Usage: "register a user for quorum authentication with a public key", Description: "Registers your quorum public key: the registration token (quorum token-sign generate --service registration), signed with the matching private key, proves you hold it.", UsageText: "cloudhsm-cli quorum token-sign generate --service registration --token reg.json\nhsm-sign sign --key me.key --username admin --out reg.json reg.json\ncloudhsm-cli user change-quorum token-sign register --public-key me.pub --signed-token reg.json",
						Flags: with(one(
							&ucli.StringFlag{Name: "public-key", Usage: "filepath to public key PEM file"},
							&ucli.StringFlag{Name: "signed-token", Usage: "filepath with token signed by user private key"})),
						Action: sh.do(sh.registerQuorum)},
				}},
			}},
		}},
		{Name: "quorum", Usage: "quorum management", Description: "Commands of quorum (M-of-N) authentication.", UsageText: "cloudhsm-cli quorum token-sign list-quorum-values", Subcommands: []*ucli.Command{
			{Name: "token-sign", Usage: "token-sign quorum strategy", Description: "Quorum tokens and the quorum policy.", UsageText: "cloudhsm-cli quorum token-sign list", Subcommands: []*ucli.Command{
				{Name: "generate", Usage: "generate a token", Description: "Writes a quorum token for the logged-in admin, one record per HSM, for approvers to sign offline (openssl pkeyutl or hsm-sign). It lives as long as the login.", UsageText: "cloudhsm-cli quorum token-sign generate --service user --token admin.token", Flags: with(one(service,
					&ucli.StringFlag{Name: "token", Usage: "filepath where the unsigned token file will be written"})),
					Action: sh.do(sh.generate)},
				{Name: "list", Usage: "list the token-sign tokens in your cluster", Description: "Lists the tokens: approvals required and given, seconds left, cluster coverage.", UsageText: "cloudhsm-cli quorum token-sign list", Flags: with(), Action: sh.do(sh.listTokens)},
				{Name: "delete", Usage: "delete one or more quorum tokens", Description: "Deletes your tokens (--scope user) or every token (--scope all).", UsageText: "cloudhsm-cli quorum token-sign delete --scope user", Flags: with(one(
					&ucli.StringFlag{Name: "scope", Usage: "scope of which token(s) will be deleted: user or all"})),
					Action: sh.do(sh.deleteTokens)},
				{Name: "list-quorum-values", Aliases: []string{"get-quorum-values"}, Usage: "list current quorum values", Description: "Shows the quorum value of the user and quorum services (get-quorum-values is the same command).", UsageText: "cloudhsm-cli quorum token-sign list-quorum-values",
					Flags: with(), Action: sh.do(sh.listValues)},
				{Name: "set-quorum-value", Usage: "set a quorum value", Description: "Sets a service's quorum value (1 is off, 2 to 8); a change needs approval as the quorum policy requires.", UsageText: "cloudhsm-cli quorum token-sign set-quorum-value --service user --value 2", Flags: with(one(service,
					&ucli.StringFlag{Name: "value", Usage: "value to set for service"}, approval)),
					Action: sh.do(sh.setValue)},
				{Name: "list-timeouts", Usage: "list timeout durations in seconds for token validity", Description: "Shows how long a generated token waits for approval and how long an approved one stays usable.", UsageText: "cloudhsm-cli quorum token-sign list-timeouts", Flags: with(), Action: sh.do(sh.listTimeouts)},
				{Name: "set-timeout", Usage: "set timeout duration in seconds for token validity", Description: "Sets the generated and/or approved token timeout in seconds.", UsageText: "cloudhsm-cli quorum token-sign set-timeout --generated 900", Flags: with(one(
					&ucli.StringFlag{Name: "generated", Usage: "timeout period in seconds for a generated (non-approved) token to be approved"},
					&ucli.StringFlag{Name: "approved", Usage: "timeout period in seconds for an approved token to be used to execute a quorum operation"},
					approval)),
					Action: sh.do(sh.setTimeout)},
			}},
		}},
	}
	if sh.interactive {
		cmds = append(cmds,
			// Listed for help; the loop ends at quit before running it.
			&ucli.Command{Name: "quit", Aliases: []string{"exit"}, Usage: "quit the CLI", Description: "Ends interactive mode and its login.", UsageText: "cloudhsm-cli interactive   # then: quit", Action: func(*ucli.Context) error { return nil }})
	} else {
		cmds = append(cmds, &ucli.Command{Name: "interactive", Usage: "run commands read from standard input, one per line, under one login", Description: "Reads commands from standard input, one per line (the aws-cloudhsm > prompt on a terminal), all under one login that ends at quit or the end of the input. A password not given with --password is prompted for on a terminal, else read from the next line. Exits 1 if any command failed.", UsageText: "cloudhsm-cli interactive\nprintf '%s\\n' 'login --username admin --role admin' \"$PW\" 'user list' | cloudhsm-cli interactive",
			Flags: []ucli.Flag{clusterIDFlag()}, Action: sh.runInteractive})
	}
	// The key and crypto trees are hsm-key's commands in cloudhsm-cli's
	// spelling, acting as this process's login.
	keyCmds, cryptoCmds := (&hsmkey.Front{Env: sh.env, Auth: sh.auth}).VendorTrees()
	cmds = append(cmds,
		&ucli.Command{Name: "key", Usage: "key management", Subcommands: keyCmds,
			Description: "A crypto user's keys: generate, list, share, unshare, delete, set attributes, write a public key file, import a PEM public key, wrap and unwrap (docs/design.md, \"Keys\").",
			UsageText:   "cloudhsm-cli key generate-symmetric aes --label k1 --key-length-bytes 32\ncloudhsm-cli key list --filter attr.label=k1 --verbose"},
		&ucli.Command{Name: "crypto", Usage: "cryptographic operations", Subcommands: cryptoCmds,
			Description: "Signs and verifies with keys in the HSMs.",
			UsageText:   "cloudhsm-cli crypto sign ecdsa --key-filter attr.label=k1 --hash-function sha256 --data-path msg.bin"})
	cmds = append(cmds, &ucli.Command{Name: "help", Usage: "print this message or the help of the given command(s)", Description: "Prints the list of commands, or a command's help.", UsageText: "cloudhsm-cli help quorum token-sign generate", Action: helpAction})
	app := &ucli.App{
		Usage: "AWS CloudHSM's cloudhsm-cli (SDK 5) on the simulated cluster (hsmkit)", Description: "AWS CloudHSM's cloudhsm-cli (Client SDK 5) on hsmkit's simulated cluster: its commands, flags, JSON output and messages, so that scripts written for a real cluster run unchanged. Point HSM_CONFIG at the cluster's cluster.yaml. Credentials for a single command: CLOUDHSM_PIN=user:password and CLOUDHSM_ROLE.", UsageText: "cloudhsm-cli user list\nCLOUDHSM_ROLE=admin CLOUDHSM_PIN=admin:\"$PW\" cloudhsm-cli user create --username kmsuser --role crypto-user --password \"$KMS_PW\"\ncloudhsm-cli interactive",
		Flags:    []ucli.Flag{clusterIDFlag()},
		Commands: cmds,
	}
	cli.SetJSONOnly(app)
	return app
}

func clusterIDFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "cluster-id", Usage: "the cluster to act on (checked against the simulated cluster's id)"}
}

// helpAction is cloudhsm-cli's help [COMMAND...].
func helpAction(c *ucli.Context) error {
	args := append([]string{c.App.Name}, c.Args().Slice()...)
	return c.App.Run(append(args, "--help"))
}

// action is one command: it returns the data cloudhsm-cli prints.
type action func(c *ucli.Context, req *clustercli.Request) (any, error)

// do runs an action and prints its result as cloudhsm-cli does: the JSON
// envelope on standard output, error_code 1 and the message when refused.
// Bad flags stay usage errors (stderr, exit 2).
func (sh *shell) do(fn action) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		if _, err := cli.Output(c); err != nil {
			return err
		}
		data, err := sh.act(c, fn)
		if err == nil {
			return cli.WriteJSON(c.App.Writer, 0, data)
		}
		if cli.ExitCode(err) == cli.ExitUsage {
			return err
		}
		sh.failed = true
		if werr := cli.WriteJSON(c.App.Writer, 1, message(err)); werr != nil {
			return werr
		}
		return cli.QuietExit(cli.ExitCode(err))
	}
}

func (sh *shell) act(c *ucli.Context, fn action) (any, error) {
	req, err := clustercli.Parse(c, sh.env, 0)
	if err != nil {
		return nil, err
	}
	id := cli.Flag(c, "cluster-id")
	if id == "" {
		id = sh.clusterID
	}
	if id != "" && id != req.Client.Cluster.ID {
		return nil, cli.Trouble(fmt.Errorf("cluster %s is not configured (this client's cluster is %s)", quote(id), req.Client.Cluster.ID), "")
	}
	return fn(c, req)
}

// message is the text cloudhsm-cli prints for err, in its own words where
// they are known (docs/design.md, "cloudhsm-cli").
func message(err error) string {
	var exists *hsm.ExistsError
	var activated *hsm.AlreadyActivatedError
	switch {
	case errors.As(err, &exists):
		return "User already exists"
	case errors.As(err, &activated):
		return "Cluster has already been activated"
	}
	return err.Error()
}

// auth is who a command acts as. A single command: the environment's
// credentials (CLOUDHSM_PIN and CLOUDHSM_ROLE, or hsmkit's HSM_PIN), else
// the session file HSM_SESSION names (hsmkit's own, so a login can span
// commands), else this process's login. Interactive mode: its login.
func (sh *shell) auth() (hsm.Authenticator, error) {
	if !sh.interactive {
		if p, err := clustercli.EnvPIN(sh.env); err != nil {
			return nil, err
		} else if p != nil {
			return p, nil
		}
		if sf, err := sh.savedSession(); err != nil || sf != nil {
			return sf, err
		}
	}
	if sh.session != nil {
		return sh.session, nil
	}
	return hsm.Nobody{}, nil
}

// sessionPath is where a login is kept across commands: HSM_SESSION, in
// single-command mode only ("" keeps it in this process's memory).
func (sh *shell) sessionPath() string {
	if sh.interactive {
		return ""
	}
	return sh.env.Getenv("HSM_SESSION")
}

// savedSession is the login HSM_SESSION keeps, or nil.
func (sh *shell) savedSession() (*hsm.SessionFile, error) {
	path := sh.sessionPath()
	if path == "" {
		return nil, nil
	}
	sf, err := hsm.LoadSession(path)
	if err != nil {
		return nil, cli.Trouble(err, "")
	}
	return sf, nil
}

// notLoggedIn refuses a second login in one process.
func (sh *shell) notLoggedIn() error {
	if sh.session != nil {
		return cli.Refused(fmt.Errorf("already logged in as %s: logout first", sh.session.Username), "")
	}
	return nil
}

// loggedIn keeps a login made in this process's memory and answers it.
func (sh *shell) loggedIn(c *ucli.Context, sf *hsm.SessionFile) hsm.UserRef {
	if sf.Path == "" {
		sh.session, sh.sessionConf = sf, cli.ConfigPath(c)
	}
	return hsm.UserRef{Username: sf.Username, Role: sf.Role}
}

// password reads a password: --password, else a no-echo prompt on a
// terminal, else the next line of standard input (and, for a password
// being set, the line after it as the confirmation), as a person types
// them after the command.
func (sh *shell) password(c *ucli.Context, confirm bool) (string, error) {
	if c.IsSet("password") {
		pw := c.String("password")
		if confirm {
			return pw, cli.CheckNewPassword(pw)
		}
		return pw, nil
	}
	read := func(prompt string) (string, error) {
		if f := sh.env.Terminal(); f != nil {
			return cli.PromptPassword(sh.env, f, prompt)
		}
		line, err := cli.ReadLine(sh.in, maxLine)
		if errors.Is(err, io.EOF) {
			return "", cli.Usagef("no password given: use --password, or give it on the next line of standard input")
		}
		return line, err
	}
	pw, err := read("Enter password: ")
	if err != nil || !confirm {
		return pw, err
	}
	again, err := read("Confirm password: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", cli.Refused(errors.New("passwords do not match"), "")
	}
	return pw, cli.CheckNewPassword(pw)
}

func userAndRole(c *ucli.Context) (string, policy.Role, error) {
	name, r := c.String("username"), c.String("role")
	if name == "" || r == "" {
		return "", "", cli.Usagef("the following required arguments were not provided: --username <USERNAME> --role <ROLE>")
	}
	role, err := policy.ParseRole(r)
	if err != nil || (role != policy.Admin && role != policy.CryptoUser) {
		return "", "", cli.Usagef("invalid value %s for '--role <ROLE>' [possible values: crypto-user, admin]", quote(r))
	}
	user, err := policy.NormalizeUsername(name)
	if err != nil {
		return "", "", cli.Refused(err, "")
	}
	return user, role, nil
}

func (sh *shell) activate(c *ucli.Context, req *clustercli.Request) (any, error) {
	pw, err := sh.password(c, true)
	if err != nil {
		return nil, err
	}
	if _, err := req.Client.Activate(hsm.Targeting{}, pw); err != nil {
		return nil, err
	}
	return "Cluster activation successful", nil
}

func (sh *shell) login(c *ucli.Context, req *clustercli.Request) (any, error) {
	user, role, err := userAndRole(c)
	if err != nil {
		return nil, err
	}
	if err := sh.notLoggedIn(); err != nil {
		return nil, err
	}
	pw, err := sh.password(c, false)
	if err != nil {
		return nil, err
	}
	sf, _, err := req.Client.Login(hsm.Targeting{}, sh.sessionPath(), user, role, pw)
	if err != nil {
		return nil, err
	}
	return sh.loggedIn(c, sf), nil
}

func (sh *shell) logout(c *ucli.Context, req *clustercli.Request) (any, error) {
	sf := sh.session
	if sf == nil {
		var err error
		if sf, err = sh.savedSession(); err != nil {
			return nil, err
		}
	}
	if sf == nil {
		return nil, cli.Refused(errors.New("not logged in"), "")
	}
	if _, open, err := req.Client.Logout(sf); err != nil {
		return nil, err
	} else if len(open) > 0 {
		return nil, fmt.Errorf("logged out, but the session stays open on %s", strings.Join(open, ", "))
	}
	if sf == sh.session {
		sh.session = nil
	}
	return "Logout successful", nil
}

// endSession ends this process's in-memory login, if one is open.
func (sh *shell) endSession() error {
	if sh.session == nil {
		return nil
	}
	sf := sh.session
	sh.session = nil
	cl, err := hsm.Open(sh.sessionConf, hsm.Options{})
	if err != nil {
		return err
	}
	_, _, err = cl.Logout(sf)
	return err
}

func (sh *shell) listUsers(c *ucli.Context, req *clustercli.Request) (any, error) {
	users, warnings, err := req.Client.ListUsers(hsm.Nobody{})
	sh.env.Warn(warnings)
	if err != nil {
		return nil, err
	}
	return map[string]any{"users": users}, nil
}

// manage is create, delete and change-password: one user, a password for
// two of them, and an optional approval.
func (sh *shell) manage(c *ucli.Context, req *clustercli.Request, needPassword bool,
	op func(auth hsm.Authenticator, user string, role policy.Role, pw string, a *hsm.Approval) error) (any, error) {
	user, role, err := userAndRole(c)
	if err != nil {
		return nil, err
	}
	a, err := clustercli.Approval(c)
	if err != nil {
		return nil, err
	}
	auth, err := sh.auth()
	if err != nil {
		return nil, err
	}
	var pw string
	if needPassword {
		if pw, err = sh.password(c, true); err != nil {
			return nil, err
		}
	}
	if err := op(auth, user, role, pw, a); err != nil {
		return nil, err
	}
	return hsm.UserRef{Username: user, Role: string(role)}, nil
}

func (sh *shell) createUser(c *ucli.Context, req *clustercli.Request) (any, error) {
	return sh.manage(c, req, true, func(auth hsm.Authenticator, user string, role policy.Role, pw string, a *hsm.Approval) error {
		_, err := req.Client.CreateUser(hsm.Targeting{}, auth, user, role, pw, a)
		return err
	})
}

func (sh *shell) deleteUser(c *ucli.Context, req *clustercli.Request) (any, error) {
	return sh.manage(c, req, false, func(auth hsm.Authenticator, user string, role policy.Role, _ string, a *hsm.Approval) error {
		_, err := req.Client.DeleteUser(hsm.Targeting{}, auth, user, role, a)
		return err
	})
}

func (sh *shell) changePassword(c *ucli.Context, req *clustercli.Request) (any, error) {
	opts := hsm.PasswordOptions{DeregisterMFA: c.Bool("deregister-mfa"), DeregisterQuorum: c.Bool("deregister-quorum")}
	return sh.manage(c, req, true, func(auth hsm.Authenticator, user string, role policy.Role, pw string, a *hsm.Approval) error {
		_, err := req.Client.ChangePasswordWith(hsm.Targeting{}, auth, user, role, pw, a, opts)
		return err
	})
}

// ask prompts for a line that is no secret (a file path): the prompt on
// stderr, so that standard output stays JSON; the answer from the next
// line of input.
func (sh *shell) ask(prompt string) (string, error) {
	fmt.Fprint(sh.env.Stderr, prompt)
	line, err := cli.ReadLine(sh.in, maxLine)
	if errors.Is(err, io.EOF) {
		fmt.Fprintln(sh.env.Stderr)
		return "", cli.Usagef("no answer to %q on standard input", strings.TrimSpace(prompt))
	}
	return line, err
}

// signedToken reads the signed token file whose path the user gives, the
// unsigned file's own path when the answer is empty (cloudhsm-cli's "press
// enter if same as the unsigned token file").
func (sh *shell) signedToken(unsigned string) (hsm.MFAToken, error) {
	path, err := sh.ask("Enter signed token file path (press enter if same as the unsigned token file):")
	if err != nil {
		return hsm.MFAToken{}, err
	}
	if path == "" {
		path = unsigned
	}
	data, err := cli.ReadInput("signed token file", path)
	return hsm.MFAToken{Path: path, Data: data}, err
}

// loginMFA is login … mfa-token-sign --token FILE: the password, the
// unsigned tokens written to FILE, then the signed file read back.
func (sh *shell) loginMFA(c *ucli.Context, req *clustercli.Request) (any, error) {
	parent := c.Lineage()[1]
	user, role, err := userAndRole(parent)
	if err != nil {
		return nil, err
	}
	tokenPath := c.String("token")
	if tokenPath == "" {
		return nil, cli.Usagef("the following required arguments were not provided: --token <TOKEN>")
	}
	if err := cli.CheckOutputPath("--token", tokenPath); err != nil {
		return nil, err
	}
	if err := sh.notLoggedIn(); err != nil {
		return nil, err
	}
	pw, err := sh.password(parent, false)
	if err != nil {
		return nil, err
	}
	if _, err := req.Client.BeginMFALogin(hsm.Targeting{}, user, role, pw, tokenPath); err != nil {
		return nil, err
	}
	signed, err := sh.signedToken(tokenPath)
	if err != nil {
		return nil, err
	}
	sf, _, err := req.Client.LoginMFA(hsm.Targeting{}, sh.sessionPath(), user, role, pw, signed)
	if err != nil {
		return nil, err
	}
	return sh.loggedIn(c, sf), nil
}

// changeMFA is user change-mfa token-sign: register or rotate (--token:
// unsigned tokens written, then the signed file and the public key read
// back) or --deregister, always with the user's new password.
func (sh *shell) changeMFA(c *ucli.Context, req *clustercli.Request) (any, error) {
	user, role, err := userAndRole(c)
	if err != nil {
		return nil, err
	}
	tokenPath, deregister := c.String("token"), c.Bool("deregister")
	if (tokenPath == "") == !deregister {
		return nil, cli.Usagef("one of these arguments is required: <--token <TOKEN>|--deregister>")
	}
	a, err := clustercli.Approval(c)
	if err != nil {
		return nil, err
	}
	auth, err := sh.auth()
	if err != nil {
		return nil, err
	}
	var pw string
	if c.IsSet("change-password") {
		pw = c.String("change-password")
		err = cli.CheckNewPassword(pw)
	} else {
		pw, err = sh.password(c, true)
	}
	if err != nil {
		return nil, err
	}
	r := hsm.ChangeMFARequest{Username: user, Role: role, Password: pw, Deregister: deregister, ChangeQuorum: c.Bool("change-quorum"), Approval: a}
	if !deregister {
		if err := cli.CheckOutputPath("--token", tokenPath); err != nil {
			return nil, err
		}
		if _, err := req.Client.BeginMFARegistration(hsm.Targeting{}, auth, user, role, tokenPath); err != nil {
			return nil, err
		}
		signed, err := sh.signedToken(tokenPath)
		if err != nil {
			return nil, err
		}
		pubPath, err := sh.ask("Enter public key PEM file path:")
		if err != nil {
			return nil, err
		}
		pub, err := cli.ReadInput("public key PEM file", pubPath)
		if err != nil {
			return nil, err
		}
		r.Signed, r.PublicKeyPath, r.PublicKey = &signed, pubPath, pub
	}
	if _, err := req.Client.ChangeMFA(hsm.Targeting{}, auth, r); err != nil {
		return nil, err
	}
	return hsm.UserRef{Username: user, Role: string(role)}, nil
}

func (sh *shell) registerQuorum(c *ucli.Context, req *clustercli.Request) (any, error) {
	pubPath, tokPath := c.String("public-key"), c.String("signed-token")
	if pubPath == "" || tokPath == "" {
		return nil, cli.Usagef("the following required arguments were not provided: --public-key <PUBLIC_KEY> --signed-token <SIGNED_TOKEN>")
	}
	pub, err := cli.ReadInput("--public-key", pubPath)
	if err != nil {
		return nil, err
	}
	tok, err := cli.ReadInput("--signed-token", tokPath)
	if err != nil {
		return nil, err
	}
	auth, err := sh.auth()
	if err != nil {
		return nil, err
	}
	if _, err := req.Client.RegisterQuorumKey(hsm.Targeting{}, auth, pubPath, pub, tokPath, tok); err != nil {
		return nil, err
	}
	return whoAmI(auth), nil
}

// as runs op as the command's caller and answers data when it succeeds.
func (sh *shell) as(op func(auth hsm.Authenticator) error, data any) (any, error) {
	auth, err := sh.auth()
	if err != nil {
		return nil, err
	}
	if err := op(auth); err != nil {
		return nil, err
	}
	return data, nil
}

// policy reads the quorum policy, warning when the HSMs disagree.
func (sh *shell) policy(req *clustercli.Request) (state.Quorum, error) {
	q, warnings, err := req.Client.QuorumPolicy()
	sh.env.Warn(warnings)
	return q, err
}

// whoAmI is the logged-in user as the data of a command about oneself.
func whoAmI(auth hsm.Authenticator) hsm.UserRef {
	switch a := auth.(type) {
	case *hsm.SessionFile:
		return hsm.UserRef{Username: a.Username, Role: a.Role}
	case *hsm.PIN:
		return hsm.UserRef{Username: a.User, Role: string(a.Role)}
	}
	return hsm.UserRef{}
}

func (sh *shell) generate(c *ucli.Context, req *clustercli.Request) (any, error) {
	service, path := c.String("service"), c.String("token")
	if service == "" || path == "" {
		return nil, cli.Usagef("the following required arguments were not provided: --service <SERVICE> --token <TOKEN>")
	}
	if _, err := quorum.ParseService(service); err != nil {
		return nil, cli.Usagef("invalid value %s for '--service <SERVICE>' [possible values: user, quorum, registration]", quote(service))
	}
	if err := cli.CheckOutputPath("--token", path); err != nil {
		return nil, err
	}
	return sh.as(func(auth hsm.Authenticator) error {
		_, err := req.Client.GenerateToken(hsm.Targeting{}, auth, service, path)
		return err
	}, hsm.Written(path))
}

func (sh *shell) listTokens(c *ucli.Context, req *clustercli.Request) (any, error) {
	tokens, warnings, err := req.Client.ListTokens(hsm.Nobody{})
	sh.env.Warn(warnings)
	if err != nil {
		return nil, err
	}
	return map[string]any{"tokens": tokens}, nil
}

func (sh *shell) deleteTokens(c *ucli.Context, req *clustercli.Request) (any, error) {
	scope := c.String("scope")
	if scope != "user" && scope != "all" {
		return nil, cli.Usagef("invalid value %s for '--scope <SCOPE>' [possible values: user, all]", quote(scope))
	}
	return sh.as(func(auth hsm.Authenticator) error {
		_, err := req.Client.DeleteTokens(hsm.Targeting{}, auth, scope)
		return err
	}, "Deletion of quorum token(s) successful")
}

func (sh *shell) listValues(c *ucli.Context, req *clustercli.Request) (any, error) {
	q, err := sh.policy(req)
	if err != nil {
		return nil, err
	}
	return hsm.ValuesOf(q), nil
}

func (sh *shell) setValue(c *ucli.Context, req *clustercli.Request) (any, error) {
	svc, value := c.String("service"), c.String("value")
	if svc == "" || value == "" {
		return nil, cli.Usagef("the following required arguments were not provided: --service <SERVICE> --value <VALUE>")
	}
	if svc != hsm.ServiceUser && svc != hsm.ServiceQuorum {
		return nil, cli.Usagef("invalid value %s for '--service <SERVICE>' [possible values: user, quorum]", quote(svc))
	}
	v, err := strconv.Atoi(value)
	if err != nil {
		return nil, cli.Usagef("invalid value %s for '--value <VALUE>': want a whole number", quote(value))
	}
	a, err := clustercli.Approval(c)
	if err != nil {
		return nil, err
	}
	return sh.as(func(auth hsm.Authenticator) error {
		_, err := req.Client.SetQuorumValue(hsm.Targeting{}, auth, svc, v, a)
		return err
	}, "Set Quorum Value successful")
}

func (sh *shell) listTimeouts(c *ucli.Context, req *clustercli.Request) (any, error) {
	q, err := sh.policy(req)
	if err != nil {
		return nil, err
	}
	return hsm.TimeoutsOf(q), nil
}

func (sh *shell) setTimeout(c *ucli.Context, req *clustercli.Request) (any, error) {
	seconds := func(name string) (int, error) {
		if !c.IsSet(name) {
			return 0, nil
		}
		n, err := strconv.Atoi(c.String(name))
		if err != nil || n < 1 {
			return 0, cli.Usagef("invalid value %s for '--%s <%s>': want whole seconds", quote(c.String(name)), name, strings.ToUpper(name))
		}
		return n, nil
	}
	if !c.IsSet("generated") && !c.IsSet("approved") {
		return nil, cli.Usagef("the following required arguments were not provided: <--generated <GENERATED>|--approved <APPROVED>>")
	}
	g, err := seconds("generated")
	if err != nil {
		return nil, err
	}
	ap, err := seconds("approved")
	if err != nil {
		return nil, err
	}
	a, err := clustercli.Approval(c)
	if err != nil {
		return nil, err
	}
	return sh.as(func(auth hsm.Authenticator) error {
		_, err := req.Client.SetTimeouts(hsm.Targeting{}, auth, g, ap, a)
		return err
	}, "Set token timeout successful")
}

// runInteractive reads commands from standard input, one per line, and
// runs each under this process's one login, which ends at quit or at the
// end of the input. It exits 1 when any command failed, so a script fed
// to it under set -e stops (docs/design.md, "cloudhsm-cli").
func (sh *shell) runInteractive(c *ucli.Context) error {
	if err := cli.NoArgs(c); err != nil {
		return err
	}
	inner := &shell{env: sh.env, in: sh.in, interactive: true, clusterID: c.String("cluster-id")}
	defer func() {
		sh.failed = sh.failed || inner.failed
	}()
	term := sh.env.Terminal() != nil
	for {
		if term {
			fmt.Fprint(sh.env.Stdout, Prompt)
		}
		line, err := cli.ReadLine(inner.in, maxLine)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			inner.failed = true
			sh.env.Warnf("%v", err)
			if errors.Is(err, cli.ErrLineTooLong) {
				continue
			}
			break
		}
		words, err := splitWords(line)
		if err != nil {
			inner.failed = true
			fmt.Fprintf(sh.env.Stderr, "%s: %v\n", safetext.Escape(sh.env.Name), err)
			continue
		}
		if len(words) == 0 {
			continue
		}
		if words[0] == "quit" || words[0] == "exit" {
			break
		}
		if code := cli.Run(inner.app(), sh.env, append([]string{sh.env.Name}, words...)); code != cli.ExitOK {
			inner.failed = true
		}
	}
	if err := inner.endSession(); err != nil {
		return err
	}
	if inner.failed {
		return cli.QuietExit(cli.ExitFailed)
	}
	return nil
}

// quote shows a value from the command line as clap does, 'like this',
// escaped (safetext) so it cannot reach the terminal as a control.
func quote(s string) string { return "'" + safetext.Escape(s) + "'" }
