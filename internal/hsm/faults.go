package hsm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hsmkit/hsmkit/internal/policy"
)

// Faults are the simulator's switches for what lies outside the HSMs: the
// network, the subnets and the KMS service a key store's connect depends
// on (docs/design.md, "The KMS custom key store"). Each names the
// ConnectionErrorCode it causes, except FaultHoldConnect, which keeps a
// connect in CONNECTING until cleared.
const (
	FaultNetwork       = "network-errors"
	FaultSubnet        = "subnet-not-found"
	FaultFreeAddresses = "insufficient-free-addresses"
	FaultInternal      = "internal-error"
	FaultHoldConnect   = "hold-connect"
)

// FaultNames lists every fault switch, in the order hsm-sim shows them.
var FaultNames = []string{FaultNetwork, FaultSubnet, FaultFreeAddresses, FaultInternal, FaultHoldConnect}

// SetFault turns a fault switch on or off, as the AWS account.
func (c *Client) SetFault(name string, on bool) error { return c.setFault(Account{}, name, on) }

func (c *Client) setFault(auth Authenticator, name string, on bool) error {
	if !slices.Contains(FaultNames, name) {
		return fmt.Errorf("unknown fault %q (want one of %s)", name, strings.Join(FaultNames, ", "))
	}
	_, err := c.run(op{name: "set-fault", scope: scopeCluster, perm: policy.SetFault, auth: auth, write: true,
		whole: func(tx *Tx, _ Principal) error {
			has := slices.Contains(tx.Cluster.Faults, name)
			switch {
			case on && !has:
				tx.Cluster.Faults = append(tx.Cluster.Faults, name)
				slices.Sort(tx.Cluster.Faults)
			case !on && has:
				tx.Cluster.Faults = slices.DeleteFunc(tx.Cluster.Faults, func(f string) bool { return f == name })
			default:
				return nil
			}
			tx.ClusterChanged()
			return nil
		}})
	return err
}

// Faults are the switches that are on, as the AWS account sees them.
func (c *Client) Faults() ([]string, error) {
	d, err := c.DescribeCluster()
	if err != nil {
		return nil, err
	}
	return d.Faults, nil
}
