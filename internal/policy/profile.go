package policy

import (
	"fmt"
	"slices"
	"strings"
)

// A role profile beyond its permission table (docs/design.md, "Adding a
// role profile" and "The Luna 7 profile"): where each role acts, what a
// run of wrong passwords does, who initializes whom, which users exist
// from the start, the name and password rules, and the commands a custom
// role may be given. The engine reads these; it never names a profile.

// Level is where a role acts.
type Level string

const (
	LevelCluster   Level = "cluster"   // CloudHSM: every user is every HSM's
	LevelAppliance Level = "appliance" // Luna's LunaSH users
	LevelHSM       Level = "hsm"       // Luna's HSM SO and Auditor
	LevelPartition Level = "partition" // Luna's PO, CO, LCO, CU
	LevelKeyring   Level = "keyring"   // Luna's KRSO, KRCO
)

// OfHSM says whether records of the level are the HSM's own, which its
// zeroization erases (CloudHSM's users; Luna's HSM and partition roles),
// rather than the appliance's or the cluster's.
func (l Level) OfHSM() bool { return l == LevelCluster || l == LevelHSM || l == LevelPartition }

// Lockout is what consecutive wrong passwords do to a role.
type Lockout struct {
	Threshold int // wrong passwords in a row; 0: never locked
	// Policy names the policy value that may lower (never raise) the
	// threshold, "" when it is fixed.
	Policy string
	// Also are the roles of the same scope locked with it.
	Also []Role
	// Zeroize is the level erased, in the role's scope, when the
	// threshold is reached ("": the role is locked, nothing erased).
	Zeroize Level
}

// RoleSpec is one role of a profile.
type RoleSpec struct {
	Level Level
	// InitBy is the role that initializes this one ("" when users are
	// created with ManageUsers, or the role comes with the cluster).
	InitBy Role
	// FirstPasswordExpires: the password set by another is valid for the
	// first login only, which must change it.
	FirstPasswordExpires bool
	Lockout              Lockout
	// Via is the operation the caller of another login must be allowed
	// before this role logs in (Luna: the appliance login before the HSM's).
	Via Op
	// ResetBy is the role that resets this one's password without the
	// current one, and ResetPolicy the HSM policy that must be on for it
	// ("" always).
	ResetBy     Role
	ResetPolicy string
	// SharesPassword are the roles of the same scope that hold this one's
	// password: changing one changes them all (Luna's KRSO and KRCO).
	SharesPassword []Role
	// SeparateFrom is the role whose holder may not hold this one: its
	// password is refused for this role (Luna: the keyring roles and the
	// PO of the partition that holds the cluster).
	SeparateFrom Role
	// Unlock says how a locked role is made usable again, where no role
	// resets it (Luna's Auditor: the audit user initializes it anew).
	Unlock string
	Desc   string
}

// InitialUser is a user every HSM of a new cluster holds.
type InitialUser struct {
	Name        string
	Role        Role
	Password    string // "": a random one nobody knows
	Disabled    bool
	Expired     bool
	Undeletable bool
}

// Command is a command of the profile's own shell that a custom role may
// be given, and the operation of the table it runs.
type Command struct {
	Name string
	Op   Op
	// Action is which of its operation's actions the command runs, where
	// commands share an operation (user add and user delete both manage
	// users): a custom role given one is given that action only. "" is
	// every action of the operation.
	Action string
	Audit  bool // the audit role's: never given to a custom role
}

// The actions of an operation that several commands share (Command.Action).
const (
	ActAdd     = "add"
	ActDelete  = "delete"
	ActEnable  = "enable"
	ActDisable = "disable"
)

// Profile is the part of a Table that is not who-may-run-what.
type Profile struct {
	Specs     map[Role]RoleSpec
	FirstStep string // what a new cluster's owner does first (hsm-sim init says it)
	// Copier is who inserts the records a repair copies between HSMs
	// (CloudHSM's appliance user; Luna's cluster service).
	Copier         Caller
	DefaultLockout Lockout // of a role without a spec
	DefaultLevel   Level   // of a role without a spec (a custom role); "" is LevelCluster
	// Synced are the levels whose records are the cluster's, the same on
	// every HSM: a joining member's own are overwritten by the cluster's.
	Synced    []Level
	Usernames func(string) (string, error)
	Passwords func(string) error
	RoleNames func(string) error // a custom role's name (nil: no custom roles)
	Initial   []InitialUser
	// ResetExpires: a password set by another must be changed at the
	// user's next login (Luna's user password USER).
	ResetExpires bool
	// Commands a custom role may hold; none: the profile has no custom
	// roles. CustomBase are the operations every custom role may run.
	Commands   []Command
	CustomBase []Op
	// Policies are the profile's adjustable policy values (a lockout's
	// Policy names one).
	Policies map[string]PolicySpec
}

// PolicySpec is one adjustable policy value: whose it is, who sets it,
// what values it takes, and what setting it does.
type PolicySpec struct {
	Default int
	// Level is whose value it is: the HSM's (one per HSM) or a
	// partition's (one per partition, its caller's).
	Level Level
	Min   int
	Max   int // a lower-only policy's Max is its Default (its capability)
	Set   Op  // the operation that sets it
	// EraseOnEnable is the level erased, everywhere on the HSM, when the
	// value goes from 0 to another ("" nothing).
	EraseOnEnable Level
}

// Rule is a row with a profile's extra conditions.
type Rule struct {
	Op    Op
	Allow []Role
	Note  string
	// Only is the one user who may run it, whatever others hold its role
	// (Luna: only the original admin account assigns roles).
	Only string
	// WhileExpired: a caller whose password expired may run it (changing
	// that password; logging out).
	WhileExpired bool
}

// Caller is what the gate knows of who acts on an HSM.
type Caller struct {
	User    string
	Role    Role
	Custom  []string // the commands of a custom role, from the HSM's records
	Expired bool
	// Action is what the operation does (Command.Action): a custom role's
	// command that names another action of the same operation allows
	// nothing.
	Action string
}

// Spec is a role's spec; a role without one acts at the profile's
// default level with its default lockout.
func (t *Table) Spec(r Role) RoleSpec {
	if s, ok := t.Specs[r]; ok {
		return s
	}
	lv := t.DefaultLevel
	if lv == "" {
		lv = LevelCluster
	}
	return RoleSpec{Level: lv, Lockout: t.DefaultLockout}
}

// IsRole says whether r is one of the table's own roles (not a custom one).
func (t *Table) IsRole(r Role) bool { return slices.Contains(t.Roles, r) }

// Expired refuses an operation to a caller whose password expired.
type Expired struct {
	User string
	Op   Op
}

func (e *Expired) Error() string {
	return fmt.Sprintf("the password of %s has expired: change it before you %s", e.User, e.Op)
}

// CheckCaller asks the table about a caller: its role's column, or for a
// custom role the commands it holds; then the rule's own conditions.
func (t *Table) CheckCaller(c Caller, op Op) error {
	ok := t.Allowed(c.Role, op)
	if !t.IsRole(c.Role) && c.Role != "" && len(t.Commands) > 0 {
		ok = slices.Contains(t.CustomBase, op) || slices.ContainsFunc(c.Custom, func(name string) bool {
			cmd, known := t.Command(name)
			return known && cmd.Op == op && !cmd.Audit && (cmd.Action == "" || cmd.Action == c.Action)
		})
	}
	r := t.rule[op]
	if c.Expired && !r.WhileExpired {
		// The first thing to do, whatever the role may do after.
		return &Expired{User: c.User, Op: op}
	}
	if !ok {
		return &Denied{Role: c.Role, Op: op}
	}
	if r.Only != "" && c.User != r.Only {
		return &Denied{Role: c.Role, Op: op, Why: "only the " + r.Only + " account may"}
	}
	return nil
}

// Command finds a command of the profile's shell by its exact name.
func (t *Table) Command(name string) (Command, bool) {
	for _, c := range t.Commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// Undeletable says whether a user of that name came with the cluster and
// stays.
func (t *Table) Undeletable(name string) bool {
	return slices.ContainsFunc(t.Initial, func(u InitialUser) bool { return u.Undeletable && u.Name == name })
}

// RecordName is the name of the record a role of a level above the
// appliance is kept under, in its scope (a partition's name, "hsm"):
// "co@par1". LunaSH names never hold '@', so these never meet a user.
func RecordName(r Role, scope string) string { return string(r) + "@" + scope }

// SplitRecord reads a record name back: the role and its scope, or ok
// false for an ordinary user's name.
func SplitRecord(name string) (Role, string, bool) {
	r, scope, ok := strings.Cut(name, "@")
	return Role(r), scope, ok
}

// LockThreshold is the number of wrong passwords that lock the role
// recorded under name (a user's, or a role's record), with the HSM's
// policy values (a value may only lower the default).
func (t *Table) LockThreshold(r Role, name string, policies map[string]int) int {
	l := t.Spec(r).Lockout
	if l.Policy != "" {
		_, scope, _ := SplitRecord(name)
		if v, ok := policies[PolicyKey(l.Policy, scope)]; ok && v >= 1 && v < l.Threshold {
			return v
		}
	}
	return l.Threshold
}

// ByName is the profile a cluster names (cluster.json's profile; "" is
// CloudHSM's).
func ByName(name string) (*Table, error) {
	for _, t := range Profiles() {
		if t.Name == name || name == "" && t == CloudHSM {
			return t, nil
		}
	}
	return nil, fmt.Errorf("unknown role profile %q (want %s)", name, strings.Join(ProfileNames(), " or "))
}

// StoredName is the name cluster.json records for t, which ByName reads
// back: none for CloudHSM's, so a cluster made before profiles existed
// and one made since store the same bytes.
func (t *Table) StoredName() string {
	if t == CloudHSM {
		return ""
	}
	return t.Name
}

// Profiles are the role profiles hsmkit knows.
func Profiles() []*Table { return []*Table{CloudHSM, Luna} }

// ProfileNames are their names.
func ProfileNames() []string {
	var n []string
	for _, t := range Profiles() {
		n = append(n, t.Name)
	}
	return n
}

// Username checks a name as the profile's rule wants it, returning its
// stored form; a role record's name (RecordName) of one of the profile's
// roles above the appliance is taken as it is.
func (t *Table) Username(s string) (string, error) {
	if r, scope, ok := SplitRecord(s); ok {
		if spec, has := t.Specs[r]; has && spec.Level != LevelAppliance && lunaName(scope, 32, false) {
			return s, nil
		}
	}
	return t.Usernames(s)
}

// CheckInit refuses a role initializing one it does not initialize
// (RoleSpec.InitBy).
func (t *Table) CheckInit(by, r Role) error {
	s, ok := t.Specs[r]
	if !ok || s.InitBy == "" {
		return fmt.Errorf("role %q is not one that is initialized", r)
	}
	if s.InitBy != by {
		return &Denied{Role: by, Op: InitRole, Why: fmt.Sprintf("only the %s initializes the %s; the %s may not", s.InitBy, r, by)}
	}
	return nil
}

// CheckReset refuses a role resetting a password it may not reset
// (RoleSpec.ResetBy, under its ResetPolicy when it names one).
func (t *Table) CheckReset(by, r Role, policies map[string]int) error {
	s := t.Spec(r)
	if s.ResetBy == "" {
		return &Denied{Role: by, Op: ResetRole, Why: fmt.Sprintf("nobody resets the %s's password; the %s may not", r, by)}
	}
	if s.ResetBy != by {
		return &Denied{Role: by, Op: ResetRole, Why: fmt.Sprintf("only the %s resets the %s's; the %s may not", s.ResetBy, r, by)}
	}
	if s.ResetPolicy != "" && policies[s.ResetPolicy] == 0 {
		return &Denied{Role: by, Op: ResetRole, Why: fmt.Sprintf("%s is off, so the %s may not", s.ResetPolicy, by)}
	}
	return nil
}

// PolicyKey is where an HSM keeps a policy value: a partition's own, or
// the HSM's (scope "").
func PolicyKey(name, scope string) string {
	if scope == "" {
		return name
	}
	return RecordName(Role(name), scope)
}
