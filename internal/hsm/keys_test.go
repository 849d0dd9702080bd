package hsm

import (
	"bytes"
	"crypto"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

func refFilter(ref uint64) KeyFilter { return KeyFilter{Ref: &ref} }

// keyCluster is a cluster of two HSMs with cu1, victim and cu2 (crypto
// users), each logged in, and the admin logged in.
func keyCluster(t *testing.T) (c *Client, cu1, cu2, victim, admin *SessionFile) {
	t.Helper()
	c = newTestCluster(t, 2, true)
	if _, err := c.CreateUser(Targeting{}, Fixed{User: "admin"}, "cu2", policy.CryptoUser, "Some-pass1", nil); err != nil {
		t.Fatal(err)
	}
	return c, login(t, c, "cu1", policy.CryptoUser, "Some-pass1"), login(t, c, "cu2", policy.CryptoUser, "Some-pass1"),
		login(t, c, "victim", policy.CryptoUser, "Some-pass1"), login(t, c, "admin", policy.Admin, "Admin-pass1")
}

func genAES(t *testing.T, c *Client, auth Authenticator, label string, share ...string) state.Key {
	t.Helper()
	ks, _, err := c.GenerateKey(Targeting{}, auth, KeySpec{Type: "aes", Label: label, LengthBytes: 32, Ownership: Ownership{ShareWith: share}})
	if err != nil {
		t.Fatal(err)
	}
	return ks[0].Key
}

func genRSA(t *testing.T, c *Client, auth Authenticator, share ...string) (pub, priv state.Key) {
	t.Helper()
	ks, _, err := c.GenerateKey(Targeting{}, auth, KeySpec{Type: "rsa", Label: "pub", PrivateLabel: "priv", ModulusBits: 2048,
		Attrs: []string{"verify=true", "wrap=true", "encrypt=true"}, PrivateAttrs: []string{"sign=true", "unwrap=true", "decrypt=true"}, Ownership: Ownership{ShareWith: share}})
	if err != nil {
		t.Fatal(err)
	}
	return ks[0].Key, ks[1].Key
}

func TestGenerateListSign(t *testing.T) {
	c, cu1, cu2, _, admin := keyCluster(t)
	aes := genAES(t, c, cu1, "a1")
	if len(aes.Check) != 3 || aes.Ref == 0 || aes.Owner != "cu1" {
		t.Fatalf("%+v", aes)
	}
	pub, priv := genRSA(t, c, cu1)
	if priv.Ref != pub.Ref+1 || priv.Pair != pub.Ref || string(pub.Check) != string(priv.Check) {
		t.Fatalf("pair refs %x %x", pub.Ref, priv.Ref)
	}
	for _, w := range []struct {
		auth Authenticator
		n    int
	}{{cu1, 3}, {cu2, 1}, {admin, 3}} {
		ks, _, err := c.ListKeys(w.auth, KeyFilter{})
		if err != nil || len(ks) != w.n {
			t.Fatalf("list: %d keys, %v; want %d", len(ks), err, w.n)
		}
		if ks[0].Coverage != "full" || len(ks[0].HSMs) != 2 {
			t.Fatalf("%+v", ks[0])
		}
	}
	f, err := ParseKeyFilter([]string{"attr.label=priv", "attr.class=private-key"})
	if err != nil {
		t.Fatal(err)
	}
	s := SignSpec{Mech: "rsa-pkcs", Hash: crypto.SHA256, Data: []byte("hello")}
	ref, sig, err := c.Sign(cu1, f, s, nil)
	if err != nil || ref != RefString(priv.Ref) {
		t.Fatal(ref, err)
	}
	// Every crypto user verifies with a public key.
	if err := c.Verify(cu2, refFilter(pub.Ref), s, sig); err != nil {
		t.Fatal(err)
	}
	s.Data = []byte("other")
	if err := c.Verify(cu2, refFilter(pub.Ref), s, sig); !errors.Is(err, ErrSignatureInvalid) {
		t.Fatal(err)
	}
	// Another crypto user does not see the private key.
	var sel *SelectionError
	if _, _, err := c.Sign(cu2, f, s, nil); !errors.As(err, &sel) {
		t.Fatal(err)
	}
	// Admins sign nothing.
	var denied *policy.Denied
	if _, _, err := c.Sign(admin, f, s, nil); !errors.As(err, &denied) {
		t.Fatal(err)
	}
}

// TestKeyCells runs every cell of the key table through the gate: each
// action on a secret key and on a public key, as its owner (cu1), a user
// it is shared with (cu2), another crypto user (victim) and an admin.
func TestKeyCells(t *testing.T) {
	c, cu1, cu2, victim, admin := keyCluster(t)
	if _, err := c.CreateUser(Targeting{}, Fixed{User: "admin"}, "cu3", policy.CryptoUser, "Some-pass1", nil); err != nil {
		t.Fatal(err)
	}
	actors := []struct {
		name string
		auth Authenticator
		rel  policy.KeyRelation
	}{{"owner", cu1, policy.KeyOwner}, {"shared", cu2, policy.KeyShared}, {"other", victim, policy.KeyOther}, {"admin", admin, ""}}
	sig := map[uint64][]byte{}
	actions := []struct {
		action policy.KeyAction
		run    func(a Authenticator, k state.Key) error
	}{
		{policy.KeySee, func(a Authenticator, k state.Key) error {
			ks, _, err := c.ListKeys(a, refFilter(k.Ref))
			if err == nil && len(ks) != 1 {
				return &SelectionError{Matched: len(ks)}
			}
			return err
		}},
		{policy.KeyUse, func(a Authenticator, k state.Key) error {
			if k.Class == state.ClassPublic {
				return c.Verify(a, refFilter(k.Ref), SignSpec{Mech: "ecdsa", Hash: crypto.SHA256, Data: []byte("d")}, sig[k.Ref])
			}
			_, err := c.HMAC(a, refFilter(k.Ref), crypto.SHA256, []byte("d"))
			return err
		}},
		{policy.KeyShare, func(a Authenticator, k state.Key) error {
			_, err := c.ShareKey(Targeting{}, a, refFilter(k.Ref), "cu3", nil)
			return err
		}},
		{policy.KeyUnshare, func(a Authenticator, k state.Key) error {
			_, err := c.UnshareKey(Targeting{}, a, refFilter(k.Ref), "cu2", nil)
			return err
		}},
		{policy.KeyDelete, func(a Authenticator, k state.Key) error {
			_, err := c.DeleteKey(Targeting{}, a, refFilter(k.Ref), nil)
			return err
		}},
		{policy.KeyWrap, func(a Authenticator, k state.Key) error {
			if k.Class == state.ClassPublic {
				return nil // a public key has nothing to wrap: generate-file exports it
			}
			wk, _, err := c.GenerateKey(Targeting{}, cu1, KeySpec{Type: "aes", LengthBytes: 16, Attrs: []string{"wrap=true"}, Ownership: Ownership{ShareWith: []string{"cu2", "victim"}}})
			if err != nil {
				return err
			}
			_, err = c.Wrap(a, WrapSpec{Mech: "aes-gcm", TagBits: 128, Payload: refFilter(k.Ref), Wrapping: refFilter(wk[0].Key.Ref)}, nil)
			return err
		}},
		{policy.KeySetAttribute, func(a Authenticator, k state.Key) error {
			_, err := c.SetKeyAttribute(Targeting{}, a, refFilter(k.Ref), "label", "renamed", nil)
			return err
		}},
	}
	for _, act := range actions {
		for _, public := range []bool{false, true} {
			for _, who := range actors {
				name := string(act.action) + "/" + who.name
				if public {
					name += "/public"
				}
				t.Run(name, func(t *testing.T) {
					var k state.Key
					if public {
						ks, _, err := c.GenerateKey(Targeting{}, cu1, KeySpec{Type: "ec", Curve: "prime256v1", Attrs: []string{"verify=true"}, PrivateAttrs: []string{"sign=true"}, Ownership: Ownership{ShareWith: []string{"cu2"}}})
						if err != nil {
							t.Fatal(err)
						}
						k = ks[0].Key
						_, s, err := c.Sign(cu1, refFilter(ks[1].Key.Ref), SignSpec{Mech: "ecdsa", Hash: crypto.SHA256, Data: []byte("d")}, nil)
						if err != nil {
							t.Fatal(err)
						}
						sig[k.Ref] = s
					} else {
						k = genAES(t, c, cu1, "cell", "cu2")
					}
					err := act.run(who.auth, k)
					want := who.rel != "" && policy.CheckKey(act.action, who.rel, public, "") == nil
					if act.action == policy.KeyWrap && public {
						want = err == nil
					}
					if act.action == policy.KeySee && who.rel == "" {
						want = true // an admin lists every token key (to set trusted)
					}
					var denied *policy.Denied
					var keyDenied *policy.KeyDenied
					var sel *SelectionError
					switch {
					case want && err != nil:
						t.Fatalf("allowed by the key table, but: %v", err)
					case !want && err == nil:
						t.Fatal("refused by the key table, but done")
					case !want && who.rel == "" && !errors.As(err, &denied):
						t.Fatalf("an admin refused, but not by the gate: %v", err)
					case !want && who.rel != "" && !errors.As(err, &keyDenied) && !errors.As(err, &sel):
						t.Fatalf("refused, but not by the key table: %v", err)
					}
				})
			}
		}
	}
}

// TestAdminSetsTrustedOnly: an admin may set trusted and nothing else;
// the owner may not set trusted.
func TestAdminSetsTrustedOnly(t *testing.T) {
	c, cu1, _, _, admin := keyCluster(t)
	k := genAES(t, c, cu1, "t")
	if _, err := c.SetKeyAttribute(Targeting{}, admin, refFilter(k.Ref), "trusted", "true", nil); err != nil {
		t.Fatal(err)
	}
	var denied *policy.Denied
	if _, err := c.SetKeyAttribute(Targeting{}, cu1, refFilter(k.Ref), "trusted", "false", nil); !errors.As(err, &denied) {
		t.Fatal(err)
	}
	if _, err := c.SetKeyAttribute(Targeting{}, admin, refFilter(k.Ref), "label", "x", nil); !errors.As(err, &denied) {
		t.Fatal(err)
	}
	ks, _, _ := c.ListKeys(cu1, refFilter(k.Ref))
	if !ks[0].Key.Has("trusted") {
		t.Fatal("trusted not set")
	}
}

// TestOwnerCannotBeDeleted: a user that owns keys cannot be deleted; once
// its keys are gone it can, and a deleted shared user leaves the share list.
func TestOwnerCannotBeDeleted(t *testing.T) {
	c, cu1, _, _, _ := keyCluster(t)
	k := genAES(t, c, cu1, "o", "cu2")
	editSessions(t, c) // a logged-in user cannot be deleted either
	var owns *OwnsKeysError
	if _, err := c.DeleteUser(Targeting{}, Fixed{User: "admin"}, "cu1", policy.CryptoUser, nil); !errors.As(err, &owns) {
		t.Fatal(err)
	}
	if _, err := c.DeleteUser(Targeting{}, Fixed{User: "admin"}, "cu2", policy.CryptoUser, nil); err != nil {
		t.Fatal(err)
	}
	ks, _, _ := c.ListKeys(Fixed{User: "cu1"}, refFilter(k.Ref))
	if len(ks) != 1 || len(ks[0].Key.Shared) != 0 {
		t.Fatalf("%+v", ks)
	}
}

// editSessions ends every session behind the engine's back.
func editSessions(t *testing.T, c *Client) {
	t.Helper()
	for _, info := range c.Cluster.HSMs {
		h, err := c.Store.Begin(info.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		ss, _ := h.Sessions()
		for _, s := range ss {
			_ = h.DeleteSession(s.ID)
		}
		if err := h.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQuorumBounds(t *testing.T) {
	for _, o := range []Ownership{{ManageQuorum: 2}, {ManageQuorum: 2, UseQuorum: 2}, {ManageQuorum: 9, UseQuorum: 9, ShareWith: make([]string, 9)}, {ManageQuorum: 1, UseQuorum: 1}} {
		if o.check() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := (Ownership{ManageQuorum: 2, UseQuorum: 2, ShareWith: []string{"a"}}).check(); err != nil {
		t.Error(err)
	}
}

// TestCheckKeyMaterial shows that CheckKeyMaterial, which the crash test
// runs on every key record, accepts whole keys and refuses each way a
// key can be half-written or mixed up.
func TestCheckKeyMaterial(t *testing.T) {
	c, cu1, _, _, _ := keyCluster(t)
	aes := genAES(t, c, cu1, "k")
	ks, _, err := c.GenerateKey(Targeting{}, cu1, KeySpec{Type: "ec", Label: "p", PrivateLabel: "s", Curve: "prime256v1", PrivateAttrs: []string{"sign=true"}})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv := ks[0].Key, ks[1].Key
	other, _, err := c.GenerateKey(Targeting{}, cu1, KeySpec{Type: "ec", Label: "p2", PrivateLabel: "s2", Curve: "prime256v1"})
	if err != nil {
		t.Fatal(err)
	}
	edit := func(k state.Key, f func(*state.Key)) state.Key {
		k.Masked, k.Public, k.Check = bytes.Clone(k.Masked), bytes.Clone(k.Public), bytes.Clone(k.Check)
		f(&k)
		return k
	}
	cases := []struct {
		name string
		k    state.Key
		want string // "" accepted
	}{
		{"aes", aes, ""},
		{"ec public", pub, ""},
		{"ec private", priv, ""},
		{"masked byte flipped", edit(aes, func(k *state.Key) { k.Masked[len(k.Masked)-1] ^= 1 }), "does not open"},
		{"masked truncated", edit(aes, func(k *state.Key) { k.Masked = k.Masked[:20] }), "too short"},
		{"check value", edit(aes, func(k *state.Key) { k.Check[0] ^= 1 }), "check value"},
		{"length", edit(aes, func(k *state.Key) { k.Length = 16 }), "its record says 16"},
		{"masked under another reference", edit(aes, func(k *state.Key) { k.Ref++ }), "does not open"},
		{"public key of another pair", edit(priv, func(k *state.Key) { k.Public = other[0].Key.Public }), "not the pair"},
		{"public key check value", edit(pub, func(k *state.Key) { k.Check[2] ^= 1 }), "check value"},
		{"public key DER", edit(pub, func(k *state.Key) { k.Public = k.Public[:10] }), "public key"},
	}
	for _, tc := range cases {
		err := CheckKeyMaterial(c.Cluster, &tc.k)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: want an error saying %q, got %v", tc.name, tc.want, err)
		}
	}
}

// A filter naming a label selects through the label index exactly what a
// walk of every key would: the other terms and visibility still apply,
// and a relabel or delete moves the key out of its old label's selection.
func TestSelectByLabel(t *testing.T) {
	c, cu1, cu2, _, admin := keyCluster(t)
	mine := genAES(t, c, cu1, "same")
	sharedK := genAES(t, c, cu1, "same", "cu2")
	theirs := genAES(t, c, cu2, "same")
	genAES(t, c, cu1, "other")
	pub, priv := genRSA(t, c, cu1)
	refs := func(ks []KeyInfo) []uint64 {
		out := []uint64{}
		for _, k := range ks {
			out = append(out, k.Key.Ref)
		}
		return out
	}
	check := func(what string, auth Authenticator, terms []string, want []uint64) {
		t.Helper()
		f, err := ParseKeyFilter(terms)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := c.ListKeys(auth, f)
		if err != nil {
			t.Fatal(err)
		}
		all, _, err := c.ListKeys(auth, KeyFilter{})
		if err != nil {
			t.Fatal(err)
		}
		scanned := []uint64{}
		for _, k := range all {
			if f.Match(&k.Key) {
				scanned = append(scanned, k.Key.Ref)
			}
		}
		if !slices.Equal(refs(got), want) || !slices.Equal(scanned, want) {
			t.Errorf("%s %q: index %x, scan %x, want %x", what, terms, refs(got), scanned, want)
		}
	}
	check("owner", cu1, []string{"attr.label=same"}, []uint64{mine.Ref, sharedK.Ref})
	check("shared user", cu2, []string{"attr.label=same"}, []uint64{sharedK.Ref, theirs.Ref})
	check("admin", admin, []string{"attr.label=same"}, []uint64{mine.Ref, sharedK.Ref, theirs.Ref})
	check("other terms", cu1, []string{"attr.label=same", "key-reference=" + RefString(sharedK.Ref)}, []uint64{sharedK.Ref})
	check("other terms", cu1, []string{"attr.label=priv", "attr.class=private-key"}, []uint64{priv.Ref})
	check("other terms", cu1, []string{"attr.label=pub", "attr.class=private-key"}, []uint64{})
	check("two labels", cu1, []string{"attr.label=same", "attr.label=other"}, []uint64{})
	check("public key of another's", cu2, []string{"attr.label=pub"}, []uint64{pub.Ref})
	check("no such label", cu1, []string{"attr.label=sam"}, []uint64{})
	if _, err := c.SetKeyAttribute(Targeting{}, cu1, refFilter(mine.Ref), "label", "moved", nil); err != nil {
		t.Fatal(err)
	}
	check("relabelled", cu1, []string{"attr.label=same"}, []uint64{sharedK.Ref})
	check("relabelled", cu1, []string{"attr.label=moved"}, []uint64{mine.Ref})
	if _, err := c.DeleteKey(Targeting{}, cu1, refFilter(sharedK.Ref), nil); err != nil {
		t.Fatal(err)
	}
	check("deleted", cu2, []string{"attr.label=same"}, []uint64{theirs.Ref})
}
