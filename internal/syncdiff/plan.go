package syncdiff

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/hsmkit/hsmkit/internal/safetext"
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
	KeyActions  []KeyAction  // in key order, then cluster order
	KeySkipped  []KeySkipped
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
				// Completing an activation that missed this HSM (its admin
				// still unactivated) is a copy like any other.
				completes := c.State == StatePresent && c.User.Role == RoleUnactivatedAdmin && a.Version.Role == RoleAdmin
				if !manageable(a.Version.Role) || c.State == StatePresent && !manageable(c.User.Role) && !completes {
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
	r.planKeys(&p)
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
//
// People paste plans into a shell, and the HSM ids, usernames and IPs in
// them may come from captures (an HSM id is a capture's file name), so
// every value from outside is written for the dialect:
//
//   - Comment lines, in every dialect: the text after "# " is escaped with
//     safetext.Escape (a newline is \x0a, an ESC \x1b, a bidi override
//     \u202e), so a comment is always one line, whatever it quotes, and
//     holds no terminal control.
//   - hsm-user, a POSIX shell script: a command word that is not a plain
//     word (letters, digits, '.', '_', '-') is single-quoted, a single
//     quote in it closed, escaped with a backslash and reopened. A value
//     single quotes cannot carry safely on one line (a control or bidi
//     character, invalid UTF-8), an empty value, or one starting with '-'
//     (it would read as a flag) is refused.
//   - cmu and cloudhsm-cli: cloudhsm_mgmt_util and cloudhsm-cli's
//     interactive mode are line-based shells that split on blanks with no
//     quoting to rely on (and cloudhsm-cli's single-command mode runs in a
//     POSIX shell), so a value must be a plain token: ASCII letters,
//     digits, '_', '-', '.', ':', not starting with '-'. Anything else is
//     refused.
//
// A refused value withholds its whole step: a comment shows the value
// escaped and says to make that repair by hand; no command of the step is
// written.
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
	var b script
	cluster := "the captured cluster"
	if p.ClusterID != "" {
		cluster = "cluster " + p.ClusterID
	}
	b.comment("hsm-sync repair plan for %s (dialect %s)", cluster, dialect)
	if c := p.StaleConfig; c.Stale() {
		s := "stale client config:"
		if len(c.Missing) > 0 {
			s += " it lacks " + strings.Join(c.Missing, ", ") + ";"
		}
		if len(c.Unknown) > 0 {
			s += " it lists " + strings.Join(c.Unknown, ", ") + ", not in the cluster;"
		}
		b.comment("%s refresh it (hsm-sync config --refresh) before managing users, or the drift comes back", s)
	}
	for _, id := range p.Unreachable {
		b.comment("%s is unreachable: its users are unknown and nothing is planned for it; run hsm-sync diff again when it is back", id)
	}
	if d := p.Policy; d != nil {
		for i, id := range d.HSMs {
			b.comment("quorum policy: %s has %s, weaker than the strictest elsewhere (%s); hsm-sync apply sets it, or set it there by hand (hsm-quorum set-value / set-timeout --server %s)",
				id, d.Has[i], d.Want, id)
		}
	}
	if len(p.Actions) == 0 && len(p.Skipped) == 0 {
		b.comment("nothing to repair: the user tables agree")
		_, err := io.WriteString(w, b.String())
		return err
	}
	if len(p.Actions) > 0 {
		d.preamble(&b)
	}
	for i, a := range p.Actions {
		b.blank()
		b.comment("step %d: %s", i+1, summary(a, d.hsmName(a.Dst)))
		b.comment("why: %s", a.Reason)
		if what, v, why := d.refuse(a); why != "" {
			b.comment("not written: %s '%s' %s, so no %s command can safely name it; make this repair by hand", what, v, why, dialect)
			continue
		}
		d.action(&b, a)
	}
	for _, s := range p.Skipped {
		b.blank()
		b.comment("not planned: %s (%s): %s", s.User, s.Decision, s.Reason)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// script is a plan being written, line by line.
type script struct{ strings.Builder }

// comment writes one comment line, its text escaped (safetext): it can
// neither end early nor carry a terminal control.
func (b *script) comment(format string, args ...any) {
	b.WriteString("# " + safetext.Escape(fmt.Sprintf(format, args...)) + "\n")
}

// command writes one command line of words the dialect has checked.
func (b *script) command(words ...string) { b.WriteString(strings.Join(words, " ") + "\n") }

func (b *script) blank() { b.WriteString("\n") }

// text writes fixed lines of the dialect's own (no outside value).
func (b *script) text(s string) { b.WriteString(s) }

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
func notes(b *script, a Action, pwRoute, copyRoute string) {
	if l := lost(a); a.Kind == ActionCopy && len(l) > 0 {
		b.comment("note: %s does not restore %s; %s copies the whole record", pwRoute, strings.Join(l, ", "), copyRoute)
	}
}

func placeholder(user string) string { return "<PASSWORD-OF-" + user + ">" }

type dialectWriter interface {
	preamble(b *script)
	hsmName(h HSMInfo) string
	// refuse names the first value a's commands would carry that the
	// dialect cannot write safely: what it is, the value, and why ("" when
	// every value is safe, or the step writes no command).
	refuse(a Action) (what, value, why string)
	action(b *script, a Action)
}

// actionValues lists the outside values an action's commands carry.
func actionValues(a Action, withHSM bool) (whats, values []string) {
	if withHSM {
		whats, values = append(whats, "the HSM id"), append(values, a.Dst.ID)
	}
	whats, values = append(whats, "the username", "the role"), append(values, a.User, a.Role)
	if a.DstRole != "" {
		whats, values = append(whats, "the role"), append(values, a.DstRole)
	}
	return whats, values
}

// refuseWith applies check to each value; see WritePlan for the rules.
func refuseWith(whats, values []string, check func(string) string) (what, value, why string) {
	for i, v := range values {
		if why := check(v); why != "" {
			return whats[i], safetext.Escape(v), why
		}
	}
	return "", "", ""
}

// plainToken is the cmu and cloudhsm-cli rule: ASCII letters, digits,
// '_', '-', '.', ':', not starting with '-'.
func plainToken(s string) string {
	switch {
	case s == "":
		return "is empty"
	case s[0] == '-':
		return "starts with '-' and would read as an option"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isPlain(c) || c == ':') {
			return "holds characters other than letters, digits, '_', '-', '.' and ':'"
		}
	}
	return ""
}

func isPlain(c byte) bool {
	return c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// cmuWriter writes cloudhsm_mgmt_util commands, one server-mode block per step.
type cmuWriter struct{}

func cmuType(role string) string {
	if role == RoleAdmin {
		return "CO"
	}
	return "CU"
}

func (cmuWriter) preamble(b *script) {
	b.text(`# Start cloudhsm_mgmt_util with a config listing every HSM, then log in as a crypto officer:
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

// refuse: CMU commands name servers by number, never by id.
func (cmuWriter) refuse(a Action) (what, value, why string) {
	return refuseWith([]string{"the username"}, []string{a.User}, plainToken)
}

func (cmuWriter) action(b *script, a Action) {
	n := strconv.Itoa(a.Dst.Server)
	id := strconv.Itoa(a.SrcUserID)
	if a.SrcUserID == 0 {
		id = "<USER-ID-OF-" + a.User + "-ON-SERVER-" + strconv.Itoa(a.Src.Server) + ">"
	}
	src := strconv.Itoa(a.Src.Server)
	if recordOnly(a) {
		b.comment("no password command restores %s: copy the record from %s (server %d, user id %s)",
			strings.Join(lost(a), ", "), a.Src.ID, a.Src.Server, id)
		b.command("server", src)
		b.command("syncUser", id, n)
		b.command("exit")
		return
	}
	b.command("server", n)
	switch {
	case a.Kind == ActionDelete:
		b.command("deleteUser", cmuType(a.Role), a.User)
		b.command("exit")
		return
	case a.DstRole == "":
		b.command("createUser", cmuType(a.Role), a.User, placeholder(a.User))
	case a.DstRole != a.Role:
		b.command("deleteUser", cmuType(a.DstRole), a.User)
		b.command("createUser", cmuType(a.Role), a.User, placeholder(a.User))
	default:
		b.command("changePswd", cmuType(a.Role), a.User, placeholder(a.User))
	}
	b.command("exit")
	how := "or, needing no password, copy the record from %s (server %d, user id %s):"
	if a.DstRole != "" && a.DstRole != a.Role {
		how = "or, needing no password, delete it as above, then copy the record from %s (server %d, user id %s):"
	}
	b.comment(how, a.Src.ID, a.Src.Server, id)
	b.comment("  server %s", src)
	b.comment("  syncUser %s %s", id, n)
	b.comment("  exit")
	pw := "createUser"
	if a.DstRole == a.Role {
		pw = "changePswd"
	}
	notes(b, a, pw, "syncUser")
}

// cliWriter writes cloudhsm-cli commands; cloudhsm-cli has no single-HSM
// mode, so each step names the one HSM its config must list.
type cliWriter struct{}

func (cliWriter) preamble(b *script) {
	b.text(`# cloudhsm-cli has no single-HSM mode: run each step with a client config that lists only its
# target HSM (sudo /opt/cloudhsm/bin/configure-cli -a <HSM-IP>), then restore the config listing
# every HSM. Log in as an admin first; in single-command mode:
#   export CLOUDHSM_ROLE=admin CLOUDHSM_PIN=<ADMIN-NAME>:<PASSWORD-OF-ADMIN>
# Add --approval <TOKEN-FILE> when the user service's quorum value is above 1.
# <PASSWORD-OF-user> is a placeholder for the password the user has on the other HSMs;
# cloudhsm-cli cannot copy a record (CMU syncUser and hsm-sync apply can, without a password).
`)
}

func (cliWriter) hsmName(h HSMInfo) string { return h.ID }

// refuse: the HSM is named only in comments; a record-only step writes
// no command.
func (cliWriter) refuse(a Action) (what, value, why string) {
	if recordOnly(a) {
		return "", "", ""
	}
	whats, values := actionValues(a, false)
	return refuseWith(whats, values, plainToken)
}

// configureIP is the IP for configure-cli -a, or a placeholder when it is
// unknown or not a plain token.
func configureIP(h HSMInfo) string {
	if h.IP == "" || plainToken(h.IP) != "" {
		return "<IP-OF-" + h.ID + ">"
	}
	return h.IP
}

func (cliWriter) action(b *script, a Action) {
	ip := configureIP(a.Dst)
	if recordOnly(a) {
		if reRegistered(a) {
			b.comment("cloudhsm-cli cannot copy %s: %s registers it again on %s (with a config listing only it, sudo /opt/cloudhsm/bin/configure-cli -a %s), or copy the record with CMU syncUser (or hsm-sync apply)",
				strings.Join(lost(a), ", "), a.User, a.Dst.ID, ip)
		} else {
			b.comment("cloudhsm-cli cannot set %s: copy %s's record from %s to %s with CMU syncUser (or hsm-sync apply)",
				strings.Join(lost(a), ", "), a.User, a.Src.ID, a.Dst.ID)
		}
		return
	}
	b.comment("config listing only %s: sudo /opt/cloudhsm/bin/configure-cli -a %s", a.Dst.ID, ip)
	create := []string{"cloudhsm-cli", "user", "create", "--username", a.User, "--role", a.Role, "--password", placeholder(a.User)}
	switch {
	case a.Kind == ActionDelete:
		b.command("cloudhsm-cli", "user", "delete", "--username", a.User, "--role", a.Role)
		return
	case a.DstRole == "":
		b.command(create...)
	case a.DstRole != a.Role:
		b.command("cloudhsm-cli", "user", "delete", "--username", a.User, "--role", a.DstRole)
		b.command(create...)
	default:
		b.command("cloudhsm-cli", "user", "change-password", "--username", a.User, "--role", a.Role, "--password", placeholder(a.User))
	}
	pw := "user create"
	if a.DstRole == a.Role {
		pw = "user change-password"
	}
	notes(b, a, pw, "CMU syncUser (or hsm-sync apply)")
}

// hsmUserWriter writes hsmkit's own commands.
type hsmUserWriter struct{}

func (hsmUserWriter) preamble(b *script) {
	b.text(`# hsm-sync apply makes these repairs without any password: it copies each record from its
# source HSM. The commands below are the manual route; each reads from standard input the
# password the user has on the other HSMs. Log in as an admin first
# (hsm-user login --username <ADMIN-NAME> --role admin). Add --approval FILE when the
# user service's quorum value is above 1.
`)
}

func (hsmUserWriter) hsmName(h HSMInfo) string { return h.ID }

// refuse: a record-only step writes no command.
func (hsmUserWriter) refuse(a Action) (what, value, why string) {
	if recordOnly(a) {
		return "", "", ""
	}
	whats, values := actionValues(a, true)
	return refuseWith(whats, values, shellArg)
}

// shellArg is the hsm-user rule for a value: anything single quotes carry
// on one line that does not read as a flag.
func shellArg(s string) string {
	switch {
	case s == "":
		return "is empty"
	case s[0] == '-':
		return "starts with '-' and would read as an option"
	case !safetext.Safe(s):
		return "holds a control or bidi character (shown escaped)"
	}
	return ""
}

func (hsmUserWriter) action(b *script, a Action) {
	if recordOnly(a) {
		b.comment("no hsm-user command copies %s: run hsm-sync apply, which copies %s's record from %s to %s",
			strings.Join(lost(a), ", "), a.User, a.Src.ID, a.Dst.ID)
		return
	}
	cmd := func(verb, role string, stdin bool) {
		w := []string{"hsm-user", verb, "--server", shellWord(a.Dst.ID), "--username", shellWord(a.User), "--role", shellWord(role)}
		if stdin {
			w = append(w, "--password-stdin")
		}
		b.command(w...)
	}
	switch {
	case a.Kind == ActionDelete:
		cmd("delete", a.Role, false)
		return
	case a.DstRole == "":
		cmd("create", a.Role, true)
	case a.DstRole != a.Role:
		cmd("delete", a.DstRole, false)
		cmd("create", a.Role, true)
	default:
		cmd("change-password", a.Role, true)
	}
	pw := "hsm-user create"
	if a.DstRole == a.Role {
		pw = "hsm-user change-password"
	}
	notes(b, a, pw, "hsm-sync apply")
}

// shellWord writes s as one POSIX shell word: as is when it is a plain
// word, else in single quotes (captured HSMs are named like "server 1").
// The caller has refused what single quotes cannot carry (shellArg).
func shellWord(s string) string {
	for i := 0; i < len(s); i++ {
		if !isPlain(s[i]) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	if s == "" {
		return "''"
	}
	return s
}
