package syncdiff

import (
	"strings"
	"testing"
	"time"
)

// TestDecideKey runs the key repair rules: no deleted key brought back, a
// partial create copied, a grant spread only by a newer majority,
// otherwise the least privilege, and different keys under one reference
// left alone.
func TestDecideKey(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	base := Key{Ref: 1, Class: "secret-key", Type: "aes", Owner: "cu1", Material: "m", Digest: "d0", Changed: t0, Attrs: []string{"encrypt"}}
	with := func(digest string, at int, f func(*Key)) KeyCell {
		k := base
		k.Digest, k.Changed = digest, t0.Add(time.Duration(at)*time.Minute)
		if f != nil {
			f(&k)
		}
		return KeyCell{State: StatePresent, Key: k}
	}
	share := func(u string) func(*Key) { return func(k *Key) { k.Shared = []string{u} } }
	absent := KeyCell{State: StateAbsent}
	deleted := KeyCell{State: StateAbsent, Tombstone: &KeyTombstone{Ref: 1, Owner: "cu1", Changed: t0.Add(time.Minute), Op: "op-del"}}
	for _, tc := range []struct {
		name   string
		cells  []KeyCell
		want   Decision
		source string
		reason string
	}{
		{"partial create", []KeyCell{with("d0", 0, nil), with("d0", 0, nil), absent}, DecisionCreate, "a", "partial create"},
		{"deleted by its owner", []KeyCell{with("d0", 2, nil), deleted, absent}, DecisionDelete, "", "never brings back"},
		{"newer majority share spreads", []KeyCell{with("d1", 1, share("bob")), with("d1", 1, share("bob")), with("d0", 0, nil)}, DecisionUpdate, "a", "majority"},
		{"older majority share does not", []KeyCell{with("d1", 0, share("bob")), with("d1", 0, share("bob")), with("d0", 1, nil)}, DecisionUpdate, "c", "least privilege"},
		{"minority share undone", []KeyCell{with("d0", 0, nil), with("d0", 0, nil), with("d1", 5, share("bob"))}, DecisionUpdate, "a", "majority"},
		{"tie: least privilege", []KeyCell{with("d0", 0, nil), with("d1", 5, share("bob"))}, DecisionUpdate, "a", "least privilege"},
		{"tie: each grants", []KeyCell{with("d1", 0, share("bob")), with("d2", 5, share("eve"))}, DecisionUndecidable, "", "each grants"},
		{"attribute widened on a minority", []KeyCell{with("d0", 0, nil), with("d1", 3, func(k *Key) { k.Attrs = append(k.Attrs, "extractable") })}, DecisionUpdate, "a", "extractable=true"},
		{"lower key quorum on a minority", []KeyCell{with("d1", 0, func(k *Key) { k.ManageQuorum, k.UseQuorum = 2, 2 }), with("d0", 3, nil)}, DecisionUpdate, "a", "manage-key-quorum-value 0"},
		{"different material", []KeyCell{with("d0", 0, nil), with("d1", 0, func(k *Key) { k.Material = "x" })}, DecisionUndecidable, "", "different keys"},
		{"label only, newer majority", []KeyCell{with("d1", 1, func(k *Key) { k.Label = "n" }), with("d1", 1, func(k *Key) { k.Label = "n" }), with("d0", 2, nil)}, DecisionUpdate, "a", "majority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.cells {
				tc.cells[i].HSM = string(rune('a' + i))
			}
			a := decideKey(tc.cells)
			if a.Decision != tc.want || a.Source != tc.source || !strings.Contains(a.Reason, tc.reason) {
				t.Errorf("got %s from %q: %s; want %s from %q, reason with %q", a.Decision, a.Source, a.Reason, tc.want, tc.source, tc.reason)
			}
		})
	}
}
