package hsm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// Keys: a crypto user's keys in the simulated HSMs (docs/design.md,
// "Keys"). Creating, sharing, deleting and changing a key are target ops
// that write every HSM the client reaches, each HSM judging the caller
// and the key from its own records; using a key (sign, encrypt, wrap…)
// acts on one HSM that holds it, as a real client's request is routed to
// one HSM.

// KeySpec is a key or key pair to generate.
type KeySpec struct {
	Type           string // aes, generic-secret, rsa, ec
	Label          string // the key's, or a pair's public key's
	PrivateLabel   string
	LengthBytes    int // aes: 16, 24, 32; generic-secret: 1 to 800
	ModulusBits    int // rsa: at least 2048
	PublicExponent int // rsa: odd, at least 65537 (0: 65537)
	Curve          string
	Attrs          []string // NAME=VALUE: the key's, or the public key's
	PrivateAttrs   []string
	Ownership
}

// Ownership is what every key creation takes besides the key: whom it is
// shared with, its key quorum values, and whether it is a session key.
// For a key pair they apply to the private key.
type Ownership struct {
	ShareWith    []string
	ManageQuorum int
	UseQuorum    int
	Session      bool
}

// UserCoverage is an owner or shared user of a key, and whether every HSM
// that holds the key says so.
type UserCoverage struct {
	Username string
	Coverage string // "full" or "inconsistent"
}

// KeyInfo is one key as the cluster holds it.
type KeyInfo struct {
	Key      state.Key
	Owners   []UserCoverage
	Shared   []UserCoverage
	Coverage string   // "full" when every HSM of the cluster holds it
	HSMs     []string // the HSMs that hold it
}

// Curves are the EC curves CloudHSM documents that Go's standard library
// implements (secp256k1 and ed25519 are not among them).
var Curves = map[string]elliptic.Curve{
	"prime256v1": elliptic.P256(), "secp256r1": elliptic.P256(),
	"secp224r1": elliptic.P224(), "secp384r1": elliptic.P384(), "secp521r1": elliptic.P521(),
}

// MaxKeyQuorum is the largest key quorum value.
const MaxKeyQuorum = 8

// newKey is a key about to be created: its record and, for a secret or
// private key, the material to mask.
type newKey struct {
	rec    state.Key
	secret []byte
}

// check refuses quorum values CloudHSM refuses: both given and
// both above 1, at most 8, and no more than the owner and the users the
// key is shared with.
func (o Ownership) check() error {
	if o.ManageQuorum == 0 && o.UseQuorum == 0 {
		return nil
	}
	if o.ManageQuorum < 2 || o.UseQuorum < 2 {
		//lint:ignore ST1005 cloudhsm-cli's exact message
		return errors.New("The manage key and use key quorum values must be set to a value greater than 1")
	}
	if o.ManageQuorum > MaxKeyQuorum || o.UseQuorum > MaxKeyQuorum {
		return fmt.Errorf("key quorum values are at most %d", MaxKeyQuorum)
	}
	if n := 1 + len(o.ShareWith); o.ManageQuorum > n || o.UseQuorum > n {
		return fmt.Errorf("key quorum values must be at most the number of users the key is associated with (the owner and %d shared user(s): %d)", len(o.ShareWith), n)
	}
	return nil
}

// GenerateKey makes a symmetric key (aes, generic-secret) or a key pair
// (rsa, ec) with Go's crypto, and writes it, masked, on every target HSM
// (a session key: on the first only). It returns the key, or the public
// then the private key of a pair.
func (c *Client) GenerateKey(t Targeting, auth Authenticator, spec KeySpec) ([]KeyInfo, *Result, error) {
	if err := spec.Ownership.check(); err != nil {
		return nil, nil, err
	}
	if err := checkLabel(spec.Label); err != nil {
		return nil, nil, err
	}
	if err := checkLabel(spec.PrivateLabel); err != nil {
		return nil, nil, err
	}
	var keys []*newKey
	// The key material is made before the lock is taken: an RSA key
	// takes tens of milliseconds and nobody needs to wait for it.
	prepare := func() error {
		switch spec.Type {
		case state.TypeAES, state.TypeGenericSecret:
			secret := make([]byte, spec.LengthBytes)
			_, _ = rand.Read(secret)
			k := &newKey{rec: state.Key{Class: state.ClassSecret, Type: spec.Type, Label: spec.Label, Length: spec.LengthBytes}, secret: secret}
			defaultFlags(&k.rec)
			if err := applyAttrs(&k.rec, spec.Attrs); err != nil {
				return err
			}
			k.rec.Check = checkValue(&k.rec, secret)
			keys = []*newKey{k}
			return nil
		case state.TypeRSA:
			if spec.PublicExponent != 0 && spec.PublicExponent != 65537 {
				// Go's crypto makes RSA keys with e = 65537 only.
				return fmt.Errorf("--public-exponent %d: hsmkit makes RSA keys with 65537 only", spec.PublicExponent)
			}
			priv, err := rsa.GenerateKey(rand.Reader, spec.ModulusBits)
			if err != nil {
				return err
			}
			return c.pair(&keys, spec, priv, &priv.PublicKey)
		case state.TypeEC:
			curve := Curves[spec.Curve]
			priv, err := ecdsa.GenerateKey(curve, rand.Reader)
			if err != nil {
				return err
			}
			return c.pair(&keys, spec, priv, &priv.PublicKey)
		}
		return fmt.Errorf("key type %q: want aes, generic-secret, rsa or ec", spec.Type)
	}
	switch spec.Type {
	case state.TypeAES:
		if !slices.Contains([]int{16, 24, 32}, spec.LengthBytes) {
			return nil, nil, fmt.Errorf("--key-length-bytes %d: an AES key is 16, 24 or 32 bytes", spec.LengthBytes)
		}
	case state.TypeGenericSecret:
		if spec.LengthBytes < 1 || spec.LengthBytes > 800 {
			return nil, nil, fmt.Errorf("--key-length-bytes %d: a generic secret is 1 to 800 bytes", spec.LengthBytes)
		}
	case state.TypeRSA:
		if spec.ModulusBits < 2048 || spec.ModulusBits > 4096 || spec.ModulusBits%8 != 0 {
			return nil, nil, fmt.Errorf("--modulus-size-bits %d: want 2048 to 4096, a multiple of 8", spec.ModulusBits)
		}
	case state.TypeEC:
		if Curves[spec.Curve] == nil {
			return nil, nil, fmt.Errorf("--curve %q: want one of prime256v1, secp256r1, secp224r1, secp384r1, secp521r1", spec.Curve)
		}
	}
	return c.createKeys(t, auth, "generate-key", spec.Ownership, &keys, prepare)
}

// pair makes the records of a generated key pair.
func (c *Client) pair(keys *[]*newKey, spec KeySpec, priv any, pub any) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	secret, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pk := &newKey{rec: state.Key{Class: state.ClassPublic, Type: spec.Type, Label: spec.Label, Curve: spec.Curve, Public: der}}
	sk := &newKey{rec: state.Key{Class: state.ClassPrivate, Type: spec.Type, Label: spec.PrivateLabel, Curve: spec.Curve, Public: der}, secret: secret}
	for _, k := range []struct {
		k     *newKey
		attrs []string
	}{{pk, spec.Attrs}, {sk, spec.PrivateAttrs}} {
		defaultFlags(&k.k.rec)
		if err := applyAttrs(&k.k.rec, k.attrs); err != nil {
			return err
		}
		k.k.rec.Check = checkValue(&k.k.rec, nil)
	}
	*keys = []*newKey{pk, sk}
	return nil
}

// createKeys writes new keys on every target HSM as the caller's: the
// one path of generate, import and unwrap. References are chosen on the
// first HSM, above every target's last, and the material is masked once,
// so every HSM holds the same bytes (hsm-sync compares them).
func (c *Client) createKeys(t Targeting, auth Authenticator, name string, own Ownership, keys *[]*newKey, prepare func() error) ([]KeyInfo, *Result, error) {
	own.ShareWith = slices.Clone(own.ShareWith)
	slices.Sort(own.ShareWith)
	if len(slices.Compact(slices.Clone(own.ShareWith))) != len(own.ShareWith) {
		return nil, nil, errors.New("--share-crypto-users names a user twice")
	}
	chosen := false
	var written []string
	res, err := c.run(op{name: name, perm: policy.KeyManagement, auth: auth, target: t, write: true, prepare: prepare,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			if own.Session && p.Session == "" {
				return errors.New("a session key lives as long as a login session: log in (hsm-user login) rather than use HSM_PIN")
			}
			if own.Session && h.ID() != tx.targets[0] {
				return nil // a session key lives on one HSM
			}
			if !chosen {
				if len(tx.Cluster.MaskingKey) != 32 {
					return trouble("", "cluster %s has no masking key (made by an hsmkit from before keys): it cannot hold keys", tx.Cluster.ID)
				}
				var last uint64
				for _, id := range tx.targets {
					last = max(last, tx.open[id].Meta.NextKey)
				}
				for i, k := range *keys {
					k.rec.Ref = last + 1 + uint64(i)
				}
				for i, k := range *keys {
					k.rec.Owner = p.User
					if len(*keys) == 2 {
						k.rec.Pair = (*keys)[1-i].rec.Ref
					}
					if k.rec.Class != state.ClassPublic {
						k.rec.Shared = own.ShareWith
						k.rec.ManageQuorum, k.rec.UseQuorum = own.ManageQuorum, own.UseQuorum
					}
					if k.secret != nil {
						m, err := mask(tx.Cluster, &k.rec, k.secret, tx.Rand)
						if err != nil {
							return err
						}
						k.rec.Masked = m
					}
					if own.Session {
						k.rec.Session = p.Session
						k.rec.Set("token", false)
					}
				}
				chosen = true
			}
			if slices.Contains(own.ShareWith, p.User) {
				return fmt.Errorf("cannot share a key with its owner %s", p.User)
			}
			for _, u := range own.ShareWith {
				rec, err := h.User(u)
				if err != nil {
					return err
				}
				if rec == nil || policy.Role(rec.Role) != policy.CryptoUser {
					return fmt.Errorf("cannot share with %s: no crypto user of that name on %s", u, h.ID())
				}
			}
			for _, k := range *keys {
				if old, err := h.Key(k.rec.Ref); err != nil {
					return err
				} else if old != nil {
					return fmt.Errorf("key reference %s is taken on %s (hsm-sync diff shows the drift)", RefString(k.rec.Ref), h.ID())
				}
				rec := k.rec
				rec.Changed, rec.Seq, rec.Op = tx.Now, h.Meta.Seq+1, tx.OpID
				if err := h.PutKey(&rec); err != nil {
					return err
				}
				h.Meta.NextKey = max(h.Meta.NextKey, rec.Ref)
			}
			written = append(written, h.ID())
			return nil
		}})
	if err != nil && !chosen {
		return nil, res, err
	}
	var out []KeyInfo
	total := len(c.Cluster.HSMs)
	for _, k := range *keys {
		info := KeyInfo{Key: k.rec, HSMs: written, Coverage: "full", Owners: []UserCoverage{{k.rec.Owner, "full"}}, Shared: []UserCoverage{}}
		if len(written) < total {
			info.Coverage = "inconsistent"
		}
		for _, u := range k.rec.Shared {
			info.Shared = append(info.Shared, UserCoverage{u, "full"})
		}
		out = append(out, info)
	}
	return out, res, err
}

// mask seals key material under the cluster's masking key, bound to the
// key's reference, class and type.
func mask(cl *state.Cluster, k *state.Key, secret []byte, r *Rand) ([]byte, error) {
	g, err := maskCipher(cl)
	if err != nil {
		return nil, err
	}
	nonce := r.Secret(state.MaskNonceSize)
	return state.MaskedBlob{Nonce: nonce, Sealed: g.Seal(nil, nonce, secret, maskAAD(k))}.Encode(), nil
}

// unmask opens a key's masked material.
func unmask(cl *state.Cluster, k *state.Key) ([]byte, error) {
	g, err := maskCipher(cl)
	if err != nil {
		return nil, err
	}
	m, err := state.DecodeMasked(k.Masked)
	if err != nil {
		return nil, &TroubleError{Err: fmt.Errorf("key %s: %v", RefString(k.Ref), err)}
	}
	plain, err := g.Open(nil, m.Nonce, m.Sealed, maskAAD(k))
	if err != nil {
		return nil, &TroubleError{Err: fmt.Errorf("key %s: its masked object does not open under the cluster's masking key", RefString(k.Ref))}
	}
	return plain, nil
}

func maskCipher(cl *state.Cluster) (cipher.AEAD, error) {
	if len(cl.MaskingKey) != 32 {
		return nil, trouble("", "cluster %s has no masking key: it cannot hold keys", cl.ID)
	}
	b, err := aes.NewCipher(cl.MaskingKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func maskAAD(k *state.Key) []byte {
	aad := binary.BigEndian.AppendUint64(nil, k.Ref)
	return append(append(append(aad, k.Class...), 0), k.Type...)
}

// CheckKeyMaterial says whether a stored key is whole: its masked
// material opens under the cluster's masking key and is the key its
// record describes (an AES key of its length whose check value matches,
// a generic secret of its length, a private key whose public half is the
// record's), and a public key's DER parses and matches its check value.
// The crash tests call it on every record: a key half-written would fail.
func CheckKeyMaterial(cl *state.Cluster, k *state.Key) error {
	if k.Class == state.ClassPublic {
		if _, err := x509.ParsePKIXPublicKey(k.Public); err != nil {
			return fmt.Errorf("key %s: public key: %v", RefString(k.Ref), err)
		}
		if !bytes.Equal(checkValue(k, nil), k.Check) {
			return fmt.Errorf("key %s: check value %x does not match its public key", RefString(k.Ref), k.Check)
		}
		return nil
	}
	if k.Class == state.ClassPrivate {
		priv, err := privateKey(cl, k)
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKIXPublicKey(priv.Public())
		if err != nil || !bytes.Equal(der, k.Public) {
			return fmt.Errorf("key %s: its private key is not the pair of its public key", RefString(k.Ref))
		}
		if !bytes.Equal(checkValue(k, nil), k.Check) {
			return fmt.Errorf("key %s: check value %x does not match its public key", RefString(k.Ref), k.Check)
		}
		return nil
	}
	secret, err := unmask(cl, k)
	if err != nil {
		return err
	}
	if len(secret) != k.Length {
		return fmt.Errorf("key %s: %d bytes of material, its record says %d", RefString(k.Ref), len(secret), k.Length)
	}
	if !bytes.Equal(checkValue(k, secret), k.Check) {
		return fmt.Errorf("key %s: check value %x does not match its material", RefString(k.Ref), k.Check)
	}
	return nil
}

// relation is how p stands to k.
func relation(p Principal, k *state.Key) policy.KeyRelation {
	switch {
	case p.User == k.Owner:
		return policy.KeyOwner
	case slices.Contains(k.Shared, p.User):
		return policy.KeyShared
	}
	return policy.KeyOther
}

// visible says whether p sees k at all: a crypto user sees what the key
// table lets it see, an admin every token key (it may set trusted on
// any); a session key is its session's alone.
func visible(p Principal, k *state.Key) bool {
	if k.Session != "" && k.Session != p.Session {
		return false
	}
	if p.Role == policy.Admin {
		return k.Session == ""
	}
	// No reference in the refusal nobody reads: a list formats none per key.
	return policy.CheckKey(policy.KeySee, relation(p, k), k.Class == state.ClassPublic, "") == nil
}

// SelectionError is a filter that does not select exactly one key.
type SelectionError struct{ Matched int }

func (e *SelectionError) Error() string {
	if e.Matched == 0 {
		return "Key selection criteria matched no keys. Check the filter, and that the key is yours, shared with you, or public."
	}
	return fmt.Sprintf("Key selection criteria matched %d keys. Refine selection criteria to select a single key.", e.Matched)
}

// findKeys lists the keys of h that p sees and f selects.
func findKeys(h *state.HSMTx, p Principal, f KeyFilter) ([]*state.Key, error) {
	var out []*state.Key
	if f.Ref != nil {
		k, err := h.Key(*f.Ref)
		if err != nil || k == nil {
			return nil, err
		}
		if visible(p, k) && f.Match(k) {
			out = append(out, k)
		}
		return out, nil
	}
	keep := func(k *state.Key) error {
		if visible(p, k) && f.Match(k) {
			k.Own()
			out = append(out, k)
		}
		return nil
	}
	// A label term narrows the candidates to the keys the label index
	// lists; the other terms and visibility still apply to each.
	if i := slices.IndexFunc(f.Attrs, func(a KeyAttr) bool { return a.Name == "label" }); i >= 0 {
		indexed, err := h.KeysWithLabel(f.Attrs[i].Value.(string), keep)
		if indexed || err != nil {
			return out, err
		}
	}
	return out, h.ForEachKeyView(keep)
}

// selectKey is the one key f selects for p on h.
func selectKey(h *state.HSMTx, p Principal, f KeyFilter) (*state.Key, error) {
	ks, err := findKeys(h, p, f)
	if err != nil {
		return nil, err
	}
	if len(ks) != 1 {
		return nil, &SelectionError{Matched: len(ks)}
	}
	return ks[0], nil
}

// keyAllowed asks the key table whether p may do action to k.
func keyAllowed(p Principal, k *state.Key, action policy.KeyAction) error {
	return policy.CheckKey(action, relation(p, k), k.Class == state.ClassPublic, RefString(k.Ref))
}

// manageKey is the one path of share, unshare, delete and set-attribute:
// on every target HSM, the key the filter selects there (the same
// reference on all), the key table, then fn.
func (c *Client) manageKey(name string, t Targeting, auth Authenticator, f KeyFilter, permFor func(Principal) policy.Op, action policy.KeyAction, approval *Approval,
	fn func(tx *Tx, h *state.HSMTx, p Principal, k *state.Key) error) (*Result, error) {
	var ref *uint64
	return c.run(op{name: name, auth: auth, target: t, write: true, permFor: permFor, approval: approval,
		quorum: func(h *state.HSMTx, p Principal) (string, int, uint64) {
			if k, err := selectKey(h, p, f); err == nil && p.Role == policy.CryptoUser {
				return ServiceKeyManagement, k.ManageQuorum, k.Ref
			}
			return ServiceKeyManagement, 0, 0
		},
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			k, err := selectKey(h, p, f)
			if err != nil {
				return err
			}
			if ref == nil {
				ref = &k.Ref
			} else if *ref != k.Ref {
				return fmt.Errorf("the filter selects key %s here but %s on another HSM (hsm-sync diff shows the drift)", RefString(k.Ref), RefString(*ref))
			}
			if p.Role == policy.CryptoUser {
				if err := keyAllowed(p, k, action); err != nil {
					return err
				}
			}
			return fn(tx, h, p, k)
		}})
}

func keyManagement(Principal) policy.Op { return policy.KeyManagement }

// touchKey records the change on the key's record and writes it.
func touchKey(tx *Tx, h *state.HSMTx, k *state.Key) error {
	k.Changed, k.Seq, k.Op = tx.Now, h.Meta.Seq+1, tx.OpID
	return h.PutKey(k)
}

// ShareKey shares the key f selects with a crypto user.
func (c *Client) ShareKey(t Targeting, auth Authenticator, f KeyFilter, user string, approval *Approval) (*Result, error) {
	return c.manageKey("share-key", t, auth, f, keyManagement, policy.KeyShare, approval, func(tx *Tx, h *state.HSMTx, p Principal, k *state.Key) error {
		u, err := h.User(user)
		if err != nil {
			return err
		}
		switch {
		case u == nil || policy.Role(u.Role) != policy.CryptoUser:
			return fmt.Errorf("cannot share key %s with %s: no crypto user of that name on %s", RefString(k.Ref), user, h.ID())
		case user == k.Owner:
			return fmt.Errorf("%s owns key %s", user, RefString(k.Ref))
		case slices.Contains(k.Shared, user):
			return fmt.Errorf("key %s is already shared with %s", RefString(k.Ref), user)
		}
		k.Shared = append(k.Shared, user)
		sort.Strings(k.Shared)
		return touchKey(tx, h, k)
	})
}

// UnshareKey stops sharing the key f selects with a user.
func (c *Client) UnshareKey(t Targeting, auth Authenticator, f KeyFilter, user string, approval *Approval) (*Result, error) {
	return c.manageKey("unshare-key", t, auth, f, keyManagement, policy.KeyUnshare, approval, func(tx *Tx, h *state.HSMTx, p Principal, k *state.Key) error {
		i := slices.Index(k.Shared, user)
		if i < 0 {
			return fmt.Errorf("key %s is not shared with %s", RefString(k.Ref), user)
		}
		k.Shared = slices.Delete(k.Shared, i, i+1)
		if n := 1 + len(k.Shared); k.ManageQuorum > n || k.UseQuorum > n {
			return fmt.Errorf("unsharing would leave key %s with %d user(s), fewer than its key quorum values (%d, %d): nobody could approve it again", RefString(k.Ref), n, k.ManageQuorum, k.UseQuorum)
		}
		return touchKey(tx, h, k)
	})
}

// DeleteKey deletes the key f selects, leaving a deletion record so that
// no repair brings it back.
func (c *Client) DeleteKey(t Targeting, auth Authenticator, f KeyFilter, approval *Approval) (*Result, error) {
	return c.manageKey("delete-key", t, auth, f, keyManagement, policy.KeyDelete, approval, func(tx *Tx, h *state.HSMTx, p Principal, k *state.Key) error {
		if !k.Has("destroyable") {
			return fmt.Errorf("key %s is not destroyable", RefString(k.Ref))
		}
		var tomb *state.KeyTombstone
		if k.Session == "" {
			tomb = &state.KeyTombstone{Ref: k.Ref, Owner: k.Owner, Changed: tx.Now, Op: tx.OpID}
		}
		return h.DeleteKey(k.Ref, tomb)
	})
}

// SetKeyAttribute changes one attribute of the key f selects: the owner
// any modifiable one, an admin only trusted.
func (c *Client) SetKeyAttribute(t Targeting, auth Authenticator, f KeyFilter, name, value string, approval *Approval) (*Result, error) {
	if name == "token" {
		//lint:ignore ST1005 the form of cloudhsm-cli's attribute messages
		return nil, errors.New("Attribute token cannot be set by hsmkit: a session key stays on its HSM until its session ends")
	}
	perm := func(Principal) policy.Op {
		if name == "trusted" {
			return policy.SetTrusted
		}
		return policy.KeyManagement
	}
	return c.manageKey("set-key-attribute", t, auth, f, perm, policy.KeySetAttribute, approval, func(tx *Tx, h *state.HSMTx, p Principal, k *state.Key) error {
		if err := setAttr(k, name, value, p.Role == policy.Admin); err != nil {
			return err
		}
		return touchKey(tx, h, k)
	})
}

// ListKeys merges the keys the caller sees on every reachable HSM, in
// reference order, with where each is.
func (c *Client) ListKeys(auth Authenticator, f KeyFilter) ([]KeyInfo, []string, error) {
	var out []KeyInfo
	var warnings []string
	_, err := c.run(op{name: "list-keys", scope: scopeCluster, perm: policy.ListKeys, auth: auth,
		whole: func(tx *Tx, p Principal) error {
			ids, w, err := c.reachable(tx.Cluster)
			warnings = w
			if err != nil {
				return err
			}
			byRef := map[uint64]*KeyInfo{}
			owners := map[uint64]map[string]int{}
			shared := map[uint64]map[string]int{}
			for _, id := range ids {
				err := tx.View(id, func(h *state.HSMTx) error {
					ks, err := findKeys(h, p, f)
					for _, k := range ks {
						ki := byRef[k.Ref]
						if ki == nil {
							ki = &KeyInfo{Key: *k}
							byRef[k.Ref] = ki
							owners[k.Ref], shared[k.Ref] = map[string]int{}, map[string]int{}
						}
						ki.HSMs = append(ki.HSMs, id)
						owners[k.Ref][k.Owner]++
						for _, u := range k.Shared {
							shared[k.Ref][u]++
						}
					}
					return err
				})
				if err != nil {
					return err
				}
			}
			refs := make([]uint64, 0, len(byRef))
			for r := range byRef {
				refs = append(refs, r)
			}
			slices.Sort(refs)
			for _, r := range refs {
				ki := byRef[r]
				ki.Coverage = "full"
				if len(ki.HSMs) != len(tx.Cluster.HSMs) {
					ki.Coverage = "inconsistent"
				}
				ki.Owners = coverageOf(owners[r], len(ki.HSMs))
				ki.Shared = coverageOf(shared[r], len(ki.HSMs))
				out = append(out, *ki)
			}
			return nil
		}})
	return out, warnings, err
}

func coverageOf(count map[string]int, holders int) []UserCoverage {
	out := []UserCoverage{}
	for u, n := range count {
		cov := "full"
		if n != holders {
			cov = "inconsistent"
		}
		out = append(out, UserCoverage{u, cov})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out
}

// releaseKeys readies h for deleting user, in one walk of its keys: it
// refuses a user that owns keys, and otherwise takes the user off the
// keys shared with it, so that a user created later under the name
// inherits nothing.
func releaseKeys(tx *Tx, h *state.HSMTx, user string) error {
	owned := 0
	var changed []*state.Key
	err := h.ForEachKeyView(func(k *state.Key) error {
		if k.Owner == user {
			owned++
		}
		if i := slices.Index(k.Shared, user); i >= 0 {
			k.Own()
			k.Shared = slices.Delete(k.Shared, i, i+1)
			changed = append(changed, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if owned > 0 {
		return &OwnsKeysError{User: user, Keys: owned}
	}
	for _, k := range changed {
		if err := touchKey(tx, h, k); err != nil {
			return err
		}
	}
	return nil
}

// endSessionKeys destroys the session keys of a session that ends.
func endSessionKeys(h *state.HSMTx, session string) error {
	var refs []uint64
	err := h.ForEachKeyView(func(k *state.Key) error {
		if k.Session == session {
			refs = append(refs, k.Ref)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range refs {
		if err := h.DeleteKey(r, nil); err != nil {
			return err
		}
	}
	return nil
}

// OwnsKeysError refuses to delete a user that owns keys.
type OwnsKeysError struct {
	User string
	Keys int
}

func (e *OwnsKeysError) Error() string {
	return fmt.Sprintf("user %s owns %d key(s); a user that owns keys cannot be deleted", e.User, e.Keys)
}

// Hint says how.
func (e *OwnsKeysError) Hint() string {
	return "the owner deletes its keys first (hsm-key delete), then the user can be deleted"
}
