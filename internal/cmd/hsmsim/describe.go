package hsmsim

import (
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cloudhsmv2"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/state"
)

func describeCommand(env cli.Env) *ucli.Command {
	return &ucli.Command{
		Name: "describe-clusters", Usage: "print the cluster as aws cloudhsmv2 describe-clusters prints it (JSON)",
		Description: "Prints what aws cloudhsmv2 describe-clusters prints for the simulated cluster, in the AWS CLI's JSON shape: its state, certificates (ClusterCsr while UNINITIALIZED, ClusterCertificate once initialized) and HSMs (a stopped HSM is DEGRADED). Subnet, security group, VPC and ENI ids are made up from the cluster's and HSMs' ids, the same every time. The output is always JSON.",
		UsageText:   "hsm-sim describe-clusters > clusters.json\nhsm-sim describe-clusters | jq -r '.Clusters[].Certificates.ClusterCsr'",
		Action:      func(c *ucli.Context) error { return describe(c, env) },
	}
}

func describe(c *ucli.Context, env cli.Env) error {
	cl, err := open(c, env, cli.NoArgs(c))
	if err != nil {
		return err
	}
	d, err := cl.DescribeCluster()
	if err != nil {
		return err
	}
	data, err := (&cloudhsmv2.DescribeClustersOutput{Clusters: []cloudhsmv2.Cluster{awsCluster(d)}}).Marshal()
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(data)
	return err
}

// awsCluster is the cluster as DescribeClusters gives it
// (docs/design.md, "Cluster certificates and backups").
func awsCluster(d *hsm.ClusterDescription) cloudhsmv2.Cluster {
	subnet := func(az string) string { return cloudhsmv2.SimulatedID("subnet-", d.ID+"/"+az) }
	out := cloudhsmv2.Cluster{
		BackupPolicy: "DEFAULT", ClusterId: d.ID, CreateTimestamp: &cloudhsmv2.Timestamp{Time: d.Created},
		HsmType: "hsm2m.medium", Hsms: []cloudhsmv2.Hsm{}, State: d.State,
		SecurityGroup: cloudhsmv2.SimulatedID("sg-", d.ID), VpcId: cloudhsmv2.SimulatedID("vpc-", d.ID),
		SubnetMapping: map[string]string{},
	}
	if d.State == state.Uninitialized {
		out.Certificates.ClusterCsr = d.CSRPEM
	} else {
		out.Certificates.ClusterCertificate = d.CertPEM
	}
	for _, az := range d.AZs {
		out.SubnetMapping[az] = subnet(az)
	}
	for _, h := range d.HSMs {
		if m := strings.TrimSuffix(h.Model, " (simulated)"); m != "" {
			out.HsmType = m
		}
		a := cloudhsmv2.Hsm{AvailabilityZone: h.AZ, ClusterId: d.ID, EniId: cloudhsmv2.SimulatedID("eni-", h.ID), EniIp: h.IP, HsmId: h.ID,
			State: cloudhsmv2.HsmActive, StateMessage: "HSM created.", SubnetId: subnet(h.AZ)}
		if h.Status != state.Running {
			a.State, a.StateMessage = cloudhsmv2.HsmDegraded, "HSM is unreachable (hsm-sim stop); hsm-sim start brings it back."
		}
		out.SubnetMapping[h.AZ] = a.SubnetId
		out.Hsms = append(out.Hsms, a)
	}
	return out
}
