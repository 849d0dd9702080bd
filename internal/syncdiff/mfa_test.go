package syncdiff

import (
	"strings"
	"testing"
)

// TestMFANeverWeakened: a record without an MFA key replaces one with it
// only when it is a deregistration made after it (docs/design.md, "MFA").
func TestMFANeverWeakened(t *testing.T) {
	a, b, c := "hsm-a", "hsm-b", "hsm-c"
	// proven gives an HSM a policy history, so the repair reads provenance.
	proven := func(h HSM) HSM {
		h = userQuorum(h, 1)
		h.History = []PolicyStamp{{At: at(-60), Seq: 1, User: 1, Quorum: 1}}
		return h
	}
	kind := func(k string) opt { return func(u *User) { u.Kind, u.Approvals = k, 1 } }
	withMFA := []opt{mfa("fp1"), hash("h2"), changed(5), kind(KindSelfMFA)}
	tests := []struct {
		name     string
		snap     Snapshot
		decision Decision
		source   string
		reason   string
	}{
		{"a registration on one HSM of three is not undone by the majority",
			cluster(proven(hsm(a, 0, usr("alice", withMFA...))), proven(hsm(b, 1, usr("alice", kind(KindCreate)))), proven(hsm(c, 2, usr("alice", kind(KindCreate))))),
			DecisionUndecidable, "", "copying it would remove alice's second factor there"},
		{"a registration on two HSMs of three is spread",
			cluster(proven(hsm(a, 0, usr("alice", withMFA...))), proven(hsm(b, 1, usr("alice", withMFA...))), proven(hsm(c, 2, usr("alice", kind(KindCreate))))),
			DecisionUpdate, a, "majority"},
		{"a deregistration on one HSM of three is undone: the key comes back",
			cluster(proven(hsm(a, 0, usr("alice", withMFA...))), proven(hsm(b, 1, usr("alice", withMFA...))), proven(hsm(c, 2, usr("alice", hash("h3"), changed(9), kind(KindSelfMFA))))),
			DecisionUpdate, a, "majority"},
		{"a deregistration after the registration wins a tie and is spread",
			cluster(proven(hsm(a, 0, usr("alice", withMFA...))), proven(hsm(b, 1, usr("alice", hash("h3"), changed(9), kind(KindSelfMFA))))),
			DecisionUpdate, b, "changed last"},
		{"an admin's deregistration after the registration is spread",
			cluster(proven(hsm(a, 0, usr("alice", withMFA...))), proven(hsm(b, 1, usr("alice", hash("h3"), changed(9), kind(KindAdminMFA))))),
			DecisionUpdate, b, "changed last"},
		{"a later password change is no deregistration",
			cluster(proven(hsm(a, 0, usr("alice", withMFA...))), proven(hsm(b, 1, usr("alice", hash("h3"), changed(9), kind(KindSelfPassword))))),
			DecisionUndecidable, "", "never weakens a user without a deregistration made after it"},
		{"without provenance (captures) the majority rules as before",
			cluster(hsm(a, 0, usr("alice", mfa("fp1"))), hsm(b, 1, usr("alice")), hsm(c, 2, usr("alice"))),
			DecisionUpdate, b, "majority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Diff(tc.snap)
			if len(r.Users) != 1 {
				t.Fatalf("want one differing user, got %+v", r.Users)
			}
			got := r.Users[0].Authority
			if got.Decision != tc.decision || got.Source != tc.source || !strings.Contains(got.Reason, tc.reason) {
				t.Fatalf("got %s from %q: %s\nwant %s from %q, reason containing %q", got.Decision, got.Source, got.Reason, tc.decision, tc.source, tc.reason)
			}
		})
	}
}
