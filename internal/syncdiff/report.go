package syncdiff

import (
	"slices"
	"strings"
	"time"
)

// Kind classifies one difference of one user on one HSM.
type Kind string

// The kinds of difference, in the order a user's differences are listed.
const (
	KindMissing   Kind = "missing"   // absent on this HSM
	KindDuplicate Kind = "duplicate" // listed more than once by this HSM's table (a capture): its record cannot be told
	KindRole      Kind = "role"      // a different role
	KindPassword  Kind = "password"  // a different credential hash (only when every hash is known)
	KindLock      Kind = "lock"      // a different lock state or login failure count
	KindQuorum    Kind = "quorum"    // a different registered quorum key
	KindMFA       Kind = "mfa"       // a different MFA registration
	KindStatus    Kind = "status"    // a different status (a profile's flags: disabled, expired)
	// KindUnlocated is drift a merged cloudhsm-cli view reports without
	// naming the HSM that differs.
	KindUnlocated Kind = "unknown-hsm"
)

// Decision is what the authority says about a differing user.
type Decision string

// Decisions.
const (
	DecisionCreate      Decision = "create"      // partial create: copy the record to the HSMs that lack it
	DecisionDelete      Decision = "delete"      // partial delete: delete it where it remains
	DecisionUpdate      Decision = "update"      // present everywhere, records differ: copy the authoritative one
	DecisionUndecidable Decision = "undecidable" // nothing is planned
)

// CellState is what one HSM holds of one user.
type CellState string

// Cell states.
const (
	StatePresent     CellState = "present"
	StateAbsent      CellState = "absent"
	StateUnreachable CellState = "unreachable"
)

// HSMInfo is an HSM of the report, without its user table.
type HSMInfo struct {
	ID        string
	Server    int
	IP        string
	Reachable bool
}

// StaleConfig compares the client config with the cluster.
type StaleConfig struct {
	Missing []string // HSMs of the cluster the config lacks, in cluster order
	Unknown []string // HSMs the config lists that the cluster has not, in config order
}

// Stale reports whether the config and the cluster disagree.
func (c *StaleConfig) Stale() bool {
	return c != nil && (len(c.Missing) > 0 || len(c.Unknown) > 0)
}

// Report is the outcome of Diff. It is deterministic: users sorted by name,
// HSMs in cluster order.
type Report struct {
	ClusterID   string
	HSMs        []HSMInfo
	StaleConfig *StaleConfig // nil when the client config is unknown
	Unreachable []string     // ids of unreachable HSMs: their users are unknown
	Users       []UserDiff   // only users that differ
	Notes       []string     // problems of the input itself, e.g. a name listed twice on one HSM (also drift: KindDuplicate)
	Policy      *PolicyDrift // nil when every reachable HSM has the same quorum policy
	// Token keys (when the snapshot read them): those that differ, and
	// each reachable HSM's key hash.
	KeysKnown bool
	Keys      []KeyDiff
	KeyHashes []KeyHash
}

// PolicyDrift is a quorum policy that differs between HSMs. An HSM with a
// weaker policy (a zeroized HSM, a set-value that missed it) lets one admin
// do there what needs a quorum elsewhere, so the strictest policy wins.
type PolicyDrift struct {
	Want Policy   // the strictest policy of any reachable HSM
	HSMs []string // the HSMs whose policy differs from Want, in cluster order
	Has  []Policy // their policies, in the same order
}

// UserDiff is one user that differs between HSMs.
type UserDiff struct {
	Name        string
	Cells       []Cell       // one per HSM, in cluster order
	Differences []Difference // in cluster order, then kind order
	Authority   Authority
}

// Cell is what one HSM holds of one user.
type Cell struct {
	HSM       string
	State     CellState
	User      User       // when StatePresent: the first record the HSM lists
	Listed    int        // when StatePresent: how many records the HSM lists (more than 1 only in a malformed capture)
	Tombstone *Tombstone // when StateAbsent and the HSM recorded deleting the user (newest record)
	NoRecords bool       // when StateAbsent and the HSM keeps no deletion records (captures)
}

// Difference is one way an HSM's record differs from the reference record
// (the authoritative one, or for undecidable users the first HSM's).
type Difference struct {
	HSM    string
	Kind   Kind
	Detail string
}

// Authority is the decision for a differing user and why.
type Authority struct {
	Decision Decision
	Source   string // HSM holding the authoritative record (create, update)
	Version  User   // the authoritative record (create, update)
	Reason   string // a sentence for people
}

// UsersInSync reports whether every reachable HSM holds the same users.
func (r Report) UsersInSync() bool { return len(r.Users) == 0 }

// InSync reports whether the users agree, every HSM is reachable and the
// client config (when known) lists exactly the cluster's HSMs. An
// unreachable HSM or a stale config means drift cannot be ruled out.
func (r Report) InSync() bool {
	return r.UsersInSync() && r.KeysInSync() && len(r.Unreachable) == 0 && !r.StaleConfig.Stale() && r.Policy == nil
}

// policyDrift compares the quorum policies of the reachable HSMs that
// report one.
func policyDrift(hsms []HSM) *PolicyDrift {
	var ps []Policy
	for _, h := range hsms {
		if h.Reachable && h.Policy != nil {
			ps = append(ps, *h.Policy)
		}
	}
	if len(ps) < 2 {
		return nil
	}
	want := strictest(ps)
	d := &PolicyDrift{Want: want}
	for _, h := range hsms {
		if h.Reachable && h.Policy != nil && *h.Policy != want {
			d.HSMs, d.Has = append(d.HSMs, h.ID), append(d.Has, *h.Policy)
		}
	}
	if len(d.HSMs) == 0 {
		return nil
	}
	return d
}

// Diff compares the user tables of s's HSMs. It runs in O(HSMs × users) and
// allocates only for users that differ.
func Diff(s Snapshot) Report {
	n := len(s.HSMs)
	r := Report{ClusterID: s.ClusterID, HSMs: make([]HSMInfo, n)}
	for i, h := range s.HSMs {
		r.HSMs[i] = HSMInfo{ID: h.ID, Server: h.Server, IP: h.IP, Reachable: h.Reachable}
		if !h.Reachable {
			r.Unreachable = append(r.Unreachable, h.ID)
		}
	}
	if s.ConfigHSMs != nil {
		r.StaleConfig = staleConfig(s)
	}

	// One row per user name; idx[row*n+hsm] is 1 + the user's index in that
	// HSM's table, 0 when absent.
	size := 0
	for _, h := range s.HSMs {
		size = max(size, len(h.Users))
	}
	rows := make(map[string]int, size)
	names := make([]string, 0, size)
	idx := make([]int32, 0, size*n)
	zeros := make([]int32, n)
	// Tables usually list users in the same order: check the first table's
	// user at the same index before hashing the name.
	var first []User
	var firstRows []int
	var dups map[int]bool // row*n+hsm: the HSM lists the user more than once
	for hi, h := range s.HSMs {
		if !h.Reachable {
			continue
		}
		isFirst := first == nil
		if isFirst {
			first, firstRows = h.Users, make([]int, len(h.Users))
		}
		for ui := range h.Users {
			name := h.Users[ui].Name
			var row int
			ok := false
			if !isFirst && ui < len(first) && first[ui].Name == name {
				row, ok = firstRows[ui], true
			} else {
				row, ok = rows[name]
			}
			if !ok {
				row = len(names)
				rows[name] = row
				names = append(names, name)
				idx = append(idx, zeros...)
			}
			if isFirst {
				firstRows[ui] = row
			}
			if idx[row*n+hi] != 0 {
				// A capture listing a user twice on one HSM: drift, since
				// which record the HSM holds cannot be told.
				if dups == nil {
					dups = map[int]bool{}
				}
				if !dups[row*n+hi] {
					r.Notes = append(r.Notes, h.ID+" lists user "+name+" more than once; nothing is planned for "+name)
				}
				dups[row*n+hi] = true
				continue
			}
			idx[row*n+hi] = int32(ui + 1)
		}
	}

	r.Policy = policyDrift(s.HSMs)
	d := differ{s: &s, weak: weakHSMs(s.HSMs, r.Policy), ev: newEvidence(s.HSMs, s.Approved)}
	for row, name := range names {
		ix := idx[row*n : (row+1)*n]
		var dup []bool
		for hi := range n {
			if dups[row*n+hi] {
				dup = make([]bool, n)
				for hj := range n {
					dup[hj] = dups[row*n+hj]
				}
				break
			}
		}
		if dup != nil || d.rowDiffers(ix) {
			r.Users = append(r.Users, d.userDiff(name, ix, dup))
		}
	}
	slices.SortFunc(r.Users, func(a, b UserDiff) int { return strings.Compare(a.Name, b.Name) })
	if s.KeysKnown {
		r.KeysKnown = true
		r.Keys = diffKeys(s)
		for _, h := range s.HSMs {
			if h.Reachable {
				r.KeyHashes = append(r.KeyHashes, h.KeyHash)
			}
		}
	}
	return r
}

// weakHSMs marks the HSMs whose user or quorum service value is below the
// strictest of the cluster. A user change there may have needed fewer
// approvals than elsewhere (an HSM that missed a set-value, or came back
// zeroized), or its user value may have been lowered and raised again by
// one admin, so its records are no evidence of what the cluster decided.
// When every HSM is below the strictest in some service, all are weak.
func weakHSMs(hsms []HSM, d *PolicyDrift) []bool {
	if d == nil {
		return nil
	}
	weak := make([]bool, len(hsms))
	for i, h := range hsms {
		weak[i] = h.Reachable && h.Policy != nil && h.Policy.Below(d.Want)
	}
	return weak
}

func staleConfig(s Snapshot) *StaleConfig {
	c := &StaleConfig{Missing: []string{}, Unknown: []string{}}
	inConfig := make(map[string]bool, len(s.ConfigHSMs))
	for _, id := range s.ConfigHSMs {
		inConfig[id] = true
	}
	inCluster := make(map[string]bool, len(s.HSMs))
	for _, h := range s.HSMs {
		inCluster[h.ID] = true
		if !inConfig[h.ID] {
			c.Missing = append(c.Missing, h.ID)
		}
	}
	for _, id := range s.ConfigHSMs {
		if !inCluster[id] && !slices.Contains(c.Unknown, id) {
			c.Unknown = append(c.Unknown, id)
		}
	}
	return c
}

type differ struct {
	ev     *evidence
	s      *Snapshot
	weak   []bool           // per HSM: its user quorum value is below the strictest (nil: none)
	tombs  []map[string]int // per HSM: name → index of its newest tombstone, built on first need
	filled []bool
}

// rowDiffers is the allocation-free fast path: does any reachable HSM lack
// the user or hold a different record?
func (d *differ) rowDiffers(ix []int32) bool {
	var ref *User
	allKnown, hashDiff := true, false
	for hi := range ix {
		h := &d.s.HSMs[hi]
		if !h.Reachable {
			continue
		}
		if ix[hi] == 0 {
			return true
		}
		u := &h.Users[ix[hi]-1]
		if len(u.Drift) > 0 {
			return true
		}
		if u.PasswordHash == "" {
			allKnown = false
		}
		if ref == nil {
			ref = u
			continue
		}
		if u.Role != ref.Role || u.Locked != ref.Locked || u.Failures != ref.Failures ||
			u.QuorumKey != ref.QuorumKey || u.MFA != ref.MFA || u.Status != ref.Status {
			return true
		}
		if u.PasswordHash != ref.PasswordHash {
			hashDiff = true
		}
	}
	return allKnown && hashDiff
}

func (d *differ) tombstone(hi int, name string) *Tombstone {
	h := &d.s.HSMs[hi]
	if len(h.Deleted) == 0 {
		return nil
	}
	if d.tombs == nil {
		d.tombs = make([]map[string]int, len(d.s.HSMs))
		d.filled = make([]bool, len(d.s.HSMs))
	}
	if !d.filled[hi] {
		m := make(map[string]int, len(h.Deleted))
		for i, t := range h.Deleted {
			if j, ok := m[t.Name]; !ok || newer(t.Changed, t.Seq, h.Deleted[j].Changed, h.Deleted[j].Seq) {
				m[t.Name] = i
			}
		}
		d.tombs[hi], d.filled[hi] = m, true
	}
	if i, ok := d.tombs[hi][name]; ok {
		t := h.Deleted[i]
		return &t
	}
	return nil
}

func newer(t1 time.Time, s1 uint64, t2 time.Time, s2 uint64) bool {
	if !t1.Equal(t2) {
		return t1.After(t2)
	}
	return s1 > s2
}

// userDiff explains one differing user; dup (nil when none) marks the
// HSMs whose table lists it more than once.
func (d *differ) userDiff(name string, ix []int32, dup []bool) UserDiff {
	ud := UserDiff{Name: name, Cells: make([]Cell, len(ix))}
	for hi := range ix {
		h := &d.s.HSMs[hi]
		c := &ud.Cells[hi]
		c.HSM = h.ID
		switch {
		case !h.Reachable:
			c.State = StateUnreachable
		case ix[hi] == 0:
			c.State = StateAbsent
			c.Tombstone = d.tombstone(hi, name)
			c.NoRecords = h.Deleted == nil
		default:
			c.State = StatePresent
			c.User = h.Users[ix[hi]-1]
			c.Listed = 1
			if dup != nil && dup[hi] {
				c.Listed = 0
				for _, u := range h.Users {
					if u.Name == name {
						c.Listed++
					}
				}
			}
		}
	}
	ignoreHash := false
	for _, c := range ud.Cells {
		if c.State == StatePresent && c.User.PasswordHash == "" {
			ignoreHash = true
		}
	}
	ud.Authority = decide(ud.Cells, ignoreHash, d.weak, d.s.HSMs, d.ev)
	if dup != nil {
		ud.Authority = duplicated(ud.Cells)
	}
	ud.Differences = differences(ud.Cells, ud.Authority, ignoreHash)
	return ud
}
