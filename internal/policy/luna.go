package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Thales Luna Network HSM 7's roles (docs/design.md, "The Luna 7
// profile"). The appliance's admin is the same string as CloudHSM's
// admin, so HSM_PIN's role admin names it too.
const (
	Operator Role = "operator"
	Monitor  Role = "monitor"
	Audit    Role = "audit"
	// NoRole is an appliance user added but not yet given a role: it
	// "cannot do anything in LunaSH until the admin user assigns it a role".
	NoRole Role = "none"
	// ClusterService is the cluster's own service: it copies the appliance
	// users and roles between members (docs/design.md, "The Luna 7
	// profile", Cluster authority). Nobody logs in as it.
	ClusterService Role = "cluster"

	HSMSO    Role = "so"
	Auditor  Role = "au"
	PartSO   Role = "po"
	CryptoOf Role = "co"
	LimitCO  Role = "lco"
	CryptoU  Role = "cu"
	KRSO     Role = "krso"
	KRCO     Role = "krco"
)

// Luna's operations beyond those CloudHSM shares.
const (
	AssignRole Op = "give an appliance user a role"
	EnableUser Op = "enable, disable an appliance user"
	ImportRole Op = "import a custom appliance role"
	AuditLog   Op = "manage HSM audit logging"

	InitHSM         Op = "initialize the HSM"
	LoginHSM        Op = "log in to the HSM as its SO"
	InitRole        Op = "initialize a partition role"
	ResetRole       Op = "reset a role's password"
	ShowRoles       Op = "show the roles of a partition"
	HSMPolicy       Op = "change an HSM policy"
	PartitionPolicy Op = "change a partition policy"
	CreateKeyring   Op = "create a keyring"
)

// The policies Luna's rules read (Profile.Policies says what each takes).
const (
	// PolicySOReset is HSM policy 15, "Enable SO reset of partition PIN":
	// the PO may reset the CO's password. Off by default; turning it on
	// erases every partition.
	PolicySOReset = "hsm-policy-15"
	// PolicyMaxFailures is partition policy 20, "Max failed user logins
	// allowed": the PO may lower it, never raise it.
	PolicyMaxFailures = "partition-policy-20"
	// ClusterPartition marks (value 1) the partition that holds the
	// cluster (its SMK): its PO creates the keyrings and is the cluster's
	// security officer, whom the keyring roles are kept apart from.
	ClusterPartition = "cluster-smk"
)

// DefaultLunaPassword is every predefined appliance user's first password,
// changed at the first login.
const DefaultLunaPassword = "PASSWORD"

var lunaAppliance = []Role{Admin, Operator, Monitor, Audit}

// lunaHSM are the HSM's and partitions' roles, which log in with LunaCM.
var lunaHSM = []Role{HSMSO, Auditor, PartSO, CryptoOf, LimitCO, CryptoU}

var lunaKeyring = []Role{KRSO, KRCO}

func roles(sets ...[]Role) []Role {
	var out []Role
	for _, s := range sets {
		out = append(out, s...)
	}
	return out
}

// Luna is Luna 7's permission table: the appliance's LunaSH roles. A
// custom role's column is the commands it was imported with (CheckCaller).
var Luna = NewTableRules("luna",
	roles(lunaAppliance, []Role{NoRole, ClusterService}, lunaHSM, lunaKeyring, []Role{Unauthenticated, Account}),
	[]Rule{
		{Op: ClusterInfo, Allow: []Role{Admin, Operator, Monitor, Audit, Unauthenticated, Account}, Note: "hsm show; the members' addresses are no secret"},
		{Op: Login, Allow: roles(lunaAppliance, lunaHSM, lunaKeyring), Note: "a user without a role cannot do anything; so and au after an appliance login; a first password's login must then change it", WhileExpired: true},
		{Op: Logout, Allow: roles(lunaAppliance, []Role{NoRole}, lunaHSM, lunaKeyring, []Role{Unauthenticated}), WhileExpired: true},
		{Op: ChangeOwnPassword, Allow: roles(lunaAppliance, lunaHSM, lunaKeyring), Note: "my password set; role changepw (a keyring's KRSO and KRCO share theirs)", WhileExpired: true},
		{Op: ChangeAnyPassword, Allow: []Role{Admin}, Note: "user password USER: expires it"},
		{Op: ManageUsers, Allow: []Role{Admin}, Note: "user add, user delete"},
		{Op: AssignRole, Allow: []Role{Admin}, Note: "user role add", Only: "admin"},
		{Op: EnableUser, Allow: []Role{Admin}, Note: "user enable, user disable"},
		{Op: ListUsers, Allow: []Role{Admin}, Note: "user list: non-admins run no user command"},
		{Op: ImportRole, Allow: []Role{Admin}, Note: "user role import"},
		{Op: SyncStatus, Allow: []Role{Admin, Operator, Monitor}, Note: "hsm-sync diff: drift between members"},
		{Op: SyncUsers, Allow: []Role{Admin}, Note: "the cluster's users are the authority"},
		{Op: MaskedObjects, Allow: []Role{ClusterService}, Note: "the cluster copies users and roles between members"},
		{Op: Zeroize, Allow: []Role{Admin}, Note: "hsm zeroize"},
		{Op: InitHSM, Allow: []Role{Admin}, Note: "hsm init: makes the SO, erases every partition"},
		{Op: LoginHSM, Allow: []Role{Admin}, Note: "the appliance login the SO's needs"},
		{Op: AuditLog, Allow: []Role{Audit}, Note: "audit init; the appliance login the Auditor's needs"},
		{Op: InitRole, Allow: []Role{HSMSO, PartSO, CryptoOf}, Note: "partition init (po by so); role init: co by po, lco and cu by co"},
		{Op: ResetRole, Allow: []Role{PartSO, CryptoOf}, Note: "role resetpw: co by po under HSM policy 15; lco and cu by co"},
		{Op: ShowRoles, Allow: lunaHSM, Note: "role list, role show"},
		{Op: HSMPolicy, Allow: []Role{HSMSO}, Note: "hsm changepolicy: policy 15 on erases every partition"},
		{Op: PartitionPolicy, Allow: []Role{PartSO}, Note: "partition changepolicy: policy 20 lower only"},
		{Op: CreateKeyring, Allow: []Role{PartSO}, Note: "the PO of the partition that holds the cluster sets the first KRSO/KRCO password"},
		{Op: InitCluster, Allow: []Role{Account}},
		{Op: AddHSM, Allow: []Role{Account}, Note: "a member joins"},
		{Op: RemoveHSM, Allow: []Role{Account}},
		{Op: Reachability, Allow: []Role{Account}},
		{Op: SetClock, Allow: []Role{Account}, Note: "the simulator's own"},
		{Op: DumpState, Allow: []Role{Account}, Note: "hashes are shown as digests"},
	})

func init() {
	Luna.Assignable = []Role{NoRole}
	Luna.Limits = Limits{}
	appliance := RoleSpec{Level: LevelAppliance}
	user := Lockout{Threshold: 10, Policy: PolicyMaxFailures}
	Luna.Profile = Profile{
		Specs: map[Role]RoleSpec{
			Admin: appliance, Operator: appliance, Monitor: appliance, Audit: appliance, NoRole: appliance, ClusterService: appliance,
			// Three bad SO logins zeroize the HSM; not adjustable.
			HSMSO: {Level: LevelHSM, Via: LoginHSM, Lockout: Lockout{Threshold: 3, Zeroize: LevelHSM}, Desc: "HSM Security Officer"},
			// 3, not 10 (docs/design.md, "The Luna 7 profile", Thresholds).
			Auditor: {Level: LevelHSM, Via: AuditLog, Lockout: Lockout{Threshold: 3}, Desc: "Auditor",
				Unlock: "the audit user initializes it anew (lunash audit init)"},
			// Ten bad PO logins zeroize the partition.
			PartSO: {Level: LevelPartition, InitBy: HSMSO, Lockout: Lockout{Threshold: 10, Zeroize: LevelPartition}, Desc: "Partition Security Officer"},
			// Ten bad CO logins (partition policy 20, lower only) lock the CO and the CU.
			CryptoOf: {Level: LevelPartition, InitBy: PartSO, FirstPasswordExpires: true, ResetBy: PartSO, ResetPolicy: PolicySOReset,
				Lockout: Lockout{Threshold: 10, Policy: PolicyMaxFailures, Also: []Role{CryptoU}}, Desc: "Crypto Officer"},
			LimitCO: {Level: LevelPartition, InitBy: CryptoOf, FirstPasswordExpires: true, ResetBy: CryptoOf, Lockout: user, Desc: "Limited Crypto Officer"},
			CryptoU: {Level: LevelPartition, InitBy: CryptoOf, FirstPasswordExpires: true, ResetBy: CryptoOf, Lockout: user, Desc: "Crypto User"},
			// One holder, one password; kept apart from the cluster's PO.
			// Their lockout is not documented: hsmkit locks both after 10.
			KRSO: {Level: LevelKeyring, FirstPasswordExpires: true, SharesPassword: []Role{KRCO}, SeparateFrom: PartSO,
				Lockout: Lockout{Threshold: 10, Also: []Role{KRCO}}, Desc: "Keyring Security Officer"},
			KRCO: {Level: LevelKeyring, FirstPasswordExpires: true, SharesPassword: []Role{KRSO}, SeparateFrom: PartSO,
				Lockout: Lockout{Threshold: 10, Also: []Role{KRSO}}, Desc: "Keyring Crypto Officer"},
		},
		Policies: map[string]PolicySpec{
			// Turning HSM policy 15 on erases every partition.
			PolicySOReset: {Default: 0, Level: LevelHSM, Min: 0, Max: 1, Set: HSMPolicy, EraseOnEnable: LevelPartition},
			// Partition policy 20 may be lowered, never raised above its capability.
			PolicyMaxFailures: {Default: 10, Level: LevelPartition, Min: 1, Max: 10, Set: PartitionPolicy},
		},
		// No appliance login lockout (docs/design.md, "The Luna 7 profile").
		DefaultLockout: Lockout{},
		DefaultLevel:   LevelAppliance, // custom roles are the appliance's
		// The cluster's users, roles and keyrings are the authority when an
		// appliance joins (docs/design.md, "The Luna 7 profile").
		Synced:    []Level{LevelAppliance, LevelKeyring},
		Copier:    Caller{User: "cluster", Role: ClusterService},
		FirstStep: "LUNASH_USER=admin LUNASH_PASSWORD=PASSWORD lunash my password set (the first login changes the default password)",
		Usernames: LunaUsername,
		Passwords: LunaPassword,
		RoleNames: LunaRoleName,
		Initial: []InitialUser{
			{Name: "admin", Role: Admin, Password: DefaultLunaPassword, Expired: true, Undeletable: true},
			{Name: "operator", Role: Operator, Password: DefaultLunaPassword, Expired: true, Disabled: true, Undeletable: true},
			{Name: "monitor", Role: Monitor, Password: DefaultLunaPassword, Expired: true, Disabled: true, Undeletable: true},
			{Name: "audit", Role: Audit, Password: DefaultLunaPassword, Expired: true, Disabled: true, Undeletable: true},
		},
		ResetExpires: true,
		CustomBase:   []Op{Login, Logout, ChangeOwnPassword},
		Commands: []Command{
			{Name: "exit", Op: Logout},
			{Name: "help", Op: ClusterInfo},
			{Name: "hsm show", Op: ClusterInfo},
			{Name: "hsm zeroize", Op: Zeroize},
			{Name: "hsm init", Op: InitHSM},
			{Name: "hsm login", Op: LoginHSM},
			{Name: "my password set", Op: ChangeOwnPassword},
			{Name: "user add", Op: ManageUsers, Action: ActAdd},
			{Name: "user delete", Op: ManageUsers, Action: ActDelete},
			{Name: "user disable", Op: EnableUser, Action: ActDisable},
			{Name: "user enable", Op: EnableUser, Action: ActEnable},
			{Name: "user list", Op: ListUsers},
			{Name: "user password", Op: ChangeAnyPassword},
			{Name: "user role add", Op: AssignRole},
			{Name: "user role import", Op: ImportRole},
			{Name: "audit init", Op: AuditLog, Audit: true},
			{Name: "audit login", Op: AuditLog, Audit: true},
			{Name: "audit logout", Op: AuditLog, Audit: true},
			{Name: "audit config", Op: AuditLog, Audit: true},
			{Name: "audit show", Op: AuditLog, Audit: true},
			{Name: "audit changepw", Op: AuditLog, Audit: true},
		},
	}
}

// lunaReserved are names the appliance's system keeps, which LunaSH
// refuses (docs/design.md, "The Luna 7 profile").
var lunaReserved = []string{"root", "sshd", "bin", "daemon", "nobody", "recover"}

// LunaUsername checks a LunaSH username: 1 to 32 of a-z A-Z 0-9 - . _,
// not starting with a dot, dash or digit, not a name the system keeps.
// Names are kept as given (the appliance's are case-sensitive).
func LunaUsername(s string) (string, error) {
	if !lunaName(s, 32, true) {
		return "", fmt.Errorf("invalid username %q: 1 to 32 characters a-z A-Z 0-9 - . _, not starting with a dot, dash or digit", shorten(s))
	}
	if slices.Contains(lunaReserved, s) {
		return "", fmt.Errorf("'%s' is reserved for system use and cannot be added", s)
	}
	return s, nil
}

// LunaRoleName checks a custom role's name: 1 to 255 of a-z A-Z 0-9 - .
// _, not starting with a dot or dash, and not a role of the profile.
func LunaRoleName(s string) error {
	if !lunaName(s, 255, false) {
		return fmt.Errorf("invalid role name %q: 1 to 255 characters a-z A-Z 0-9 - . _, not starting with a dot or dash", shorten(s))
	}
	if Luna.IsRole(Role(s)) {
		return fmt.Errorf("role %q is a predefined role", s)
	}
	return nil
}

func lunaName(s string, maxLen int, noDigit bool) bool {
	if len(s) == 0 || len(s) > maxLen || s[0] == '.' || s[0] == '-' || noDigit && '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// LunaPassword checks a Luna password: 8 to 255 characters from at
// least three of lowercase, uppercase, digits and others.
func LunaPassword(pw string) error {
	if n := utf8.RuneCountInString(pw); n < 8 || n > 255 {
		return errors.New("invalid password: 8 to 255 characters")
	}
	if !utf8.ValidString(pw) || strings.ContainsFunc(pw, unicode.IsControl) {
		return errors.New("invalid password: UTF-8 text without control characters")
	}
	var classes [4]bool
	for _, r := range pw {
		switch {
		case unicode.IsLower(r):
			classes[0] = true
		case unicode.IsUpper(r):
			classes[1] = true
		case unicode.IsDigit(r):
			classes[2] = true
		default:
			classes[3] = true
		}
	}
	n := 0
	for _, c := range classes {
		if c {
			n++
		}
	}
	if n < 3 {
		return errors.New("invalid password: use at least three of lowercase letters, uppercase letters, digits and other characters")
	}
	return nil
}
