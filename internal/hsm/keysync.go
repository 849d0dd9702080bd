package hsm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
	"github.com/hsmkit/hsmkit/internal/syncdiff"
)

// Key drift (docs/design.md, "Keys"): hsm-sync compares the token keys of
// every reachable HSM as it compares users, a first pass keeping one
// digest per key and HSM, a second reading in full only the keys that
// differ.

// keyDigest names a key record as every HSM must hold it.
func keyDigest(shared []byte) string {
	sum := sha256.Sum256(shared)
	return hex.EncodeToString(sum[:8])
}

// syncKey maps one stored key to the drift model.
func syncKey(k *state.Key, digest string) syncdiff.Key {
	m := sha256.New()
	for _, b := range [][]byte{k.Masked, k.Public, k.Check, binary.BigEndian.AppendUint64(nil, k.Pair)} {
		m.Write(binary.AppendUvarint(nil, uint64(len(b))))
		m.Write(b)
	}
	sk := syncdiff.Key{Ref: k.Ref, Class: k.Class, Type: k.Type, Label: k.Label, Owner: k.Owner, Shared: k.Shared,
		ManageQuorum: k.ManageQuorum, UseQuorum: k.UseQuorum, Material: hex.EncodeToString(m.Sum(nil)[:8]),
		Digest: digest, Changed: k.Changed, Seq: k.Seq, Op: k.Op}
	for _, a := range state.BoolAttrs {
		if k.Has(a) {
			sk.Attrs = append(sk.Attrs, a)
		}
	}
	return sk
}

// keyHasher is an HSM's key hash in the spirit of CMU findAllKeys: one
// SHA-256 over every token key's reference, owner and shared users, in
// reference order; equal hashes, equal key ownership and sharing.
type keyHasher struct {
	h hash.Hash
	n int
}

func (kh *keyHasher) add(k *state.Key) {
	if kh.h == nil {
		kh.h = sha256.New()
	}
	kh.n++
	b := append(binary.BigEndian.AppendUint64(nil, k.Ref), k.Owner...)
	b = append(b, 0)
	for _, u := range k.Shared {
		b = append(append(b, u...), 0)
	}
	_, _ = kh.h.Write(append(b, '\n'))
}

func (kh *keyHasher) result(id string) syncdiff.KeyHash {
	out := syncdiff.KeyHash{HSM: id, Keys: kh.n}
	if kh.h != nil {
		out.Hash = hex.EncodeToString(kh.h.Sum(nil))
	}
	return out
}

// snapshotKeys adds the reachable HSMs' token keys that differ to s.
func (c *Client) snapshotKeys(tx *Tx, s *syncdiff.Snapshot) error {
	s.KeysKnown = true
	n := len(s.HSMs)
	digests := map[uint64][]string{} // ref → per HSM ("" absent)
	var refs []uint64
	for hi := range s.HSMs {
		v := &s.HSMs[hi]
		if !v.Reachable {
			continue
		}
		var kh keyHasher
		err := tx.View(v.ID, func(h *state.HSMTx) error {
			return h.ForEachKeyRecord(func(k *state.Key, shared []byte) error {
				if k.Session != "" {
					return nil // a session key lives on one HSM
				}
				kh.add(k)
				d := digests[k.Ref]
				if d == nil {
					d = make([]string, n)
					digests[k.Ref] = d
					refs = append(refs, k.Ref)
				}
				d[hi] = keyDigest(shared)
				return nil
			})
		})
		if err != nil {
			return err
		}
		v.KeyHash = kh.result(v.ID)
		v.Keys, v.KeysDeleted = []syncdiff.Key{}, []syncdiff.KeyTombstone{}
	}
	var drift []uint64
	for _, ref := range refs {
		first := ""
		for hi, d := range digests[ref] {
			if !s.HSMs[hi].Reachable {
				continue
			}
			if d == "" || first != "" && d != first {
				drift = append(drift, ref)
				break
			}
			first = d
		}
	}
	for hi := range s.HSMs {
		v := &s.HSMs[hi]
		if !v.Reachable || len(drift) == 0 {
			continue
		}
		err := tx.View(v.ID, func(h *state.HSMTx) error {
			for _, ref := range drift {
				if d := digests[ref][hi]; d != "" {
					k, err := h.Key(ref)
					if err != nil {
						return err
					}
					v.Keys = append(v.Keys, syncKey(k, d))
					continue
				}
				t, err := h.KeyTombstone(ref)
				if err != nil {
					return err
				}
				if t != nil {
					v.KeysDeleted = append(v.KeysDeleted, syncdiff.KeyTombstone{Ref: t.Ref, Owner: t.Owner, Changed: t.Changed, Op: t.Op})
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// repairKeys carries out the plan's key actions, after the user actions:
// each copy is the source's record as stored (its masked object, never
// the plaintext), inserted by the appliance user; each delete keeps the
// owner's deletion record, so no later repair brings the key back.
func repairKeys(tx *Tx, p syncdiff.Plan, open func(string) (*state.HSMTx, error)) error {
	for _, a := range p.KeyActions {
		dst, err := open(a.Dst.ID)
		if err != nil {
			return err
		}
		switch a.Kind {
		case syncdiff.ActionCopy:
			src, err := tx.Read(a.Src.ID)
			if err != nil {
				return err
			}
			k, err := src.Key(a.Ref)
			if err != nil {
				return err
			}
			if k == nil || k.Session != "" {
				return fmt.Errorf("%s no longer holds key %s", a.Src.ID, RefString(a.Ref))
			}
			// Its owner and shared users must be crypto users there (the
			// user repairs ran first): a key never goes to an HSM where
			// one of their names is someone else's, or no one's.
			for _, name := range append([]string{k.Owner}, k.Shared...) {
				if u, err := dst.User(name); err != nil {
					return err
				} else if u == nil || policy.Role(u.Role) != policy.CryptoUser {
					return fmt.Errorf("key %s names %s, who is not a crypto user on %s; nothing was changed: repair the users first (or skip them, and the key stays out of sync)", RefString(a.Ref), name, a.Dst.ID)
				}
			}
			k.Seq = dst.Meta.Seq + 1
			if err := dst.PutKey(k); err != nil {
				return err
			}
			dst.Meta.NextKey = max(dst.Meta.NextKey, k.Ref, k.Pair)
		case syncdiff.ActionDelete:
			var tomb *state.KeyTombstone
			if t := a.Tombstone; t != nil {
				tomb = &state.KeyTombstone{Ref: t.Ref, Owner: t.Owner, Changed: t.Changed, Op: t.Op}
			}
			if err := dst.DeleteKey(a.Ref, tomb); err != nil {
				return err
			}
		}
	}
	return nil
}
