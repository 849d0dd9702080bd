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
	// Repairing a user table copies a user as a masked object; because it
	// changes the users of an HSM, hsmkit also requires an admin.
	SyncUsers Op = "synchronise users between HSMs"
)

// Table is a permission table: for each operation, the roles allowed.
type Table struct {
	Name  string
	Roles []Role
	Ops   []Op // in the order the table is shown
	allow map[Op]map[Role]bool
	note  map[Op]string
}

// Row is one line of a table in data form.
type Row struct {
	Op    Op
	Allow []Role
	Note  string
}

// NewTable builds a table from rows.
func NewTable(name string, roles []Role, rows []Row) *Table {
	t := &Table{Name: name, Roles: roles, allow: map[Op]map[Role]bool{}, note: map[Op]string{}}
	for _, r := range rows {
		t.Ops = append(t.Ops, r.Op)
		t.allow[r.Op] = map[Role]bool{}
		for _, role := range r.Allow {
			t.allow[r.Op][role] = true
		}
		t.note[r.Op] = r.Note
	}
	return t
}

var all = []Role{Admin, CryptoUser, Appliance, Unactivated, Unauthenticated}
var loggedIn = []Role{Admin, CryptoUser, Appliance, Unactivated}

// CloudHSM is seed 000's permission table, plus the unactivated admin's
// rule from its text and the operations the cloudhsm-cli pages describe.
var CloudHSM = NewTable("cloudhsm", all, []Row{
	{ClusterInfo, all, ""},
	{Zeroize, all, "restrict with the cluster's security group"},
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
	{RegisterQuorumKey, []Role{Admin}, ""},
	{SyncUsers, []Role{Admin}, ""},
})

// Allowed says whether role may perform op. An operation the table does
// not name is refused.
func (t *Table) Allowed(role Role, op Op) bool { return t.allow[op][role] }

// Denied is the refusal of an operation by the permission table.
type Denied struct {
	Role Role
	Op   Op
}

func (d *Denied) Error() string {
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
