package syncdiff

import "fmt"

import "time"

// Snapshot is what is known of one cluster: every HSM's user table.
type Snapshot struct {
	ClusterID  string
	HSMs       []HSM    // in cluster order; Server is the index CMU's "server N" uses
	ConfigHSMs []string // HSM ids the client config lists (nil when unknown, e.g. imported captures)
	// Approved: the repair carries an approval the strictest policy
	// accepts (hsm-sync apply --approval), so it may grant.
	Approved bool
	// KeysKnown: the HSMs' token keys were read (the simulated state;
	// captures carry none).
	KeysKnown bool
}

// HSM is one HSM of the cluster and its user table.
type HSM struct {
	ID        string // e.g. "hsm-abc123" or, for captures, "server 0"
	Server    int
	IP        string
	Reachable bool
	Users     []User
	Deleted   []Tombstone   // users deleted on this HSM, with when (nil when unknown)
	Policy    *Policy       // its quorum policy (nil when unknown, e.g. captures)
	History   []PolicyStamp // the quorum values it enforced, and since when (nil when unknown)
	// Keys are its token keys that differ somewhere (keys in sync are
	// left out), KeysDeleted its owners' deletions of those, and KeyHash
	// the digest of all its token keys.
	Keys        []Key
	KeysDeleted []KeyTombstone
	KeyHash     KeyHash
}

// Policy is an HSM's quorum policy: the value of each service and the
// token timeouts in seconds.
type Policy struct {
	User      int `json:"user"`
	Quorum    int `json:"quorum"`
	Generated int `json:"generated-timeout"`
	Approved  int `json:"approved-timeout"`
}

func (p Policy) String() string {
	return fmt.Sprintf("user %d, quorum %d, timeouts %ds/%ds", p.User, p.Quorum, p.Generated, p.Approved)
}

// Below reports whether p needs fewer approvals than want for some service:
// user changes made under p may have skipped approvals want requires.
func (p Policy) Below(want Policy) bool {
	return p.User < want.User || p.Quorum < want.Quorum
}

// strictest is the policy no HSM may fall below: the highest quorum
// values and the shortest timeouts of any.
func strictest(ps []Policy) Policy {
	w := ps[0]
	for _, p := range ps[1:] {
		w.User, w.Quorum = max(w.User, p.User), max(w.Quorum, p.Quorum)
		w.Generated, w.Approved = min(w.Generated, p.Generated), min(w.Approved, p.Approved)
	}
	return w
}

// User is one user record as one HSM holds it.
type User struct {
	ID   int    // CMU user id on that HSM (0 when unknown)
	Name string // lowercase
	Role string // "admin", "crypto-user", "unactivated-admin", "internal(APPLIANCE_USER)"; "inconsistent" with Drift

	PasswordHash string // opaque digest of the credential record; "" when unknown (captures)
	Locked       bool   //
	Failures     int    // login failure count
	QuorumKey    string // fingerprint of the registered quorum key, "" none
	MFA          string // "" none
	// Status is a profile's flags on the record, such as Luna's
	// "disabled" or "expired" (comma-separated); "" for none (CloudHSM).
	Status  string
	Changed time.Time // when this record last changed on this HSM (zero when unknown)
	Seq     uint64    // per-HSM change sequence number (0 when unknown)
	Op      string    // id of the operation that last changed it ("" when unknown)
	// Provenance ("" and 0 when unknown, e.g. captures): the operation
	// that created the user, the kind of the last change (state.Kind…),
	// and how many approved it.
	Lineage   string
	Kind      string
	Approvals int

	// Drift holds what a merged cloudhsm-cli view marks "inconsistent" for
	// this user ("role", "cluster-coverage", "locked", "mfa", "quorum")
	// without naming the HSM that differs. Nil for per-HSM data.
	Drift []string
}

// Tombstone records that a user was deleted on an HSM.
type Tombstone struct {
	Name    string
	Role    string
	Changed time.Time
	Seq     uint64
	Op      string
	// DeletedOp is the Op of the record the deletion removed ("" when
	// unknown): it tells a partial delete even when clocks tie.
	DeletedOp string
	// Lineage is the operation that created the deleted user, and
	// Approvals how many approved the deletion ("" and 0 when unknown).
	Lineage   string
	Approvals int
}

// PolicyStamp is an HSM's quorum values from a moment on.
type PolicyStamp struct {
	At           time.Time
	Seq          uint64 // the HSM's write counter when they were set
	User, Quorum int
}

// Roles as hsmkit shows them.
const (
	RoleAdmin            = "admin"
	RoleCryptoUser       = "crypto-user"
	RoleUnactivatedAdmin = "unactivated-admin"
	RoleAppliance        = "internal(APPLIANCE_USER)"
	// RoleInconsistent is what a merged cloudhsm-cli view says of a role
	// (and of any other value) the HSMs disagree on; such a user's Drift
	// names the field.
	RoleInconsistent = "inconsistent"
)
