package syncdiff

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bucket is a set of HSMs holding the same version of a user.
type bucket struct {
	hsms      []int // cell indices, cluster order
	latest    time.Time
	timeKnown bool // every record has a change time
	seq       uint64
	seqKnown  bool // every record has a sequence number
}

func (b *bucket) add(i int, u *User) {
	if len(b.hsms) == 0 {
		b.timeKnown, b.seqKnown = true, true
	}
	b.hsms = append(b.hsms, i)
	if u.Changed.IsZero() {
		b.timeKnown = false
	} else if u.Changed.After(b.latest) {
		b.latest = u.Changed
	}
	if u.Seq == 0 {
		b.seqKnown = false
	} else if u.Seq > b.seq {
		b.seq = u.Seq
	}
}

type rule int

const (
	ruleOnly     rule = iota // a single version
	ruleMajority             // held by the most HSMs
	ruleRecency              // tie broken by the latest change time
	ruleSeq                  // tie broken by the highest sequence number
	ruleTie                  // still tied: undecidable
)

// pick chooses the winning bucket: the version on the most HSMs, a tie
// broken by the latest change, then the highest sequence number. The
// majority comes first so that a write reaching one HSM alone (--server,
// an HSM that missed a quorum value, a user changing its own password
// there) cannot override the cluster; such a change is undone and must be
// made again on every HSM. On ruleTie, cands are the tied buckets.
func pick(bs []bucket) (win int, r rule, cands []int) {
	if len(bs) == 1 {
		return 0, ruleOnly, []int{0}
	}
	cands = make([]int, len(bs))
	for i := range bs {
		cands[i] = i
	}
	cands = keepMax(cands, func(a, b int) int { return cmpU(uint64(len(bs[a].hsms)), uint64(len(bs[b].hsms))) })
	if len(cands) == 1 {
		return cands[0], ruleMajority, cands
	}
	if all(cands, func(i int) bool { return bs[i].timeKnown }) {
		cands = keepMax(cands, func(a, b int) int { return bs[a].latest.Compare(bs[b].latest) })
		if len(cands) == 1 {
			return cands[0], ruleRecency, cands
		}
	}
	if all(cands, func(i int) bool { return bs[i].seqKnown }) {
		cands = keepMax(cands, func(a, b int) int { return cmpU(bs[a].seq, bs[b].seq) })
		if len(cands) == 1 {
			return cands[0], ruleSeq, cands
		}
	}
	return -1, ruleTie, cands
}

func all(xs []int, f func(int) bool) bool {
	for _, x := range xs {
		if !f(x) {
			return false
		}
	}
	return true
}

// keepMax keeps the elements of xs that compare highest, in order.
func keepMax(xs []int, cmp func(a, b int) int) []int {
	var out []int
	for _, x := range xs {
		switch {
		case len(out) == 0:
			out = append(out, x)
		case cmp(x, out[0]) > 0:
			out = append(out[:0], x)
		case cmp(x, out[0]) == 0:
			out = append(out, x)
		}
	}
	return out
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type credKey struct{ role, hash, quorum, mfa string }

// decide chooses the authoritative version of one differing user. The
// records of weak HSMs (a user quorum value below the strictest) do not
// count: they are repaired to what the others decided. A weak HSM implies
// a reachable strict one, so present and absent are never both empty then.
//
// Records with provenance (the simulated state) are judged by it instead
// of by weakness, and the decision passes the never-escalate rule
// (grants.go): the two differ where an admin raises a value on one HSM
// alone, which made the others "weak" and their approved changes void.
func decide(cells []Cell, ignoreHash bool, weak []bool, hsms []HSM, ev *evidence) Authority {
	if ev != nil && ev.on {
		weak = nil
	}
	var present, absent, unreach, weakHeld []int
	for i, c := range cells {
		switch {
		case c.State == StateUnreachable:
			unreach = append(unreach, i)
		case weak != nil && weak[i]:
			weakHeld = append(weakHeld, i)
		case c.State == StatePresent:
			present = append(present, i)
		default:
			absent = append(absent, i)
		}
	}
	var a Authority
	switch {
	case len(weakHeld) > 0 && len(present)+len(absent) == 0:
		a = undecidable("the quorum policies of the HSMs conflict (each is below another in some service), so no HSM's records can be trusted; " +
			"set the same policy on every HSM by hand (hsm-quorum set-value --server ID) and run hsm-sync again")
	case len(weakHeld) > 0 && len(present) == 0:
		a = Authority{Decision: DecisionDelete, Reason: fmt.Sprintf("present only on %s, absent on %s", ids(cells, presentIn(cells, weakHeld)), ids(cells, absent))}
	default:
		a = decideReachable(cells, present, absent, ignoreHash)
		if ev != nil {
			a = ev.guard(cells, present, absent, a)
		}
	}
	if len(weakHeld) > 0 && len(present)+len(absent) > 0 {
		switch {
		case a.Reason != "":
		case len(present) == 1:
			a.Reason = "the record on " + ids(cells, present) + " is the reference"
		default:
			a.Reason = "the records on " + ids(cells, present) + " agree"
		}
		if a.Decision == DecisionUpdate && slices.ContainsFunc(weakHeld, func(i int) bool { return cells[i].State == StateAbsent }) {
			a.Decision = DecisionCreate
		}
		var ps []string
		for _, i := range weakHeld {
			p := hsms[i].Policy
			ps = append(ps, fmt.Sprintf("%s (user %d, quorum %d)", cells[i].HSM, p.User, p.Quorum))
		}
		trusted := append(append([]int{}, present...), absent...)
		slices.Sort(trusted)
		a.Reason += "; " + strings.Join(ps, ", ") + " " + verb(len(weakHeld), "enforces", "enforce") +
			" a weaker quorum policy than " + ids(cells, trusted) + ", so a change there may have skipped approvals required there: the records of " +
			ids(cells, weakHeld) + " do not count and are repaired to those of " + ids(cells, trusted)
	}
	if len(unreach) > 0 {
		a.Reason += "; " + ids(cells, unreach) + " " + verb(len(unreach), "is", "are") +
			" unreachable, so " + pron(len(unreach)) + " record is unknown and nothing is planned there"
	}
	if a.Decision == DecisionUndecidable {
		a.Reason += "; nothing is planned for this user"
	}
	return a
}

// duplicated is the decision for a user some HSM's table lists more than
// once: a malformed or tampered capture, so which record that HSM holds,
// and which version is authoritative, cannot be told.
func duplicated(cells []Cell) Authority {
	var dup, unreach []int
	for i, c := range cells {
		switch {
		case c.Listed > 1:
			dup = append(dup, i)
		case c.State == StateUnreachable:
			unreach = append(unreach, i)
		}
	}
	a := undecidable(ids(cells, dup) + " " + verb(len(dup), "lists", "list") + " it more than once, so which record " +
		verb(len(dup), "that HSM holds", "those HSMs hold") + " cannot be told; capture " + verb(len(dup), "that HSM", "them") + " again")
	if len(unreach) > 0 {
		a.Reason += "; " + ids(cells, unreach) + " " + verb(len(unreach), "is", "are") + " unreachable"
	}
	a.Reason += "; nothing is planned for this user"
	return a
}

func presentIn(cells []Cell, ix []int) []int {
	var out []int
	for _, i := range ix {
		if cells[i].State == StatePresent {
			out = append(out, i)
		}
	}
	return out
}

func undecidable(reason string) Authority {
	return Authority{Decision: DecisionUndecidable, Reason: reason}
}

// inconsistentFix is what settles each value a merged view marks
// inconsistent, in the order the fixes must be made (docs/design.md,
// "Inconsistent values").
var inconsistentFix = map[string]string{
	"role":             "its role differs between HSMs; delete it and create it again with the role it should have",
	"cluster-coverage": "it exists on some HSMs only; finish its create or its delete",
	"locked":           "it is locked on some HSMs only; an admin changes its password",
	"mfa":              "its MFA differs between HSMs; an admin changes its password and the user registers MFA again",
	"quorum":           "its quorum key registration differs between HSMs; the user registers its quorum key again",
}

func decideReachable(cells []Cell, present, absent []int, ignoreHash bool) Authority {
	for _, i := range present {
		if d := cells[i].User.Drift; len(d) > 0 {
			fixes := make([]string, len(d))
			for k, f := range d {
				fixes[k] = f + ": " + inconsistentFix[f]
			}
			order := ""
			if len(d) > 1 {
				order = ", in this order"
			}
			return undecidable(fmt.Sprintf("the merged cloudhsm-cli view %s reports %s inconsistent without naming the HSM that differs; "+
				"a per-HSM capture (CMU listUsers, or one cloudhsm-cli user list per HSM run with a config listing only that HSM) is needed to plan a repair; "+
				"by hand%s: %s",
				cells[i].HSM, strings.Join(d, " and "), order, strings.Join(fixes, "; ")))
		}
	}

	total := len(present) + len(absent)
	var presence string
	if len(absent) > 0 {
		var minP, maxP time.Time
		timesKnown := true
		for k, i := range present {
			t := cells[i].User.Changed
			if t.IsZero() {
				timesKnown = false
			}
			if k == 0 || t.Before(minP) {
				minP = t
			}
			if t.After(maxP) {
				maxP = t
			}
		}
		var newerT, olderT, none, noInfo []int
		for _, i := range absent {
			c := cells[i]
			switch {
			case c.Tombstone == nil && c.NoRecords:
				noInfo = append(noInfo, i)
			case c.Tombstone == nil:
				none = append(none, i)
			case c.Tombstone.DeletedOp != "" && allOp(cells, present, c.Tombstone.DeletedOp):
				// It deleted exactly the version still present elsewhere:
				// a partial delete, whatever the clocks say.
				newerT = append(newerT, i)
			case c.Tombstone.Changed.IsZero() || !timesKnown:
				return undecidable(fmt.Sprintf("%s deleted it, but the time of that deletion or of the records on %s is unknown, so it cannot be told whether the deletion came last",
					c.HSM, ids(cells, present)))
			case c.Tombstone.Changed.After(maxP):
				newerT = append(newerT, i)
			case c.Tombstone.Changed.After(minP):
				return undecidable(fmt.Sprintf("%s deleted it at %s, after some present records changed but before others (last change %s): the evidence is contradictory",
					c.HSM, ts(c.Tombstone.Changed), ts(maxP)))
			case c.Tombstone.Changed.Equal(maxP):
				return undecidable(fmt.Sprintf("%s deleted it at %s, the same time as its last change elsewhere, and not the version present there: which came last cannot be told",
					c.HSM, ts(c.Tombstone.Changed)))
			default:
				olderT = append(olderT, i)
			}
		}
		head := fmt.Sprintf("present on %d of %d HSMs (%s)", len(present), total, ids(cells, present))
		if len(newerT) > 0 {
			var parts []string
			for _, i := range newerT {
				t := cells[i].Tombstone
				p := cells[i].HSM + " deleted it at " + ts(t.Changed)
				if t.Op != "" {
					p += " (" + t.Op + ")"
				}
				parts = append(parts, p)
			}
			reason := fmt.Sprintf("%s; %s, after its last change at %s", head, strings.Join(parts, ", "), ts(maxP))
			if rest := append(append(append([]int{}, olderT...), none...), noInfo...); len(rest) > 0 {
				reason += "; " + ids(cells, rest) + " lack it as well"
			}
			return Authority{Decision: DecisionDelete, Reason: reason + ", so this is a partial delete"}
		}
		parts := []string{head}
		if len(none) > 0 {
			parts = append(parts, ids(cells, none)+" "+verb(len(none), "has", "have")+" no record of deleting it")
		}
		for _, i := range olderT {
			parts = append(parts, fmt.Sprintf("%s deleted it at %s, before its last change at %s, so it was re-created since",
				cells[i].HSM, ts(cells[i].Tombstone.Changed), ts(maxP)))
		}
		if len(noInfo) > 0 && len(none)+len(olderT) == 0 {
			parts = append(parts, ids(cells, noInfo)+" "+verb(len(noInfo), "keeps", "keep")+
				" no deletion records, so a partial create is assumed because deletion records are unavailable")
		} else {
			if len(noInfo) > 0 {
				parts = append(parts, ids(cells, noInfo)+" "+verb(len(noInfo), "keeps", "keep")+" no deletion records")
			}
			parts[len(parts)-1] += ", so this is a partial create"
		}
		presence = strings.Join(parts, "; ")
	}

	// Group the present records by credential, then the winners by lock state.
	var keys []credKey
	var groups []bucket
	for _, i := range present {
		u := &cells[i].User
		k := credKey{u.Role, u.PasswordHash, u.QuorumKey, u.MFA}
		if ignoreHash {
			k.hash = ""
		}
		g := indexOf(keys, k)
		if g < 0 {
			keys, groups, g = append(keys, k), append(groups, bucket{}), len(keys)
		}
		groups[g].add(i, u)
	}
	if len(groups) > 1 {
		seen := map[string]int{}
		for g := range groups {
			for _, i := range groups[g].hsms {
				op := cells[i].User.Op
				if op == "" {
					continue
				}
				if h, ok := seen[op]; ok && h != g {
					return undecidable(fmt.Sprintf("operation %s left different records on %s and %s: the evidence is contradictory",
						op, cells[groups[h].hsms[0]].HSM, cells[i].HSM))
				}
				seen[op] = g
			}
		}
	}
	w, r, cands := pick(groups)
	if r == ruleTie {
		return undecidable(tieReason(cells, groups, cands, "records"))
	}

	// The lock state: the strictest among the HSMs holding the winning
	// record. Lockout is counted per HSM and only an admin's change-password
	// unlocks (docs/design.md, "The command contract"), so a repair never unlocks or lowers a count.
	src := groups[w].hsms[0]
	for _, i := range groups[w].hsms[1:] {
		if stricter(cells[i].User, cells[src].User) {
			src = i
		}
	}
	auth := Authority{Decision: DecisionUpdate, Source: cells[src].HSM, Version: cells[src].User}
	if len(absent) > 0 {
		auth.Decision = DecisionCreate
	}

	var parts []string
	if presence != "" {
		parts = append(parts, presence)
	}
	if len(groups) > 1 {
		parts = append(parts, winReason(cells, groups, w, r, len(present), "records"))
		if why := rotationReason(cells, present, groups[w].hsms, cells[src].User); why != "" {
			parts = append(parts, why)
		}
	}
	if l := lockReason(cells, present, groups[w].hsms, src); l != "" {
		parts = append(parts, l)
	}
	auth.Reason = strings.Join(parts, "; ")
	return auth
}

// rotationReason explains a password a KMS key store's connect rotated
// on the HSMs it reached (docs/design.md, "The KMS custom key store"):
// the others hold the password from before, which the key store no
// longer knows. A record of the same second counts as missed: a fixed
// clock (docs/design.md, "The clock") stamps the rotation with the time
// of the record it replaced; a later one is another change.
func rotationReason(cells []Cell, present, same []int, v User) string {
	if v.Kind != KindKMSRotate {
		return ""
	}
	var missed []int
	for _, i := range present {
		if !slices.Contains(same, i) && !cells[i].User.Changed.After(v.Changed) {
			missed = append(missed, i)
		}
	}
	if len(missed) == 0 {
		return ""
	}
	return fmt.Sprintf("%s's password was rotated by the key store's connect while %s %s unreachable, so the key store cannot log in there: copying the record completes the rotation",
		v.Name, ids(cells, missed), verb(len(missed), "was", "were"))
}

func winReason(cells []Cell, bs []bucket, w int, r rule, of int, what string) string {
	win := bs[w]
	switch r {
	case ruleMajority:
		s := fmt.Sprintf("the %s differ and the version on %s (%d of %d) is the majority", what, ids(cells, win.hsms), len(win.hsms), of)
		var newer []string
		for i, b := range bs {
			if i != w && b.timeKnown && win.timeKnown && b.latest.After(win.latest) {
				newer = append(newer, ids(cells, b.hsms)+" ("+ts(b.latest)+")")
			}
		}
		if len(newer) > 0 {
			s += "; the later change on " + strings.Join(newer, ", ") + " reached fewer HSMs and is undone, so no single HSM overrides the cluster: make it again on every HSM if it was meant"
		}
		return s
	case ruleRecency:
		return fmt.Sprintf("the %s differ with no majority (%s); the version on %s changed last (%s), so it wins",
			what, tieList(cells, bs), ids(cells, win.hsms), ts(win.latest))
	case ruleSeq:
		return fmt.Sprintf("the %s differ with no majority (%s) and the same change time; the version on %s has the latest change sequence (%d), so it wins",
			what, tieList(cells, bs), ids(cells, win.hsms), win.seq)
	}
	return ""
}

func tieReason(cells []Cell, bs []bucket, cands []int, what string) string {
	var tied []bucket
	for _, c := range cands {
		tied = append(tied, bs[c])
	}
	why := "their change times are unknown, so only a majority could decide"
	if all(cands, func(i int) bool { return bs[i].timeKnown }) {
		why = "they changed at the same time (" + ts(tied[0].latest) + ")"
		if all(cands, func(i int) bool { return bs[i].seqKnown }) {
			why += " with the same change sequence (" + strconv.FormatUint(tied[0].seq, 10) + ")"
		}
	}
	return fmt.Sprintf("the %s differ with no majority (%s) and %s", what, tieList(cells, tied), why)
}

// tieList names each version's HSMs: "hsm-a vs hsm-b, hsm-c".
func tieList(cells []Cell, bs []bucket) string {
	var parts []string
	for _, b := range bs {
		parts = append(parts, ids(cells, b.hsms))
	}
	return strings.Join(parts, " vs ")
}

// stricter says whether a's lock state is stricter than b's.
func stricter(a, b User) bool {
	return a.Locked && !b.Locked || a.Locked == b.Locked && a.Failures > b.Failures
}

// lockReason explains the lock state that goes with the authoritative
// record on src; same are the HSMs holding that record.
func lockReason(cells []Cell, present, same []int, src int) string {
	a := cells[src].User
	var sameOther, diffOther, diffLocked []int
	for _, i := range present {
		u := cells[i].User
		switch {
		case u.Locked == a.Locked && u.Failures == a.Failures:
		case slices.Contains(same, i):
			sameOther = append(sameOther, i)
		default:
			diffOther = append(diffOther, i)
			if u.Locked {
				diffLocked = append(diffLocked, i)
			}
		}
	}
	var parts []string
	if len(sameOther) > 0 {
		s := "the same record is held with different lock states (" + lockStates(cells, src, sameOther) + "); the strictest, on " + cells[src].HSM +
			", is kept: lockout is counted per HSM and only an admin's change-password unlocks, so a repair never unlocks an account or lowers its failure count"
		if a.Locked {
			s += "; copying the record locks it on the other HSMs too"
		}
		parts = append(parts, s)
	}
	if len(diffOther) > 0 {
		s := "the lock state goes with the authoritative record (" + lockStates(cells, src, diffOther) + ")"
		switch {
		case a.Locked:
			s += "; copying it locks the account on " + ids(cells, diffOther) + " too"
		case len(diffLocked) > 0:
			s += "; copying it replaces the locked record on " + ids(cells, diffLocked) + ", which unlocks the account there"
		default:
			s += fmt.Sprintf("; copying it sets the failure count to %d on %s", a.Failures, ids(cells, diffOther))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// lockStates names src's lock state, then each other state once with the
// HSMs holding it.
func lockStates(cells []Cell, src int, other []int) string {
	var descs []string
	var holders [][]int
	for _, i := range other {
		d := lockDesc(cells[i].User)
		k := indexOf(descs, d)
		if k < 0 {
			descs, holders, k = append(descs, d), append(holders, nil), len(descs)
		}
		holders[k] = append(holders[k], i)
	}
	s := cells[src].HSM + ": " + lockDesc(cells[src].User)
	for k, d := range descs {
		s += "; " + ids(cells, holders[k]) + ": " + d
	}
	return s
}

func lockDesc(u User) string {
	l := "unlocked"
	if u.Locked {
		l = "locked"
		if u.Failures == 0 {
			return l // a cloudhsm-cli capture gives no count
		}
	}
	return fmt.Sprintf("%s, %d login failures", l, u.Failures)
}

// differences lists how each HSM differs from the reference record: the
// authoritative one, or for undecidable users the first HSM holding it.
func differences(cells []Cell, a Authority, ignoreHash bool) []Difference {
	var ref *User
	refID := a.Source
	switch a.Decision {
	case DecisionCreate, DecisionUpdate:
		ref = &a.Version
	case DecisionUndecidable:
		for i := range cells {
			if cells[i].State == StatePresent {
				ref, refID = &cells[i].User, cells[i].HSM
				break
			}
		}
	}
	out := []Difference{}
	for _, c := range cells {
		switch c.State {
		case StateAbsent:
			out = append(out, Difference{c.HSM, KindMissing, missingDetail(c)})
		case StatePresent:
			u := &c.User
			if c.Listed > 1 {
				out = append(out, Difference{c.HSM, KindDuplicate, fmt.Sprintf("listed %d times; the first record is compared", c.Listed)})
			}
			if ref != nil {
				out = compare(out, c.HSM, u, ref, refID, ignoreHash)
			}
			for _, f := range u.Drift {
				out = append(out, Difference{c.HSM, KindUnlocated, f + " is inconsistent on some HSM this view does not name"})
			}
		}
	}
	return out
}

func compare(out []Difference, hsm string, u, ref *User, refID string, ignoreHash bool) []Difference {
	if u.Role != ref.Role {
		out = append(out, Difference{hsm, KindRole, fmt.Sprintf("%s (%s: %s)", u.Role, refID, ref.Role)})
	}
	if !ignoreHash && u.PasswordHash != ref.PasswordHash {
		out = append(out, Difference{hsm, KindPassword, "credential hash differs from " + refID + "'s"})
	}
	if u.Locked != ref.Locked || u.Failures != ref.Failures {
		out = append(out, Difference{hsm, KindLock, fmt.Sprintf("%s (%s: %s)", lockDesc(*u), refID, lockDesc(*ref))})
	}
	if u.QuorumKey != ref.QuorumKey {
		out = append(out, Difference{hsm, KindQuorum, fmt.Sprintf("quorum key %s (%s: %s)", orNone(u.QuorumKey), refID, orNone(ref.QuorumKey))})
	}
	if u.MFA != ref.MFA {
		out = append(out, Difference{hsm, KindMFA, fmt.Sprintf("mfa %s (%s: %s)", orNone(u.MFA), refID, orNone(ref.MFA))})
	}
	if u.Status != ref.Status {
		out = append(out, Difference{hsm, KindStatus, fmt.Sprintf("status %s (%s: %s)", orNone(u.Status), refID, orNone(ref.Status))})
	}
	return out
}

func missingDetail(c Cell) string {
	switch {
	case c.Tombstone != nil:
		s := "deleted at " + ts(c.Tombstone.Changed)
		if c.Tombstone.Op != "" {
			s += " (" + c.Tombstone.Op + ")"
		}
		return s
	case c.NoRecords:
		return "absent; this HSM's deletion records are unavailable"
	}
	return "absent; no record of deleting it"
}

func indexOf[T comparable](xs []T, x T) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

func ids(cells []Cell, ix []int) string {
	var b strings.Builder
	for k, i := range ix {
		if k > 0 {
			b.WriteString(", ")
		}
		b.WriteString(cells[i].HSM)
	}
	return b.String()
}

func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func pron(n int) string { return verb(n, "its", "their") }

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}

// allOp says whether every present record was last changed by operation op.
func allOp(cells []Cell, present []int, op string) bool {
	for _, i := range present {
		if cells[i].User.Op != op {
			return false
		}
	}
	return len(present) > 0
}
