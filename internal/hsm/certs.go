package hsm

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

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
	CSRPEM  string // the cluster CSR ("" for a cluster made before hsmkit kept one)
	CertPEM string // the cluster certificate, "" until initialized
	Created time.Time
	// Faults are the fault switches that are on (docs/design.md, "The KMS
	// custom key store"): the account's network, as DescribeClusters'
	// caller meets it.
	Faults []string
	AZs    []string
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
				CSRPEM: cl.CSR, CertPEM: cl.Cert, Created: cl.Created, AZs: slices.Clone(cl.AZs),
				Faults: slices.Clone(cl.Faults)}
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

// certValidity is how long the quick path's CA and cluster certificate
// last: the 3652 days of the openssl command in the initialize steps.
const certValidity = 3652 * 24 * time.Hour

// MaxPEMFile bounds a certificate file read by initialize.
const MaxPEMFile = 64 << 10

// newClusterCSR makes the HSM's own key and the cluster CSR. The key is
// Ed25519 because its signatures are deterministic: with --seed the CSR
// and certificates are reproducible (an ECDSA signature is randomized
// whatever reader is given). The key's seed comes from the operation's
// stream: a seed makes ids reproducible and, here, this key, which
// protects nothing the simulator keeps (the masking key and passwords do,
// and they never come from the stream).
func newClusterCSR(r *Rand, hsmSerial string) (key []byte, csrPEM string, err error) {
	priv := ed25519.NewKeyFromSeed(r.Bytes(ed25519.SeedSize))
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{
		Country: []string{"US"}, Organization: []string{"hsmkit simulated HSM"}, OrganizationalUnit: []string{"N3FIPS"},
		CommonName: "HSM:" + hsmSerial + ":PARTN:0, for FIPS mode",
	}}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, priv)
	if err != nil {
		return nil, "", err
	}
	key, err = x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, "", err
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// quickSign is the quick path's stand-in for the customer: a throwaway
// CA (its key is not kept) that signs the CSR. It returns the cluster
// certificate and the CA certificate, the trust anchor.
func quickSign(r *Rand, clusterID, csrPEM string, now time.Time) (certPEM, anchorPEM string, err error) {
	caKey := ed25519.NewKeyFromSeed(r.Bytes(ed25519.SeedSize))
	ca := &x509.Certificate{
		SerialNumber: serial(r), Subject: pkix.Name{Organization: []string{"hsmkit"}, CommonName: "hsm-sim quick-start CA for " + clusterID},
		NotBefore: now, NotAfter: now.Add(certValidity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		return "", "", err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", err
	}
	b, _ := pem.Decode([]byte(csrPEM))
	if b == nil {
		return "", "", errors.New("cluster CSR is not PEM")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return "", "", err
	}
	leaf := &x509.Certificate{SerialNumber: serial(r), Subject: csr.Subject, NotBefore: now, NotAfter: now.Add(certValidity)}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, csr.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	return pemCert(der), pemCert(caDER), nil
}

func serial(r *Rand) *big.Int {
	b := r.Bytes(16)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

func pemCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// ParseCertPEM reads the one certificate of a PEM file (text around it,
// as openssl writes, is ignored); name is what errors call the file. It
// returns the certificate and its PEM normalized to that one block.
func ParseCertPEM(name string, data []byte) (*x509.Certificate, string, error) {
	var found *pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, "", fmt.Errorf("%s: holds a PEM %q block; want one CERTIFICATE", name, b.Type)
		}
		if found != nil {
			return nil, "", fmt.Errorf("%s: holds more than one certificate; want exactly one", name)
		}
		found = b
	}
	if found == nil {
		return nil, "", fmt.Errorf("%s: no PEM certificate in it (want -----BEGIN CERTIFICATE-----)", name)
	}
	cert, err := x509.ParseCertificate(found.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("%s: not a certificate: %v", name, err)
	}
	return cert, pemCert(found.Bytes), nil
}

// checkChain is initialize's verification (docs/design.md, "Cluster
// certificates and backups"): the trust anchor is a self-signed CA
// certificate, the signed certificate's signature chains to it, and it
// carries the key of the CSR (when there is one to compare with).
func checkChain(certName string, cert *x509.Certificate, anchorName string, anchor *x509.Certificate, csrPEM string) error {
	if !anchor.BasicConstraintsValid || !anchor.IsCA {
		return fmt.Errorf("%s: not a CA certificate (its X509v3 Basic Constraints must be present and say CA:TRUE)", anchorName)
	}
	if err := anchor.CheckSignatureFrom(anchor); err != nil || !bytes.Equal(anchor.RawIssuer, anchor.RawSubject) {
		return fmt.Errorf("%s: not self-signed; the trust anchor must be the self-signed CA certificate that signed the cluster CSR", anchorName)
	}
	if err := cert.CheckSignatureFrom(anchor); err != nil {
		return fmt.Errorf("%s: not signed by the trust anchor %s: %v", certName, anchorName, err)
	}
	if csrPEM != "" {
		b, _ := pem.Decode([]byte(csrPEM))
		if b == nil {
			return &TroubleError{Err: errors.New("cluster.json: the cluster CSR is not PEM")}
		}
		csr, err := x509.ParseCertificateRequest(b.Bytes)
		if err != nil {
			return &TroubleError{Err: fmt.Errorf("cluster.json: the cluster CSR: %v", err)}
		}
		if !sameKey(csr.PublicKey, cert.PublicKey) {
			return fmt.Errorf("%s: its public key is not the cluster CSR's; sign the CSR that hsm-sim csr prints", certName)
		}
	}
	return nil
}

func sameKey(a, b any) bool {
	da, err1 := x509.MarshalPKIXPublicKey(a)
	db, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}

// UninitializedError refuses what needs an initialized cluster.
type UninitializedError struct {
	Cluster string
	What    string
}

func (e *UninitializedError) Error() string {
	return fmt.Sprintf("cluster %s is UNINITIALIZED: %s needs an initialized cluster", e.Cluster, e.What)
}

// Hint says how a cluster is initialized.
func (e *UninitializedError) Hint() string {
	return "sign the cluster CSR (hsm-sim csr) with your CA, then hsm-sim initialize --signed-cert FILE --trust-anchor FILE"
}

func requireInitialized(tx *Tx, what string) error {
	if tx.Cluster.State == state.Uninitialized {
		return &UninitializedError{Cluster: tx.Cluster.ID, What: what}
	}
	return nil
}

// markActive records activation in the cluster record, committed with
// the HSMs the activation changed.
func markActive(tx *Tx) {
	if tx.Cluster.State != state.Active {
		tx.Cluster.State = state.Active
		tx.ClusterChanged()
	}
}

// ClusterCSR is the cluster CSR (PEM) of an uninitialized cluster.
func (c *Client) ClusterCSR() (string, error) {
	var out string
	_, err := c.run(op{name: "csr", scope: scopeCluster, perm: policy.ClusterInfo, auth: Account{},
		whole: func(tx *Tx, _ Principal) error {
			if tx.Cluster.State != state.Uninitialized {
				return fmt.Errorf("cluster %s is already initialized: the CSR is only for initializing it (hsm-sim trust-anchor shows the trust anchor in use)", tx.Cluster.ID)
			}
			out = tx.Cluster.CSR
			return nil
		}})
	return out, err
}

// TrustAnchor is the trust anchor (PEM) the cluster was initialized with.
func (c *Client) TrustAnchor() (string, error) {
	var out string
	_, err := c.run(op{name: "trust-anchor", scope: scopeCluster, perm: policy.ClusterInfo, auth: Account{},
		whole: func(tx *Tx, _ Principal) error {
			if err := requireInitialized(tx, "a trust anchor"); err != nil {
				return err
			}
			if tx.Cluster.TrustAnchor == "" {
				return fmt.Errorf("cluster %s was made before hsmkit kept trust anchors: it has none", tx.Cluster.ID)
			}
			out = tx.Cluster.TrustAnchor
			return nil
		}})
	return out, err
}

// Initialize takes the signed cluster certificate and the trust anchor
// (their bytes and the names errors call them by), verifies the chain
// and makes the cluster INITIALIZED. A refusal changes nothing.
func (c *Client) Initialize(certName string, certData []byte, anchorName string, anchorData []byte) error {
	return c.initialize(Account{}, certName, certData, anchorName, anchorData)
}

func (c *Client) initialize(auth Authenticator, certName string, certData []byte, anchorName string, anchorData []byte) error {
	cert, certPEM, err := ParseCertPEM(certName, certData)
	if err != nil {
		return err
	}
	anchor, anchorPEM, err := ParseCertPEM(anchorName, anchorData)
	if err != nil {
		return err
	}
	_, err = c.run(op{name: "initialize", scope: scopeCluster, perm: policy.InitializeCluster, auth: auth, write: true,
		whole: func(tx *Tx, _ Principal) error {
			cl := tx.Cluster
			if cl.State != state.Uninitialized {
				return fmt.Errorf("cluster %s is already initialized; a cluster is initialized once", cl.ID)
			}
			if err := checkChain(certName, cert, anchorName, anchor, cl.CSR); err != nil {
				return err
			}
			cl.Cert, cl.TrustAnchor, cl.State = certPEM, anchorPEM, state.Initialized
			tx.ClusterChanged()
			return nil
		}})
	return err
}
