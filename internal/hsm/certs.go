package hsm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// The cluster's certificates and life cycle (docs/design.md, "Cluster
// certificates and backups"): UNINITIALIZED with a CSR, INITIALIZED once
// a certificate signed by the customer's CA and that CA (the trust
// anchor) are given, ACTIVE once the unactivated admin set its password.

// ClusterDescription is what cloudhsm:DescribeClusters tells the AWS account.
type ClusterDescription struct {
	ID             string
	State          string // "UNINITIALIZED", "INITIALIZED" or "ACTIVE"
	TrustAnchorPEM string // "" until initialized
	// CertificateFingerprint is the hex SHA-256 of the cluster certificate's DER:
	// clusters that share a backup history share it. "" until initialized.
	CertificateFingerprint string
	HSMs                   []state.HSMInfo // with AZ, Status (running/stopped)

	// The rest of the record, for describe-clusters.
	CSRPEM  string // the cluster CSR, "" once initialized from a backup
	CertPEM string // the cluster certificate, "" until initialized
	Created string // RFC 3339
	AZs     []string
}

// DescribeCluster is the AWS account's view of the cluster.
func (c *Client) DescribeCluster() (*ClusterDescription, error) { return c.describeCluster(Account{}) }

func (c *Client) describeCluster(auth Authenticator) (*ClusterDescription, error) {
	var d *ClusterDescription
	_, err := c.run(op{name: "describe-cluster", scope: scopeCluster, perm: policy.ClusterInfo, auth: auth,
		whole: func(tx *Tx, _ Principal) error {
			cl := tx.Cluster
			st, err := clusterState(tx)
			if err != nil {
				return err
			}
			d = &ClusterDescription{ID: cl.ID, State: st, TrustAnchorPEM: cl.TrustAnchor, HSMs: slices.Clone(cl.HSMs),
				CSRPEM: cl.CSR, CertPEM: cl.Cert, Created: cl.Created.UTC().Format("2006-01-02T15:04:05.000Z07:00"), AZs: slices.Clone(cl.AZs)}
			d.CertificateFingerprint = certFingerprint(cl.Cert)
			return nil
		}})
	return d, err
}

// clusterState is the cluster's state. A cluster made before the state
// was recorded is initialized, and ACTIVE when a reachable HSM holds an
// admin (the test activation itself uses, notActivated).
func clusterState(tx *Tx) (string, error) {
	switch st := tx.Cluster.State; st {
	case state.Uninitialized, state.Active:
		return st, nil
	case state.Initialized, "":
		err := notActivated(tx)
		if errors.As(err, new(*AlreadyActivatedError)) {
			return state.Active, nil
		}
		return state.Initialized, err
	default:
		return "", &TroubleError{Err: fmt.Errorf("cluster.json: unknown cluster state %q", st)}
	}
}

// certFingerprint is the hex SHA-256 of a PEM certificate's DER, "" for none.
func certFingerprint(p string) string {
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return ""
	}
	sum := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(sum[:])
}
