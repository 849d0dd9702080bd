package state

import (
	"fmt"
	"time"

	"github.com/hsmkit/hsmkit/internal/simclock"
)

// Schema is the version of the state layout this build reads and writes.
const Schema = 2

// Cluster is cluster.json: what the cluster itself knows.
type Cluster struct {
	Schema  int       `json:"schema"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Seed    *int64    `json:"seed,omitempty"` // set by init --seed: ids and random values are reproducible
	KDF     KDF       `json:"kdf"`
	// Salt is mixed with a username to salt its password hash, so that the
	// same password set on two HSMs gives the same hash and a manual
	// repair can be confirmed by hsm-sync diff.
	Salt []byte    `json:"salt"`
	AZs  []string  `json:"azs"`
	HSMs []HSMInfo `json:"hsms"`
	// MaskingKey seals the key material every HSM of the cluster holds
	// (docs/design.md, "Keys"): it stands for the key a real cluster's
	// HSMs share inside their hardware, so masked objects copy between
	// them. Made by hsm-sim init; a cluster without one holds no keys.
	MaskingKey []byte `json:"masking_key,omitempty"`
	// Clock is the cluster's time, set by hsm-sim only; absent means real.
	Clock *simclock.Clock `json:"clock,omitempty"`
	// Faults are the simulator's switches for what the AWS account's
	// network and services do to a KMS key store's connect
	// (docs/design.md, "The KMS custom key store").
	Faults []string `json:"faults,omitempty"`

	// The cluster's certificates and life cycle (docs/design.md, "Cluster
	// certificates and backups"). State is UNINITIALIZED, INITIALIZED or
	// ACTIVE; "" is a cluster made before these fields, read as
	// initialized (and ACTIVE once an HSM holds an admin).
	State string `json:"state,omitempty"`
	// CSRKey is the HSM's own key behind the cluster CSR (PKCS #8 DER):
	// like MaskingKey it stands for a key inside the hardware.
	CSRKey []byte `json:"csr_key,omitempty"`
	CSR    string `json:"csr,omitempty"`         // PEM
	Cert   string `json:"certificate,omitempty"` // the signed cluster certificate, PEM
	// TrustAnchor is the customer's CA certificate, PEM, as given.
	TrustAnchor string `json:"trust_anchor,omitempty"`

	// Profile names the role profile (policy.ByName); absent is cloudhsm.
	Profile string `json:"profile,omitempty"`
}

// Cluster states, as DescribeClusters names them.
const (
	Uninitialized = "UNINITIALIZED"
	Initialized   = "INITIALIZED"
	Active        = "ACTIVE"
	// Deleted is hsm-sim delete-cluster's tombstone: cluster.json says
	// which cluster was there, and nothing else is left.
	Deleted = "DELETED"
)

// KDF is the argon2id cost, a cluster setting so tests can use a cheap one.
type KDF struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// The bounds of an argon2id cost: the one place that says what costs
// hsmkit runs, whether they come from --kdf, cluster.json or a stored hash
// (argon2 panics on a zero time or thread count, and a huge one would hang).
const (
	MaxKDFTime      = 10
	MaxKDFMemoryKiB = 1 << 20 // 1 GiB
	MaxKDFThreads   = 16
)

// Check refuses a cost outside the bounds.
func (k KDF) Check() error {
	switch {
	case k.Time < 1 || k.Time > MaxKDFTime:
		return fmt.Errorf("time t=%d is out of range: it is 1 to %d", k.Time, MaxKDFTime)
	case k.Threads < 1 || k.Threads > MaxKDFThreads:
		return fmt.Errorf("threads p=%d is out of range: it is 1 to %d", k.Threads, MaxKDFThreads)
	case k.MemoryKiB < 8*uint32(k.Threads) || k.MemoryKiB > MaxKDFMemoryKiB:
		return fmt.Errorf("memory m=%d KiB is out of range: it is 8×THREADS (%d) to %d (1 GiB)", k.MemoryKiB, 8*uint32(k.Threads), MaxKDFMemoryKiB)
	}
	return nil
}

// HSM status values.
const (
	Running = "running"
	Stopped = "stopped" // unreachable
)

// HSMInfo is the basic cluster info of one HSM (docs/design.md, "The
// permission table").
type HSMInfo struct {
	ID       string    `json:"id"`
	AZ       string    `json:"az"`
	IP       string    `json:"ip"`
	Serial   string    `json:"serial"`
	Model    string    `json:"model"`
	Firmware string    `json:"firmware"`
	Status   string    `json:"status"`
	Joined   time.Time `json:"joined"`
}

// HSM is the whole of one HSM, in memory: what hsm-sim dump shows, what a
// joining HSM is cloned from. Operations never load it; they read and
// write single records through an HSMTx.
type HSM struct {
	Schema      int            `json:"schema"`
	ID          string         `json:"id"`
	Seq         uint64         `json:"seq"` // bumped by every write of this file
	NextUserID  int            `json:"next_user_id"`
	NextTokenID uint32         `json:"next_token_id"`
	Users       []User         `json:"users"`
	Deleted     []Tombstone    `json:"deleted"`
	Sessions    []Session      `json:"sessions"`
	Tokens      []Token        `json:"tokens"`
	Quorum      Quorum         `json:"quorum"`
	History     []PolicyStamp  `json:"history,omitempty"`
	NextKey     uint64         `json:"next_key,omitempty"`
	Keys        []Key          `json:"keys,omitempty"`
	KeyDeleted  []KeyTombstone `json:"key_deleted,omitempty"`
	Roles       []CustomRole   `json:"roles,omitempty"`
	Policies    map[string]int `json:"policies,omitempty"`
}

// User is one user record. Changed, Seq and Op record the last user
// management change so that hsm-sync can order versions across HSMs.
type User struct {
	ID        int        `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Hash      *Hash      `json:"hash"`
	Failures  int        `json:"failures"`
	QuorumKey *PublicKey `json:"quorum_key,omitempty"`
	MFA       *PublicKey `json:"mfa,omitempty"`
	Changed   time.Time  `json:"changed"`
	Seq       uint64     `json:"seq"`
	Op        string     `json:"op"`
	// Provenance of the record (docs/design.md, "Repairs"): the operation
	// that created the user, what the last change was, and how many
	// approvals it carried (1 when none was needed; 0 unknown).
	Lineage   string `json:"lineage,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Approvals int    `json:"approvals,omitempty"`
	// Flags a profile's rules set (docs/design.md, "The Luna 7 profile");
	// CloudHSM's users never have them. They are shared: a user enabled
	// on one HSM and disabled on another is drift.
	Disabled bool `json:"disabled,omitempty"` // may not log in (Luna's optional appliance users)
	Expired  bool `json:"expired,omitempty"`  // must change its password before anything else
	Locked   bool `json:"locked,omitempty"`   // locked by another role's lockout (Luna's CU with its CO)
	// FirstUsed: a session was opened with the expired first password,
	// which is valid for that one login only.
	FirstUsed bool `json:"first_used,omitempty"`
}

// CustomRole is a custom role as a profile that has them keeps it: the
// commands it may run, as imported, and the change that made it.
type CustomRole struct {
	Name     string    `json:"name"`
	Commands []string  `json:"commands"`
	Changed  time.Time `json:"changed"`
	Op       string    `json:"op"`
}

func cloneRoles(rs []CustomRole) []CustomRole {
	out := make([]CustomRole, 0, len(rs))
	for _, r := range rs {
		r.Commands = append([]string(nil), r.Commands...)
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func clonePolicies(m map[string]int) map[string]int {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Hash is an argon2id password hash with its parameters.
type Hash struct {
	Alg       string `json:"alg"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
	Key       []byte `json:"key"`
}

// PublicKey is a registered quorum or MFA key.
type PublicKey struct {
	Fingerprint string `json:"fingerprint"` // hex SHA-256 of the SubjectPublicKeyInfo
	PEM         string `json:"pem"`
}

// Tombstone remembers a deletion, so that a partial delete can be told
// apart from a partial create.
type Tombstone struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Changed time.Time `json:"changed"`
	Seq     uint64    `json:"seq"`
	Op      string    `json:"op"`
	// DeletedOp is the Op of the record this deletion removed.
	DeletedOp string `json:"deleted_op,omitempty"`
	// Lineage is the operation that created the user this deletion
	// removed: a later record of the same lineage is that user changed
	// after its deletion, never a re-creation (docs/design.md, "Repairs").
	Lineage string `json:"lineage,omitempty"`
	// Approvals is how many approvals the deletion carried.
	Approvals int `json:"approvals,omitempty"`
}

// Provenance kinds: what made a user record what it is.
const (
	KindInit         = "init"                // hsm-sim init made it
	KindCreate       = "create"              // an admin created it
	KindActivate     = "activate"            // the unactivated admin set its password
	KindSelfPassword = "self-password"       // the user changed its own password
	KindReset        = "change-password"     // an admin set its password (this unlocks)
	KindRegister     = "register-quorum-key" // the user registered its quorum key
	KindSelfMFA      = "self-mfa"            // the user changed its own MFA key (and so its password)
	KindMFA          = "change-mfa"          // an admin changed its MFA key and set its password (this unlocks)
	KindKMSRotate    = "kms-rotate"          // a KMS key store's connect rotated kmsuser's own password
)

// PolicyStamp is one HSM's quorum values from a moment on: the history a
// repair reads to know which policy was in force when a record was made.
type PolicyStamp struct {
	At     time.Time `json:"at"`
	Seq    uint64    `json:"seq"` // the HSM's write counter of the commit that set them
	User   int       `json:"user"`
	Quorum int       `json:"quorum"`
}

// MaxHistory bounds an HSM's policy history; the oldest stamps go first,
// and a time before the oldest kept is unknown (docs/design.md, "Repairs").
const MaxHistory = 64

// Stamp appends the current values to a history; seq is the write counter
// the commit that sets them will have.
func Stamp(hist []PolicyStamp, at time.Time, seq uint64, q Quorum) []PolicyStamp {
	hist = append(hist, PolicyStamp{At: at, Seq: seq, User: q.Values["user"], Quorum: q.Values["quorum"]})
	if len(hist) > MaxHistory {
		hist = hist[len(hist)-MaxHistory:]
	}
	return hist
}

// Session is a login on this HSM; only a hash of its secret is kept.
type Session struct {
	ID         string    `json:"id"`
	SecretHash []byte    `json:"secret_hash"`
	User       string    `json:"user"`
	Role       string    `json:"role"`
	Created    time.Time `json:"created"`
}

// Token is a quorum token as this HSM holds it.
type Token struct {
	ID        uint32    `json:"id"`
	User      string    `json:"user"`
	Session   string    `json:"session"`
	Service   string    `json:"service"`
	Digest    []byte    `json:"digest"` // SHA-256 of the whole approval_data the file carries
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires,omitzero"` // fixed at generation: a later set-timeout does not move it
	Approved  time.Time `json:"approved,omitzero"`
	Used      time.Time `json:"used,omitzero"` // kept until it would have expired, so a replay is named as one
	Approvals []string  `json:"approvals,omitempty"`
	Coverage  int       `json:"coverage"` // how many HSMs the token's file covers
	// Target is the user whose MFA key an MFA registration challenge
	// registers (User is who asked for it); empty for every other token.
	Target string `json:"target,omitempty"`
	// Key is the key a key-management or key-usage token approves an
	// operation on (its reference); 0 for every other token.
	Key uint64 `json:"key,omitempty"`
}

// Quorum is the quorum policy: a value per service and the timeouts.
type Quorum struct {
	Values    map[string]int `json:"values"`
	Generated int            `json:"generated_timeout"`
	Approved  int            `json:"approved_timeout"`
}

// Clone copies the policy, its map included.
func (q Quorum) Clone() Quorum {
	c := q
	c.Values = make(map[string]int, len(q.Values))
	for k, v := range q.Values {
		c.Values[k] = v
	}
	return c
}

// Check refuses a policy no HSM could hold: a state file is outside input.
func (q Quorum) Check() error {
	for _, svc := range []string{"user", "quorum"} {
		v, ok := q.Values[svc]
		if !ok || v < 1 || v > 8 {
			return fmt.Errorf("quorum value of the %s service is %d; want 1 to 8", svc, v)
		}
	}
	for k := range q.Values {
		if k != "user" && k != "quorum" {
			return fmt.Errorf("quorum value for unknown service %q", k)
		}
	}
	if q.Generated < 1 || q.Generated > 86400 || q.Approved < 1 || q.Approved > 86400 {
		return fmt.Errorf("token timeouts %d/%d s; want 1 to 86400", q.Generated, q.Approved)
	}
	return nil
}

// DefaultQuorum is a new HSM's policy: every service off, 600 s timeouts.
func DefaultQuorum() Quorum {
	return Quorum{Values: map[string]int{"user": 1, "quorum": 1}, Generated: 600, Approved: 600}
}
