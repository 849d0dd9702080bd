// Package policy is the single place that says who may do what: roles and
// the permission table as data. Every operation of the HSM engine asks
// Check before it acts, so a second role profile (Luna's, say) is a new
// Table, not new code.
package policy

import (
	"fmt"
	"strings"
)

// Role is who acts: a user's role, or no login at all.
type Role string

const (
	Admin           Role = "admin"                    // CO / PCO
	CryptoUser      Role = "crypto-user"              // CU
	Appliance       Role = "internal(APPLIANCE_USER)" // AU, the user app_user
	Unactivated     Role = "unactivated-admin"        // PRECO
	Unauthenticated Role = "unauthenticated"
	// Account is the AWS account that owns the cluster, outside every HSM:
	// hsm-sim's caller, which creates, removes, stops and starts HSMs.
	Account Role = "aws-account"
)

// Op is an operation the permission table rules on.
type Op string

const (
	// Seed 000's table.
	ClusterInfo       Op = "get basic cluster info"
	Zeroize           Op = "zeroize an HSM"
	ChangeOwnPassword Op = "change own password"
	ChangeAnyPassword Op = "change any user's password"
	ManageUsers       Op = "add, remove users"
	SyncStatus        Op = "get sync status"
	MaskedObjects     Op = "extract, insert masked objects"
	KeyManagement     Op = "key management"
	EncryptDecrypt    Op = "encrypt, decrypt"
	SignVerify        Op = "sign, verify"
	DigestHMAC        Op = "generate digests and HMACs"

	// From the cloudhsm-cli reference pages.
	ListUsers         Op = "list users"
	QuorumToken       Op = "generate, delete quorum tokens"
	QuorumPolicyRead  Op = "list quorum values and timeouts"
	QuorumPolicyWrite Op = "set quorum values and timeouts"
	RegisterQuorumKey Op = "register a quorum key"
	// cloudhsm-cli's user change-mfa: "Any user account can run this
	// command. Accounts with the Admin role can run this command for other
	// users." Deregistering a key through change-password takes these too.
	ChangeOwnMFA Op = "change own MFA"
	ChangeAnyMFA Op = "change any user's MFA"
	// Repairing a user table copies a user as a masked object; because it
	// changes the users of an HSM, hsmkit also requires an admin.
	SyncUsers Op = "synchronise users between HSMs"

	// The cluster's own life, which the AWS account controls (CloudHSM's
	// CreateCluster, CreateHsm, DeleteHsm; stop and start and the clock
	// are the simulator's). No HSM user may do these.
	InitCluster  Op = "create a cluster"
	AddHSM       Op = "add an HSM"
	RemoveHSM    Op = "remove an HSM"
	Reachability Op = "stop or start an HSM"
	SetClock     Op = "set the simulated clock"
	DumpState    Op = "dump an HSM's records"
	SetFault     Op = "set or clear a fault switch"
	InspectUser  Op = "inspect a user's records on every HSM"
	// CloudHSM's InitializeCluster, the backups it takes, DeleteCluster
	// (docs/design.md, "Cluster certificates and backups").
	InitializeCluster Op = "initialize the cluster"
	BackupCluster     Op = "back up the cluster"
	DeleteCluster     Op = "delete the cluster"

	// Keys (docs/design.md, "Keys"): listing is the admin's too; an admin
	// may set a key's trusted attribute and nothing else of a key. Which
	// key a crypto user may act on is KeyRights's.
	ListKeys   Op = "list keys"
	SetTrusted Op = "set a key's trusted attribute"

	// Sessions.
	Login  Op = "log in"
	Logout Op = "log out (end the session one holds)"
)

// Table is a permission table: for each operation, the roles allowed.
type Table struct {
	Name  string
	Roles []Role
	Ops   []Op // in the order the table is shown
	// Assignable are the roles a user may be created with.
	Assignable []Role
	// Limits are the profile's quotas (0: none).
	Limits Limits
	// Profile is the rest of the profile as data: levels, lockout rules,
	// name and password rules, initial users, custom roles (profile.go).
	Profile
	allow map[Op]map[Role]bool
	note  map[Op]string
	rule  map[Op]Rule
}

// Row is one line of a table in data form.
type Row struct {
	Op    Op
	Allow []Role
	Note  string
}

// NewTable builds a table from rows.
func NewTable(name string, roles []Role, rows []Row) *Table {
	rules := make([]Rule, len(rows))
	for i, r := range rows {
		rules[i] = Rule{Op: r.Op, Allow: r.Allow, Note: r.Note}
	}
	return NewTableRules(name, roles, rules)
}

// NewTableRules builds a table from rules: rows with a profile's extra
// conditions (see Rule).
func NewTableRules(name string, roles []Role, rules []Rule) *Table {
	t := &Table{Name: name, Roles: roles, allow: map[Op]map[Role]bool{}, note: map[Op]string{}, rule: map[Op]Rule{}}
	for _, r := range rules {
		t.Ops = append(t.Ops, r.Op)
		t.allow[r.Op] = map[Role]bool{}
		for _, role := range r.Allow {
			t.allow[r.Op][role] = true
		}
		t.note[r.Op] = r.Note
		t.rule[r.Op] = r
	}
	return t
}

var all = []Role{Admin, CryptoUser, Appliance, Unactivated, Unauthenticated}
var loggedIn = []Role{Admin, CryptoUser, Appliance, Unactivated}
var allAndAccount = append(append([]Role{}, all...), Account)
var account = []Role{Account}

// CloudHSM is CloudHSM's permission table (docs/design.md, "The
// permission table"), plus the unactivated admin's
// rule from its text and the operations the cloudhsm-cli pages describe.
var CloudHSM = NewTable("cloudhsm", allAndAccount, []Row{
	{ClusterInfo, allAndAccount, ""},
	{Zeroize, allAndAccount, "restrict with the cluster's security group"},
	{ChangeOwnPassword, loggedIn, "for the unactivated admin this is activation"},
	{ChangeAnyPassword, []Role{Admin}, ""},
	{ManageUsers, []Role{Admin}, ""},
	{SyncStatus, loggedIn, "the unactivated admin reads only"},
	{MaskedObjects, []Role{Admin, CryptoUser, Appliance}, ""},
	{KeyManagement, []Role{CryptoUser}, ""},
	{EncryptDecrypt, []Role{CryptoUser}, ""},
	{SignVerify, []Role{CryptoUser}, ""},
	{DigestHMAC, []Role{CryptoUser}, ""},
	{ListUsers, all, "cloudhsm-cli: no login needed"},
	{QuorumToken, []Role{Admin}, "user and quorum services are admin operations"},
	{QuorumPolicyRead, all, ""},
	{QuorumPolicyWrite, []Role{Admin}, ""},
	{RegisterQuorumKey, []Role{Admin, CryptoUser}, "a crypto user approves its keys' quorum operations"},
	{ChangeOwnMFA, []Role{Admin, CryptoUser}, "register, rotate or deregister one's own MFA key"},
	{ChangeAnyMFA, []Role{Admin}, "another user's MFA key"},
	{SyncUsers, []Role{Admin}, ""},
	{ListKeys, []Role{Admin, CryptoUser}, "an admin sees no key it does not own: none"},
	{SetTrusted, []Role{Admin}, "the owner may not"},
	{Login, []Role{Admin, CryptoUser, Unactivated}, "the appliance user is internal"},
	{Logout, all, "the session file's secret is the proof"},
	{InitCluster, account, ""},
	{AddHSM, account, ""},
	{RemoveHSM, account, ""},
	{Reachability, account, ""},
	{SetClock, account, "the simulator's own"},
	{DumpState, account, "hashes are shown as digests"},
	{SetFault, account, "the simulator's network and service faults"},
	{InspectUser, account, "hsm-kms doctor; no more than the state directory shows"},
	{InitializeCluster, account, "with the customer's signed certificate and trust anchor"},
	{BackupCluster, account, ""},
	{DeleteCluster, account, "its HSMs first"},
})

func init() {
	CloudHSM.Assignable = []Role{Admin, CryptoUser}
	CloudHSM.Limits = Limits{UsersPerCluster: 1024, TokensPerHSM: 1024}
	CloudHSM.Profile = Profile{
		// Five wrong passwords lock any user, counted per HSM.
		DefaultLockout: Lockout{Threshold: 5},
		FirstStep:      "hsm-user activate",
		Synced:         []Level{LevelCluster},
		Copier:         Caller{User: "app_user", Role: Appliance},
		Usernames:      NormalizeUsername,
		Passwords:      CheckPassword,
		// The unactivated admin's default password, and app_user's random
		// one (the appliance user never logs in).
		Initial: []InitialUser{
			{Name: "admin", Role: Unactivated, Password: "password"},
			{Name: "app_user", Role: Appliance, Undeletable: true},
		},
	}
}

// Limits are a profile's documented quotas. CloudHSM counts users per
// cluster; each HSM holds every user, so the engine checks each HSM.
type Limits struct {
	UsersPerCluster int // every user, the internal appliance user included
	TokensPerHSM    int // quorum tokens an HSM keeps, used ones until they expire
}

// CanAssign refuses a role no user may be created with (the internal
// appliance user, the unactivated admin, anything unknown).
func (t *Table) CanAssign(r Role) error {
	for _, a := range t.Assignable {
		if a == r {
			return nil
		}
	}
	return fmt.Errorf("role %q cannot be given to a user (want one of %s)", string(r), roleList(t.Assignable))
}

func roleList(rs []Role) string {
	var s []string
	for _, r := range rs {
		s = append(s, string(r))
	}
	return strings.Join(s, ", ")
}

// Allowed says whether role may perform op. An operation the table does
// not name is refused.
func (t *Table) Allowed(role Role, op Op) bool { return t.allow[op][role] }

// Denied is the refusal of an operation by the permission table.
type Denied struct {
	Role Role
	Op   Op
	Why  string // a rule's own condition ("only the admin account may"), "" for the role's column
}

func (d *Denied) Error() string {
	if d.Why != "" {
		return fmt.Sprintf("permission denied: %s %s", d.Why, d.Op)
	}
	if d.Role == Unauthenticated {
		return fmt.Sprintf("not logged in: %s needs a login (hsm-user login)", d.Op)
	}
	return fmt.Sprintf("permission denied: role %s may not %s", d.Role, d.Op)
}

// Check returns a *Denied error when role may not perform op.
func (t *Table) Check(role Role, op Op) error {
	if t.Allowed(role, op) {
		return nil
	}
	return &Denied{Role: role, Op: op}
}

// ParseRole reads a role as given on the command line: cloudhsm-cli's
// names, or CMU's CO and CU.
func ParseRole(s string) (Role, error) {
	switch s {
	case "admin", "CO", "co", "PCO":
		return Admin, nil
	case "crypto-user", "CU", "cu":
		return CryptoUser, nil
	}
	return "", fmt.Errorf("unknown role %q (want admin or crypto-user; CMU's CO and CU also work)", s)
}

// CMUType is the CMU user type shown by listUsers and used by createUser.
func CMUType(r Role) string {
	switch r {
	case Admin:
		return "CO"
	case CryptoUser:
		return "CU"
	case Appliance:
		return "AU"
	case Unactivated:
		return "PRECO"
	}
	return strings.ToUpper(string(r))
}
