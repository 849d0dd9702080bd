package hsmsim

import (
	"fmt"
	"io"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/kms"
)

// The fault switches (docs/design.md, "Fault switches and the
// ConnectionErrorCode scenarios"): what lies outside the HSMs, the
// network, the subnets, KMS itself, set by the AWS account as hsm-sim
// plays it. The engine keeps them; this is a thin front end.
func faultCommand(env cli.Env) *ucli.Command {
	names := strings.Join(hsm.FaultNames, ", ")
	return &ucli.Command{
		Name: "fault", Usage: "turn on, turn off or list the fault switches outside the HSMs (network, subnets, KMS)",
		Description: "The simulated cluster's fault switches stand for what lies outside the HSMs: " + names + ". " +
			"A key store's next connect (hsm-kms connect-custom-key-store) fails with the ConnectionErrorCode a switch names; hold-connect keeps a connect CONNECTING until it is cleared.",
		UsageText: "hsm-sim fault set network-errors\nhsm-sim fault clear network-errors\nhsm-sim fault list",
		Subcommands: []*ucli.Command{
			{Name: "set", Usage: "turn a fault switch on", ArgsUsage: "NAME",
				Description: "Turns a fault switch on (" + names + "); turning on one that is on changes nothing.",
				UsageText:   "hsm-sim fault set subnet-not-found\nhsm-sim fault set hold-connect",
				Action:      func(c *ucli.Context) error { return setFault(c, env, true) }},
			{Name: "clear", Usage: "turn a fault switch off", ArgsUsage: "NAME",
				Description: "Turns a fault switch off; clearing one that is off changes nothing.",
				UsageText:   "hsm-sim fault clear subnet-not-found",
				Action:      func(c *ucli.Context) error { return setFault(c, env, false) }},
			{Name: "list", Usage: "show every fault switch, on or off, and what it does",
				Description: "Shows every fault switch, whether it is on, and its effect on a key store's connect.",
				UsageText:   "hsm-sim fault list\nhsm-sim -o json fault list",
				Action:      func(c *ucli.Context) error { return listFaults(c, env) }},
		},
	}
}

func setFault(c *ucli.Context, env cli.Env, on bool) error {
	args := cli.ExactArgs(c, 1, "NAME")
	name := c.Args().First()
	if args == nil && !slices.Contains(hsm.FaultNames, name) {
		args = &cli.Error{Code: cli.ExitUsage, Err: fmt.Errorf("unknown fault %q", name), Hint: "faults: " + strings.Join(hsm.FaultNames, ", ")}
	}
	cl, err := open(c, env, args)
	if err != nil {
		return err
	}
	if err := cl.SetFault(name, on); err != nil {
		return err
	}
	word := "off"
	if on {
		word = "on"
	}
	data := map[string]any{"cluster-id": cl.Cluster.ID, "fault": name, "on": on}
	return cli.Emit(c, data, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "fault %s is %s in cluster %s\n", name, word, cl.Cluster.ID)
		return err
	})
}

// Fault is one switch as fault list shows it.
type Fault struct {
	Name   string `json:"name"`
	On     bool   `json:"on"`
	Effect string `json:"effect"`
}

func listFaults(c *ucli.Context, env cli.Env) error {
	cl, err := open(c, env, cli.NoArgs(c))
	if err != nil {
		return err
	}
	on, err := cl.Faults()
	if err != nil {
		return err
	}
	faults := make([]Fault, len(hsm.FaultNames))
	rows := make([][]string, len(hsm.FaultNames))
	for i, n := range hsm.FaultNames {
		faults[i] = Fault{Name: n, On: slices.Contains(on, n), Effect: kms.FaultEffect(n)}
		state := "off"
		if faults[i].On {
			state = "ON"
		}
		rows[i] = []string{n, state, faults[i].Effect}
	}
	data := map[string]any{"cluster-id": cl.Cluster.ID, "faults": faults}
	return cli.Emit(c, data, func(w io.Writer) error {
		fmt.Fprintf(w, "cluster %s\n", cl.Cluster.ID)
		return cli.Table(w, []string{"Fault", "State", "Effect"}, rows)
	})
}
