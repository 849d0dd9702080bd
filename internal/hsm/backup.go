package hsm

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// Backups and clusters made from them (docs/design.md, "Cluster
// certificates and backups"). A backup is what CloudHSM copies to a new
// HSM: one active HSM's users, keys and quorum policy, with the cluster's
// secrets (hash salt, masking key, the HSM key behind its certificate)
// and its certificates. A cluster made from it shares the certificate,
// and so its fingerprint, with the cluster backed up.

// BackupFormat names the layout of a backup file.
const BackupFormat = "hsmkit-cluster-backup-1"

// MaxBackupFile bounds a backup file read.
const MaxBackupFile = 64 << 20

// Backup is a backup file's content.
type Backup struct {
	Format        string    `json:"format"`
	SourceCluster string    `json:"source_cluster"`
	Taken         time.Time `json:"taken"`
	// Cluster is the cluster record without its id, HSMs, clock and seed.
	Cluster state.Cluster `json:"cluster"`
	HSM     *state.HSM    `json:"hsm"`
}

// Backup copies the cluster and one of its active HSMs.
func (c *Client) Backup() (*Backup, error) { return c.backup(Account{}) }

func (c *Client) backup(auth Authenticator) (*Backup, error) {
	var b *Backup
	_, err := c.run(op{name: "backup", scope: scopeCluster, perm: policy.BackupCluster, auth: auth,
		whole: func(tx *Tx, _ Principal) error {
			if err := requireInitialized(tx, "a backup"); err != nil {
				return err
			}
			st, err := clusterState(tx)
			if err != nil {
				return err
			}
			peer, err := activePeer(tx)
			if err != nil {
				return err
			}
			cl := *tx.Cluster
			cl.ID, cl.HSMs, cl.Clock, cl.Seed, cl.State = "", nil, nil, nil, st
			cl.AZs = slices.Clone(cl.AZs)
			h := cloneHSM(peer, "")
			h.Schema = state.Schema
			b = &Backup{Format: BackupFormat, SourceCluster: tx.Cluster.ID, Taken: tx.Now, Cluster: cl, HSM: h}
			return nil
		}})
	return b, err
}

// activePeer is the first reachable HSM holding more than app_user: what
// add-hsm clones and a backup copies.
func activePeer(tx *Tx) (*state.HSM, error) {
	for _, info := range tx.Cluster.HSMs {
		if info.Status != state.Running {
			continue
		}
		var h *state.HSM
		err := tx.View(info.ID, func(t *state.HSMTx) error {
			n, err := t.CountUsers()
			if err != nil || n <= 1 {
				return err
			}
			h, err = t.Snapshot()
			return err
		})
		if err != nil {
			return nil, err
		}
		if h != nil {
			return h, nil
		}
	}
	return nil, errors.New("no reachable HSM that holds the cluster's users: start one first (hsm-sim start ID)")
}

// Marshal is the backup file's bytes.
func (b *Backup) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(b, "", " ")
	return append(data, '\n'), err
}

// ParseBackup reads a backup file strictly (name is what errors call
// it): no unknown fields, every record checked as the state's own
// decoders check it, certificates verified as initialize verifies them.
func ParseBackup(name string, data []byte) (*Backup, error) {
	if len(data) > MaxBackupFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxBackupFile)
	}
	var b Backup
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%s: not a backup: %v", name, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: not a backup: data after the JSON object", name)
	}
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%s: %s: %s", name, field, fmt.Sprintf(format, a...))
	}
	if b.Format != BackupFormat {
		return nil, bad("format", "%q; want %q", b.Format, BackupFormat)
	}
	cl := &b.Cluster
	switch {
	case cl.ID != "" || len(cl.HSMs) > 0 || cl.Clock != nil || cl.Seed != nil:
		return nil, bad("cluster", "holds an id, HSMs, a clock or a seed; a backup has none")
	case cl.State != state.Initialized && cl.State != state.Active:
		return nil, bad("cluster.state", "%q; want INITIALIZED or ACTIVE", cl.State)
	case len(cl.Salt) != 16:
		return nil, bad("cluster.salt", "%d bytes; want 16", len(cl.Salt))
	case len(cl.MaskingKey) != 0 && len(cl.MaskingKey) != 32:
		return nil, bad("cluster.masking_key", "%d bytes; want 32", len(cl.MaskingKey))
	}
	if _, err := policy.ByName(cl.Profile); err != nil {
		return nil, bad("cluster.profile", "%v", err)
	}
	if err := cl.KDF.Check(); err != nil {
		return nil, bad("cluster.kdf", "%v", err)
	}
	for _, az := range cl.AZs {
		if !azRe().MatchString(az) {
			return nil, bad("cluster.azs", "%q is not an availability zone name", az)
		}
	}
	if err := checkBackupCerts(name, cl); err != nil {
		return nil, err
	}
	if err := checkBackupHSM(name, b.HSM); err != nil {
		return nil, err
	}
	return &b, nil
}

func checkBackupCerts(name string, cl *state.Cluster) error {
	cert, _, err := ParseCertPEM(name+": cluster.certificate", []byte(cl.Cert))
	if err != nil {
		return err
	}
	anchor, _, err := ParseCertPEM(name+": cluster.trust_anchor", []byte(cl.TrustAnchor))
	if err != nil {
		return err
	}
	if err := checkChain(name+": cluster.certificate", cert, name+": cluster.trust_anchor", anchor, cl.CSR); err != nil {
		var t *TroubleError
		if errors.As(err, &t) { // a bad CSR is the backup's fault, not the state's
			return fmt.Errorf("%s: cluster.csr: %v", name, t.Err)
		}
		return err
	}
	if len(cl.CSRKey) > 0 {
		k, err := x509.ParsePKCS8PrivateKey(cl.CSRKey)
		s, ok := k.(crypto.Signer)
		if err != nil || !ok || !sameKey(s.Public(), cert.PublicKey) {
			return fmt.Errorf("%s: cluster.csr_key: not the key of cluster.certificate", name)
		}
	}
	return nil
}

// checkBackupHSM checks the HSM records by the state's own rules: each
// user and key goes through its stored form and back.
func checkBackupHSM(name string, h *state.HSM) error {
	if h == nil {
		return fmt.Errorf("%s: hsm: missing", name)
	}
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%s: hsm.%s: %s", name, field, fmt.Sprintf(format, a...))
	}
	switch {
	case h.ID != "":
		return bad("id", "%q; a backup's HSM has none", h.ID)
	case len(h.Sessions) > 0 || len(h.Tokens) > 0:
		return bad("sessions", "a backup holds no sessions or tokens")
	case len(h.History) > state.MaxHistory:
		return bad("history", "%d stamps; at most %d", len(h.History), state.MaxHistory)
	case h.NextUserID < 0 || h.NextUserID > 1<<20:
		return bad("next_user_id", "%d is out of range", h.NextUserID)
	}
	if err := h.Quorum.Check(); err != nil {
		return bad("quorum", "%v", err)
	}
	seen := map[string]bool{}
	for i, u := range h.Users {
		n, err := policy.NormalizeUsername(u.Name)
		if err != nil || n != u.Name {
			return bad(fmt.Sprintf("users[%d].name", i), "%q is not a username", u.Name)
		}
		if seen[u.Name] {
			return bad(fmt.Sprintf("users[%d].name", i), "%q is listed twice", u.Name)
		}
		seen[u.Name] = true
		switch policy.Role(u.Role) {
		case policy.Admin, policy.CryptoUser, policy.Appliance, policy.Unactivated:
		default:
			return bad(fmt.Sprintf("users[%d].role", i), "%q is not a role", u.Role)
		}
		if u.Hash != nil {
			if err := (state.KDF{Time: u.Hash.Time, MemoryKiB: u.Hash.MemoryKiB, Threads: u.Hash.Threads}).Check(); err != nil {
				return bad(fmt.Sprintf("users[%d].hash", i), "%v", err)
			}
		}
		if _, err := state.DecodeUser(u.Name, state.EncodeUser(&u)); err != nil {
			return bad(fmt.Sprintf("users[%d]", i), "%v", err)
		}
	}
	if len(h.Users) < 2 {
		return bad("users", "%d users; a backup holds the cluster's users, app_user and at least an admin", len(h.Users))
	}
	refs := map[uint64]bool{}
	for i, k := range h.Keys {
		if k.Session != "" {
			return bad(fmt.Sprintf("keys[%d]", i), "a session key; a backup holds token keys only")
		}
		if refs[k.Ref] || k.Ref == 0 || k.Ref > h.NextKey {
			return bad(fmt.Sprintf("keys[%d].ref", i), "%d is repeated, 0 or above next_key %d", k.Ref, h.NextKey)
		}
		refs[k.Ref] = true
		if _, err := state.DecodeKey(k.Ref, state.EncodeKey(&k)); err != nil {
			return bad(fmt.Sprintf("keys[%d]", i), "%v", err)
		}
	}
	return nil
}

// ErrClusterNotFound is the error (wrapped) of opening a cluster that was
// deleted or whose state directory holds none: what AWS answers for a
// cluster id it does not know.
var ErrClusterNotFound = errors.New("cluster not found")

// DeleteCluster deletes the cluster. AWS deletes a cluster only once its
// HSMs are gone; a simulated cluster keeps at least one (remove-hsm
// refuses the last), so the last one goes with the cluster and any other
// is refused. cluster.json stays as a tombstone in state DELETED, so a
// client of the cluster is told it is not found (ErrClusterNotFound).
func (c *Client) DeleteCluster() error { return c.deleteCluster(Account{}) }

func (c *Client) deleteCluster(auth Authenticator) error {
	var last string
	_, err := c.run(op{name: "delete-cluster", scope: scopeCluster, perm: policy.DeleteCluster, auth: auth, write: true,
		whole: func(tx *Tx, _ Principal) error {
			cl := tx.Cluster
			if len(cl.HSMs) > 1 {
				e := &HSMsRemainError{Cluster: cl.ID}
				for _, h := range cl.HSMs[1:] {
					e.Others = append(e.Others, h.ID)
				}
				return e
			}
			last = cl.HSMs[0].ID
			cl.HSMs, cl.State = nil, state.Deleted
			cl.CSRKey, cl.MaskingKey = nil, nil
			tx.ClusterChanged()
			return nil
		},
		afterCommit: func(tx *Tx) error { return c.Store.RemoveHSM(last) }})
	return err
}

// HSMsRemainError refuses to delete a cluster that has other HSMs.
type HSMsRemainError struct {
	Cluster string
	Others  []string // every HSM but the last, which goes with the cluster
}

func (e *HSMsRemainError) Error() string {
	return fmt.Sprintf("cluster %s still has %d HSMs; a cluster is deleted once its HSMs are", e.Cluster, len(e.Others)+1)
}

// Hint says which to remove.
func (e *HSMsRemainError) Hint() string {
	return fmt.Sprintf("remove them first: hsm-sim remove-hsm ID for %s (the last HSM goes with the cluster)", strings.Join(e.Others, ", "))
}
