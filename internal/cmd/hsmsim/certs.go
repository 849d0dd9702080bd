package hsmsim

import (
	"fmt"
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/hsm"
)

// The cluster's certificates (docs/design.md, "Cluster certificates and
// backups"): the CSR, initialize with the customer's certificates, the
// trust anchor in use.
func certCommands(env cli.Env) []*ucli.Command {
	return []*ucli.Command{
		{
			Name: "csr", Usage: "print the cluster CSR (PEM) of an uninitialized cluster",
			Description: "Prints the certificate signing request of an UNINITIALIZED cluster (made by hsm-sim init --uninitialized), what aws cloudhsmv2 describe-clusters gives as Certificates.ClusterCsr. Sign it with your CA, then run hsm-sim initialize.",
			UsageText:   "hsm-sim csr > cluster_ClusterCsr.csr\nopenssl x509 -req -days 3652 -in cluster_ClusterCsr.csr -CA customerCA.crt -CAkey customerCA.key -CAcreateserial -out cluster_CustomerHsmCertificate.crt",
			Action: func(c *ucli.Context) error {
				cl, err := open(c, env, cli.NoArgs(c))
				if err != nil {
					return err
				}
				return emitPEM(c, cl, "csr", cl.ClusterCSR)
			},
		},
		{
			Name: "initialize", Usage: "initialize the cluster with the signed CSR and your CA certificate (the trust anchor)",
			Description: "Initializes an UNINITIALIZED cluster, as aws cloudhsmv2 initialize-cluster does: the signed certificate must carry the CSR's public key and be signed by the trust anchor, a self-signed CA certificate. A refusal names the file and changes nothing. The cluster becomes INITIALIZED; hsm-user activate then activates it.",
			UsageText:   "hsm-sim initialize --signed-cert cluster_CustomerHsmCertificate.crt --trust-anchor customerCA.crt",
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "signed-cert", Usage: "the cluster certificate `FILE` (PEM) your CA signed"},
				&ucli.StringFlag{Name: "trust-anchor", Usage: "your CA's certificate `FILE` (PEM), the trust anchor"},
			},
			Action: func(c *ucli.Context) error { return initialize(c, env) },
		},
		{
			Name: "trust-anchor", Usage: "print the trust anchor the cluster was initialized with (PEM)",
			Description: "Prints the trust anchor in use: the CA certificate given to initialize (or made by the quick path of hsm-sim init), as one PEM block. It is the file an AWS KMS custom key store takes as its trust anchor certificate.",
			UsageText:   "hsm-sim trust-anchor > customerCA.crt",
			Action: func(c *ucli.Context) error {
				cl, err := open(c, env, cli.NoArgs(c))
				if err != nil {
					return err
				}
				return emitPEM(c, cl, "trust-anchor", cl.TrustAnchor)
			},
		},
	}
}

// emitPEM prints a PEM as it is, or as {"cluster-id", key} with -o json.
func emitPEM(c *ucli.Context, cl *hsm.Client, key string, get func() (string, error)) error {
	p, err := get()
	if err != nil {
		return err
	}
	data := map[string]any{"cluster-id": cl.Cluster.ID, key: p}
	return cli.Emit(c, data, func(w io.Writer) error {
		_, err := io.WriteString(w, p)
		return err
	})
}

func initialize(c *ucli.Context, env cli.Env) error {
	certPath, anchorPath := c.String("signed-cert"), c.String("trust-anchor")
	args := cli.NoArgs(c)
	if args == nil && (certPath == "" || anchorPath == "") {
		args = cli.Usagef("initialize needs --signed-cert FILE and --trust-anchor FILE")
	}
	cl, err := open(c, env, args)
	if err != nil {
		return err
	}
	certData, err := cli.ReadInput("--signed-cert", certPath)
	if err != nil {
		return err
	}
	anchorData, err := cli.ReadInput("--trust-anchor", anchorPath)
	if err != nil {
		return err
	}
	if err := cl.Initialize("--signed-cert "+certPath, certData, "--trust-anchor "+anchorPath, anchorData); err != nil {
		return err
	}
	msg := fmt.Sprintf("cluster %s is INITIALIZED; next: hsm-user activate", cl.Cluster.ID)
	return cli.Emit(c, map[string]any{"cluster-id": cl.Cluster.ID, "state": "INITIALIZED"}, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, msg)
		return err
	})
}
