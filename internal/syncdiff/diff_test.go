package syncdiff

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

type opt func(*User)

func role(r string) opt          { return func(u *User) { u.Role = r } }
func hash(h string) opt          { return func(u *User) { u.PasswordHash = h } }
func changed(m int) opt          { return func(u *User) { u.Changed = at(m) } }
func seq(s uint64) opt           { return func(u *User) { u.Seq = s } }
func locked(f int) opt           { return func(u *User) { u.Failures, u.Locked = f, f >= 5 } }
func quorum(q string) opt        { return func(u *User) { u.QuorumKey = q } }
func mfa(m string) opt           { return func(u *User) { u.MFA = m } }
func op(o string) opt            { return func(u *User) { u.Op = o } }
func captured() opt              { return func(u *User) { u.PasswordHash, u.Changed, u.Seq = "", time.Time{}, 0 } }
func withID(id int) opt          { return func(u *User) { u.ID = id } }
func drift(fields ...string) opt { return func(u *User) { u.Drift = fields } }
func kind(k string) opt          { return func(u *User) { u.Kind = k } }

func usr(name string, opts ...opt) User {
	u := User{Name: name, Role: RoleCryptoUser, PasswordHash: "h-" + name, Changed: t0, Seq: 1}
	for _, o := range opts {
		o(&u)
	}
	return u
}

// base is what every HSM of a test cluster holds.
func base() []User {
	return []User{usr("admin", role(RoleAdmin), withID(1)), usr("app_user", role(RoleAppliance), withID(2))}
}

func hsm(id string, server int, users ...User) HSM {
	us := append(base(), users...)
	return HSM{ID: id, Server: server, IP: fmt.Sprintf("10.0.0.%d", server+1), Reachable: true, Users: us, Deleted: []Tombstone{}}
}

func tomb(h HSM, name string, m int) HSM {
	h.Deleted = append(h.Deleted, Tombstone{Name: name, Role: RoleCryptoUser, Changed: at(m), Seq: uint64(m), Op: fmt.Sprintf("op-%d", m)})
	return h
}

func down(h HSM) HSM { h.Reachable = false; return h }

// tombOf is a deletion at minute m of the version last changed by deletedOp.
func tombOf(h HSM, name string, m int, deletedOp string) HSM {
	h = tomb(h, name, m)
	h.Deleted[len(h.Deleted)-1].DeletedOp = deletedOp
	return h
}

func noRecords(h HSM) HSM { h.Deleted = nil; return h }

// userQuorum gives h a quorum policy with that user service value.
func userQuorum(h HSM, v int) HSM { return quorums(h, v, 1) }

// quorums gives h a quorum policy with these user and quorum service values.
func quorums(h HSM, user, quorum int) HSM {
	h.Policy = &Policy{User: user, Quorum: quorum, Generated: 600, Approved: 600}
	return h
}

func cluster(hs ...HSM) Snapshot {
	s := Snapshot{ClusterID: "cluster-test", HSMs: hs}
	for _, h := range hs {
		s.ConfigHSMs = append(s.ConfigHSMs, h.ID)
	}
	return s
}

type wantUser struct {
	decision Decision
	source   string
	diffs    []string // "hsm:kind"
	reason   []string // substrings of the reason
}

func TestDiffAuthority(t *testing.T) {
	a, b, c := "hsm-a", "hsm-b", "hsm-c"
	tests := []struct {
		name  string
		snap  Snapshot
		users map[string]wantUser
	}{
		{"in sync", cluster(hsm(a, 0, usr("alice")), hsm(b, 1, usr("alice")), hsm(c, 2, usr("alice"))), nil},
		{"partial create", cluster(hsm(a, 0, usr("newest_user")), hsm(b, 1, usr("newest_user")), hsm(c, 2)),
			map[string]wantUser{"newest_user": {DecisionCreate, a, []string{"hsm-c:missing"},
				[]string{"present on 2 of 3 HSMs (hsm-a, hsm-b); hsm-c has no record of deleting it, so this is a partial create"}}}},
		{"partial delete", cluster(hsm(a, 0, usr("bob")), tomb(hsm(b, 1), "bob", 10), tomb(hsm(c, 2), "bob", 11)),
			map[string]wantUser{"bob": {DecisionDelete, "", []string{"hsm-b:missing", "hsm-c:missing"},
				[]string{"present on 1 of 3 HSMs (hsm-a); hsm-b deleted it at 2025-03-01T12:10:00Z (op-10), hsm-c deleted it at 2025-03-01T12:11:00Z (op-11), after its last change at 2025-03-01T12:00:00Z", "so this is a partial delete"}}}},
		{"partial delete in the same second as the create, told by the deleted version", cluster(hsm(a, 0, usr("bob", op("op-c"))), tombOf(hsm(b, 1), "bob", 0, "op-c"), tombOf(hsm(c, 2), "bob", 0, "op-c")),
			map[string]wantUser{"bob": {DecisionDelete, "", []string{"hsm-b:missing", "hsm-c:missing"}, []string{"so this is a partial delete"}}}},
		{"deletion in the same second as another version: undecidable", cluster(hsm(a, 0, usr("bob", op("op-new"))), hsm(b, 1, usr("bob", op("op-new"))), tombOf(hsm(c, 2), "bob", 0, "op-old")),
			map[string]wantUser{"bob": {DecisionUndecidable, "", []string{"hsm-c:missing"}, []string{"the same time as its last change elsewhere", "nothing is planned"}}}},
		{"tombstone older than the record: re-created", cluster(hsm(a, 0, usr("bob", changed(20))), hsm(b, 1, usr("bob", changed(20))), tomb(hsm(c, 2), "bob", 10)),
			map[string]wantUser{"bob": {DecisionCreate, a, []string{"hsm-c:missing"},
				[]string{"hsm-c deleted it at 2025-03-01T12:10:00Z, before its last change at 2025-03-01T12:20:00Z, so it was re-created since, so this is a partial create"}}}},
		{"tombstone between present changes: contradictory", cluster(hsm(a, 0, usr("bob")), hsm(b, 1, usr("bob", changed(20))), tomb(hsm(c, 2), "bob", 10)),
			map[string]wantUser{"bob": {DecisionUndecidable, "", []string{"hsm-c:missing"},
				[]string{"evidence is contradictory", "nothing is planned"}}}},
		{"different role, same change time: majority", cluster(hsm(a, 0, usr("carol")), hsm(b, 1, usr("carol")), hsm(c, 2, usr("carol", role(RoleAdmin)))),
			map[string]wantUser{"carol": {DecisionUpdate, a, []string{"hsm-c:role"},
				[]string{"the records differ and the version on hsm-a, hsm-b (2 of 3) is the majority"}}}},
		{"password hash, same change time: majority", cluster(hsm(a, 0, usr("dave")), hsm(b, 1, usr("dave", hash("other"))), hsm(c, 2, usr("dave"))),
			map[string]wantUser{"dave": {DecisionUpdate, a, []string{"hsm-b:password"}, []string{"hsm-a, hsm-c (2 of 3) is the majority"}}}},
		{"password changed later on one HSM: the majority wins, the later change is undone", cluster(hsm(a, 0, usr("dave")), hsm(b, 1, usr("dave", hash("rotated"), changed(9))), hsm(c, 2, usr("dave"))),
			map[string]wantUser{"dave": {DecisionUpdate, a, []string{"hsm-b:password"},
				[]string{"the version on hsm-a, hsm-c (2 of 3) is the majority; the later change on hsm-b (2025-03-01T12:09:00Z) reached fewer HSMs and is undone, so no single HSM overrides the cluster: make it again on every HSM if it was meant"}}}},
		{"1-1 broken by recency", cluster(hsm(a, 0, usr("erin")), hsm(b, 1, usr("erin", hash("new"), changed(3)))),
			map[string]wantUser{"erin": {DecisionUpdate, b, []string{"hsm-a:password"},
				[]string{"no majority (hsm-a vs hsm-b); the version on hsm-b changed last (2025-03-01T12:03:00Z), so it wins"}}}},
		{"1-1 tie at the same time broken by sequence", cluster(hsm(a, 0, usr("erin", seq(7))), hsm(b, 1, usr("erin", hash("new"), seq(4)))),
			map[string]wantUser{"erin": {DecisionUpdate, a, []string{"hsm-b:password"}, []string{"latest change sequence (7)"}}}},
		{"key store rotation that missed an HSM: explained", cluster(hsm(a, 0, usr("kmsuser", hash("rotated"), kind(KindKMSRotate), changed(5), op("op-r"))), hsm(b, 1, usr("kmsuser", hash("rotated"), kind(KindKMSRotate), changed(5), op("op-r"))), hsm(c, 2, usr("kmsuser"))),
			map[string]wantUser{"kmsuser": {DecisionUpdate, a, []string{"hsm-c:password"},
				[]string{"(2 of 3) is the majority; kmsuser's password was rotated by the key store's connect while hsm-c was unreachable, so the key store cannot log in there: copying the record completes the rotation"}}}},
		{"key store rotation in the same second as the record it missed (a fixed clock): explained", cluster(hsm(a, 0, usr("kmsuser", hash("rotated"), kind(KindKMSRotate), op("op-r"))), hsm(b, 1, usr("kmsuser", hash("rotated"), kind(KindKMSRotate), op("op-r"))), hsm(c, 2, usr("kmsuser", seq(3)))),
			map[string]wantUser{"kmsuser": {DecisionUpdate, a, []string{"hsm-c:password"},
				[]string{"kmsuser's password was rotated by the key store's connect while hsm-c was unreachable"}}}},
		{"exact tie", cluster(hsm(a, 0, usr("erin")), hsm(b, 1, usr("erin", hash("new")))),
			map[string]wantUser{"erin": {DecisionUndecidable, "", []string{"hsm-b:password"},
				[]string{"no majority (hsm-a vs hsm-b) and they changed at the same time (2025-03-01T12:00:00Z) with the same change sequence (1)", "nothing is planned"}}}},
		{"same operation, different records", cluster(hsm(a, 0, usr("erin", op("op-1"))), hsm(b, 1, usr("erin", op("op-1"), role(RoleAdmin))), hsm(c, 2, usr("erin", op("op-1")))),
			map[string]wantUser{"erin": {DecisionUndecidable, "", []string{"hsm-b:role"}, []string{"operation op-1 left different records on hsm-a and hsm-b"}}}},
		{"lock held by one HSM of four: kept, never unlocked by a majority", cluster(hsm(a, 0, usr("frank")), hsm(b, 1, usr("frank", locked(2))), hsm(c, 2, usr("frank", locked(5))), hsm("hsm-d", 3, usr("frank"))),
			map[string]wantUser{"frank": {DecisionUpdate, c, []string{"hsm-a:lock", "hsm-b:lock", "hsm-d:lock"}, []string{
				"the same record is held with different lock states (hsm-c: locked, 5 login failures; hsm-a, hsm-d: unlocked, 0 login failures; hsm-b: unlocked, 2 login failures); the strictest, on hsm-c, is kept",
				"a repair never unlocks an account or lowers its failure count",
				"copying the record locks it on the other HSMs too"}}}},
		{"failure counts: the highest is kept", cluster(hsm(a, 0, usr("frank", locked(1))), hsm(b, 1, usr("frank", locked(3))), hsm(c, 2, usr("frank", locked(1)))),
			map[string]wantUser{"frank": {DecisionUpdate, b, []string{"hsm-a:lock", "hsm-c:lock"}, []string{"the strictest, on hsm-b, is kept"}}}},
		{"an admin's reset on the majority unlocks the minority's old record", cluster(hsm(a, 0, usr("frank", hash("reset"), changed(7))), hsm(b, 1, usr("frank", hash("reset"), changed(7))), hsm(c, 2, usr("frank", locked(5)))),
			map[string]wantUser{"frank": {DecisionUpdate, a, []string{"hsm-c:password", "hsm-c:lock"}, []string{
				"the version on hsm-a, hsm-b (2 of 3) is the majority",
				"the lock state goes with the authoritative record (hsm-a: unlocked, 0 login failures; hsm-c: locked, 5 login failures); copying it replaces the locked record on hsm-c, which unlocks the account there"}}}},
		{"a user's own later change on one HSM does not undo its lock elsewhere", cluster(hsm(a, 0, usr("frank", locked(5))), hsm(b, 1, usr("frank", locked(5))), hsm(c, 2, usr("frank", hash("self"), changed(8)))),
			map[string]wantUser{"frank": {DecisionUpdate, a, []string{"hsm-c:password", "hsm-c:lock"}, []string{
				"is the majority; the later change on hsm-c",
				"copying it locks the account on hsm-c too"}}}},
		{"strictest within the record, and a different record unlocked elsewhere", cluster(hsm(a, 0, usr("frank", hash("new"), changed(7))), hsm(b, 1, usr("frank", hash("new"), changed(7), locked(3))), hsm(c, 2, usr("frank", locked(5)))),
			map[string]wantUser{"frank": {DecisionUpdate, b, []string{"hsm-a:lock", "hsm-c:password", "hsm-c:lock"}, []string{
				"the same record is held with different lock states (hsm-b: unlocked, 3 login failures; hsm-a: unlocked, 0 login failures); the strictest, on hsm-b, is kept",
				"the lock state goes with the authoritative record (hsm-b: unlocked, 3 login failures; hsm-c: locked, 5 login failures); copying it replaces the locked record on hsm-c, which unlocks the account there"}}}},
		{"quorum key", cluster(hsm(a, 0, usr("gina", quorum("fp1"))), hsm(b, 1, usr("gina", quorum("fp1"))), hsm(c, 2, usr("gina"))),
			map[string]wantUser{"gina": {DecisionUpdate, a, []string{"hsm-c:quorum"}, []string{"majority"}}}},
		{"mfa", cluster(hsm(a, 0, usr("hank")), hsm(b, 1, usr("hank", mfa("token-sign"))), hsm(c, 2, usr("hank"))),
			map[string]wantUser{"hank": {DecisionUpdate, a, []string{"hsm-b:mfa"}, []string{"majority"}}}},
		{"weak HSM: a user only it holds is deleted there", cluster(userQuorum(hsm(a, 0), 2), userQuorum(hsm(b, 1), 2), userQuorum(hsm(c, 2, usr("evil", role(RoleAdmin), changed(5))), 1)),
			map[string]wantUser{"evil": {DecisionDelete, "", []string{"hsm-a:missing", "hsm-b:missing"}, []string{
				"present only on hsm-c, absent on hsm-a, hsm-b; hsm-c (user 1, quorum 1) enforces a weaker quorum policy than hsm-a, hsm-b, so a change there may have skipped approvals required there: the records of hsm-c do not count and are repaired to those of hsm-a, hsm-b"}}}},
		{"weak HSM: its later change does not win a 1-1 tie", cluster(userQuorum(hsm(a, 0, usr("carol")), 2), userQuorum(hsm(b, 1, usr("carol", hash("mine"), changed(5))), 1)),
			map[string]wantUser{"carol": {DecisionUpdate, a, []string{"hsm-b:password"}, []string{"the record on hsm-a is the reference; hsm-b (user 1, quorum 1)", "do not count"}}}},
		{"weak HSM: its delete does not count", cluster(userQuorum(hsm(a, 0, usr("carol")), 2), userQuorum(tomb(hsm(b, 1), "carol", 5), 1)),
			map[string]wantUser{"carol": {DecisionCreate, a, []string{"hsm-b:missing"}, []string{"do not count"}}}},
		{"weak in the quorum service alone counts as weak", cluster(quorums(hsm(a, 0), 2, 2), quorums(hsm(b, 1), 2, 2), quorums(hsm(c, 2, usr("evil", role(RoleAdmin))), 2, 1)),
			map[string]wantUser{"evil": {DecisionDelete, "", []string{"hsm-a:missing", "hsm-b:missing"}, []string{"hsm-c (user 2, quorum 1) enforces a weaker quorum policy"}}}},
		{"conflicting policies: nothing can be trusted", cluster(quorums(hsm(a, 0), 2, 2), quorums(hsm(b, 1, usr("evil", role(RoleAdmin))), 3, 1)),
			map[string]wantUser{"evil": {DecisionUndecidable, "", []string{"hsm-a:missing"}, []string{"the quorum policies of the HSMs conflict", "nothing is planned"}}}},
		{"unreachable HSM is not counted", cluster(hsm(a, 0, usr("ivan")), hsm(b, 1), down(hsm(c, 2))),
			map[string]wantUser{"ivan": {DecisionCreate, a, []string{"hsm-b:missing"}, []string{"present on 1 of 2 HSMs (hsm-a)", "hsm-c is unreachable, so its record is unknown and nothing is planned there"}}}},
		{"capture: partial create assumed", cluster(noRecords(hsm(a, 0, usr("jo", captured()))), noRecords(hsm(b, 1))),
			map[string]wantUser{"jo": {DecisionCreate, a, []string{"hsm-b:missing"}, []string{"a partial create is assumed because deletion records are unavailable"}}}},
		{"capture: majority without times", cluster(noRecords(hsm(a, 0, usr("jo", captured()))), noRecords(hsm(b, 1, usr("jo", captured()))), noRecords(hsm(c, 2, usr("jo", captured(), role(RoleAdmin))))),
			map[string]wantUser{"jo": {DecisionUpdate, a, []string{"hsm-c:role"}, []string{"hsm-a, hsm-b (2 of 3) is the majority"}}}},
		{"capture: tie without times", cluster(noRecords(hsm(a, 0, usr("jo", captured()))), noRecords(hsm(b, 1, usr("jo", captured(), role(RoleAdmin))))),
			map[string]wantUser{"jo": {DecisionUndecidable, "", []string{"hsm-b:role"}, []string{"change times are unknown"}}}},
		{"unknown hash is not a difference", cluster(hsm(a, 0, usr("kim")), hsm(b, 1, usr("kim", hash("")))), nil},
		{"merged view drift", cluster(hsm(a, 0, usr("lee", drift("cluster-coverage")))),
			map[string]wantUser{"lee": {DecisionUndecidable, "", []string{"hsm-a:unknown-hsm"}, []string{"a per-HSM capture (CMU listUsers"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Diff(tt.snap)
			if got, want := r.UsersInSync(), len(tt.users) == 0; got != want {
				t.Fatalf("UsersInSync = %v, want %v; users %+v", got, want, r.Users)
			}
			var got []string
			for _, u := range r.Users {
				got = append(got, u.Name)
				w, ok := tt.users[u.Name]
				if !ok {
					t.Errorf("unexpected differing user %s: %+v", u.Name, u)
					continue
				}
				if u.Authority.Decision != w.decision || u.Authority.Source != w.source {
					t.Errorf("%s: decision %s from %q, want %s from %q (%s)", u.Name, u.Authority.Decision, u.Authority.Source, w.decision, w.source, u.Authority.Reason)
				}
				var ds []string
				for _, d := range u.Differences {
					ds = append(ds, d.HSM+":"+string(d.Kind))
				}
				if !slices.Equal(ds, w.diffs) {
					t.Errorf("%s: differences %v, want %v", u.Name, ds, w.diffs)
				}
				for _, s := range w.reason {
					if !strings.Contains(u.Authority.Reason, s) {
						t.Errorf("%s: reason %q\n lacks %q", u.Name, u.Authority.Reason, s)
					}
				}
			}
			if len(got) != len(tt.users) {
				t.Errorf("differing users %v, want %d", got, len(tt.users))
			}
		})
	}
}

func TestDiffUnreachableAndStaleConfig(t *testing.T) {
	s := cluster(hsm("hsm-a", 0, usr("alice")), hsm("hsm-b", 1, usr("alice")), down(hsm("hsm-c", 2)))
	s.ConfigHSMs = []string{"hsm-a", "hsm-x", "hsm-c"}
	r := Diff(s)
	if !r.UsersInSync() || r.InSync() {
		t.Fatalf("UsersInSync %v InSync %v, want true false", r.UsersInSync(), r.InSync())
	}
	if !slices.Equal(r.Unreachable, []string{"hsm-c"}) {
		t.Errorf("unreachable %v", r.Unreachable)
	}
	if !slices.Equal(r.StaleConfig.Missing, []string{"hsm-b"}) || !slices.Equal(r.StaleConfig.Unknown, []string{"hsm-x"}) {
		t.Errorf("stale config %+v", r.StaleConfig)
	}

	s.ConfigHSMs = []string{"hsm-c", "hsm-b", "hsm-a"}
	s.HSMs[2] = hsm("hsm-c", 2, usr("alice"))
	if r := Diff(s); !r.InSync() || r.StaleConfig.Stale() {
		t.Errorf("config in another order should not be stale: %+v", r.StaleConfig)
	}
	s.ConfigHSMs = nil
	if r := Diff(s); r.StaleConfig != nil || !r.InSync() {
		t.Errorf("unknown config: %+v", r.StaleConfig)
	}
}

func TestDiffNeverPlansUnreachable(t *testing.T) {
	s := cluster(hsm("hsm-a", 0, usr("ivan", withID(9))), hsm("hsm-b", 1), down(hsm("hsm-c", 2)))
	p := Diff(s).Plan()
	if len(p.Actions) != 1 || p.Actions[0].Dst.ID != "hsm-b" || p.Actions[0].Src.ID != "hsm-a" || p.Actions[0].SrcUserID != 9 {
		t.Fatalf("actions %+v", p.Actions)
	}
}

// A user listed twice on one HSM is drift on that HSM, undecidable, even
// when the first records agree everywhere.
func TestDiffDuplicateNameIsDrift(t *testing.T) {
	h := hsm("hsm-a", 0, usr("alice"), usr("alice", role(RoleAdmin)))
	r := Diff(cluster(h, hsm("hsm-b", 1, usr("alice"))))
	if r.UsersInSync() || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "hsm-a lists user alice more than once") {
		t.Fatalf("notes %v users %+v", r.Notes, r.Users)
	}
	u := r.Users[0]
	if len(u.Differences) != 1 || u.Differences[0].HSM != "hsm-a" || u.Differences[0].Kind != KindDuplicate ||
		u.Authority.Decision != DecisionUndecidable || u.Cells[0].Listed != 2 || u.Cells[1].Listed != 1 {
		t.Fatalf("user %+v", u)
	}
}

func TestDiffDeterministic(t *testing.T) {
	s := story()
	want := Diff(s)
	// Another table order must not change the report.
	for j := range s.HSMs {
		slices.Reverse(s.HSMs[j].Users)
	}
	if got := Diff(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("report depends on table order:\n%+v\n%+v", got, want)
	}
}

func TestPlanActions(t *testing.T) {
	p := Diff(story()).Plan()
	var got []string
	for _, a := range p.Actions {
		s := string(a.Kind) + " " + a.User + " " + a.Dst.ID
		if a.Kind == ActionCopy {
			s += " from " + a.Src.ID
		}
		got = append(got, s)
	}
	want := []string{
		"delete bob hsm-a",
		"copy carol hsm-b from hsm-a",
		"copy dave hsm-a from hsm-c",
		"copy dave hsm-b from hsm-c",
		"copy frank hsm-b from hsm-a",
		"copy newest_user hsm-c from hsm-a",
	}
	if !slices.Equal(got, want) {
		t.Errorf("actions\n got %q\nwant %q", got, want)
	}
	var skipped []string
	for _, s := range p.Skipped {
		skipped = append(skipped, s.User+" "+string(s.Decision))
	}
	if want := []string{"app_user create", "erin undecidable"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
}

func TestWritePlanUnknownDialect(t *testing.T) {
	err := WritePlan(&strings.Builder{}, Plan{}, "luna")
	if err == nil || err.Error() != `unknown plan dialect "luna" (valid: hsm-user, cloudhsm-cli, cmu)` {
		t.Fatalf("err = %v", err)
	}
}

func TestWritePlanInSync(t *testing.T) {
	for _, d := range Dialects() {
		var b strings.Builder
		if err := WritePlan(&b, Diff(cluster(hsm("hsm-a", 0))).Plan(), d); err != nil {
			t.Fatal(err)
		}
		if want := "# hsm-sync repair plan for cluster cluster-test (dialect " + d + ")\n# nothing to repair: the user tables agree\n"; b.String() != want {
			t.Errorf("%s: %q", d, b.String())
		}
	}
}

func TestMatrix(t *testing.T) {
	h, rows := Diff(story()).Matrix()
	if want := []string{"user", "hsm-a", "hsm-b", "hsm-c", "hsm-d", "decision"}; !slices.Equal(h, want) {
		t.Fatalf("header %q", h)
	}
	want := [][]string{
		{"app_user", "ok", "ok", "missing", "unreachable", "create from hsm-a"},
		{"bob", "present", "deleted", "deleted", "unreachable", "delete"},
		{"carol", "ok", "role:admin", "ok", "unreachable", "update from hsm-a"},
		{"dave", "unlocked", "unlocked", "ok", "unreachable", "update from hsm-c"},
		{"erin", "present", "password≠", "password≠", "unreachable", "undecidable"},
		{"frank", "ok", "quorum≠", "ok", "unreachable", "update from hsm-a"},
		{"newest_user", "ok", "ok", "missing", "unreachable", "create from hsm-a"},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows\n got %q\nwant %q", rows, want)
	}
}

// story is a representative drift: the repair story's partial create (docs/design.md) after an HSM
// joined (the config lacks hsm-c), plus one case of each kind.
func story() Snapshot {
	a := hsm("hsm-a", 0,
		usr("bob", withID(4)), usr("carol", withID(5), changed(5)), usr("dave", withID(6)),
		usr("erin", withID(7), hash("e1")), usr("frank", withID(8), quorum("5f3a")), usr("newest_user", withID(9), changed(30), op("op-30")))
	b := hsm("hsm-b", 1,
		usr("carol", withID(5), role(RoleAdmin), changed(3)), usr("dave", withID(6)),
		usr("erin", withID(7), hash("e2")), usr("frank", withID(8)), usr("newest_user", withID(9), changed(30), op("op-30")))
	b = tomb(b, "bob", 20)
	c := hsm("hsm-c", 2, usr("carol", withID(4), changed(5)), usr("dave", withID(5), locked(5), changed(40)),
		usr("erin", withID(6), hash("e3")), usr("frank", withID(7), quorum("5f3a")))
	c.Users = slices.DeleteFunc(c.Users, func(u User) bool { return u.Name == "app_user" })
	c = tomb(c, "bob", 21)
	d := down(hsm("hsm-d", 3))
	s := cluster(a, b, c, d)
	s.ClusterID = "cluster-jfx5mvz3"
	s.ConfigHSMs = []string{"hsm-a", "hsm-b", "hsm-d"}
	return s
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{"hsm-a1": "hsm-a1", "server 1": "'server 1'", "it's": `'it'\''s'`, "": "''", "a;b": "'a;b'", "ümlaut": "'ümlaut'"} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}

// A record changed on the missed HSM after the key store's rotation is a
// later change, not a rotation that missed it: no rotation explanation.
func TestRotationReasonNotForLaterChange(t *testing.T) {
	a, b, c := "hsm-a", "hsm-b", "hsm-c"
	r := Diff(cluster(hsm(a, 0, usr("kmsuser", hash("rotated"), kind(KindKMSRotate), op("op-r"))),
		hsm(b, 1, usr("kmsuser", hash("rotated"), kind(KindKMSRotate), op("op-r"))),
		hsm(c, 2, usr("kmsuser", hash("reset"), kind(KindReset), changed(9)))))
	if len(r.Users) != 1 {
		t.Fatalf("users %+v, want kmsuser alone", r.Users)
	}
	why := r.Users[0].Authority.Reason
	if !strings.Contains(why, "the later change on hsm-c") || strings.Contains(why, "rotated by the key store") {
		t.Errorf("reason %q: want the later change undone, no rotation explanation", why)
	}
}
