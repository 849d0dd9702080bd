package syncdiff

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Keys (docs/design.md, "Keys"). Token keys are compared as users are:
// one row per key reference, one cell per HSM. A key is repaired by
// copying its record, masked material included, so a repair never needs
// the plaintext. The never-escalate rule for keys:
//
//   - a key absent on an HSM that recorded its owner's deletion is
//     deleted where it remains: a repair never brings a deleted key back;
//   - a key absent elsewhere without such a record is a partial create,
//     copied where it is missing;
//   - records that differ in what makes the key (class, type, owner,
//     material, pair) are undecidable: no operation makes them;
//   - among records that differ in grants (shared users, usage
//     attributes, key quorum values), a version that grants more than
//     another HSM's record wins only when it is the majority of the
//     reachable HSMs holding the key and changed after every record it
//     would widen; otherwise the version that grants nothing another
//     lacks (the least privilege) wins, or, when none does, nothing is
//     planned. A share on a minority of HSMs is never spread.

// Key is one token key as one HSM holds it. Session keys live on one HSM
// and are never compared.
type Key struct {
	Ref    uint64
	Class  string
	Type   string
	Label  string
	Owner  string
	Shared []string // sorted
	// Attrs are the boolean attributes that are true, in the state's order.
	Attrs        []string
	ManageQuorum int
	UseQuorum    int
	// Material names the key's material and pairing (a digest of its
	// masked object, public key, check value and pair): records of one
	// key have the same.
	Material string
	// Digest names the whole record as every HSM must hold it: equal
	// digests, equal records.
	Digest  string
	Changed time.Time
	Seq     uint64
	Op      string
}

// KeyTombstone records that a key's owner deleted it on an HSM.
type KeyTombstone struct {
	Ref     uint64
	Owner   string
	Changed time.Time
	Op      string
}

// KeyHash is one HSM's digest of its token keys' ownership and sharing,
// as CMU findAllKeys prints one per HSM: equal hashes, equal key users.
type KeyHash struct {
	HSM  string
	Keys int
	Hash string // hex SHA-256; "" when the HSM holds no token key
}

// KeyCell is what one HSM holds of one key.
type KeyCell struct {
	HSM       string
	State     CellState
	Key       Key           // when StatePresent
	Tombstone *KeyTombstone // when StateAbsent and the owner deleted it there
}

// KeyDiff is one key that differs between HSMs.
type KeyDiff struct {
	Ref       uint64
	Cells     []KeyCell // one per HSM, in cluster order
	Authority KeyAuthority
}

// KeyAuthority is the decision for a differing key and why.
type KeyAuthority struct {
	Decision Decision
	Source   string // the HSM whose record is copied (create, update)
	Version  Key    // that record
	Reason   string
}

// KeyRefString formats a key reference as cloudhsm-cli does.
func KeyRefString(ref uint64) string { return fmt.Sprintf("0x%016x", ref) }

// KeysInSync reports whether every reachable HSM holds the same token keys.
func (r Report) KeysInSync() bool { return len(r.Keys) == 0 }

// grantingAttrs are the boolean attributes that let someone do more
// with a key when true; the others restrict (sensitive, private…) or
// describe it (token, local).
var grantingAttrs = []string{"decrypt", "derive", "destroyable", "encrypt", "extractable", "modifiable", "sign", "trusted", "unwrap", "verify", "wrap"}

// grants lists what a grants that b does not: shared users, granting
// attributes, lower key quorum values.
func grants(a, b Key) []string {
	var out []string
	for _, u := range a.Shared {
		if !slices.Contains(b.Shared, u) {
			out = append(out, "shared with "+u)
		}
	}
	for _, at := range a.Attrs {
		if slices.Contains(grantingAttrs, at) && !slices.Contains(b.Attrs, at) {
			out = append(out, at+"=true")
		}
	}
	if a.ManageQuorum < b.ManageQuorum {
		out = append(out, fmt.Sprintf("manage-key-quorum-value %d (not %d)", a.ManageQuorum, b.ManageQuorum))
	}
	if a.UseQuorum < b.UseQuorum {
		out = append(out, fmt.Sprintf("use-key-quorum-value %d (not %d)", a.UseQuorum, b.UseQuorum))
	}
	return out
}

func sameKey(a, b Key) bool {
	return a.Class == b.Class && a.Type == b.Type && a.Owner == b.Owner && a.Material == b.Material
}

// diffKeys compares the keys of the reachable HSMs (only those that
// differ are in the snapshot).
func diffKeys(s Snapshot) []KeyDiff {
	n := len(s.HSMs)
	rows := map[uint64][]int{} // ref → per HSM: 1 + index in Keys, 0 absent
	var refs []uint64
	for hi, h := range s.HSMs {
		if !h.Reachable {
			continue
		}
		for ki, k := range h.Keys {
			if rows[k.Ref] == nil {
				rows[k.Ref] = make([]int, n)
				refs = append(refs, k.Ref)
			}
			rows[k.Ref][hi] = ki + 1
		}
	}
	slices.Sort(refs)
	var out []KeyDiff
	for _, ref := range refs {
		kd := KeyDiff{Ref: ref, Cells: make([]KeyCell, n)}
		differs := false
		digest := ""
		for hi, h := range s.HSMs {
			c := &kd.Cells[hi]
			c.HSM = h.ID
			switch {
			case !h.Reachable:
				c.State = StateUnreachable
			case rows[ref][hi] == 0:
				c.State = StateAbsent
				differs = true
				for _, t := range h.KeysDeleted {
					if t.Ref == ref {
						c.Tombstone = &t
					}
				}
			default:
				c.State, c.Key = StatePresent, h.Keys[rows[ref][hi]-1]
				differs = differs || digest != "" && c.Key.Digest != digest
				digest = c.Key.Digest
			}
		}
		if differs {
			kd.Authority = decideKey(kd.Cells)
			out = append(out, kd)
		}
	}
	return out
}

func keyIDs(cells []KeyCell, ix []int) string {
	var s []string
	for _, i := range ix {
		s = append(s, cells[i].HSM)
	}
	return strings.Join(s, ", ")
}

// decideKey applies the rules above to one differing key.
func decideKey(cells []KeyCell) KeyAuthority {
	var present, absent, unreach, deleted []int
	for i, c := range cells {
		switch c.State {
		case StatePresent:
			present = append(present, i)
		case StateAbsent:
			absent = append(absent, i)
			if c.Tombstone != nil {
				deleted = append(deleted, i)
			}
		default:
			unreach = append(unreach, i)
		}
	}
	a := decideReachableKey(cells, present, absent, deleted)
	if len(unreach) > 0 {
		a.Reason += "; " + keyIDs(cells, unreach) + " " + verb(len(unreach), "is", "are") + " unreachable, so nothing is planned there"
	}
	if a.Decision == DecisionUndecidable {
		a.Reason += "; nothing is planned for this key"
	}
	return a
}

func decideReachableKey(cells []KeyCell, present, absent, deleted []int) KeyAuthority {
	if len(deleted) > 0 {
		t := cells[deleted[0]].Tombstone
		return KeyAuthority{Decision: DecisionDelete, Reason: fmt.Sprintf(
			"%s deleted it (its owner %s, %s, %s): a repair never brings back a deleted key, so it is deleted where it remains",
			keyIDs(cells, deleted), t.Owner, orUnknown(t.Op), ts(t.Changed))}
	}
	// Group the present records by digest, in cluster order.
	var groups [][]int
	for _, i := range present {
		g := slices.IndexFunc(groups, func(g []int) bool { return cells[g[0]].Key.Digest == cells[i].Key.Digest })
		if g < 0 {
			groups = append(groups, []int{i})
		} else {
			groups[g] = append(groups[g], i)
		}
	}
	for _, g := range groups[1:] {
		if !sameKey(cells[g[0]].Key, cells[groups[0][0]].Key) {
			return KeyAuthority{Decision: DecisionUndecidable, Reason: fmt.Sprintf(
				"%s and %s hold different keys (class, type, owner or material) under this reference, which no operation makes",
				keyIDs(cells, groups[0]), keyIDs(cells, g))}
		}
	}
	decision := DecisionUpdate
	if len(absent) > 0 {
		decision = DecisionCreate
	}
	if len(groups) == 1 {
		src := groups[0][0]
		return KeyAuthority{Decision: decision, Source: cells[src].HSM, Version: cells[src].Key, Reason: fmt.Sprintf(
			"present on %d of %d HSMs (%s); %s %s no record of its deletion, so this is a partial create",
			len(present), len(present)+len(absent), keyIDs(cells, present), keyIDs(cells, absent), verb(len(absent), "has", "have"))}
	}
	// The majority, when it widens nothing or only records it is newer than.
	slices.SortStableFunc(groups, func(a, b []int) int { return len(b) - len(a) })
	major := groups[0]
	if 2*len(major) > len(present) {
		v := cells[major[0]].Key
		ok := true
		for _, g := range groups[1:] {
			o := cells[g[0]].Key
			if len(grants(v, o)) > 0 && !v.Changed.After(o.Changed) {
				ok = false
			}
		}
		if ok {
			return KeyAuthority{Decision: decision, Source: cells[major[0]].HSM, Version: v, Reason: fmt.Sprintf(
				"the records differ and the version on %s (%d of %d) is the majority and changed after every record it widens",
				keyIDs(cells, major), len(major), len(present))}
		}
	}
	// Otherwise the least privilege: a version that grants nothing any
	// other record lacks.
	for _, g := range groups {
		v := cells[g[0]].Key
		var widened []string
		for _, o := range groups {
			widened = append(widened, grants(v, cells[o[0]].Key)...)
		}
		if len(widened) > 0 {
			continue
		}
		var what []string
		for _, o := range groups {
			if w := grants(cells[o[0]].Key, v); len(w) > 0 {
				what = append(what, keyIDs(cells, o)+": "+strings.Join(w, ", "))
			}
		}
		return KeyAuthority{Decision: decision, Source: cells[g[0]].HSM, Version: v, Reason: fmt.Sprintf(
			"the records differ and what some grant (%s) is not held by a majority that changed after the others, so a repair does not spread it: the least privilege, the version on %s, wins (its owner shares again on every HSM if it was meant)",
			strings.Join(what, "; "), keyIDs(cells, g))}
	}
	var parts []string
	for _, g := range groups {
		parts = append(parts, keyIDs(cells, g))
	}
	return KeyAuthority{Decision: DecisionUndecidable, Reason: fmt.Sprintf(
		"the records differ with no majority that changed after the others (%s), and each grants something another lacks; its owner sets the shares and attributes again on every HSM",
		strings.Join(parts, " vs "))}
}

// KeyAction is one key repair on one HSM: copy the key's record (its
// masked object) from Src, or delete the key there, keeping the owner's
// deletion record.
type KeyAction struct {
	Kind      ActionKind
	Ref       uint64
	Src       HSMInfo // copy only
	Dst       HSMInfo
	Tombstone *KeyTombstone // delete: the deletion record to keep on Dst
	Reason    string
}

// KeySkipped is a differing key the plan leaves alone.
type KeySkipped struct {
	Ref    uint64
	Reason string
}

// planKeys turns the key decisions into per-HSM actions.
func (r Report) planKeys(p *Plan) {
	for _, kd := range r.Keys {
		a := kd.Authority
		if a.Decision == DecisionUndecidable {
			p.KeySkipped = append(p.KeySkipped, KeySkipped{kd.Ref, a.Reason})
			continue
		}
		var tomb *KeyTombstone
		for _, c := range kd.Cells {
			if t := c.Tombstone; t != nil && (tomb == nil || t.Changed.After(tomb.Changed)) {
				tomb = t
			}
		}
		for hi, c := range kd.Cells {
			switch {
			case c.State == StateUnreachable:
			case a.Decision == DecisionDelete && c.State == StatePresent:
				p.KeyActions = append(p.KeyActions, KeyAction{Kind: ActionDelete, Ref: kd.Ref, Dst: r.HSMs[hi], Tombstone: tomb, Reason: a.Reason})
			case (a.Decision == DecisionCreate || a.Decision == DecisionUpdate) && c.HSM != a.Source &&
				(c.State == StateAbsent || c.Key.Digest != a.Version.Digest):
				src := r.HSMs[slices.IndexFunc(r.HSMs, func(h HSMInfo) bool { return h.ID == a.Source })]
				p.KeyActions = append(p.KeyActions, KeyAction{Kind: ActionCopy, Ref: kd.Ref, Src: src, Dst: r.HSMs[hi], Reason: a.Reason})
			}
		}
	}
}

// KeysJSON is the key part of ReportJSON: present only when the keys
// were read. Lists are never null.
type KeysJSON struct {
	InSync bool          `json:"in-sync"`
	Hashes []KeyHashJSON `json:"hashes"`
	Keys   []KeyDiffJSON `json:"differ"`
}

// KeyHashJSON is one HSM's key hash.
type KeyHashJSON struct {
	HSM  string `json:"hsm"`
	Keys int    `json:"keys"`
	Hash string `json:"hash"`
}

// KeyDiffJSON is one differing key: what each HSM holds ("ok",
// "missing", "deleted", "unreachable", or "differs"), and the decision.
type KeyDiffJSON struct {
	KeyReference string            `json:"key-reference"`
	HSMs         map[string]string `json:"hsms"`
	Decision     string            `json:"decision"`
	Source       string            `json:"source"`
	Reason       string            `json:"reason"`
}

func (r Report) keysJSON() *KeysJSON {
	if !r.KeysKnown {
		return nil
	}
	j := &KeysJSON{InSync: r.KeysInSync(), Hashes: []KeyHashJSON{}, Keys: []KeyDiffJSON{}}
	for _, h := range r.KeyHashes {
		j.Hashes = append(j.Hashes, KeyHashJSON(h))
	}
	for _, kd := range r.Keys {
		kj := KeyDiffJSON{KeyReference: KeyRefString(kd.Ref), HSMs: map[string]string{}, Decision: string(kd.Authority.Decision),
			Source: kd.Authority.Source, Reason: kd.Authority.Reason}
		for _, c := range kd.Cells {
			kj.HSMs[c.HSM] = keyCellText(kd, c)
		}
		j.Keys = append(j.Keys, kj)
	}
	return j
}

// KeyMatrix is Matrix for keys: one row per differing key.
func (r Report) KeyMatrix() (header []string, rows [][]string) {
	header = r.matrixHeader("key")
	for _, kd := range r.Keys {
		row := []string{KeyRefString(kd.Ref)}
		for _, c := range kd.Cells {
			row = append(row, keyCellText(kd, c))
		}
		rows = append(rows, append(row, decisionText(kd.Authority.Decision, kd.Authority.Source)))
	}
	return header, rows
}

func keyCellText(kd KeyDiff, c KeyCell) string {
	switch {
	case c.State == StateUnreachable:
		return "unreachable"
	case c.State == StateAbsent && c.Tombstone != nil:
		return "deleted"
	case c.State == StateAbsent:
		return "missing"
	case kd.Authority.Source != "" && c.Key.Digest != kd.Authority.Version.Digest:
		return "differs"
	case kd.Authority.Source != "":
		return "ok"
	}
	return "present"
}
