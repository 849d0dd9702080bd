//go:build linux

package torture

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/state"
)

// Keys under SIGKILL. Each worker has two crypto users of its own, made
// by the setup: an owner (wN_ko), whose keys the worker generates (AES,
// or EC pairs that sign), shares with and unshares from its sharee
// (wN_ks), and deletes, through hsm-key as the other operations go
// through their commands; the other workers' key users are outsiders to
// its keys. The journal (keyEntry) knows each key by its label, unique
// per generation; a killed command makes the key uncertain, and the only
// operation on an uncertain key is its deletion (--allow-partial), until
// every HSM agrees on it again. The checks are the package comment's.

// keyEntry is the journal of one key of a worker's owner.
type keyEntry struct {
	label    string
	class    string // state.ClassSecret, ClassPrivate or ClassPublic
	exists   bool   // on every HSM
	shared   bool   // with the worker's sharee, on every HSM
	certain  bool
	killedBy []string
	// undecidable: hsm-sync apply left it drifting, naming why; the
	// workers leave it alone until every HSM agrees on it.
	undecidable bool
}

const (
	keyEvery    = 4 // one loop iteration in this many is a key operation
	maxLiveKeys = 6 // keys per worker that may exist at once
)

func (w *worker) keyEnv() []string {
	return []string{"HSM_PIN=" + w.keyOwner + ":" + w.h.keyUsers[w.keyOwner], "HSM_ROLE=crypto-user"}
}

// keyIteration runs one key operation.
func (w *worker) keyIteration() {
	var live []*keyEntry
	for _, e := range w.keys {
		if !e.undecidable && (!e.certain || e.exists) {
			live = append(live, e)
		}
	}
	r := w.rng.IntN(100)
	if len(live) == 0 || r < 35 && len(live) < maxLiveKeys {
		w.generateKey()
		return
	}
	e := live[w.rng.IntN(len(live))]
	switch {
	case !e.certain:
		w.keyOp(e, keyState{}, "delete", "--filter", "attr.label="+e.label, "--allow-partial")
	case e.class != state.ClassPublic && r < 70 && e.shared:
		w.keyOp(e, keyState{exists: true}, "unshare", "--filter", "attr.label="+e.label, "--username", w.keySharee, "--role", "crypto-user")
	case e.class != state.ClassPublic && r < 70:
		w.keyOp(e, keyState{exists: true, shared: true}, "share", "--filter", "attr.label="+e.label, "--username", w.keySharee, "--role", "crypto-user")
	default:
		w.keyOp(e, keyState{}, "delete", "--filter", "attr.label="+e.label)
	}
}

// keyState is what every HSM holds of one key.
type keyState struct{ exists, shared bool }

// generateKey makes an AES key or an EC pair, shared at creation one
// time in three.
func (w *worker) generateKey() {
	label := fmt.Sprintf("w%d-k%d", w.id, w.nextKey)
	w.nextKey++
	share := w.rng.IntN(3) == 0
	var args []string
	var es []*keyEntry
	if w.rng.IntN(2) == 0 {
		args = []string{"generate-symmetric", "aes", "--label", label, "--key-length-bytes", fmt.Sprint([]int{16, 24, 32}[w.rng.IntN(3)])}
		es = []*keyEntry{{label: label, class: state.ClassSecret}}
	} else {
		args = []string{"generate-asymmetric-pair", "ec", "--curve", "prime256v1", "--public-label", label + "-pub", "--private-label", label,
			"--private-attributes", "sign=true", "--public-attributes", "verify=true"}
		es = []*keyEntry{{label: label, class: state.ClassPrivate}, {label: label + "-pub", class: state.ClassPublic}}
	}
	if share {
		args = append(args, "--share-crypto-users", w.keySharee)
	}
	p := w.op(w.keyEnv(), "hsm-key", args...)
	for _, e := range es {
		e.certain = true // what it was before: absent everywhere
		w.keys = append(w.keys, e)
		w.keyOutcome(e, p, keyState{exists: true, shared: share && e.class != state.ClassPublic})
	}
}

// keyOp runs one hsm-key command on e; want is what it makes of e.
func (w *worker) keyOp(e *keyEntry, want keyState, args ...string) {
	w.keyOutcome(e, w.op(w.keyEnv(), "hsm-key", args...), want)
}

// keyOutcome learns what the command p did to e, and checks a certain
// key against every HSM.
func (w *worker) keyOutcome(e *keyEntry, p *proc, want keyState) {
	h := w.h
	wasCertain := e.certain
	switch {
	case p.killed:
		e.certain = false
		e.killedBy = append(e.killedBy, p.String())
	case p.code == 0:
		e.exists, e.shared, e.certain = want.exists, want.shared, true
	case wasCertain:
		h.errorf("worker %d: %s refused: %s", w.id, p, p.describe())
	}
	hsms, err := loadHSMs(h.stateDir)
	if err != nil {
		h.errorf("worker %d: after %s: %v", w.id, p, err)
		return
	}
	if !e.certain {
		e.settle(hsms, w.keySharee)
		return
	}
	if msg := e.mismatch(hsms, w.keyOwner, w.keySharee); msg != "" {
		h.errorf("worker %d: after %s (exit %d): %s", w.id, p, p.code, msg)
		e.certain = false
		e.killedBy = append(e.killedBy, "mismatch")
	}
}

// findKeyLabel is the key of x with the label, or nil.
func findKeyLabel(x *state.HSM, label string) *state.Key {
	for i := range x.Keys {
		if x.Keys[i].Label == label {
			return &x.Keys[i]
		}
	}
	return nil
}

// sharedPart is what every HSM must hold of a key alike.
func sharedPart(k *state.Key) []byte {
	sh, _ := state.KeySharedPart(state.EncodeKey(k))
	return sh
}

// settle makes an uncertain key certain when every HSM holds the same
// record of it, or none does.
func (e *keyEntry) settle(hsms []*state.HSM, sharee string) bool {
	first := findKeyLabel(hsms[0], e.label)
	for _, x := range hsms[1:] {
		k := findKeyLabel(x, e.label)
		if (k == nil) != (first == nil) || k != nil && (k.Ref != first.Ref || !bytes.Equal(sharedPart(k), sharedPart(first))) {
			return false
		}
	}
	e.exists = first != nil
	e.shared = first != nil && slices.Contains(first.Shared, sharee)
	e.certain, e.killedBy, e.undecidable = true, nil, false
	return true
}

// mismatch compares a certain key with every HSM.
func (e *keyEntry) mismatch(hsms []*state.HSM, owner, sharee string) string {
	var want []string
	if e.shared {
		want = []string{sharee}
	}
	for _, x := range hsms {
		k := findKeyLabel(x, e.label)
		switch {
		case !e.exists && k != nil:
			return fmt.Sprintf("key %s must be absent but %s holds it (%s)", e.label, x.ID, hsm.RefString(k.Ref))
		case !e.exists:
		case k == nil:
			return fmt.Sprintf("key %s must exist but %s lacks it", e.label, x.ID)
		case k.Owner != owner || k.Class != e.class || !slices.Equal(k.Shared, want):
			return fmt.Sprintf("key %s on %s is a %s of %s shared with %v; the journal says a %s of %s shared with %v", e.label, x.ID, k.Class, k.Owner, k.Shared, e.class, owner, want)
		}
	}
	return ""
}

// keyJournal is every worker's keys by label.
func (c *checker) keyJournal() map[string]*keyEntry {
	out := map[string]*keyEntry{}
	for _, w := range c.h.workers {
		for _, e := range w.keys {
			out[e.label] = e
		}
	}
	return out
}

// keyDriftOf lists the token keys whose records differ between HSMs, or
// that some HSMs lack: reference → label.
func keyDriftOf(hsms []*state.HSM) map[uint64]string {
	type seen struct {
		label  string
		shared []byte
		n      int
		differ bool
	}
	all := map[uint64]*seen{}
	for _, x := range hsms {
		for i := range x.Keys {
			k := &x.Keys[i]
			if k.Session != "" {
				continue
			}
			sh := sharedPart(k)
			if s := all[k.Ref]; s == nil {
				all[k.Ref] = &seen{label: k.Label, shared: sh, n: 1}
			} else {
				s.n++
				s.differ = s.differ || !bytes.Equal(s.shared, sh)
			}
		}
	}
	drift := map[uint64]string{}
	for ref, s := range all {
		if s.differ || s.n != len(hsms) {
			drift[ref] = s.label
		}
	}
	return drift
}

// checkKeys checks the key invariants on hsms and returns the key drift:
// every key record is whole (its masked material opens to the key its
// check value names), and only keys a killed command touched drift.
func (c *checker) checkKeys(hsms []*state.HSM, why string) map[uint64]string {
	h := c.h
	st, err := state.Open(h.stateDir)
	if err != nil {
		h.errorf("%s: %v", why, err)
		return nil
	}
	cl, err := st.LoadCluster()
	if err != nil {
		h.errorf("%s: %v", why, err)
		return nil
	}
	journal := c.keyJournal()
	for _, x := range hsms {
		for i := range x.Keys {
			k := &x.Keys[i]
			if err := hsm.CheckKeyMaterial(cl, k); err != nil {
				h.errorf("%s: a half-written key on %s: %v", why, x.ID, err)
			}
			if journal[k.Label] == nil {
				h.errorf("%s: key %s (%q) on %s, which no command of the journal generated", why, hsm.RefString(k.Ref), k.Label, x.ID)
			}
		}
	}
	drift := keyDriftOf(hsms)
	for _, ref := range sortedKeys(drift) {
		if e := journal[drift[ref]]; e != nil && e.certain {
			h.errorf("%s: drift of key %s (%s), which no killed command touched", why, hsm.RefString(ref), drift[ref])
		}
	}
	return drift
}

// resolveKeys makes uncertain keys certain where every HSM agrees, and
// marks those hsm-sync apply left undecided.
func (c *checker) resolveKeys(hsms []*state.HSM, undecided map[uint64]string) {
	for _, w := range c.h.workers {
		for _, e := range w.keys {
			if !e.certain {
				e.settle(hsms, w.keySharee)
			}
		}
	}
	journal := c.keyJournal()
	for _, label := range undecided {
		if e := journal[label]; e != nil && !e.certain {
			e.undecidable = true
		}
	}
}

// keyAccess checks, through the engine as each worker's key users, that
// no key is visible or usable by a crypto user that neither owns it nor
// is in its shared list on that HSM, and that what is theirs is: ListKeys
// names, for each key, exactly the HSMs whose record lets the user see
// it (three users at random; every one at the end of a phase); signs
// (a sample; every pair at the end of a phase) fail with "no
// key matched" for a user with no right to the private key on any HSM,
// and succeed, verifying under the public key, for one with the right on
// every HSM that holds it.
func (c *checker) keyAccess(rng *rand.Rand, hsms []*state.HSM, final bool, why string) {
	h := c.h
	cl, err := hsm.Open(filepath.Join(h.dir, "cluster.yaml"), hsm.Options{LockWait: time.Minute, Who: "hsmkit torture test (keys)", NoKeyAvailabilityCheck: true})
	if err != nil {
		h.errorf("%s: %v", why, err)
		return
	}
	users := make([]string, 0, len(h.keyUsers))
	for u := range h.keyUsers {
		users = append(users, u)
	}
	sort.Strings(users)
	sees := func(u string, k *state.Key) bool {
		return k.Class == state.ClassPublic || k.Owner == u || slices.Contains(k.Shared, u)
	}
	auths := map[string]hsm.Authenticator{}
	for _, u := range users {
		auth, err := hsm.ParsePIN(u+":"+h.keyUsers[u], "crypto-user")
		if err != nil {
			h.errorf("%s: %v", why, err)
			return
		}
		auths[u] = auth
	}
	// Every user at the end of a phase, three at the other checks: each
	// list reads every HSM.
	listers := slices.Clone(users)
	if !final {
		rng.Shuffle(len(listers), func(i, j int) { listers[i], listers[j] = listers[j], listers[i] })
		listers = listers[:min(3, len(listers))]
	}
	for _, u := range listers {
		auth := auths[u]
		ks, _, err := cl.ListKeys(auth, hsm.KeyFilter{})
		if err != nil {
			h.errorf("%s: ListKeys as %s: %v", why, u, err)
			continue
		}
		listed := map[string]bool{} // ref@HSM
		for _, ki := range ks {
			for _, id := range ki.HSMs {
				listed[fmt.Sprintf("%d@%s", ki.Key.Ref, id)] = true
			}
		}
		for _, x := range hsms {
			for i := range x.Keys {
				k := &x.Keys[i]
				at := fmt.Sprintf("%d@%s", k.Ref, x.ID)
				switch {
				case listed[at] && !sees(u, k):
					h.errorf("%s: %s lists key %s (%q, owner %s, shared with %v on %s), which is not shared with it there", why, u, hsm.RefString(k.Ref), k.Label, k.Owner, k.Shared, x.ID)
				case !listed[at] && sees(u, k):
					h.errorf("%s: %s does not list key %s (%q) on %s, which is its own, shared with it or public there", why, u, hsm.RefString(k.Ref), k.Label, x.ID)
				}
				delete(listed, at)
			}
		}
		for at := range listed {
			h.errorf("%s: %s lists key %s, which is on no HSM", why, u, at)
		}
	}
	// Signs: (user, private key) pairs.
	type pair struct {
		u string
		k *state.Key
	}
	var pairs []pair
	seen := map[uint64]bool{}
	for _, x := range hsms {
		for i := range x.Keys {
			k := &x.Keys[i]
			if k.Class != state.ClassPrivate || seen[k.Ref] {
				continue
			}
			seen[k.Ref] = true
			for _, u := range users {
				pairs = append(pairs, pair{u, k})
			}
		}
	}
	n := 2
	if final {
		n = len(pairs)
	}
	rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
	data := []byte("hsmkit torture")
	for _, pr := range pairs[:min(n, len(pairs))] {
		some, every := false, true
		for _, x := range hsms {
			for i := range x.Keys {
				if k := &x.Keys[i]; k.Ref == pr.k.Ref {
					r := sees(pr.u, k) && k.Has("sign")
					some, every = some || r, every && r
				}
			}
		}
		ref := pr.k.Ref
		_, sig, err := cl.Sign(auths[pr.u], hsm.KeyFilter{Ref: &ref}, hsm.SignSpec{Mech: "ecdsa", Hash: crypto.SHA256, Data: data}, nil)
		var sel *hsm.SelectionError
		switch {
		case !some && err == nil:
			h.errorf("%s: %s signed with key %s (%q, owner %s), which is shared with it on no HSM", why, pr.u, hsm.RefString(ref), pr.k.Label, pr.k.Owner)
		case !some && !errors.As(err, &sel):
			h.errorf("%s: %s signing with key %s, not shared with it: refused with %v, not as no key matched", why, pr.u, hsm.RefString(ref), err)
		case every && err != nil:
			h.errorf("%s: %s cannot sign with key %s (%q), its own or shared with it on every HSM that holds it: %v", why, pr.u, hsm.RefString(ref), pr.k.Label, err)
		case err == nil:
			pub, perr := x509.ParsePKIXPublicKey(pr.k.Public)
			digest := crypto.SHA256.New()
			digest.Write(data)
			if ec, ok := pub.(*ecdsa.PublicKey); perr != nil || !ok || !ecdsa.VerifyASN1(ec, digest.Sum(nil), sig) {
				h.errorf("%s: the signature %s made with key %s does not verify under its public key", why, pr.u, hsm.RefString(ref))
			}
		}
		h.keySigns.Add(1)
	}
}

// keyDiffOut is hsm-sync diff -o json's key part.
type keyDiffOut struct {
	InSync bool `json:"in-sync"`
	Differ []struct {
		Ref      string            `json:"key-reference"`
		HSMs     map[string]string `json:"hsms"`
		Decision string            `json:"decision"`
		Source   string            `json:"source"`
		Reason   string            `json:"reason"`
	} `json:"differ"`
}

// reportKeys checks that hsm-sync diff explains the key drift found on
// disk: every differing key, no other, each with a decision and its
// reason. It returns the keys diff calls undecidable.
func (c *checker) reportKeys(d *keyDiffOut, drift map[uint64]string, why string) map[uint64]string {
	h := c.h
	if d == nil {
		h.errorf("%s: hsm-sync diff -o json has no key part", why)
		return nil
	}
	undecidable := map[uint64]string{}
	reported := map[uint64]bool{}
	for _, kd := range d.Differ {
		ref, err := hsm.ParseRef(kd.Ref)
		if err != nil {
			h.errorf("%s: hsm-sync diff names key %q: %v", why, kd.Ref, err)
			continue
		}
		reported[ref] = true
		if _, ok := drift[ref]; !ok {
			h.errorf("%s: hsm-sync diff reports key %s, which is in sync", why, kd.Ref)
		}
		switch {
		case kd.Decision == "" || strings.TrimSpace(kd.Reason) == "":
			h.errorf("%s: hsm-sync diff does not explain key %s: decision %q, reason %q", why, kd.Ref, kd.Decision, kd.Reason)
		case kd.Decision == "undecidable":
			undecidable[ref] = drift[ref]
		}
	}
	for _, ref := range sortedKeys(drift) {
		if !reported[ref] {
			h.errorf("%s: hsm-sync diff does not report the drift of key %s (%s)", why, hsm.RefString(ref), drift[ref])
		}
	}
	if d.InSync != (len(d.Differ) == 0) {
		h.errorf("%s: hsm-sync diff says keys in-sync %v with %d differing", why, d.InSync, len(d.Differ))
	}
	return undecidable
}

// TestKeyChecksFail shows that the key checks that need no cluster fail
// on the states they forbid: drift found on disk, a journal mismatch,
// and a diff report that leaves drift unexplained.
func TestKeyChecksFail(t *testing.T) {
	key := func(ref uint64, shared ...string) state.Key {
		return state.Key{Ref: ref, Class: state.ClassSecret, Type: state.TypeAES, Owner: "w1_ko", Label: fmt.Sprintf("w1-k%d", ref), Shared: shared}
	}
	hsms := []*state.HSM{{ID: "a", Keys: []state.Key{key(1), key(2, "w1_ks"), key(3)}}, {ID: "b", Keys: []state.Key{key(1), key(2)}}}
	if got := keyDriftOf(hsms); len(got) != 2 || got[2] != "w1-k2" || got[3] != "w1-k3" {
		t.Errorf("keyDriftOf: want keys 2 (shares differ) and 3 (missing on b), got %v", got)
	}
	e := &keyEntry{label: "w1-k1", class: state.ClassSecret, exists: true, certain: true, shared: true}
	if msg := e.mismatch(hsms, "w1_ko", "w1_ks"); !strings.Contains(msg, "shared with") {
		t.Errorf("mismatch of a key the journal says is shared: %q", msg)
	}
	if e.settle(hsms, "w1_ks"); e.shared || !e.exists {
		t.Errorf("settle: want w1-k1 present and unshared, got %+v", e)
	}
	if (&keyEntry{label: "w1-k2"}).settle(hsms, "w1_ks") {
		t.Error("settle made a drifting key certain")
	}
	var got []string
	c := &checker{h: &harness{t: t, report: func(msg string) { got = append(got, msg) }}}
	d := &keyDiffOut{InSync: true}
	d.Differ = append(d.Differ, struct {
		Ref      string            `json:"key-reference"`
		HSMs     map[string]string `json:"hsms"`
		Decision string            `json:"decision"`
		Source   string            `json:"source"`
		Reason   string            `json:"reason"`
	}{Ref: "0x0000000000000002", Decision: "undecidable"})
	c.reportKeys(d, keyDriftOf(hsms), "test")
	for _, want := range []string{"does not explain key 0x0000000000000002", "does not report the drift of key 0x0000000000000003", "in-sync true with 1 differing"} {
		if !slices.ContainsFunc(got, func(m string) bool { return strings.Contains(m, want) }) {
			t.Errorf("reportKeys: want a failure saying %q, got %q", want, got)
		}
	}
}
