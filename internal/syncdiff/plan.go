package syncdiff

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// ActionKind is what an action does on its target HSM.
type ActionKind string

// Action kinds.
const (
	ActionCopy   ActionKind = "copy"   // copy the user record from Src to Dst (create, or replace what Dst holds)
	ActionDelete ActionKind = "delete" // delete the user on Dst
)

// Action is one repair on one HSM.
type Action struct {
	Kind      ActionKind
	User      string
	Role      string  // copy: the authoritative role; delete: the role Dst holds
	Src       HSMInfo // copy only
	SrcUserID int     // copy: the user's id on Src (0 when unknown)
	Record    User    // copy: the authoritative record as Src holds it
	Dst       HSMInfo
	DstRole   string // copy: the role Dst holds now, "" when Dst lacks the user
	Fixes     []Kind // copy: the differences the copy removes on Dst
	Reason    string // the authority's reason
}

// Skipped is a differing user the plan leaves alone.
type Skipped struct {
	User     string
	Decision Decision
	Reason   string
}

// Plan is the list of repairs for a report, in user order then cluster order.
type Plan struct {
	ClusterID   string
	StaleConfig *StaleConfig
	Unreachable []string
	Actions     []Action
	Skipped     []Skipped
	Policy      *PolicyDrift // set the strictest quorum policy on these HSMs
}

// Plan turns a report into per-HSM actions. Undecidable users, and users
// whose role user commands cannot manage (the appliance user, the
// unactivated admin), are listed in Skipped; unreachable HSMs get nothing.
// (A method, since the package's Plan type takes the name.)
func (r Report) Plan() Plan {
	p := Plan{ClusterID: r.ClusterID, StaleConfig: r.StaleConfig, Unreachable: r.Unreachable, Policy: r.Policy}
	for _, ud := range r.Users {
		a := ud.Authority
		if a.Decision == DecisionUndecidable {
			p.Skipped = append(p.Skipped, Skipped{ud.Name, a.Decision, a.Reason})
			continue
		}
		var acts []Action
		manual := ""
		for hi, c := range ud.Cells {
			switch {
			case c.State == StateUnreachable:
				continue
			case a.Decision == DecisionDelete && c.State == StatePresent:
				if !manageable(c.User.Role) {
					manual = c.User.Role
				}
				acts = append(acts, Action{Kind: ActionDelete, User: ud.Name, Role: c.User.Role, Dst: r.HSMs[hi], Reason: a.Reason})
			case a.Decision == DecisionCreate || a.Decision == DecisionUpdate:
				fixes := kindsOn(ud.Differences, c.HSM)
				if len(fixes) == 0 || c.HSM == a.Source {
					continue
				}
				if !manageable(a.Version.Role) || c.State == StatePresent && !manageable(c.User.Role) {
					manual = a.Version.Role
				}
				src := r.HSMs[slices.IndexFunc(r.HSMs, func(h HSMInfo) bool { return h.ID == a.Source })]
				act := Action{Kind: ActionCopy, User: ud.Name, Role: a.Version.Role, Src: src, SrcUserID: a.Version.ID,
					Record: a.Version, Dst: r.HSMs[hi], Fixes: fixes, Reason: a.Reason}
				if c.State == StatePresent {
					act.DstRole = c.User.Role
				}
				acts = append(acts, act)
			}
		}
		if manual != "" {
			p.Skipped = append(p.Skipped, Skipped{ud.Name, a.Decision, a.Reason +
				"; but " + ud.Name + " has the role " + manual + ", which user commands cannot create or delete, so repair it by hand"})
			continue
		}
		p.Actions = append(p.Actions, acts...)
	}
	return p
}

func manageable(role string) bool { return role == RoleAdmin || role == RoleCryptoUser }

func kindsOn(ds []Difference, hsm string) []Kind {
	var ks []Kind
	for _, d := range ds {
		if d.HSM == hsm {
			ks = append(ks, d.Kind)
		}
	}
	return ks
}

// Dialects lists the plan dialects WritePlan knows.
func Dialects() []string { return []string{"hsm-user", "cloudhsm-cli", "cmu"} }

// WritePlan writes p as a script in dialect: "cmu" (cloudhsm_mgmt_util),
// "cloudhsm-cli" or "hsm-user". Lines starting with # explain each step.
// Passwords are never guessed: they appear as <PASSWORD-OF-user> placeholders
// or are read from standard input.
func WritePlan(w io.Writer, p Plan, dialect string) error {
	var d dialectWriter
	switch dialect {
	case "cmu":
		d = cmuWriter{}
	case "cloudhsm-cli":
		d = cliWriter{}
	case "hsm-user":
		d = hsmUserWriter{}
	default:
		return fmt.Errorf("unknown plan dialect %q (valid: %s)", dialect, strings.Join(Dialects(), ", "))
	}
	var b strings.Builder
	cluster := "the captured cluster"
	if p.ClusterID != "" {
		cluster = "cluster " + p.ClusterID
	}
	fmt.Fprintf(&b, "# hsm-sync repair plan for %s (dialect %s)\n", cluster, dialect)
	if c := p.StaleConfig; c.Stale() {
		s := "# stale client config:"
		if len(c.Missing) > 0 {
			s += " it lacks " + strings.Join(c.Missing, ", ") + ";"
		}
		if len(c.Unknown) > 0 {
			s += " it lists " + strings.Join(c.Unknown, ", ") + ", not in the cluster;"
		}
		b.WriteString(s + " refresh it (hsm-sync config --refresh) before managing users, or the drift comes back\n")
	}
	for _, id := range p.Unreachable {
		fmt.Fprintf(&b, "# %s is unreachable: its users are unknown and nothing is planned for it; run hsm-sync diff again when it is back\n", id)
	}
	if d := p.Policy; d != nil {
		for i, id := range d.HSMs {
			fmt.Fprintf(&b, "# quorum policy: %s has %s, weaker than the strictest elsewhere (%s); hsm-sync apply sets it, or set it there by hand (hsm-quorum set-value / set-timeout --server %s)\n",
				id, d.Has[i], d.Want, id)
		}
	}
	if len(p.Actions) == 0 && len(p.Skipped) == 0 {
		b.WriteString("# nothing to repair: the user tables agree\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	if len(p.Actions) > 0 {
		d.preamble(&b)
	}
	for i, a := range p.Actions {
		b.WriteString("\n")
		fmt.Fprintf(&b, "# step %d: %s\n", i+1, summary(a, d.hsmName(a.Dst)))
		fmt.Fprintf(&b, "# why: %s\n", a.Reason)
		d.action(&b, a)
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(&b, "\n# not planned: %s (%s): %s\n", s.User, s.Decision, s.Reason)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func summary(a Action, dst string) string {
	switch {
	case a.Kind == ActionDelete:
		return fmt.Sprintf("delete %s (%s) on %s", a.User, a.Role, dst)
	case a.DstRole == "":
		return fmt.Sprintf("create %s (%s) on %s, copying it from %s", a.User, a.Role, dst, a.Src.ID)
	case a.DstRole != a.Role:
		return fmt.Sprintf("replace %s on %s: it is %s there, %s on %s", a.User, dst, a.DstRole, a.Role, a.Src.ID)
	}
	ks := make([]string, len(a.Fixes))
	for i, k := range a.Fixes {
		ks[i] = string(k)
	}
	return fmt.Sprintf("update %s (%s) on %s to match %s (%s)", a.User, a.Role, dst, a.Src.ID, strings.Join(ks, ", "))
}

// lost lists what a password-based command (create, change-password)
// cannot restore of the authoritative record.
func lost(a Action) []string {
	var out []string
	recreated := a.DstRole != a.Role // created afresh: only what the command sets survives
	if slices.Contains(a.Fixes, KindQuorum) || recreated && a.Record.QuorumKey != "" {
		out = append(out, "the quorum key")
	}
	if slices.Contains(a.Fixes, KindMFA) || recreated && a.Record.MFA != "" {
		out = append(out, "the MFA registration")
	}
	switch {
	case a.Record.Locked:
		out = append(out, "the locked state")
	case a.Record.Failures > 0 && slices.Contains(a.Fixes, KindLock):
		out = append(out, "the login failure count")
	}
	return out
}

// recordOnly reports whether a copy fixes nothing a password command can:
// the user exists with the right role and the right credential. A lock
// difference alone is one: the source holds the strictest lock state of
// that record, which a password command would reset, not raise.
func recordOnly(a Action) bool {
	return a.Kind == ActionCopy && a.DstRole == a.Role && !slices.Contains(a.Fixes, KindPassword)
}

// reRegistered reports whether the copy restores a key its user could
// register again (quorum key, MFA).
func reRegistered(a Action) bool {
	return slices.Contains(a.Fixes, KindQuorum) || slices.Contains(a.Fixes, KindMFA)
}

// notes says what the password route cannot restore; copyRoute names what
// copies the whole record.
func notes(b *strings.Builder, a Action, pwRoute, copyRoute string) {
	if l := lost(a); a.Kind == ActionCopy && len(l) > 0 {
		fmt.Fprintf(b, "# note: %s does not restore %s; %s copies the whole record\n", pwRoute, strings.Join(l, ", "), copyRoute)
	}
}

func placeholder(user string) string { return "<PASSWORD-OF-" + user + ">" }

type dialectWriter interface {
	preamble(b *strings.Builder)
	hsmName(h HSMInfo) string
	action(b *strings.Builder, a Action)
}

// cmuWriter writes cloudhsm_mgmt_util commands, one server-mode block per step.
type cmuWriter struct{}

func cmuType(role string) string {
	if role == RoleAdmin {
		return "CO"
	}
	return "CU"
}

func (cmuWriter) preamble(b *strings.Builder) {
	b.WriteString(`# Start cloudhsm_mgmt_util with a config listing every HSM, then log in as a crypto officer:
#   enable_e2e
#   loginHSM CO <ADMIN-NAME> <PASSWORD-OF-ADMIN>
# "server N" acts on that one HSM until "exit". <PASSWORD-OF-user> is a placeholder for the
# password the user has on the other HSMs; the syncUser alternative needs none.
`)
}

func (cmuWriter) hsmName(h HSMInfo) string {
	if s := fmt.Sprintf("server %d", h.Server); h.ID != s {
		return h.ID + " (" + s + ")"
	}
	return h.ID
}

func (cmuWriter) action(b *strings.Builder, a Action) {
	n := strconv.Itoa(a.Dst.Server)
	id := strconv.Itoa(a.SrcUserID)
	if a.SrcUserID == 0 {
		id = "<USER-ID-OF-" + a.User + "-ON-SERVER-" + strconv.Itoa(a.Src.Server) + ">"
	}
	if recordOnly(a) {
		fmt.Fprintf(b, "# no password command restores %s: copy the record from %s (server %d, user id %s)\n",
			strings.Join(lost(a), ", "), a.Src.ID, a.Src.Server, id)
		fmt.Fprintf(b, "server %d\nsyncUser %s %s\nexit\n", a.Src.Server, id, n)
		return
	}
	b.WriteString("server " + n + "\n")
	switch {
	case a.Kind == ActionDelete:
		b.WriteString("deleteUser " + cmuType(a.Role) + " " + a.User + "\n")
		b.WriteString("exit\n")
		return
	case a.DstRole == "":
		b.WriteString("createUser " + cmuType(a.Role) + " " + a.User + " " + placeholder(a.User) + "\n")
	case a.DstRole != a.Role:
		b.WriteString("deleteUser " + cmuType(a.DstRole) + " " + a.User + "\n")
		b.WriteString("createUser " + cmuType(a.Role) + " " + a.User + " " + placeholder(a.User) + "\n")
	default:
		b.WriteString("changePswd " + cmuType(a.Role) + " " + a.User + " " + placeholder(a.User) + "\n")
	}
	b.WriteString("exit\n")
	how := "# or, needing no password, copy the record from %s (server %d, user id %s):\n"
	if a.DstRole != "" && a.DstRole != a.Role {
		how = "# or, needing no password, delete it as above, then copy the record from %s (server %d, user id %s):\n"
	}
	fmt.Fprintf(b, how, a.Src.ID, a.Src.Server, id)
	fmt.Fprintf(b, "#   server %d\n#   syncUser %s %s\n#   exit\n", a.Src.Server, id, n)
	pw := "createUser"
	if a.DstRole == a.Role {
		pw = "changePswd"
	}
	notes(b, a, pw, "syncUser")
}

// cliWriter writes cloudhsm-cli commands; cloudhsm-cli has no single-HSM
// mode, so each step names the one HSM its config must list.
type cliWriter struct{}

func (cliWriter) preamble(b *strings.Builder) {
	b.WriteString(`# cloudhsm-cli has no single-HSM mode: run each step with a client config that lists only its
# target HSM (sudo /opt/cloudhsm/bin/configure-cli -a <HSM-IP>), then restore the config listing
# every HSM. Log in as an admin first; in single-command mode:
#   export CLOUDHSM_ROLE=admin CLOUDHSM_PIN=<ADMIN-NAME>:<PASSWORD-OF-ADMIN>
# Add --approval <TOKEN-FILE> when the user service's quorum value is above 1.
# <PASSWORD-OF-user> is a placeholder for the password the user has on the other HSMs;
# cloudhsm-cli cannot copy a record (CMU syncUser and hsm-sync apply can, without a password).
`)
}

func (cliWriter) hsmName(h HSMInfo) string { return h.ID }

func (cliWriter) action(b *strings.Builder, a Action) {
	ip := a.Dst.IP
	if ip == "" {
		ip = "<IP-OF-" + a.Dst.ID + ">"
	}
	if recordOnly(a) {
		if reRegistered(a) {
			fmt.Fprintf(b, "# cloudhsm-cli cannot copy %s: %s registers it again on %s (with a config listing only it, sudo /opt/cloudhsm/bin/configure-cli -a %s), or copy the record with CMU syncUser (or hsm-sync apply)\n",
				strings.Join(lost(a), ", "), a.User, a.Dst.ID, ip)
		} else {
			fmt.Fprintf(b, "# cloudhsm-cli cannot set %s: copy %s's record from %s to %s with CMU syncUser (or hsm-sync apply)\n",
				strings.Join(lost(a), ", "), a.User, a.Src.ID, a.Dst.ID)
		}
		return
	}
	fmt.Fprintf(b, "# config listing only %s: sudo /opt/cloudhsm/bin/configure-cli -a %s\n", a.Dst.ID, ip)
	create := "cloudhsm-cli user create --username " + a.User + " --role " + a.Role + " --password " + placeholder(a.User) + "\n"
	switch {
	case a.Kind == ActionDelete:
		b.WriteString("cloudhsm-cli user delete --username " + a.User + " --role " + a.Role + "\n")
		return
	case a.DstRole == "":
		b.WriteString(create)
	case a.DstRole != a.Role:
		b.WriteString("cloudhsm-cli user delete --username " + a.User + " --role " + a.DstRole + "\n")
		b.WriteString(create)
	default:
		b.WriteString("cloudhsm-cli user change-password --username " + a.User + " --role " + a.Role + " --password " + placeholder(a.User) + "\n")
	}
	pw := "user create"
	if a.DstRole == a.Role {
		pw = "user change-password"
	}
	notes(b, a, pw, "CMU syncUser (or hsm-sync apply)")
}

// hsmUserWriter writes hsmkit's own commands.
type hsmUserWriter struct{}

func (hsmUserWriter) preamble(b *strings.Builder) {
	b.WriteString(`# hsm-sync apply makes these repairs without any password: it copies each record from its
# source HSM. The commands below are the manual route; each reads from standard input the
# password the user has on the other HSMs. Log in as an admin first
# (hsm-user login --username <ADMIN-NAME> --role admin). Add --approval FILE when the
# user service's quorum value is above 1.
`)
}

func (hsmUserWriter) hsmName(h HSMInfo) string { return h.ID }

func (hsmUserWriter) action(b *strings.Builder, a Action) {
	if recordOnly(a) {
		fmt.Fprintf(b, "# no hsm-user command copies %s: run hsm-sync apply, which copies %s's record from %s to %s\n",
			strings.Join(lost(a), ", "), a.User, a.Src.ID, a.Dst.ID)
		return
	}
	srv := "--server " + shellWord(a.Dst.ID) + " --username " + a.User + " --role "
	switch {
	case a.Kind == ActionDelete:
		b.WriteString("hsm-user delete " + srv + a.Role + "\n")
		return
	case a.DstRole == "":
		b.WriteString("hsm-user create " + srv + a.Role + " --password-stdin\n")
	case a.DstRole != a.Role:
		b.WriteString("hsm-user delete " + srv + a.DstRole + "\n")
		b.WriteString("hsm-user create " + srv + a.Role + " --password-stdin\n")
	default:
		b.WriteString("hsm-user change-password " + srv + a.Role + " --password-stdin\n")
	}
	pw := "hsm-user create"
	if a.DstRole == a.Role {
		pw = "hsm-user change-password"
	}
	notes(b, a, pw, "hsm-sync apply")
}

// shellWord quotes an id that is not a plain word (captured HSMs are
// named like "server 1"), so the script stays valid shell.
func shellWord(s string) string {
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
