// Package hsmsync is the hsm-sync command: it compares the user tables of
// every HSM of a cluster, explains what differs, decides what is right,
// prints the repair in the operator's own tool's language, and applies it
// to the simulated cluster. It also reads captures from real clusters.
package hsmsync

import (
	"errors"
	"io"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cli/clustercli"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/syncdiff"
)

// Main runs hsm-sync and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := cli.NewEnv(args, stdin, stdout, stderr)
	from := &ucli.StringSliceFlag{Name: "from", Usage: "read captured `FILE`s instead of the simulated state (CMU listUsers output, or cloudhsm-cli user list JSON, one per HSM); --from a b or --from a --from b"}
	app := &ucli.App{
		Usage:       "find, explain and repair user and key drift between the HSMs of a cluster",
		Description: "Finds, explains and repairs drift between the users and the token keys of a cluster's HSMs: diff reports it, plan prints the user repairs in three dialects, apply makes them (keys by masked-object copy). Also reads captures from real clusters (--from).",
		UsageText:   "hsm-sync diff\nhsm-sync plan --dialect cmu\nhsm-sync apply",
		Commands: []*ucli.Command{
			{Name: "diff", Description: "Compares the users and the quorum policy of every HSM of the cluster (or of captures, --from) and says, for each differing user, which version is authoritative and why. Exit 0 in sync, 1 drift found, 2 or more trouble, as diff(1).", UsageText: "hsm-sync diff\nhsm-sync -o json diff\nhsm-sync diff --from hsm-a.json hsm-b.json", Usage: "compare the users of every HSM; exit 0 in sync, 1 drift found, 2+ trouble",
				Flags:  []ucli.Flag{clustercli.SessionFlag(), from},
				Action: func(c *ucli.Context) error { return diff(c, env) }},
			{Name: "plan", Description: "Prints the repair as a script in a dialect: hsm-user (default), cloudhsm-cli, or CloudHSM's CMU (server N, createUser, syncUser). Unknown passwords are clearly marked placeholders.", UsageText: "hsm-sync plan --dialect cmu\nhsm-sync plan --dialect cmu --from listUsers.txt", Usage: "print the repair as a script: --dialect hsm-user, cloudhsm-cli or cmu",
				Flags: []ucli.Flag{clustercli.SessionFlag(), from,
					&ucli.StringFlag{Name: "dialect", Value: "hsm-user", Usage: "hsm-user, cloudhsm-cli or cmu"}},
				Action: func(c *ucli.Context) error { return plan(c, env) }},
			{Name: "apply", Description: "Repairs the simulated cluster with an admin's session: copies each authoritative user record as a masked object (no password needed) and sets the strictest quorum policy everywhere. Never grants what the strictest policy would refuse; undecidable users must be --skip'ped.", UsageText: "hsm-sync apply\nhsm-sync apply --skip erin --approval repair.token", Usage: "repair the simulated cluster: copy each authoritative user record (no password needed)",
				Flags: []ucli.Flag{clustercli.SessionFlag(),
					&ucli.StringSliceFlag{Name: "skip", Usage: "leave this `USER` alone (for users the plan cannot decide)"},
					&ucli.BoolFlag{Name: "keep-config", Usage: "do not refresh a stale client config"},
					&ucli.StringFlag{Name: "approval", Usage: "a user-service quorum token `FILE` approving the repair itself, so it may grant what it otherwise refuses"}},
				Action: func(c *ucli.Context) error { return apply(c, env) }},
			{Name: "config", Description: "Checks (--check, exit 1 on a difference) or rewrites (--refresh) the client config's HSM list against the cluster's HSMs, keeping the rest of the file.", UsageText: "hsm-sync config --check\nhsm-sync config --refresh", Usage: "check (--check) or fix (--refresh) a client config that misses HSMs of the cluster",
				Flags: []ucli.Flag{
					&ucli.BoolFlag{Name: "check", Usage: "exit 1 if the config lacks HSMs of the cluster or lists HSMs it has not"},
					&ucli.BoolFlag{Name: "refresh", Usage: "rewrite the config's HSM list, keeping the rest of the file"}},
				Action: func(c *ucli.Context) error { return configCmd(c, env) }},
		},
	}
	return cli.Run(app, env, args)
}

// driftFound is diff's exit 1: a finding the output already shows.
var driftFound = cli.QuietExit(cli.ExitFailed)

// report builds the report from captures (--from) or the simulated state.
func report(c *ucli.Context, env cli.Env) (syncdiff.Report, error) {
	// "--from FILE...": after --from, the arguments are more captures, so
	// both --from a --from b and --from a b read two.
	files := c.StringSlice("from")
	if len(files) > 0 {
		if err := cli.NoStrayFlags(c); err != nil {
			return syncdiff.Report{}, err
		}
		files = append(files, c.Args().Slice()...)
		if _, err := cli.Output(c); err != nil {
			return syncdiff.Report{}, err
		}
		return fromFiles(files)
	}
	req, err := clustercli.Parse(c, env, clustercli.Acting)
	if err != nil {
		return syncdiff.Report{}, err
	}
	return req.Client.SyncStatus(req.Auth)
}

func fromFiles(files []string) (syncdiff.Report, error) {
	var snaps []syncdiff.Snapshot
	for _, f := range files {
		data, err := cli.ReadInput("--from", f)
		if err != nil {
			return syncdiff.Report{}, cli.Trouble(err, "")
		}
		s, err := syncdiff.Import(f, data)
		if err != nil {
			return syncdiff.Report{}, cli.Trouble(err, "")
		}
		snaps = append(snaps, s)
	}
	s := snaps[0]
	if len(snaps) > 1 {
		var err error
		if s, err = syncdiff.Combine(snaps...); err != nil {
			return syncdiff.Report{}, cli.Trouble(err, "")
		}
	}
	return syncdiff.Diff(s), nil
}

func diff(c *ucli.Context, env cli.Env) error {
	r, err := report(c, env)
	if err != nil {
		return troubleCode(err)
	}
	if err := cli.Emit(c, r.JSON(), func(w io.Writer) error { return writeReport(w, r) }); err != nil {
		return err
	}
	if !r.InSync() {
		return driftFound
	}
	return nil
}

// troubleCode keeps diff's exit codes as diff(1)'s: anything that is not
// a finding is 2 or more.
func troubleCode(err error) error {
	if cli.ExitCode(err) < 2 {
		return &cli.Error{Code: cli.ExitTrouble, Err: err, Hint: cli.HintOf(err)}
	}
	return err
}

func writeReport(w io.Writer, r syncdiff.Report) error {
	if sc := r.StaleConfig; sc.Stale() {
		if len(sc.Missing) > 0 {
			cli.Linef(w, "stale client config: it does not list %s (hsm-sync config --refresh)", strings.Join(sc.Missing, ", "))
		}
		if len(sc.Unknown) > 0 {
			cli.Linef(w, "stale client config: it lists %s, which the cluster has not", strings.Join(sc.Unknown, ", "))
		}
	}
	for _, id := range r.Unreachable {
		cli.Linef(w, "unreachable: %s (its users are unknown; nothing is planned for it)", id)
	}
	for _, n := range r.Notes {
		cli.Linef(w, "note: %s", n)
	}
	if d := r.Policy; d != nil {
		for i, id := range d.HSMs {
			cli.Linef(w, "quorum policy differs: %s has %s; the strictest elsewhere is %s (hsm-sync apply sets it)", id, d.Has[i], d.Want)
		}
	}
	if err := writeUsers(w, r); err != nil {
		return err
	}
	return writeKeys(w, r)
}

func writeUsers(w io.Writer, r syncdiff.Report) error {
	if r.UsersInSync() {
		if n := len(r.Unreachable); n > 0 {
			// Only the reachable HSMs were compared.
			cli.Linef(w, "users in sync on the %d reachable HSM(s) of %d", len(r.HSMs)-n, len(r.HSMs))
			return nil
		}
		cli.Linef(w, "users in sync on %d HSM(s)", len(r.HSMs))
		return nil
	}
	header, rows := r.Matrix()
	if err := cli.Table(w, header, rows); err != nil {
		return err
	}
	for _, u := range r.Users {
		cli.Linef(w, "%s: %s: %s", u.Name, u.Authority.Decision, u.Authority.Reason)
	}
	return nil
}

// writeKeys prints each reachable HSM's key hash (CMU findAllKeys's
// "Key Hash"), then the keys that differ.
func writeKeys(w io.Writer, r syncdiff.Report) error {
	if !r.KeysKnown {
		return nil
	}
	if !slices.ContainsFunc(r.KeyHashes, func(h syncdiff.KeyHash) bool { return h.Keys > 0 }) {
		cli.Linef(w, "no token keys on the %d reachable HSM(s)", len(r.KeyHashes))
		return nil
	}
	for _, h := range r.KeyHashes {
		cli.Linef(w, "key hash %s: %d token key(s) %s", h.HSM, h.Keys, h.Hash)
	}
	if r.KeysInSync() {
		cli.Linef(w, "keys in sync on %d reachable HSM(s)", len(r.KeyHashes))
		return nil
	}
	header, rows := r.KeyMatrix()
	if err := cli.Table(w, header, rows); err != nil {
		return err
	}
	for _, k := range r.Keys {
		cli.Linef(w, "%s: %s: %s", syncdiff.KeyRefString(k.Ref), k.Authority.Decision, k.Authority.Reason)
	}
	return nil
}

func plan(c *ucli.Context, env cli.Env) error {
	dialect := c.String("dialect")
	if !slices.Contains(syncdiff.Dialects(), dialect) {
		return cli.Usagef("--dialect %q: want one of %s", dialect, strings.Join(syncdiff.Dialects(), ", "))
	}
	r, err := report(c, env)
	if err != nil {
		return err
	}
	if !cli.JSONMode(c) {
		return cli.OneWrite(c.App.Writer, func(w io.Writer) error { return syncdiff.WritePlan(w, r.Plan(), dialect) })
	}
	data, err := r.Plan().JSON(dialect)
	if err != nil {
		return err
	}
	return cli.WriteJSON(c.App.Writer, 0, data)
}

func apply(c *ucli.Context, env cli.Env) error {
	req, err := clustercli.Parse(c, env, clustercli.Mutating)
	if err != nil {
		return err
	}
	cl := req.Client
	// Usernames are case-insensitive: --skip Erin skips erin.
	var skip []string
	for _, u := range c.StringSlice("skip") {
		n, err := policy.NormalizeUsername(u)
		if err != nil {
			return cli.Usagef("--skip %q: %v", u, err)
		}
		skip = append(skip, n)
	}
	approval, err := clustercli.Approval(c)
	if err != nil {
		return err
	}
	r, p, res, err := cl.RepairApproved(req.Auth, skip, approval)
	var partial *hsm.PartialError
	if errors.As(err, &partial) {
		clustercli.PrintOutcomes(env.Stderr, env.Name, res)
	}
	if err != nil {
		return err
	}
	var refreshed []string
	if sc := r.StaleConfig; sc.Stale() && !c.Bool("keep-config") {
		missing, unknown, err := cl.RefreshConfig()
		if err != nil {
			return cli.Trouble(err, "")
		}
		refreshed = append(missing, unknown...)
	}
	type applied struct {
		Repairs         int      `json:"repairs"`
		HSMs            []string `json:"hsms"`
		ConfigRefreshed []string `json:"config-refreshed"`
		Unreachable     []string `json:"unreachable"`
	}
	out := applied{Repairs: len(p.Actions) + len(p.KeyActions), HSMs: res.OK(), ConfigRefreshed: refreshed, Unreachable: r.Unreachable}
	if out.Unreachable == nil {
		out.Unreachable = []string{}
	}
	if out.HSMs == nil {
		out.HSMs = []string{}
	}
	if out.ConfigRefreshed == nil {
		out.ConfigRefreshed = []string{}
	}
	if err := req.Emit(out, func(w io.Writer) error {
		for _, a := range p.Actions {
			if slices.Contains(skip, a.User) {
				continue
			}
			if a.Kind == syncdiff.ActionCopy {
				cli.Linef(w, "copied %s (%s) from %s to %s", a.User, a.Role, a.Src.ID, a.Dst.ID)
			} else {
				cli.Linef(w, "deleted %s from %s", a.User, a.Dst.ID)
			}
		}
		if d := p.Policy; d != nil {
			for _, id := range d.HSMs {
				cli.Linef(w, "set the quorum policy of %s to %s", id, d.Want)
			}
		}
		for _, a := range p.KeyActions {
			if a.Kind == syncdiff.ActionCopy {
				cli.Linef(w, "copied key %s from %s to %s", syncdiff.KeyRefString(a.Ref), a.Src.ID, a.Dst.ID)
			} else {
				cli.Linef(w, "deleted key %s from %s", syncdiff.KeyRefString(a.Ref), a.Dst.ID)
			}
		}
		for _, s := range p.Skipped {
			cli.Linef(w, "skipped %s: %s", s.User, s.Reason)
		}
		for _, s := range p.KeySkipped {
			cli.Linef(w, "skipped key %s: %s", syncdiff.KeyRefString(s.Ref), s.Reason)
		}
		if len(refreshed) > 0 {
			cli.Linef(w, "refreshed the client config %s: %s", cl.Config.Path, strings.Join(refreshed, ", "))
		}
		for _, id := range r.Unreachable {
			cli.Linef(w, "not repaired: %s is unreachable, so its users are unknown; run hsm-sync apply again when it is back", id)
		}
		if len(p.Actions)+len(p.KeyActions)+len(p.KeySkipped) == 0 && p.Policy == nil && len(refreshed) == 0 && len(r.Unreachable) == 0 {
			cli.Linef(w, "nothing to repair")
		}
		return nil
	}); err != nil {
		return err
	}
	if len(r.Unreachable) > 0 || len(p.KeySkipped) > 0 {
		// The repair is incomplete: hsm-sync diff cannot exit 0 yet.
		return cli.QuietExit(cli.ExitFailed)
	}
	return nil
}

func configCmd(c *ucli.Context, env cli.Env) error {
	// The arguments first, then which of --check and --refresh, then the
	// rest, as the usage errors have always come.
	if err := cli.NoArgs(c); err != nil {
		return err
	}
	if c.Bool("check") == c.Bool("refresh") {
		return cli.Usagef("config needs exactly one of --check or --refresh")
	}
	req, err := clustercli.Parse(c, env, 0)
	if err != nil {
		return err
	}
	cl := req.Client
	var missing, unknown []string
	if c.Bool("refresh") {
		missing, unknown, err = cl.RefreshConfig()
	} else {
		missing, unknown, err = cl.ConfigDrift()
	}
	if err != nil {
		return err
	}
	if missing == nil {
		missing = []string{}
	}
	if unknown == nil {
		unknown = []string{}
	}
	stale := len(missing)+len(unknown) > 0
	data := map[string]any{"config": cl.Config.Path, "missing": missing, "unknown": unknown, "stale": stale && c.Bool("check"), "refreshed": stale && c.Bool("refresh")}
	if err := req.Emit(data, func(w io.Writer) error {
		switch {
		case !stale:
			cli.Linef(w, "%s lists every HSM of cluster %s", cl.Config.Path, cl.Cluster.ID)
		case c.Bool("refresh"):
			cli.Linef(w, "refreshed %s: added %v, removed %v", cl.Config.Path, missing, unknown)
		default:
			cli.Linef(w, "%s is stale: missing %v, unknown %v (fix: hsm-sync config --refresh)", cl.Config.Path, missing, unknown)
		}
		return nil
	}); err != nil {
		return err
	}
	if stale && c.Bool("check") {
		return driftFound
	}
	return nil
}
