package kms

import (
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// KMSUser is the crypto user a CloudHSM key store logs in as.
const KMSUser = "kmsuser"

// MaxKeyStores is KMS's quota of custom key stores per account and Region.
const MaxKeyStores = 10

// Service is KMS for one account and Region, reaching clusters through
// their client configs.
type Service struct {
	Acct Account
	// Config is the client config the caller names (-c): the cluster a
	// create or an update that names a cluster id is looked for in.
	Config string
	// Open opens a cluster's client from its client config.
	Open func(config string) (*hsm.Client, error)
	Wait time.Duration
	// Now is the time KMS uses: the cluster's clock when one is known.
	now time.Time
	// clients are the clusters this command opened, by config: one
	// command opens each once.
	clients map[string]*hsm.Client
}

// open opens a cluster's client once per command.
func (s *Service) open(config string) (*hsm.Client, error) {
	if cl, ok := s.clients[config]; ok {
		return cl, nil
	}
	cl, err := s.Open(config)
	if err != nil {
		return nil, err
	}
	if s.clients == nil {
		s.clients = map[string]*hsm.Client{}
	}
	s.clients[config] = cl
	return cl, nil
}

func (s *Service) clock() time.Time {
	if s.now.IsZero() {
		s.now = time.Now().UTC()
		if cl, err := s.open(s.Config); err == nil {
			s.now = cl.Now().UTC()
		}
	}
	return s.now
}

// run is every operation's frame: the account's lock, then the pending
// work of earlier calls (a connect or disconnect in progress, deletions
// whose waiting period ended), then the operation.
func (s *Service) run(fn func(d *db) (bool, error)) error {
	return s.Acct.locked(s.Wait, func(d *db) (bool, error) {
		changed := s.advance(d)
		c, err := fn(d)
		return changed || c, err
	})
}

// advance finishes what earlier calls began: KMS's sessions left on
// HSMs that are reachable again ended, a connect finished (CONNECTED or
// FAILED) unless the hold-connect fault keeps it CONNECTING, a
// disconnect finished, and keys whose deletion date passed deleted.
func (s *Service) advance(d *db) bool {
	changed := false
	leftovers := s.Acct.allLeftovers()
	for _, ks := range d.KeyStores {
		// Sessions left on HSMs that were unreachable (see logout): never
		// the current one, so they end in any state.
		if left := leftovers[ks.ID]; len(left) > 0 {
			s.endSessions(ks, left)
		}
		switch ks.State {
		case Connecting:
			if s.held(ks) {
				continue
			}
			s.attempt(d, ks)
			changed = true
		case Disconnecting:
			s.logout(ks)
			ks.State, ks.ErrorCode, ks.HSMs = Disconnected, "", nil
			changed = true
		}
	}
	if len(d.Orphans) > 0 && s.endOrphans(d) {
		changed = true
	}
	nows := map[string]time.Time{}
	for _, k := range slices.Clone(d.Keys) {
		if k.DeletionAt == nil {
			continue
		}
		now, ok := nows[k.StoreID]
		if !ok {
			now = s.clockOf(d.store(k.StoreID))
			nows[k.StoreID] = now
		}
		if !now.Before(*k.DeletionAt) {
			s.deleteKey(d, k, now)
			changed = true
		}
	}
	return changed
}

// clockOf is the time of a key store's affairs (its keys' creation and
// deletion dates): its own cluster's clock. Not the caller's (-c), which
// may be any cluster with any clock: one set years ahead made KMS delete
// every key pending deletion at once, the waiting period skipped
// (docs/design.md, "The KMS key store under attack"). A store whose
// cluster cannot be opened goes by the real clock.
func (s *Service) clockOf(ks *KeyStore) time.Time {
	if ks != nil {
		if cl, err := s.openStore(ks); err == nil {
			return cl.Now().UTC()
		}
	}
	return time.Now().UTC()
}

// openStore opens the cluster of a key store; a cluster that is gone, or
// whose config now reaches another cluster, is not found.
func (s *Service) openStore(ks *KeyStore) (*hsm.Client, error) {
	cl, err := s.open(ks.Config)
	if err != nil {
		return nil, err
	}
	if cl.Cluster.ID != ks.ClusterID {
		return nil, fmt.Errorf("%s now reaches cluster %s, not %s", ks.Config, cl.Cluster.ID, ks.ClusterID)
	}
	return cl, nil
}

// activeAZs counts the running HSMs and the distinct zones they are in.
func activeAZs(desc *hsm.ClusterDescription) (hsms, azs int) {
	seen := map[string]bool{}
	for _, h := range desc.HSMs {
		if h.Status == state.Running {
			hsms++
			seen[h.AZ] = true
		}
	}
	return hsms, len(seen)
}

const twoAZs = "CloudHSM cluster must contain active HSMs in at least two Availability Zones"

// --- Key stores ---------------------------------------------------------

// CreateInput is CreateCustomKeyStore's request.
type CreateInput struct {
	Name, ClusterID, TrustAnchor, Password, Type string
}

// CreateCustomKeyStore creates a key store, DISCONNECTED, for the cluster
// the caller's client config reaches.
func (s *Service) CreateCustomKeyStore(in CreateInput) (string, error) {
	const op = "CreateCustomKeyStore"
	if err := checkName(op, in.Name); err != nil {
		return "", err
	}
	switch in.Type {
	case "", "AWS_CLOUDHSM":
	case "EXTERNAL_KEY_STORE":
		return "", fail(ExcUnsupported, op, "hsmkit simulates AWS CloudHSM key stores only; external key stores are not supported")
	default:
		return "", fail(ExcValidation, op, "1 validation error detected: Value '%s' at 'customKeyStoreType' failed to satisfy constraint: Member must satisfy enum value set: [EXTERNAL_KEY_STORE, AWS_CLOUDHSM]", in.Type)
	}
	if in.ClusterID == "" || in.TrustAnchor == "" || in.Password == "" {
		return "", fail(ExcValidation, op, "an AWS CloudHSM key store needs CloudHsmClusterId, TrustAnchorCertificate and KeyStorePassword")
	}
	if err := checkPassword(op, in.Password); err != nil {
		return "", err
	}
	if len(in.TrustAnchor) > 5000 {
		return "", fail(ExcValidation, op, "1 validation error detected: Value at 'trustAnchorCertificate' failed to satisfy constraint: Member must have length less than or equal to 5000")
	}
	var id string
	err := s.run(func(d *db) (bool, error) {
		desc, cfg, err := s.cluster(op, in.ClusterID)
		if err != nil {
			return false, err
		}
		for _, ks := range d.KeyStores {
			if ks.Name != in.Name {
				continue
			}
			// The same properties as a disconnected store: its id, no error.
			if pw, err := s.Acct.unseal(ks.ID, ks.Password); err == nil && ks.State == Disconnected &&
				ks.ClusterID == in.ClusterID && sameCert(ks.Anchor, in.TrustAnchor) && pw == in.Password {
				id = ks.ID
				return false, nil
			}
			return false, fail(ExcNameInUse, op, "Custom key store name %s is already in use", in.Name)
		}
		if err := s.checkCluster(op, d, desc, in.TrustAnchor, ""); err != nil {
			return false, err
		}
		if len(d.KeyStores) >= MaxKeyStores {
			return false, fail(ExcLimitExceeded, op, "You have reached the limit of %d custom key stores in this account and Region", MaxKeyStores)
		}
		ks := &KeyStore{ID: d.newStoreID(), Name: in.Name, ClusterID: desc.ID, Config: cfg, Anchor: in.TrustAnchor,
			CertFP: desc.CertificateFingerprint, State: Disconnected, Created: s.clock()}
		if ks.Password, err = s.Acct.seal(ks.ID, in.Password); err != nil {
			return false, err
		}
		d.KeyStores = append(d.KeyStores, ks)
		id = ks.ID
		return true, nil
	})
	return id, err
}

func checkName(op, name string) error {
	if n := len(name); n < 1 || n > 256 {
		return fail(ExcValidation, op, "1 validation error detected: Value at 'customKeyStoreName' failed to satisfy constraint: Member must have length between 1 and 256")
	}
	return nil
}

// checkPassword is the API's rule for KeyStorePassword: 7 to 32
// characters (docs/design.md, "The KMS custom key store", on the
// alphanumeric rule of the guide).
func checkPassword(op, pw string) error {
	if n := len(pw); n < 7 || n > 32 {
		return fail(ExcValidation, op, "1 validation error detected: Value at 'keyStorePassword' failed to satisfy constraint: Member must have length between 7 and 32")
	}
	return nil
}

// cluster finds a cluster by id through the caller's client config, as
// cloudhsm:DescribeClusters would in the account.
func (s *Service) cluster(op, id string) (*hsm.ClusterDescription, string, error) {
	notFound := fail(ExcClusterNotFound, op, "AWS KMS cannot find the CloudHSM cluster with the specified cluster ID %s", id)
	cl, err := s.open(s.Config)
	// A cluster of another role profile (a Luna cluster) is no CloudHSM
	// cluster: DescribeClusters would not list it.
	if err != nil || cl.Cluster.ID != id || cl.Policy() != policy.CloudHSM {
		return nil, "", notFound
	}
	desc, err := cl.DescribeCluster()
	if err != nil {
		return nil, "", notFound
	}
	return desc, cl.Config.Path, nil
}

// checkCluster applies CreateCustomKeyStore's and UpdateCustomKeyStore's
// rules to a cluster: active, its trust anchor (when one is given), not
// another store's (self: the store being updated), two zones.
func (s *Service) checkCluster(op string, d *db, desc *hsm.ClusterDescription, anchor, self string) error {
	if desc.State != state.Active {
		return fail(ExcClusterNotActive, op, "The CloudHSM cluster %s is not active (its state is %s): initialize and activate it first", desc.ID, desc.State)
	}
	if anchor != "" && !sameCert(anchor, desc.TrustAnchorPEM) {
		return fail(ExcIncorrectTrustAnchor, op, "The trust anchor certificate in the request is not the trust anchor certificate for the specified CloudHSM cluster")
	}
	for _, ks := range d.KeyStores {
		if ks.ID == self {
			continue
		}
		if ks.ClusterID == desc.ID || ks.CertFP != "" && ks.CertFP == desc.CertificateFingerprint {
			return fail(ExcClusterInUse, op, "The CloudHSM cluster %s (or one that shares its backup history) is already associated with custom key store %s", desc.ID, ks.ID)
		}
	}
	if _, azs := activeAZs(desc); azs < 2 {
		return fail(ExcClusterInvalidConfig, op, twoAZs)
	}
	return nil
}

// sameCert compares two PEM certificates by their DER.
func sameCert(a, b string) bool {
	pa, _ := pem.Decode([]byte(a))
	pb, _ := pem.Decode([]byte(b))
	return pa != nil && pb != nil && pa.Type == "CERTIFICATE" && string(pa.Bytes) == string(pb.Bytes)
}

// storeFor finds a store and asks the state machine whether r may run in
// its state; why is the refusal's advice.
func (s *Service) storeFor(d *db, op, id string, r Request, why string) (*KeyStore, error) {
	ks, err := s.find(d, op, id)
	if err != nil {
		return nil, err
	}
	if Allowed(ks.State, r) == Refuse {
		return nil, fail(ExcInvalidState, op, "The custom key store %s is %s; %s", id, ks.State, why)
	}
	return ks, nil
}

func (s *Service) find(d *db, op, id string) (*KeyStore, error) {
	if ks := d.store(id); ks != nil {
		return ks, nil
	}
	return nil, fail(ExcNotFound, op, "Custom key store %s does not exist", id)
}

// StoreView is one entry of DescribeCustomKeyStores, in the order the
// KMS guide's example shows its fields.
type StoreView struct {
	CloudHsmClusterID      string `json:"CloudHsmClusterId"`
	ConnectionErrorCode    string `json:"ConnectionErrorCode,omitempty"`
	ConnectionState        string `json:"ConnectionState"`
	CustomKeyStoreID       string `json:"CustomKeyStoreId"`
	CustomKeyStoreName     string `json:"CustomKeyStoreName"`
	CustomKeyStoreType     string `json:"CustomKeyStoreType"`
	CreationDate           string `json:"CreationDate"`
	TrustAnchorCertificate string `json:"TrustAnchorCertificate"`
}

// DescribeCustomKeyStores lists the key stores, or the one named by id or
// by name (not both), after finishing what earlier calls began.
func (s *Service) DescribeCustomKeyStores(id, name string) ([]StoreView, error) {
	const op = "DescribeCustomKeyStores"
	if id != "" && name != "" {
		return nil, fail(ExcValidation, op, "Specify either CustomKeyStoreId or CustomKeyStoreName, not both")
	}
	var out []StoreView
	err := s.run(func(d *db) (bool, error) {
		for _, ks := range d.KeyStores {
			if id != "" && ks.ID != id || name != "" && ks.Name != name {
				continue
			}
			v := StoreView{CloudHsmClusterID: ks.ClusterID, ConnectionState: ks.State, CustomKeyStoreID: ks.ID,
				CustomKeyStoreName: ks.Name, CustomKeyStoreType: "AWS_CLOUDHSM", CreationDate: Timestamp(ks.Created), TrustAnchorCertificate: ks.Anchor}
			if ks.State == Failed {
				v.ConnectionErrorCode = ks.ErrorCode
			}
			out = append(out, v)
		}
		if len(out) == 0 && (id != "" || name != "") {
			what := id
			if what == "" {
				what = name
			}
			return false, fail(ExcNotFound, op, "Custom key store %s does not exist", what)
		}
		return false, nil
	})
	if out == nil {
		out = []StoreView{}
	}
	return out, err
}

// Timestamp is a time as the AWS CLI v2 prints one (ISO 8601, microseconds).
func Timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000-07:00")
}

// ConnectCustomKeyStore begins a connect: the store is CONNECTING when the
// call returns, and the attempt runs at once unless the hold-connect fault
// keeps it for a later command (docs/design.md, the state machine).
func (s *Service) ConnectCustomKeyStore(id string) error {
	const op = "ConnectCustomKeyStore"
	return s.run(func(d *db) (bool, error) {
		ks, err := s.find(d, op, id)
		if err != nil {
			return false, err
		}
		switch Allowed(ks.State, ReqConnect) {
		case NoOp:
			return false, nil
		case Refuse:
			return false, fail(ExcInvalidState, op, "The custom key store %s is %s; you must disconnect it before attempting to reconnect it", id, ks.State)
		}
		// Easily detected cluster configuration errors fail at once and
		// leave the store DISCONNECTED.
		if cl, err := s.openStore(ks); err == nil {
			if desc, err := cl.DescribeCluster(); err == nil && desc.State != state.Active {
				return false, fail(ExcClusterNotActive, op, "The CloudHSM cluster %s is not active (its state is %s)", desc.ID, desc.State)
			}
		}
		ks.State, ks.ErrorCode = Connecting, ""
		if err := s.Acct.save(d); err != nil {
			return false, err
		}
		if s.held(ks) {
			return true, nil
		}
		s.attempt(d, ks)
		return true, nil
	})
}

// held says whether the hold-connect fault keeps a connect CONNECTING.
func (s *Service) held(ks *KeyStore) bool {
	cl, err := s.openStore(ks)
	if err != nil {
		return false
	}
	desc, err := cl.DescribeCluster()
	return err == nil && slices.Contains(desc.Faults, hsm.FaultHoldConnect)
}

// faultCodes maps the simulator's fault switches to the codes they cause.
var faultCodes = []struct{ fault, code string }{
	{hsm.FaultSubnet, CodeSubnetNotFound},
	{hsm.FaultFreeAddresses, CodeFreeAddresses},
	{hsm.FaultNetwork, CodeNetwork},
	{hsm.FaultInternal, CodeInternal},
}

// FaultEffect says what a fault switch does to a key store's connect,
// for hsm-sim fault list.
func FaultEffect(fault string) string {
	if fault == hsm.FaultHoldConnect {
		return "a connect stays CONNECTING until the switch is cleared"
	}
	for _, fc := range faultCodes {
		if fc.fault == fault {
			return "a connect fails with " + fc.code
		}
	}
	return ""
}

// attempt connects a CONNECTING store: CONNECTED, or FAILED with the code
// of the first cause found, in the order KMS would meet them.
func (s *Service) attempt(d *db, ks *KeyStore) {
	code := s.connect(d, ks)
	if code != "" {
		s.logout(ks)
		ks.State, ks.ErrorCode, ks.HSMs = Failed, code, nil
		return
	}
	ks.State, ks.ErrorCode = Connected, ""
}

func (s *Service) connect(d *db, ks *KeyStore) string {
	cl, err := s.openStore(ks)
	if err != nil {
		return CodeClusterNotFound
	}
	desc, err := cl.DescribeCluster()
	if err != nil {
		return CodeClusterNotFound
	}
	for _, fc := range faultCodes {
		if slices.Contains(desc.Faults, fc.fault) {
			return fc.code
		}
	}
	if n, _ := activeAZs(desc); n == 0 {
		return CodeInsufficientHSMs
	}
	if code := kmsuserCode(cl); code != "" {
		return code
	}
	pw, err := s.Acct.unseal(ks.ID, ks.Password)
	if err != nil {
		return CodeInternal
	}
	s.logout(ks) // a session a killed command left behind
	sf, code := s.login(cl, ks, pw)
	if sf == nil && code == CodeInvalidCredentials && ks.Pending != nil {
		// A rotation was under way when a command stopped: it may have
		// landed (docs/design.md, "The KMS custom key store").
		if p, err := s.Acct.unseal(ks.ID, ks.Pending); err == nil {
			sf, code = s.login(cl, ks, p)
			if sf != nil {
				ks.Password = ks.Pending
			}
		}
	}
	ks.Pending = nil
	if sf == nil {
		return code
	}
	ks.HSMs = sf.HSMs
	// Rotate kmsuser's password to one only KMS knows; kept sealed
	// before the change, so a stop between the two loses nothing.
	next := newPassword()
	sealed, err := s.Acct.seal(ks.ID, next)
	if err != nil {
		return CodeInternal
	}
	ks.Pending = sealed
	if err := s.Acct.save(d); err != nil {
		return CodeInternal
	}
	if _, err := cl.ChangePasswordWith(hsm.Targeting{Only: sf.HSMs}, sf, KMSUser, policy.CryptoUser, next, nil,
		hsm.PasswordOptions{KeyStoreRotation: true}); err != nil && !errors.As(err, new(*hsm.PartialError)) {
		ks.Pending = nil
		return CodeInternal
	}
	ks.Password, ks.Pending = sealed, nil
	return ""
}

// kmsuserCode reads the user list as anyone may: no kmsuser crypto user,
// or one with MFA, which KMS cannot log in as.
func kmsuserCode(cl *hsm.Client) string {
	users, _, err := cl.ListUsers(hsm.Nobody{})
	if err != nil {
		return CodeInternal
	}
	for _, u := range users {
		if u.Username != KMSUser {
			continue
		}
		if u.Role != string(policy.CryptoUser) {
			return CodeUserNotFound
		}
		for _, m := range u.MFA {
			if m.Status != "" {
				return CodeInvalidCredentials
			}
		}
		return ""
	}
	return CodeUserNotFound
}

// login logs KMS in as kmsuser on every HSM it reaches, alone.
func (s *Service) login(cl *hsm.Client, ks *KeyStore, pw string) (*hsm.SessionFile, string) {
	sf, res, err := cl.LoginWith(hsm.Targeting{AllowPartial: true}, s.Acct.sessionPath(ks.ID), KMSUser, policy.CryptoUser, pw,
		hsm.LoginOptions{Exclusive: true})
	if sf != nil && len(sf.HSMs) > 0 {
		return sf, ""
	}
	errs := []error{err}
	if res != nil {
		for _, o := range res.Outcomes {
			errs = append(errs, o.Err)
		}
	}
	return nil, loginCode(errs)
}

// loginCode is the ConnectionErrorCode of a failed login, the most
// telling cause first.
func loginCode(errs []error) string {
	for _, c := range []struct {
		code string
		is   func(error) bool
	}{
		{CodeUserLoggedIn, func(e error) bool { return errors.As(e, new(*hsm.LoggedInError)) }},
		{CodeUserLockedOut, func(e error) bool { return errors.As(e, new(*hsm.LockedError)) }},
		{CodeUserNotFound, func(e error) bool { return errors.As(e, new(*hsm.NoUserError)) }},
		{CodeInvalidCredentials, func(e error) bool {
			return errors.As(e, new(*hsm.WrongPasswordError)) || errors.As(e, new(*hsm.MFARequiredError))
		}},
	} {
		for _, e := range errs {
			if e != nil && c.is(e) {
				return c.code
			}
		}
	}
	return CodeNetwork
}

const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newPassword is a rotated kmsuser password: 32 alphanumerics, as the
// guide requires of kmsuser's password.
func newPassword() string {
	b := make([]byte, 32)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(passwordAlphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		b[i] = passwordAlphabet[n.Int64()]
	}
	return string(b)
}

// logout ends KMS's kmsuser sessions: the current one, and any earlier
// one left on an HSM that could not be reached then. A session on an
// unreachable HSM stays open there (docs/design.md, "Fault switches and
// the ConnectionErrorCode scenarios"), so its file is kept aside, not
// dropped: once the HSM is back, the next hsm-kms command ends it (see
// advance), and KMS's own old session does not pin kmsuser as logged in
// (USER_LOGGED_IN) for ever.
func (s *Service) logout(ks *KeyStore) {
	s.endSessions(ks, append([]string{s.Acct.sessionPath(ks.ID)}, s.Acct.leftovers(ks.ID)...))
}

func (s *Service) endSessions(ks *KeyStore, paths []string) {
	cur := s.Acct.sessionPath(ks.ID)
	cl, cerr := s.openStore(ks)
	for _, path := range paths {
		// Still open somewhere, the engine rewrote the file to name those
		// HSMs; the current path must be free for the next login.
		if !endSession(cl, cerr, path) && path == cur {
			sf, err := hsm.LoadSession(path)
			if err == nil && sf != nil {
				_ = os.Rename(path, s.Acct.leftoverPath(ks.ID, sf.ID))
			}
		}
	}
}

// endSession ends the session in path where cl (opened with cerr)
// reaches it; true when nothing of it is left open and the file is gone.
func endSession(cl *hsm.Client, cerr error, path string) bool {
	sf, err := hsm.LoadSession(path)
	if err != nil || sf == nil || cerr != nil || sf.Cluster != cl.Cluster.ID {
		// Unreadable, or of a cluster KMS no longer reaches: nothing to end.
		_ = removeIfExists(path)
		return true
	}
	_, open, err := cl.Logout(sf)
	var none *hsm.NoSessionError
	if err == nil && len(open) == 0 || errors.As(err, &none) {
		_ = removeIfExists(path) // ended everywhere (gone already), or it opens nothing
		return true
	}
	return false
}

// orphanLeftovers hands a store's leftover sessions to the account when
// the store stops naming their cluster (deleted, or moved to another
// cluster): each keeps the client config that reaches it, so advance
// still ends it once its HSM is back.
func (s *Service) orphanLeftovers(d *db, ks *KeyStore) {
	for _, path := range s.Acct.leftovers(ks.ID) {
		to := filepath.Join(filepath.Dir(path), "orphan-"+filepath.Base(path))
		if err := os.Rename(path, to); err == nil {
			d.Orphans = append(d.Orphans, Orphan{Config: ks.Config, Session: to})
		}
	}
}

// endOrphans ends the orphaned sessions it can; true when one went. An
// entry naming a file outside the sessions directory is dropped and its
// file left alone: kms.json does not choose what KMS removes.
func (s *Service) endOrphans(d *db) bool {
	n := len(d.Orphans)
	dir := filepath.Dir(s.Acct.sessionPath(""))
	d.Orphans = slices.DeleteFunc(d.Orphans, func(o Orphan) bool {
		if filepath.Dir(o.Session) != dir || !strings.HasPrefix(filepath.Base(o.Session), "orphan-") {
			return true
		}
		cl, err := s.open(o.Config)
		return endSession(cl, err, o.Session)
	})
	return len(d.Orphans) != n
}

// DisconnectCustomKeyStore logs KMS out of the cluster; the store is
// DISCONNECTED and its keys Unavailable.
func (s *Service) DisconnectCustomKeyStore(id string) error {
	const op = "DisconnectCustomKeyStore"
	return s.run(func(d *db) (bool, error) {
		ks, err := s.storeFor(d, op, id, ReqDisconnect, "only a store that is CONNECTED, CONNECTING or FAILED can be disconnected")
		if err != nil {
			return false, err
		}
		ks.State = Disconnecting
		if err := s.Acct.save(d); err != nil {
			return false, err
		}
		s.logout(ks)
		ks.State, ks.ErrorCode, ks.HSMs = Disconnected, "", nil
		return true, nil
	})
}

// UpdateInput is UpdateCustomKeyStore's request; empty fields are unchanged.
type UpdateInput struct {
	ID, NewName, Password, ClusterID string
}

// UpdateCustomKeyStore renames a store (connected or disconnected), or
// changes its password or cluster (disconnected only). A new cluster must
// share the old one's backup history.
func (s *Service) UpdateCustomKeyStore(in UpdateInput) error {
	const op = "UpdateCustomKeyStore"
	if in.NewName != "" {
		if err := checkName(op, in.NewName); err != nil {
			return err
		}
	}
	if in.Password != "" {
		if err := checkPassword(op, in.Password); err != nil {
			return err
		}
	}
	return s.run(func(d *db) (bool, error) {
		ks, err := s.find(d, op, in.ID)
		if err != nil {
			return false, err
		}
		req := ReqUpdateName
		if in.Password != "" || in.ClusterID != "" {
			req = ReqUpdateSettings
		}
		if Allowed(ks.State, req) == Refuse {
			return false, fail(ExcInvalidState, op, "The custom key store %s is %s; disconnect it before changing its password or cluster", in.ID, ks.State)
		}
		if in.NewName != "" && in.NewName != ks.Name {
			for _, o := range d.KeyStores {
				if o.Name == in.NewName {
					return false, fail(ExcNameInUse, op, "Custom key store name %s is already in use", in.NewName)
				}
			}
		}
		var desc *hsm.ClusterDescription
		var cfg string
		if in.ClusterID != "" {
			if desc, cfg, err = s.cluster(op, in.ClusterID); err != nil {
				return false, err
			}
			if ks.CertFP != "" && desc.CertificateFingerprint != ks.CertFP {
				return false, fail(ExcClusterNotRelated, op, "The CloudHSM cluster %s is not related to the cluster of custom key store %s: it does not share its backup history (cluster certificate)", in.ClusterID, in.ID)
			}
			if err := s.checkCluster(op, d, desc, "", ks.ID); err != nil {
				return false, err
			}
		}
		if in.NewName != "" {
			ks.Name = in.NewName
		}
		if in.Password != "" {
			if ks.Password, err = s.Acct.seal(ks.ID, in.Password); err != nil {
				return false, err
			}
			ks.Pending = nil
		}
		if desc != nil {
			s.orphanLeftovers(d, ks)
			ks.ClusterID, ks.Config = desc.ID, cfg
			for _, k := range d.Keys {
				if k.StoreID == ks.ID {
					k.ClusterID = desc.ID
				}
			}
		}
		return true, nil
	})
}

// DeleteCustomKeyStore deletes a disconnected store that holds no KMS
// key; the cluster is not touched.
func (s *Service) DeleteCustomKeyStore(id string) error {
	const op = "DeleteCustomKeyStore"
	return s.run(func(d *db) (bool, error) {
		if _, err := s.storeFor(d, op, id, ReqDelete, "disconnect it before deleting it"); err != nil {
			return false, err
		}
		for _, k := range d.Keys {
			if k.StoreID == id {
				return false, fail(ExcHasCMKs, op, "Custom key store %s contains KMS keys; schedule their deletion and wait until they are deleted", id)
			}
		}
		s.orphanLeftovers(d, d.store(id))
		d.KeyStores = slices.DeleteFunc(d.KeyStores, func(o *KeyStore) bool { return o.ID == id })
		return true, nil
	})
}
