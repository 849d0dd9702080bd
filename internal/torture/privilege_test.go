//go:build linux

package torture

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/quorum"
	"github.com/hsmkit/hsmkit/internal/state"
)

// The privilege invariant: no user holds a privilege that no authorized
// operation gave it (docs/design.md, "Repairs" and "Quorum tokens are
// spent once"). The journal knows, for every user, each operation that
// wrote one of its records, by the engine's operation id (the records'
// op and lineage, the deletion records' op): a worker reads the state
// after each of its commands, killed or not, and the one id that
// appeared is that command's. Repairs copy records with their ids and
// make none. So every record on every HSM names operations the journal
// can judge:
//
//   - admins: every admin is a fixed admin of the setup (activation, or
//     a create while the quorum value was 1), with the lineage the setup
//     gave it, or a user whose lineage is an authorized create with the
//     admin role (approved by two admins in the quorum phase);
//   - deletions: no record of a lineage that a deletion removed is on any
//     HSM once the user no longer drifts (hsm-sync apply completed for
//     it); a re-creation is a new lineage;
//   - locks: a record seen locked on an HSM is unlocked there only by a
//     later record of an authorized admin's password reset or
//     re-creation, never by a copy of the same record or of a change the
//     user made itself;
//   - tokens: a token approves one operation: no two operations write
//     with one token, and an operation that wrote finds its token spent
//     on every HSM that holds it (it is spent before the operation
//     writes); one refused for another reason than its approval leaves it
//     spent too.

// verbDelete is a deletion in the journal (deletions leave deletion
// records, whose kind is not stored).
const verbDelete = "delete"

// opRec is one operation of the journal that may have written a user's
// records.
type opRec struct {
	seq        int64  // order of the operations over the whole run
	verb       string // state.KindCreate, verbDelete, state.KindReset or state.KindSelfPassword
	role       string // the role of the user it names
	approvals  int    // signatures on its token; 1 when none was needed
	authorized bool   // it carried the approvals the policy in force required, or is the user's own change
	token      string // hex SHA-256 of its token's approval_data; "" without one
	cmd        string // the command, for messages
}

func (r *opRec) String() string {
	if r == nil {
		return "an operation the journal does not know"
	}
	return fmt.Sprintf("%s (%s, %d approval(s))", r.cmd, r.verb, r.approvals)
}

// provenance is what the privilege invariant knows of one user. It
// survives the resets of the journal's other fields.
type provenance struct {
	ops      map[string]*opRec // engine op id → the operation that wrote it
	dead     map[string]string // lineage → the deletion that removed it somewhere
	lockSeen map[string]string // HSM → op of the record seen locked there
}

func (u *user) pv() *provenance {
	if u.prov == nil {
		u.prov = &provenance{ops: map[string]*opRec{}, dead: map[string]string{}, lockSeen: map[string]string{}}
	}
	return u.prov
}

func findTombstone(x *state.HSM, name string) *state.Tombstone {
	for i := range x.Deleted {
		if x.Deleted[i].Name == name {
			return &x.Deleted[i]
		}
	}
	return nil
}

// attribute learns, after the command p that rec describes (nil: a
// command that writes no user record), which engine operation it left on
// u's records: at most one id the journal does not know may have
// appeared. done is on how many HSMs an --allow-partial command said it
// was done. It returns the id, or "".
func (h *harness) attribute(u *user, p *proc, rec *opRec, done int, hsms []*state.HSM, who string) string {
	pv := u.pv()
	var unknown []string
	seen := map[string]bool{}
	note := func(id string) {
		if id != "" && pv.ops[id] == nil && !seen[id] {
			seen[id] = true
			unknown = append(unknown, id)
		}
	}
	for _, x := range hsms {
		if r := findUser(x, u.name); r != nil {
			note(r.Op)
			note(r.Lineage)
		}
		if t := findTombstone(x, u.name); t != nil {
			note(t.Op)
			note(t.Lineage)
			note(t.DeletedOp)
		}
	}
	wroteOK := !p.killed && (p.code == 0 || done > 0)
	if rec != nil && rec.token != "" && !p.killed && !wroteOK && !strings.Contains(p.stderr.String(), hsm.ErrQuorumRequired.Error()) {
		// Refused after its approval was accepted: spent everywhere all the same.
		if _, _, fresh := tokenState(hsms, rec.token); len(fresh) > 0 {
			h.errorf("%s: %s was refused (exit %d) after its approval was accepted, and left its token unused on %s: it could approve a second operation\nstderr: %s",
				who, p, p.code, strings.Join(fresh, ", "), strings.TrimSpace(p.stderr.String()))
		}
	}
	switch {
	case len(unknown) > 1 || len(unknown) == 1 && rec == nil:
		h.errorf("%s: after %s (exit %d), the records of %s name operation(s) %s that no command of the journal can have made",
			who, p, p.code, u.name, strings.Join(unknown, ", "))
		for _, id := range unknown { // reported once
			pv.ops[id] = &opRec{verb: "unknown", cmd: "an operation found after " + p.String()}
		}
		return ""
	case len(unknown) == 0:
		if rec != nil && wroteOK {
			h.errorf("%s: %s (exit %d) left no record of its operation on any HSM\nstderr: %s", who, p, p.code, strings.TrimSpace(p.stderr.String()))
		}
		return ""
	}
	id := unknown[0]
	pv.ops[id] = rec
	if !p.killed && !wroteOK {
		h.errorf("%s: %s was refused (exit %d) but wrote operation %s\nstderr: %s", who, p, p.code, id, strings.TrimSpace(p.stderr.String()))
	}
	if !rec.authorized {
		h.errorf("%s: %s, with %d approval(s) where the policy needs more, wrote operation %s", who, p, rec.approvals, id)
	}
	// The provenance the engine recorded is the command's.
	for _, x := range hsms {
		if r := findUser(x, u.name); r != nil && r.Op == id {
			want := rec.verb == state.KindCreate && r.Lineage == id || rec.verb != state.KindCreate && rec.verb != verbDelete
			if !want || r.Kind != rec.verb || r.Approvals != rec.approvals || r.Role != rec.role {
				h.errorf("%s: the record of %s on %s that %s wrote (op %s) says kind %q, %d approval(s), role %s, lineage %s; the command was %s, %d approval(s), role %s",
					who, u.name, x.ID, p, id, r.Kind, r.Approvals, r.Role, r.Lineage, rec.verb, rec.approvals, rec.role)
			}
		}
		if t := findTombstone(x, u.name); t != nil && t.Op == id {
			if rec.verb != verbDelete || t.Approvals != rec.approvals {
				h.errorf("%s: the deletion record of %s on %s that %s wrote (op %s) says %d approval(s); the command was %s with %d",
					who, u.name, x.ID, p, id, t.Approvals, rec.verb, rec.approvals)
			}
			if t.Lineage != "" {
				pv.dead[t.Lineage] = rec.cmd
			}
		}
	}
	if rec.token != "" {
		if p.killed {
			h.killedApprovedWrote.Add(1)
		}
		h.useToken(rec.token, rec.cmd, who)
		if _, _, fresh := tokenState(hsms, rec.token); len(fresh) > 0 {
			h.errorf("%s: %s wrote (op %s) while its token is still unused on %s: a token must be spent on every HSM that holds it before the operation writes",
				who, p, id, strings.Join(fresh, ", "))
		}
	}
	return id
}

// tokens is the ledger of quorum tokens: which operation wrote with each.
type tokens struct {
	mu   sync.Mutex
	used map[string]string // digest → the command that wrote with it
}

// useToken records that cmd wrote with the token; a token approves one
// operation.
func (h *harness) useToken(digest, cmd, who string) {
	if msg := h.tokens.use(digest, cmd); msg != "" {
		h.errorf("%s: %s", who, msg)
	}
}

func (t *tokens) use(digest, cmd string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.used == nil {
		t.used = map[string]string{}
	}
	if first, ok := t.used[digest]; ok {
		return fmt.Sprintf("one token approved two operations: %s, then %s", first, cmd)
	}
	t.used[digest] = cmd
	return ""
}

func (t *tokens) writer(digest string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.used[digest]
}

// tokenDigest names a token file's token on the HSMs: the SHA-256 of its
// approval_data.
func tokenDigest(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tf, err := quorum.ParseTokenFile(path, data)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(tf.ApprovalData)
	return hex.EncodeToString(sum[:]), nil
}

// tokenState says how many HSMs hold the token and how many of them hold
// it spent, and which hold it unused.
func tokenState(hsms []*state.HSM, digest string) (held, used int, fresh []string) {
	for _, x := range hsms {
		for _, t := range x.Tokens {
			if hex.EncodeToString(t.Digest) != digest {
				continue
			}
			held++
			if t.Used.IsZero() {
				fresh = append(fresh, x.ID)
			} else {
				used++
			}
		}
	}
	return held, used, fresh
}

// privilegeScan is what the invariant reads besides the HSMs.
type privilegeScan struct {
	fixed        map[string]string // users of the setup: name → role
	fixedLineage map[string]string // their lineage after the setup
	users        map[string]*user  // the workers' users
}

// scan gathers the journal of every worker.
func (c *checker) scan() *privilegeScan {
	s := &privilegeScan{fixed: c.fixed, fixedLineage: c.fixedLineage, users: map[string]*user{}}
	for _, w := range c.h.workers {
		for _, u := range w.users {
			s.users[u.name] = u
		}
	}
	return s
}

// privilege checks the invariant on hsms. drift are the users whose
// records differ between HSMs: their deletions are not settled yet.
func (c *checker) privilege(hsms []*state.HSM, drift map[string]bool, why string) {
	for _, msg := range c.scan().violations(hsms, drift) {
		c.h.privilegeErrs.Add(1)
		c.h.errorf("%s: privilege: %s", why, msg)
	}
}

// violations checks every record of every HSM, and notes where a user is
// seen locked.
func (s *privilegeScan) violations(hsms []*state.HSM, drift map[string]bool) []string {
	var bad []string
	for _, x := range hsms {
		for i := range x.Users {
			r := &x.Users[i]
			if _, ok := s.fixed[r.Name]; ok {
				if lin, ok := s.fixedLineage[r.Name]; ok && r.Lineage != lin {
					bad = append(bad, fmt.Sprintf("%s (%s) on %s is of lineage %s, not the %s the setup created: no operation re-created it", r.Name, r.Role, x.ID, r.Lineage, lin))
				}
				continue // the role: verifyCertain
			}
			u := s.users[r.Name]
			if u == nil {
				bad = append(bad, fmt.Sprintf("%s (%s) is on %s, but no command of the journal created it", r.Name, r.Role, x.ID))
				continue
			}
			pv := u.pv()
			lin, last := pv.ops[r.Lineage], pv.ops[r.Op]
			switch {
			case lin == nil || lin.verb != state.KindCreate:
				bad = append(bad, fmt.Sprintf("the record of %s (%s) on %s is of lineage %q, which no create of the journal made (%s)", r.Name, r.Role, x.ID, r.Lineage, lin))
			case last == nil:
				bad = append(bad, fmt.Sprintf("the record of %s (%s) on %s was last changed by op %q, which no command of the journal made", r.Name, r.Role, x.ID, r.Op))
			case r.Role == "admin" && (lin.role != "admin" || !lin.authorized):
				bad = append(bad, fmt.Sprintf("%s is an admin on %s, but no authorized create made it one: its lineage is %s", r.Name, x.ID, lin))
			case r.Role != lin.role:
				bad = append(bad, fmt.Sprintf("%s is a %s on %s, but %s created it a %s", r.Name, r.Role, x.ID, lin.cmd, lin.role))
			}
			if by, ok := pv.dead[r.Lineage]; ok && !drift[r.Name] {
				bad = append(bad, fmt.Sprintf("%s (%s) is on %s with lineage %s, which %s deleted, and hsm-sync sees no drift: a deleted user came back (its record: %s)",
					r.Name, r.Role, x.ID, r.Lineage, by, last))
			}
			seen, was := pv.lockSeen[x.ID]
			switch {
			case r.Failures >= hsm.MaxFailures:
				pv.lockSeen[x.ID] = r.Op
			case was && r.Op == seen:
				delete(pv.lockSeen, x.ID)
				bad = append(bad, fmt.Sprintf("%s is unlocked on %s (%d login failures) with the very record it was locked with (%s): nothing reset it",
					r.Name, x.ID, r.Failures, pv.ops[seen]))
			case was:
				delete(pv.lockSeen, x.ID)
				at := pv.ops[seen]
				if last == nil || last.verb != state.KindReset && last.verb != state.KindCreate || !last.authorized || at != nil && last.seq <= at.seq {
					bad = append(bad, fmt.Sprintf("%s is unlocked on %s (%d login failures) by %s, which is no authorized admin's reset or re-creation after the record it was locked with (%s)",
						r.Name, x.ID, r.Failures, last, at))
				}
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// TestPrivilegeChecksFail shows that each part of the privilege invariant
// fails on the state it forbids, and passes the state the rule allows: a
// check that cannot fail proves nothing.
func TestPrivilegeChecksFail(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	journal := func() *user {
		u := &user{name: "w1_0"}
		pv := u.pv()
		pv.ops["op-create"] = &opRec{seq: 1, verb: state.KindCreate, role: "crypto-user", approvals: 2, authorized: true, cmd: "create"}
		pv.ops["op-admin"] = &opRec{seq: 2, verb: state.KindCreate, role: "admin", approvals: 2, authorized: true, cmd: "create admin"}
		pv.ops["op-weak"] = &opRec{seq: 3, verb: state.KindCreate, role: "admin", approvals: 1, authorized: false, cmd: "create admin, 1 of 2"}
		pv.ops["op-self"] = &opRec{seq: 4, verb: state.KindSelfPassword, role: "crypto-user", approvals: 1, authorized: true, cmd: "self"}
		pv.ops["op-reset"] = &opRec{seq: 5, verb: state.KindReset, role: "crypto-user", approvals: 2, authorized: true, cmd: "reset"}
		pv.ops["op-del"] = &opRec{seq: 6, verb: verbDelete, role: "crypto-user", approvals: 2, authorized: true, cmd: "delete"}
		return u
	}
	rec := func(role, lineage, op string, failures int) state.User {
		return state.User{Name: "w1_0", Role: role, Lineage: lineage, Op: op, Failures: failures}
	}
	one := func(users ...state.User) []*state.HSM { return []*state.HSM{{ID: "hsm-a", Users: users}} }
	cases := []struct {
		name  string
		dead  bool // the journal says a deletion removed op-create's lineage
		drift bool // the user still drifts
		scans [][]*state.HSM
		want  string // "" passes
	}{
		{name: "approved admin", scans: [][]*state.HSM{one(rec("admin", "op-admin", "op-admin", 0))}},
		{name: "admin without approvals", scans: [][]*state.HSM{one(rec("admin", "op-weak", "op-weak", 0))}, want: "no authorized create made it one"},
		{name: "admin a crypto-user's create made", scans: [][]*state.HSM{one(rec("admin", "op-create", "op-reset", 0))}, want: "no authorized create made it one"},
		{name: "record of no known operation", scans: [][]*state.HSM{one(rec("crypto-user", "op-create", "op-ghost", 0))}, want: "which no command of the journal made"},
		{name: "lineage no create made", scans: [][]*state.HSM{one(rec("crypto-user", "op-reset", "op-reset", 0))}, want: "which no create of the journal made"},
		{name: "deleted user back", dead: true, scans: [][]*state.HSM{one(rec("crypto-user", "op-create", "op-self", 0))}, want: "a deleted user came back"},
		{name: "deleted user still drifting", dead: true, drift: true, scans: [][]*state.HSM{one(rec("crypto-user", "op-create", "op-self", 0))}},
		{name: "unlocked by a copy of its own record", scans: [][]*state.HSM{one(rec("crypto-user", "op-create", "op-create", 5)), one(rec("crypto-user", "op-create", "op-create", 4))}, want: "with the very record it was locked with"},
		{name: "unlocked by its own password change", scans: [][]*state.HSM{one(rec("crypto-user", "op-create", "op-create", 5)), one(rec("crypto-user", "op-create", "op-self", 0))}, want: "no authorized admin's reset"},
		{name: "unlocked by an older reset", scans: [][]*state.HSM{one(rec("crypto-user", "op-create", "op-del", 5)), one(rec("crypto-user", "op-create", "op-reset", 0))}, want: "no authorized admin's reset"},
		{name: "unlocked by a later reset", scans: [][]*state.HSM{one(rec("crypto-user", "op-create", "op-create", 5)), one(rec("crypto-user", "op-create", "op-reset", 0))}},
		{name: "a user nobody created", scans: [][]*state.HSM{{{ID: "hsm-a", Users: []state.User{{Name: "w9_9", Role: "admin"}}}}}, want: "no command of the journal created it"},
		{name: "a setup admin re-created", scans: [][]*state.HSM{{{ID: "hsm-a", Users: []state.User{{Name: "admin2", Role: "admin", Lineage: "op-other"}}}}}, want: "not the op-setup the setup created"},
	}
	for _, tc := range cases {
		u := journal()
		if tc.dead {
			u.pv().dead["op-create"] = "delete"
		}
		s := &privilegeScan{fixed: map[string]string{"admin2": "admin"}, fixedLineage: map[string]string{"admin2": "op-setup"}, users: map[string]*user{u.name: u}}
		var bad []string
		for _, hsms := range tc.scans {
			bad = append(bad, s.violations(hsms, map[string]bool{u.name: tc.drift})...)
		}
		switch got := strings.Join(bad, "\n"); {
		case tc.want == "" && got != "":
			t.Errorf("%s: want no violation, got:\n%s", tc.name, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("%s: want a violation saying %q, got %q", tc.name, tc.want, got)
		}
	}

	// The operations' own checks (harness.attribute) and the token ledger.
	spent := []state.Token{{ID: 1, Digest: []byte{1}, Used: at}}
	fresh := []state.Token{{ID: 1, Digest: []byte{1}}}
	hsmWith := func(users []state.User, deleted []state.Tombstone, toks []state.Token) []*state.HSM {
		return []*state.HSM{{ID: "hsm-a", Users: users, Deleted: deleted, Tokens: toks}}
	}
	created := []state.User{{Name: "w1_0", Role: "crypto-user", Lineage: "op-new", Op: "op-new", Kind: state.KindCreate, Approvals: 2}}
	steps := []struct {
		name   string
		p      *proc
		rec    *opRec
		hsms   []*state.HSM
		before string // another operation already wrote with the token
		want   string
	}{
		{name: "an approved create", p: &proc{prog: "hsm-user"}, rec: &opRec{verb: state.KindCreate, role: "crypto-user", approvals: 2, authorized: true, token: "01"},
			hsms: hsmWith(created, nil, spent)},
		{name: "a refusal that wrote", p: &proc{prog: "hsm-user", code: 1}, rec: &opRec{verb: state.KindCreate, role: "crypto-user", approvals: 2, authorized: true},
			hsms: hsmWith(created, nil, nil), want: "was refused (exit 1) but wrote"},
		{name: "a success that wrote nothing", p: &proc{prog: "hsm-user"}, rec: &opRec{verb: state.KindReset, role: "crypto-user", approvals: 2, authorized: true},
			hsms: hsmWith(nil, nil, nil), want: "left no record of its operation"},
		{name: "a write with too few approvals", p: &proc{prog: "hsm-user", killed: true, code: -1}, rec: &opRec{verb: state.KindCreate, role: "crypto-user", approvals: 1},
			hsms: hsmWith([]state.User{{Name: "w1_0", Role: "crypto-user", Lineage: "op-new", Op: "op-new", Kind: state.KindCreate, Approvals: 1}}, nil, nil), want: "wrote operation op-new"},
		{name: "provenance not the command's", p: &proc{prog: "hsm-user"}, rec: &opRec{verb: state.KindCreate, role: "crypto-user", approvals: 2, authorized: true},
			hsms: hsmWith([]state.User{{Name: "w1_0", Role: "crypto-user", Lineage: "op-new", Op: "op-new", Kind: state.KindCreate, Approvals: 1}}, nil, nil), want: "says kind \"create\", 1 approval(s)"},
		{name: "a killed write before the spend", p: &proc{prog: "hsm-user", killed: true, code: -1}, rec: &opRec{verb: state.KindCreate, role: "crypto-user", approvals: 2, authorized: true, token: "01"},
			hsms: hsmWith(created, nil, fresh), want: "must be spent on every HSM that holds it before the operation writes"},
		{name: "a refusal that left its token fresh", p: &proc{prog: "hsm-user", code: 1}, rec: &opRec{verb: state.KindCreate, role: "crypto-user", approvals: 2, authorized: true, token: "01"},
			hsms: hsmWith(nil, nil, fresh), want: "left its token unused"},
		{name: "a token used twice", p: &proc{prog: "hsm-user"}, rec: &opRec{verb: state.KindCreate, role: "crypto-user", approvals: 2, authorized: true, token: "01", cmd: "second"},
			hsms: hsmWith(created, nil, spent), before: "first", want: "one token approved two operations: first, then second"},
		{name: "two operations at once", p: &proc{prog: "hsm-user"}, rec: &opRec{verb: verbDelete, role: "crypto-user", approvals: 2, authorized: true},
			hsms: hsmWith(nil, []state.Tombstone{{Name: "w1_0", Op: "op-del2", Lineage: "op-new", Approvals: 2}}, nil), want: "that no command of the journal can have made"},
		{name: "a deletion's lineage is dead", p: &proc{prog: "hsm-user"}, rec: &opRec{verb: verbDelete, role: "crypto-user", approvals: 2, authorized: true},
			hsms: hsmWith(nil, []state.Tombstone{{Name: "w1_0", Op: "op-del2", Lineage: "op-create", Approvals: 2}}, nil)},
	}
	for _, st := range steps {
		var got []string
		h := &harness{t: t, report: func(msg string) { got = append(got, msg) }}
		if st.before != "" {
			h.tokens.use(st.rec.token, st.before)
		}
		u := journal()
		h.attribute(u, st.p, st.rec, 0, st.hsms, st.name)
		switch all := strings.Join(got, "\n"); {
		case st.want == "" && all != "":
			t.Errorf("%s: want no failure, got:\n%s", st.name, all)
		case st.want != "" && !strings.Contains(all, st.want):
			t.Errorf("%s: want a failure saying %q, got %q", st.name, st.want, all)
		}
		if _, dead := u.pv().dead["op-create"]; st.name == "a deletion's lineage is dead" && !dead {
			t.Errorf("%s: the journal does not hold op-create's lineage dead", st.name)
		}
	}
}
