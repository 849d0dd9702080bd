// Package hsmsim is the hsm-sim command: it creates and hosts a simulated
// cluster's state. HSMs join (cloned from a peer), leave, go unreachable,
// come back, and are zeroized; the cluster's clock is set here too, as it
// is the AWS side's and not a client's.
package hsmsim

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cli/clustercli"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/simclock"
	"github.com/hsmkit/hsmkit/internal/state"
)

// Main runs hsm-sim and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := cli.NewEnv(args, stdin, stdout, stderr)
	app := &ucli.App{
		Usage:       "create and run a simulated CloudHSM cluster in a state directory",
		Description: "Plays the AWS account that owns a simulated CloudHSM cluster kept in a state directory: creates the cluster, adds, removes, stops, starts and zeroizes HSMs, sets the cluster's clock and fault switches, and dumps the records. It holds no HSM user.",
		UsageText:   "hsm-sim init --state ./state --hsms 2\nhsm-sim list",
		Commands: []*ucli.Command{
			{
				Name: "init", Description: "Creates a cluster's state directory (0700) and writes the client config (-c) listing its HSMs. The first HSM holds the unactivated admin (password \"password\") and app_user; the others are clones. The cluster is INITIALIZED with a CA of the simulator's own (hsm-sim trust-anchor prints it), or, with --uninitialized, left UNINITIALIZED with a CSR for your CA (hsm-sim csr, hsm-sim initialize). With --from-backup the HSMs hold the backup's users, keys, quorum policy and certificates instead, under a new cluster id. Refuses to overwrite an existing state or config.", UsageText: "hsm-sim init --state ./state --hsms 2 --azs us-east-1a,us-east-1b\nhsm-sim init --state st --hsms 3 --seed 1 --kdf test --clock 2026-11-22T10:00:00Z\nhsm-sim init --state st --uninitialized\nhsm-sim init --from-backup backup.json --state st2 -c restored.yaml --hsms 2",
				Usage: "create a cluster and write the client config listing its HSMs",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "state", Usage: "state `DIR` to create"},
					&ucli.IntFlag{Name: "hsms", Value: 1, Usage: "number of HSMs (1-28)"},
					&ucli.StringFlag{Name: "azs", Value: "us-east-1a,us-east-1b,us-east-1c", Usage: "availability zones, comma-separated"},
					&ucli.StringFlag{Name: "cluster-id", Usage: "cluster `ID` (default: random, like cluster-abc123)"},
					&ucli.StringFlag{Name: "seed", Usage: "make ids and random values reproducible from this integer"},
					&ucli.StringFlag{Name: "kdf", Value: "default", Usage: "password hashing cost: default, test (cheap, for tests), or t=N,m=KIB,p=N"},
					&ucli.StringFlag{Name: "clock", Usage: "fix the cluster's clock at `TIME` (RFC 3339, such as " + simclock.Example + "; default: the real clock)"},
					&ucli.StringFlag{Name: "from-backup", Usage: "make the cluster from this backup `FILE` (hsm-sim backup): a new id, the backup's users, keys, policy and certificates"},
					&ucli.BoolFlag{Name: "uninitialized", Usage: "leave the cluster UNINITIALIZED with its CSR (hsm-sim csr, hsm-sim initialize) instead of signing it with a CA of its own"},
					&ucli.StringFlag{Name: "profile", Value: "cloudhsm", Usage: "role `PROFILE`: cloudhsm, or luna (Thales Luna 7: each HSM is an appliance member with LunaSH users)"},
				},
				Action: func(c *ucli.Context) error { return initCluster(c, env) },
			},
			{
				Name: "add-hsm", Description: "Adds an HSM, cloned from an active peer, and prints its id. The client config is left as it is, as a real client's config does not learn of a new HSM (hsm-sync config --refresh adds it).", UsageText: "id=$(hsm-sim add-hsm --az us-east-1c)", Usage: "add an HSM cloned from an active peer; prints its id",
				Flags:  []ucli.Flag{&ucli.StringFlag{Name: "az", Usage: "availability `ZONE` (default: the next in turn)"}},
				Action: func(c *ucli.Context) error { return addHSM(c, env) },
			},
			{
				Name: "join", Description: "Adds an HSM that brings its own records: HSM ID of another cluster's state (--from-state), such as a Luna appliance with its own users and custom roles. The cluster is the authority: the records the profile keeps the same on every member (Luna's appliance users and roles) are the cluster's, and the member's own are overwritten (each one named on stderr); its HSM's own roles stay. Prints the new HSM's id.", UsageText: "id=$(hsm-sim join --from-state ../other/st --member hsm-abc123)",
				Usage: "add an HSM of another cluster's state; the cluster's users and roles overwrite its own",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "from-state", Usage: "the other cluster's state `DIR`"},
					&ucli.StringFlag{Name: "member", Usage: "the `ID` of its HSM that joins"},
					&ucli.StringFlag{Name: "az", Usage: "availability `ZONE` (default: the next in turn)"},
				},
				Action: func(c *ucli.Context) error { return join(c, env) },
			},
			{Name: "remove-hsm", Description: "Removes an HSM and its database from the cluster.", UsageText: "hsm-sim remove-hsm hsm-abc123", Usage: "remove an HSM from the cluster", ArgsUsage: "ID", Action: withID(env, func(cl *hsm.Client, id string) (string, error) {
				return "removed " + id, cl.RemoveHSM(id)
			})},
			{Name: "stop", Description: "Makes an HSM unreachable, as a network partition or an outage would: commands that need it refuse, or skip it with --allow-partial.", UsageText: "hsm-sim stop \"$id\"", Usage: "make an HSM unreachable", ArgsUsage: "ID", Action: withID(env, func(cl *hsm.Client, id string) (string, error) {
				return "stopped " + id, cl.SetReachable(id, false)
			})},
			{Name: "start", Description: "Makes a stopped HSM reachable again, with the records it had.", UsageText: "hsm-sim start \"$id\"", Usage: "make a stopped HSM reachable again", ArgsUsage: "ID", Action: withID(env, func(cl *hsm.Client, id string) (string, error) {
				return "started " + id, cl.SetReachable(id, true)
			})},
			{Name: "zeroize", Description: "Destroys an HSM's users, tokens and data; only app_user and the default quorum policy remain. Open to everyone, as in CloudHSM.", UsageText: "hsm-sim zeroize \"$id\"", Usage: "destroy an HSM's users and data (only app_user remains)", ArgsUsage: "ID", Action: withID(env, func(cl *hsm.Client, id string) (string, error) {
				return "zeroized " + id, cl.Zeroize(hsm.Nobody{}, id)
			})},
			{Name: "list", Description: "Shows each HSM's basic info: id, availability zone, IP, serial, model, firmware, state, users, and whether the client config lists it.", UsageText: "hsm-sim list\nhsm-sim -o json list", Usage: "show the cluster's HSMs (basic cluster info)", Action: func(c *ucli.Context) error { return list(c, env) }},
			{
				Name: "clock", Description: "The cluster's clock: every command of the cluster takes its time from it. A fixed clock stands still until set or advanced, so scripts and golden files are reproducible.", UsageText: "hsm-sim clock show\nhsm-sim clock advance 601s",
				Usage: "show or set the cluster's clock, the time every command of the cluster uses",
				Subcommands: []*ucli.Command{
					{Name: "show", Description: "Shows the clock's mode (real or fixed) and its time.", UsageText: "hsm-sim clock show", Usage: "show the clock's mode and time", Action: clockCmd(env, "", func(cl *hsm.Client, _ string) (simclock.Clock, error) {
						return cl.ClusterClock()
					})},
					{Name: "set", Description: "Fixes the clock at a time (strict RFC 3339 with a zone), backwards too.", UsageText: "hsm-sim clock set 2026-11-22T10:00:00Z", Usage: "fix the clock at TIME (RFC 3339, such as " + simclock.Example + "; backwards too)", ArgsUsage: "TIME", Action: clockCmd(env, "TIME", func(cl *hsm.Client, arg string) (simclock.Clock, error) {
						at, err := simclock.Parse(arg)
						if err != nil {
							return simclock.Clock{}, cli.Usagef("clock set %v", err)
						}
						return cl.SetClock(simclock.Fixed, at)
					})},
					{Name: "advance", Description: "Moves a fixed clock forward by a Go duration (at most 10 years); a real clock is refused.", UsageText: "hsm-sim clock advance 10m", Usage: "move a fixed clock forward by DURATION (such as 90s, 10m, 48h)", ArgsUsage: "DURATION", Action: clockCmd(env, "DURATION", func(cl *hsm.Client, arg string) (simclock.Clock, error) {
						d, err := simclock.ParseAdvance(arg)
						if err != nil {
							return simclock.Clock{}, cli.Usagef("clock advance %v", err)
						}
						return cl.AdvanceClock(d)
					})},
					{Name: "real", Description: "Runs the clock on the wall clock again.", UsageText: "hsm-sim clock real", Usage: "run the clock on the wall clock again", Action: clockCmd(env, "", func(cl *hsm.Client, _ string) (simclock.Clock, error) {
						return cl.SetClock(simclock.Real, time.Time{})
					})},
				},
			},
			faultCommand(env),
			dumpCommand(env),
			migrateCommand(env),
		},
	}
	app.Commands = append(app.Commands, certCommands(env)...)
	app.Commands = append(app.Commands, describeCommand(env))
	app.Commands = append(app.Commands, backupCommands(env)...)
	return cli.Run(app, env, args)
}

func initCluster(c *ucli.Context, env cli.Env) error {
	if err := cli.NoArgs(c); err != nil {
		return err
	}
	if _, err := cli.Output(c); err != nil {
		return err
	}
	o := hsm.InitOptions{StateDir: c.String("state"), ConfigPath: cli.ConfigPath(c), HSMs: c.Int("hsms"), ClusterID: c.String("cluster-id"),
		Uninitialized: c.Bool("uninitialized"), Profile: c.String("profile")}
	if o.StateDir == "" {
		return cli.Usagef("init needs --state DIR")
	}
	for _, az := range strings.Split(c.String("azs"), ",") {
		if az = strings.TrimSpace(az); az != "" {
			o.AZs = append(o.AZs, az)
		}
	}
	if s := c.String("seed"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return cli.Usagef("--seed %q: want an integer", s)
		}
		o.Seed = &n
	}
	table, err := policy.ByName(o.Profile)
	if err != nil {
		return cli.Usagef("--profile: %v", err)
	}
	kdf, err := hsm.ParseKDF(c.String("kdf"))
	if err != nil {
		return cli.Usagef("%v", err)
	}
	o.KDF = kdf
	if p := c.String("from-backup"); p != "" {
		if c.IsSet("kdf") {
			return cli.Usagef("--kdf and --from-backup do not go together: the backup's password hashes keep their cost")
		}
		if o.FromBackup, err = readBackup(p); err != nil {
			return err
		}
	}
	if c.IsSet("clock") {
		at, err := simclock.Parse(c.String("clock"))
		if err != nil {
			return cli.Usagef("--clock %v", err)
		}
		o.Clock = &simclock.Clock{Mode: simclock.Fixed, At: at}
	}
	cfg, cl, err := hsm.Init(o)
	if err != nil {
		return cli.Trouble(err, "")
	}
	ids := make([]string, len(cl.HSMs))
	for i, h := range cl.HSMs {
		ids[i] = h.ID
	}
	data := map[string]any{"cluster-id": cl.ID, "config": cfg.Path, "state": o.StateDir, "hsms": ids}
	return cli.Emit(c, data, func(w io.Writer) error {
		next := table.FirstStep
		switch cl.State {
		case state.Uninitialized:
			next = "hsm-sim csr, sign it with your CA, hsm-sim initialize"
		case state.Active:
			next = "hsm-user login (the backup's users and passwords)"
		}
		_, err := fmt.Fprintf(w, "created cluster %s with %d HSM(s): %s\nstate: %s\nconfig: %s\nnext: %s\n",
			cl.ID, len(ids), strings.Join(ids, ", "), o.StateDir, cfg.Path, next)
		return err
	})
}

func addHSM(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, 0)
	if err != nil {
		return err
	}
	info, err := req.Client.AddHSM(c.String("az"))
	if err != nil {
		return err
	}
	// The id alone on stdout, so id=$(hsm-sim add-hsm) works.
	return req.Emit(info, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, info.ID)
		return err
	})
}

func join(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, 0)
	if err != nil {
		return err
	}
	if c.String("from-state") == "" || c.String("member") == "" {
		return cli.Usagef("join needs --from-state DIR and --member ID")
	}
	member, err := req.Client.LoadMember(c.String("from-state"), c.String("member"))
	if err != nil {
		return err
	}
	info, overwritten, err := req.Client.JoinMember(c.String("az"), member)
	if err != nil {
		return err
	}
	for _, o := range overwritten {
		env.Warnf("the cluster's users and roles are the authority: the member's %s", o)
	}
	return req.Emit(map[string]any{"hsm": info, "overwritten": overwritten}, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, info.ID)
		return err
	})
}

// open starts a command on the cluster once its arguments passed their
// check (argsErr): a valid output mode, then the client.
func open(c *ucli.Context, env cli.Env, argsErr error) (*hsm.Client, error) {
	if argsErr != nil {
		return nil, argsErr
	}
	if _, err := cli.Output(c); err != nil {
		return nil, err
	}
	return clustercli.OpenClient(c, env)
}

func withID(env cli.Env, fn func(cl *hsm.Client, id string) (string, error)) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		cl, err := open(c, env, cli.ExactArgs(c, 1, "ID"))
		if err != nil {
			return err
		}
		msg, err := fn(cl, c.Args().First())
		if err != nil {
			return err
		}
		return cli.Emit(c, msg, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, msg)
			return err
		})
	}
}

func list(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, 0)
	if err != nil {
		return err
	}
	cl := req.Client
	d, err := cl.DescribeCluster()
	if err != nil {
		return err
	}
	hsms, err := cl.ListHSMs(hsm.Nobody{})
	if err != nil {
		return err
	}
	data := map[string]any{"cluster-id": cl.Cluster.ID, "cluster-state": d.State, "hsms": hsms}
	return req.Emit(data, func(w io.Writer) error {
		rows := make([][]string, len(hsms))
		for i, h := range hsms {
			listed := "yes"
			if !h.Listed {
				listed = "NO"
			}
			rows[i] = []string{h.ID, h.AZ, h.IP, h.Serial, h.Model, h.Firmware, h.Status, strconv.Itoa(h.Users), listed}
		}
		fmt.Fprintf(w, "cluster %s (%s)\n", cl.Cluster.ID, d.State)
		return cli.Table(w, []string{"HSM", "AZ", "IP", "Serial", "Model", "Firmware", "State", "Users", "In config"}, rows)
	})
}

// clockCmd runs a clock subcommand taking the one argument named arg (none
// if "") and prints the clock as it then is.
func clockCmd(env cli.Env, arg string, fn func(cl *hsm.Client, arg string) (simclock.Clock, error)) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		args := cli.NoArgs(c)
		if arg != "" {
			args = cli.ExactArgs(c, 1, arg)
		}
		cl, err := open(c, env, args)
		if err != nil {
			return err
		}
		clock, err := fn(cl, c.Args().First())
		if err != nil {
			return err
		}
		// A real clock shows the wall time of this moment.
		now := clock.Now().Format(time.RFC3339Nano)
		data := map[string]any{"cluster-id": cl.Cluster.ID, "mode": clock.Mode, "time": now}
		return cli.Emit(c, data, func(w io.Writer) error {
			if c.Command.Name != "show" {
				_, err := fmt.Fprintf(w, "clock of cluster %s: %s, %s\n", cl.Cluster.ID, clock.Mode, now)
				return err
			}
			fmt.Fprintf(w, "cluster %s\n", cl.Cluster.ID)
			return cli.Table(w, []string{"Clock", "Time"}, [][]string{{clock.Mode, now}})
		})
	}
}
