package syncdiff

import (
	"fmt"
)

// Provenance kinds, as the state records them (state.Kind…).
const (
	KindInit         = "init"
	KindCreate       = "create"
	KindActivate     = "activate"
	KindSelfPassword = "self-password"
	KindReset        = "change-password"
	KindRegister     = "register-quorum-key"
	KindSelfMFA      = "self-mfa"
	KindAdminMFA     = "change-mfa"
	KindKMSRotate    = "kms-rotate"
)

// evidence is what the never-escalate rule reads (docs/design.md,
// "Repairs"): the records' provenance and the HSMs' policy histories.
type evidence struct {
	hsms []HSM
	// on: the records carry provenance (the simulated state); captures
	// of real clusters carry none, and their plans are only printed.
	on bool
	// approved: the repair itself carries an approval (hsm-sync apply
	// --approval) that the strictest policy accepts, so it may grant.
	approved bool
}

func newEvidence(hsms []HSM, approved bool) *evidence {
	ev := &evidence{hsms: hsms, approved: approved}
	for _, h := range hsms {
		if h.Reachable && h.History != nil {
			ev.on = true
		}
	}
	return ev
}

// needFor is the user quorum value the cluster's strictest policy
// required when v was written: the highest any reachable HSM enforced
// then. On an HSM holding v (held[i]: its record there), the order of v's
// write and a policy change is exact (the HSM's write counter); on the
// others only the clocks tell, and a policy set at the same second as v
// counts as in force (a clock the simulator holds still makes such ties).
// When no history reaches back to v, the strictest in force now.
func (ev *evidence) needFor(v User, held []*User) int {
	need, known := 0, false
	for i, h := range ev.hsms {
		if !h.Reachable {
			continue
		}
		for k := len(h.History) - 1; k >= 0; k-- {
			st := h.History[k]
			var before bool
			if held[i] != nil && held[i].Seq != 0 {
				before = st.Seq < held[i].Seq
			} else {
				before = !st.At.After(v.Changed)
			}
			if before {
				need, known = max(need, st.User), true
				break
			}
		}
	}
	if known {
		return need
	}
	for _, h := range ev.hsms {
		if h.Reachable && h.Policy != nil {
			need = max(need, h.Policy.User)
		}
	}
	return need
}

// authorized says whether v's last change carried the approvals the
// cluster's strictest policy required when it was made, and how many
// that was. Changes a user makes to itself, activation and the cluster's
// own records need none; a record of unknown provenance (from a state an
// older hsmkit wrote) is authorized only where no quorum was in force.
func (ev *evidence) authorized(v User, held []*User) (bool, int) {
	switch v.Kind {
	case KindInit, KindActivate, KindSelfPassword, KindRegister, KindSelfMFA, KindKMSRotate:
		return true, 1
	}
	need := ev.needFor(v, held)
	return v.Approvals >= need || need <= 1 && v.Kind == "", need
}

// guard applies the rule to a decision to create or update: a repair
// never grants what the strictest policy in force would refuse. It
// returns the decision to carry out instead when it would.
func (ev *evidence) guard(cells []Cell, present, absent []int, a Authority) Authority {
	if !ev.on || ev.approved || (a.Decision != DecisionCreate && a.Decision != DecisionUpdate) {
		return a
	}
	v := a.Version
	// Bringing back a deleted user: a record of the lineage some HSM
	// deleted is that user changed after its deletion, not a re-creation.
	for _, i := range absent {
		t := cells[i].Tombstone
		if t != nil && t.Lineage != "" && t.Lineage == v.Lineage {
			return Authority{Decision: DecisionDelete, Reason: fmt.Sprintf(
				"%s deleted it (%s); the record on %s is the same user (created by %s), changed since by %s, not a re-creation: a repair never brings back a deleted user, so it is deleted where it remains",
				cells[i].HSM, orUnknown(t.Op), a.Source, v.Lineage, describeChange(v))}
		}
	}
	// The HSMs that hold v itself (the same operation's record).
	held := make([]*User, len(cells))
	for _, i := range present {
		if u := cells[i].User; v.Op != "" && u.Op == v.Op {
			held[i] = &cells[i].User
		}
	}
	if ok, need := ev.authorized(v, held); !ok {
		how := fmt.Sprintf("%s (%s, %d approval(s)) was made while the cluster's strictest policy required %d for the user service", describeChange(v), orUnknown(v.Op), v.Approvals, need)
		if v.Kind == KindCreate {
			return Authority{Decision: DecisionDelete, Reason: "its creation by " + how +
				": a repair never spreads it, and the least privilege wins, so it is deleted where it is"}
		}
		return undecidable(how + ": a repair never spreads it; make the change again with its approvals, or approve this repair (hsm-quorum generate --service user, sign, hsm-sync apply --approval FILE)")
	}
	// Unlocking: only an admin's password reset unlocks, and only when it
	// came after the locked record.
	for _, i := range present {
		u := cells[i].User
		if !u.Locked || v.Locked {
			continue
		}
		if (v.Kind == KindReset || v.Kind == KindAdminMFA) && v.Changed.After(u.Changed) {
			continue // an admin set the password since: that unlocks
		}
		return undecidable(fmt.Sprintf("the record on %s is unlocked and %s's is locked (%d login failures); copying it would unlock the user there, and a repair never unlocks: an admin resets the password (hsm-user change-password --username %s --role %s), or approve this repair (hsm-sync apply --approval FILE)",
			a.Source, cells[i].HSM, u.Failures, v.Name, v.Role))
	}
	// Removing MFA: the second factor is a restriction, so a record
	// without it replaces one with it only when it is a deregistration
	// made after that record (docs/design.md, "MFA"); a registration that
	// reached few HSMs is not undone by a majority that never had it.
	for _, i := range present {
		u := cells[i].User
		if v.MFA != "" || u.MFA == "" {
			continue
		}
		if (v.Kind == KindSelfMFA || v.Kind == KindAdminMFA) && v.Changed.After(u.Changed) {
			continue
		}
		return undecidable(fmt.Sprintf("the record on %s has no MFA key and %s's has one (%s); copying it would remove %s's second factor there, and a repair never weakens a user without a deregistration made after it: deregister it on every HSM (hsm-user change-mfa token-sign --deregister --username %s --role %s), register it on every HSM (hsm-user change-mfa token-sign --token FILE), or approve this repair (hsm-sync apply --approval FILE)",
			a.Source, cells[i].HSM, u.MFA, v.Name, v.Name, v.Role))
	}
	return a
}

func describeChange(v User) string {
	switch v.Kind {
	case KindCreate:
		return "an admin's create"
	case KindReset:
		return "an admin's password reset"
	case KindSelfPassword:
		return "its own password change"
	case KindActivate:
		return "activation"
	case KindRegister:
		return "its quorum key registration"
	case KindSelfMFA:
		return "its own MFA change"
	case KindAdminMFA:
		return "an admin's MFA change"
	case KindInit:
		return "the cluster's creation"
	case KindKMSRotate:
		return "the key store's rotation of its password at connect"
	}
	return "a change of unknown kind"
}

func orUnknown(op string) string {
	if op == "" {
		return "operation unknown"
	}
	return op
}
