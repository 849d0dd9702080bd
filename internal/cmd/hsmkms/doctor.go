package hsmkms

import (
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cli/awscli"
	"github.com/hsmkit/hsmkit/internal/kms"
)

// doctorCommand is hsmkit's own subcommand: what would make the next
// connect fail, and the documented fix of each cause.
func doctorCommand() command {
	return command{"doctor", "check every cause of a failed connect before connecting",
		"hsmkit's own: checks, before a connect, every cause behind every ConnectionErrorCode on the key store's simulated cluster, or with --from on captures of a real cluster (aws cloudhsmv2 describe-clusters, cloudhsm-cli user list, CMU listUsers), and prints the documented fix of each finding. --output table prints a table for people. Exits 1 when a finding would make the connect fail.",
		"hsm-kms doctor --custom-key-store-id \"$CKS\" --output table\nhsm-kms doctor --cloud-hsm-cluster-id cluster-1a23b4cdefg --from clusters.json --from users.json --output table",
		[]ucli.Flag{storeID, str("cloud-hsm-cluster-id", "with --from: the cluster `ID` to look for in the captures"),
			&ucli.StringSliceFlag{Name: "from", Usage: "a capture `FILE` of a real cluster (repeat for several)"}},
		func(c *ucli.Context, s *kms.Service, p params) (any, error) {
			var d kms.Diagnosis
			var err error
			if files := c.StringSlice("from"); len(files) > 0 {
				var caps []kms.Capture
				for _, f := range files {
					b, err := p.read(f)
					if err != nil {
						return nil, err
					}
					caps = append(caps, kms.Capture{Name: f, Data: b})
				}
				d, err = kms.DoctorCaptures(c.String("cloud-hsm-cluster-id"), caps)
				if err != nil {
					return nil, err
				}
			} else {
				if !c.IsSet("custom-key-store-id") {
					return nil, &awscli.ParamError{Msg: "the following arguments are required: --custom-key-store-id (or --from FILE)"}
				}
				if d, err = s.Doctor(c.String("custom-key-store-id")); err != nil {
					return nil, err
				}
			}
			return diagnosis{d}, nil
		}}
}

// diagnosis renders as a table for people, JSON otherwise, and sets the
// exit code.
type diagnosis struct{ kms.Diagnosis }

func (d diagnosis) table(w io.Writer) error {
	// The cluster id may come from --cloud-hsm-cluster-id or a capture.
	cli.Linef(w, "custom key store %s (%s), cluster %s", orDash(d.CustomKeyStoreID), orDash(d.ConnectionState), orDash(d.CloudHsmClusterID))
	var rows [][]string
	for _, f := range d.Findings {
		rows = append(rows, []string{f.Status, f.Check, orDash(f.Code), f.Detail, orDash(f.Fix)})
	}
	return cli.Table(w, []string{"Status", "Check", "Code", "Finding", "Fix"}, rows)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
