package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Keys (docs/design.md, "Keys"). A key is one record of the keys bucket,
// its reference (8 bytes, big-endian) the bucket key. Secret and private
// key material is held only masked: sealed under the cluster's masking
// key (MaskedBlob), so that a key copied between the HSMs of a cluster is
// copied as it is stored, never in plaintext. Public keys are public and
// kept as DER.
//
// The bucket is made by the first key written, so an HSM from before keys
// reads as holding none; so is keydel, the deletion records a repair
// reads so that it never brings back a key its owner deleted.
//
// keylabel indexes the keys by label (labelKey → empty), kept in the
// transaction of every key write, so that a filter naming a label reads
// only the keys holding it. An HSM written before the index has keys and
// no keylabel bucket: reads then walk every key, and the first
// transaction that writes or deletes a key builds the whole index
// (docs/design.md, "Key label index"), so the bucket, when present, lists
// every key.
var (
	bKeys      = []byte("keys")
	bKeyDels   = []byte("keydel")
	bKeyLabels = []byte("keylabel")
)

// Key classes and types as cloudhsm-cli names them.
const (
	ClassSecret  = "secret-key"
	ClassPublic  = "public-key"
	ClassPrivate = "private-key"

	TypeAES           = "aes"
	TypeGenericSecret = "generic-secret"
	TypeRSA           = "rsa"
	TypeEC            = "ec"
)

// BoolAttrs are a key's boolean attributes, in the order cloudhsm-cli
// prints them; a key record stores them as a bit set in this order (so
// the order never changes: add at the end).
var BoolAttrs = []string{
	"encrypt", "decrypt", "token", "always-sensitive", "derive", "destroyable",
	"extractable", "local", "modifiable", "never-extractable", "private",
	"sensitive", "sign", "trusted", "unwrap", "verify", "wrap", "wrap-with-trusted",
}

// Key is one key as an HSM holds it.
type Key struct {
	Ref    uint64   `json:"ref"`
	Class  string   `json:"class"`
	Type   string   `json:"type"`
	Owner  string   `json:"owner"`
	Shared []string `json:"shared,omitempty"` // sorted
	// Key quorum values (0 off, else 2 to 8).
	ManageQuorum int    `json:"manage_quorum,omitempty"`
	UseQuorum    int    `json:"use_quorum,omitempty"`
	Label        string `json:"label"`
	ID           string `json:"id,omitempty"`
	Flags        uint32 `json:"flags"`  // BoolAttrs
	Length       int    `json:"length"` // key-length-bytes (symmetric keys)
	Curve        string `json:"curve,omitempty"`
	Check        []byte `json:"check,omitempty"`  // check value, 3 bytes
	Public       []byte `json:"public,omitempty"` // PKIX DER (key pairs)
	Masked       []byte `json:"masked,omitempty"` // secret or private material, masked
	Pair         uint64 `json:"pair,omitempty"`   // the other half of a key pair
	// Per HSM: a session key's session ("" for a token key), when and by
	// which operation the record was last written.
	Session string    `json:"session,omitempty"`
	Changed time.Time `json:"changed"`
	Seq     uint64    `json:"seq"`
	Op      string    `json:"op"`
}

// Has reports a boolean attribute.
func (k *Key) Has(attr string) bool {
	i := slices.Index(BoolAttrs, attr)
	return i >= 0 && k.Flags&(1<<i) != 0
}

// Set sets a boolean attribute; it reports false for an unknown name.
func (k *Key) Set(attr string, v bool) bool {
	i := slices.Index(BoolAttrs, attr)
	if i < 0 {
		return false
	}
	if v {
		k.Flags |= 1 << i
	} else {
		k.Flags &^= 1 << i
	}
	return true
}

// KeyTombstone records a key's deletion on this HSM.
type KeyTombstone struct {
	Ref     uint64    `json:"ref"`
	Owner   string    `json:"owner"`
	Changed time.Time `json:"changed"`
	Op      string    `json:"op"`
}

const keyCodecVersion = 1

// Bounds of a key record's fields: a share list is at most the users an
// HSM can hold; key material at most an RSA-8192 private key.
const (
	maxShared   = 1024
	maxKeyBytes = 8 << 10
	maxLabel    = 127 * 4 // 127 characters of UTF-8
)

// EncodeKey returns the stored form of k: a version byte, the part that
// must be equal on every HSM (length-prefixed), then the per-HSM tail.
func EncodeKey(k *Key) []byte {
	var sh []byte
	sh = appendStr(sh, k.Class)
	sh = appendStr(sh, k.Type)
	sh = appendStr(sh, k.Owner)
	sh = binary.AppendUvarint(sh, uint64(len(k.Shared)))
	for _, u := range k.Shared {
		sh = appendStr(sh, u)
	}
	sh = binary.AppendUvarint(sh, uint64(k.ManageQuorum))
	sh = binary.AppendUvarint(sh, uint64(k.UseQuorum))
	sh = appendStr(sh, k.Label)
	sh = appendStr(sh, k.ID)
	sh = binary.AppendUvarint(sh, uint64(k.Flags))
	sh = binary.AppendUvarint(sh, uint64(k.Length))
	sh = appendStr(sh, k.Curve)
	sh = appendStr(sh, string(k.Check))
	sh = appendStr(sh, string(k.Public))
	sh = appendStr(sh, string(k.Masked))
	sh = binary.AppendUvarint(sh, k.Pair)

	out := make([]byte, 0, len(sh)+32)
	out = append(out, keyCodecVersion)
	out = appendStr(out, string(sh))
	out = appendStr(out, k.Session)
	out = appendTime(out, k.Changed)
	out = binary.AppendUvarint(out, k.Seq)
	return appendStr(out, k.Op)
}

// KeySharedPart is the part of a stored key record that must be equal on
// every HSM, without decoding it.
func KeySharedPart(rec []byte) ([]byte, error) {
	r := reader{b: rec}
	if v := r.byte(); r.err == nil && v != keyCodecVersion {
		return nil, fmt.Errorf("key record version %d (this hsmkit reads %d)", v, keyCodecVersion)
	}
	sh := r.bytes()
	return sh, r.err
}

// DecodeKey reads a stored key record strictly: every field present and
// in range, canonical, nothing left over.
func DecodeKey(ref uint64, rec []byte) (*Key, error) { return decodeKey(ref, rec, true) }

// decodeKey is DecodeKey; without own, Check, Public and Masked alias rec.
func decodeKey(ref uint64, rec []byte, own bool) (*Key, error) {
	r := reader{b: rec}
	if v := r.byte(); r.err == nil && v != keyCodecVersion {
		return nil, fmt.Errorf("key 0x%016x: corrupt record: version %d (this hsmkit reads %d)", ref, v, keyCodecVersion)
	}
	s := reader{b: r.bytes()}
	k := &Key{Ref: ref}
	k.Class = s.str()
	k.Type = s.str()
	k.Owner = s.str()
	n := int(s.uint(maxShared + 1))
	for i := 0; i < n && s.err == nil; i++ {
		u := s.str()
		if len(k.Shared) > 0 && u <= k.Shared[len(k.Shared)-1] {
			s.fail("shared users not sorted or repeated")
		}
		k.Shared = append(k.Shared, u)
	}
	k.ManageQuorum = int(s.uint(9))
	k.UseQuorum = int(s.uint(9))
	k.Label = s.str()
	k.ID = s.str()
	k.Flags = uint32(s.uint(1 << len(BoolAttrs)))
	k.Length = int(s.uint(maxKeyBytes + 1))
	k.Curve = s.str()
	k.Check, k.Public, k.Masked = s.bytes(), s.bytes(), s.bytes()
	if own {
		k.Own()
	} else {
		k.Check, k.Public, k.Masked = nilIfEmpty(k.Check, false), nilIfEmpty(k.Public, false), nilIfEmpty(k.Masked, false)
	}
	k.Pair = s.uint(1<<64 - 1)
	if s.err == nil && len(s.b) != 0 {
		s.fail("trailing bytes in the shared part")
	}
	k.Session = r.str()
	k.Changed = r.time()
	k.Seq = r.uint(1<<63 - 1)
	k.Op = r.str()
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if err := errors.Join(r.err, s.err, k.check()); err != nil {
		return nil, fmt.Errorf("key 0x%016x: corrupt record: %v", ref, err)
	}
	return k, nil
}

// check refuses a key record no operation writes.
func (k *Key) check() error {
	switch {
	case !slices.Contains([]string{ClassSecret, ClassPublic, ClassPrivate}, k.Class):
		return fmt.Errorf("class %q", k.Class)
	case !slices.Contains([]string{TypeAES, TypeGenericSecret, TypeRSA, TypeEC}, k.Type):
		return fmt.Errorf("key type %q", k.Type)
	case (k.Class == ClassSecret) != (k.Type == TypeAES || k.Type == TypeGenericSecret):
		return fmt.Errorf("a %s key cannot be a %s", k.Type, k.Class)
	case k.Owner == "" || len(k.Owner) > 64:
		return errors.New("no owner")
	case k.ManageQuorum == 1 || k.UseQuorum == 1:
		return errors.New("a key quorum value of 1")
	case len(k.Label) > maxLabel || len(k.ID) > maxLabel:
		return errors.New("label or id too long")
	case len(k.Public) > maxKeyBytes || len(k.Masked) > maxKeyBytes:
		return errors.New("key material too long")
	case k.Check != nil && len(k.Check) != 3:
		return errors.New("check value is not 3 bytes")
	case (k.Class == ClassPublic) != (k.Masked == nil):
		return errors.New("a public key holds masked material, or another key none")
	}
	return nil
}

func nilIfEmpty(b []byte, clone bool) []byte {
	if len(b) == 0 {
		return nil
	}
	if clone {
		return bytes.Clone(b)
	}
	return b
}

// Own copies the byte fields a key read by ForEachKeyView shares with
// the database, so that it outlives the call.
func (k *Key) Own() {
	k.Check, k.Public, k.Masked = nilIfEmpty(k.Check, true), nilIfEmpty(k.Public, true), nilIfEmpty(k.Masked, true)
}

// MaskedBlob is masked key material: version, the AES-GCM nonce, and the
// sealed bytes (tag included).
type MaskedBlob struct {
	Nonce  []byte
	Sealed []byte
}

const maskedVersion = 1

// MaskNonceSize is AES-GCM's standard nonce.
const MaskNonceSize = 12

// Encode returns the blob's stored form.
func (m MaskedBlob) Encode() []byte {
	out := append([]byte{maskedVersion}, m.Nonce...)
	return append(out, m.Sealed...)
}

// DecodeMasked splits a stored masked blob; it refuses anything too short
// to hold a nonce and a tag, or too long for any key.
func DecodeMasked(b []byte) (MaskedBlob, error) {
	switch {
	case len(b) < 1+MaskNonceSize+16:
		return MaskedBlob{}, errors.New("masked object too short")
	case len(b) > maxKeyBytes:
		return MaskedBlob{}, errors.New("masked object too long")
	case b[0] != maskedVersion:
		return MaskedBlob{}, fmt.Errorf("masked object version %d (this hsmkit reads %d)", b[0], maskedVersion)
	}
	return MaskedBlob{Nonce: b[1 : 1+MaskNonceSize], Sealed: b[1+MaskNonceSize:]}, nil
}

func refKey(ref uint64) []byte { return binary.BigEndian.AppendUint64(nil, ref) }

// bucketOrMake returns a lazily made bucket: nil in a read-only
// transaction that has none.
func (t *HSMTx) bucketOrMake(name []byte) (*bolt.Bucket, error) {
	if b := t.tx.Bucket(name); b != nil || !t.tx.Writable() {
		return b, nil
	}
	return t.tx.CreateBucket(name)
}

// Key returns a key's record, or nil.
func (t *HSMTx) Key(ref uint64) (*Key, error) { return refRecord(t, bKeys, ref, DecodeKey) }

// refRecord reads the record ref names in a bucket made by the first key
// written (nil when either is missing), decoded by decode.
func refRecord[T any](t *HSMTx, bkt []byte, ref uint64, decode func(uint64, []byte) (*T, error)) (*T, error) {
	var v *T
	err := t.guard(func() error {
		b := t.tx.Bucket(bkt)
		if b == nil {
			return nil
		}
		raw := b.Get(refKey(ref))
		if raw == nil {
			return nil
		}
		var err error
		if v, err = decode(ref, raw); err != nil {
			return corrupt(t.path, "%v", err)
		}
		return nil
	})
	return v, err
}

// labelKey is a label index entry: the label, length-prefixed so that no
// label is a prefix of another's entries, then the reference.
func labelKey(label string, ref uint64) []byte {
	return binary.BigEndian.AppendUint64(labelPrefix(label), ref)
}

func labelPrefix(label string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(label))), label...)
}

// labelIndex returns the label index in a write transaction, building it
// from the keys when an HSM written before it has none.
func (t *HSMTx) labelIndex() (*bolt.Bucket, error) {
	if ix := t.tx.Bucket(bKeyLabels); ix != nil {
		return ix, nil
	}
	ix, err := t.tx.CreateBucket(bKeyLabels)
	if err != nil {
		return nil, err
	}
	err = t.ForEachKeyView(func(k *Key) error { return ix.Put(labelKey(k.Label, k.Ref), nil) })
	return ix, err
}

// unindexKey drops the label index entry of the key stored under ref, if
// any.
func (t *HSMTx) unindexKey(b, ix *bolt.Bucket, ref uint64) error {
	raw := b.Get(refKey(ref))
	if raw == nil {
		return nil
	}
	old, err := decodeKey(ref, raw, false)
	if err != nil {
		return corrupt(t.path, "%v", err)
	}
	return ix.Delete(labelKey(old.Label, ref))
}

// PutKey writes a key's record, keeps the label index and forgets any
// deletion of its reference.
func (t *HSMTx) PutKey(k *Key) error {
	if err := k.check(); err != nil {
		return fmt.Errorf("key 0x%016x: %v", k.Ref, err)
	}
	return t.guard(func() error {
		b, err := t.bucketOrMake(bKeys)
		if err != nil {
			return err
		}
		ix, err := t.labelIndex()
		if err != nil {
			return err
		}
		if err := t.unindexKey(b, ix, k.Ref); err != nil {
			return err
		}
		if err := ix.Put(labelKey(k.Label, k.Ref), nil); err != nil {
			return err
		}
		if err := b.Put(refKey(k.Ref), EncodeKey(k)); err != nil {
			return err
		}
		if d := t.tx.Bucket(bKeyDels); d != nil {
			return d.Delete(refKey(k.Ref))
		}
		return nil
	})
}

// DeleteKey removes a key; tomb (when not nil) records the deletion, so
// that a repair never brings it back.
func (t *HSMTx) DeleteKey(ref uint64, tomb *KeyTombstone) error {
	return t.guard(func() error {
		if b := t.tx.Bucket(bKeys); b != nil {
			ix, err := t.labelIndex()
			if err != nil {
				return err
			}
			if err := t.unindexKey(b, ix, ref); err != nil {
				return err
			}
			if err := b.Delete(refKey(ref)); err != nil {
				return err
			}
		}
		if tomb == nil {
			return nil
		}
		d, err := t.bucketOrMake(bKeyDels)
		if err != nil {
			return err
		}
		return d.Put(refKey(ref), encodeKeyTomb(tomb))
	})
}

func encodeKeyTomb(d *KeyTombstone) []byte {
	out := []byte{keyCodecVersion}
	out = appendStr(out, d.Owner)
	out = appendTime(out, d.Changed)
	return appendStr(out, d.Op)
}

// DecodeKeyTombstone reads a stored key deletion record strictly.
func DecodeKeyTombstone(ref uint64, rec []byte) (*KeyTombstone, error) {
	r := reader{b: rec}
	if v := r.byte(); r.err == nil && v != keyCodecVersion {
		r.fail("version")
	}
	d := &KeyTombstone{Ref: ref, Owner: r.str(), Changed: r.time(), Op: r.str()}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("key deletion 0x%016x: corrupt record: %v", ref, r.err)
	}
	return d, nil
}

// KeyTombstone returns the record of a key's deletion, or nil.
func (t *HSMTx) KeyTombstone(ref uint64) (*KeyTombstone, error) {
	return refRecord(t, bKeyDels, ref, DecodeKeyTombstone)
}

// walkRefs walks a lazily made bucket keyed by references, bounded as
// forEach is.
func (t *HSMTx) walkRefs(name []byte, fn func(ref uint64, v []byte) error) error {
	return t.guard(func() error {
		if t.tx.Bucket(name) == nil {
			return nil
		}
		return t.forEach(name, func(k, v []byte) error {
			if len(k) != 8 {
				return corrupt(t.path, "a key reference of %d bytes", len(k))
			}
			return fn(binary.BigEndian.Uint64(k), v)
		})
	})
}

// ForEachKey calls fn for every key, in reference order.
func (t *HSMTx) ForEachKey(fn func(*Key) error) error {
	return t.ForEachKeyView(func(k *Key) error { k.Own(); return fn(k) })
}

// ForEachKeyView is ForEachKey without copying each key's Check, Public
// and Masked out of the database: they are valid only during the call
// (Key.Own keeps them). A scan for the few keys a filter selects copies
// no material of the thousands it passes over.
func (t *HSMTx) ForEachKeyView(fn func(*Key) error) error {
	return t.walkRefs(bKeys, func(ref uint64, v []byte) error {
		k, err := decodeKey(ref, v, false)
		if err != nil {
			return corrupt(t.path, "%v", err)
		}
		return fn(k)
	})
}

// KeysWithLabel calls fn for every key labelled label, in reference
// order, through the label index; indexed is false, and fn never called,
// on an HSM whose keys have no index yet (the caller walks them).
func (t *HSMTx) KeysWithLabel(label string, fn func(*Key) error) (indexed bool, err error) {
	err = t.guard(func() error {
		ix := t.tx.Bucket(bKeyLabels)
		if ix == nil {
			return nil
		}
		indexed = true
		c := ix.Cursor()
		prefix := labelPrefix(label)
		limit := t.tx.Size()/16 + 1
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if limit--; limit < 0 || len(k) != len(prefix)+8 {
				return corrupt(t.path, "the key label index is damaged")
			}
			ref := binary.BigEndian.Uint64(k[len(prefix):])
			key, err := t.Key(ref)
			if err != nil {
				return err
			}
			if key == nil || key.Label != label {
				return corrupt(t.path, "the key label index names key 0x%016x, which is not labelled %s", ref, shown(label))
			}
			if err := fn(key); err != nil {
				return err
			}
		}
		return nil
	})
	return indexed, err
}

// ForEachKeyShared calls fn with each key's reference and the part of its
// record that must match on every HSM, without decoding it; the bytes are
// valid only during the call.
func (t *HSMTx) ForEachKeyShared(fn func(ref uint64, shared []byte) error) error {
	return t.walkRefs(bKeys, func(ref uint64, v []byte) error {
		sh, err := KeySharedPart(v)
		if err != nil {
			return corrupt(t.path, "key 0x%016x: %v", ref, err)
		}
		return fn(ref, sh)
	})
}

// KeyTombstones lists every key deletion record, in reference order.
func (t *HSMTx) KeyTombstones() ([]KeyTombstone, error) {
	out := []KeyTombstone{}
	err := t.walkRefs(bKeyDels, func(ref uint64, v []byte) error {
		d, err := DecodeKeyTombstone(ref, v)
		if err != nil {
			return corrupt(t.path, "%v", err)
		}
		out = append(out, *d)
		return nil
	})
	return out, err
}

// dropKeyBuckets empties the key buckets (a zeroize, a clone).
func (t *HSMTx) dropKeyBuckets() error {
	for _, b := range [][]byte{bKeys, bKeyDels, bKeyLabels} {
		if t.tx.Bucket(b) != nil {
			if err := t.tx.DeleteBucket(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// ForEachKeyRecord calls fn with every key, in reference order, and the
// part of its record that must match on every HSM: what a sync compares.
// Both are read as ForEachKeyView reads keys, valid only during the call.
func (t *HSMTx) ForEachKeyRecord(fn func(k *Key, shared []byte) error) error {
	return t.walkRefs(bKeys, func(ref uint64, v []byte) error {
		k, err := decodeKey(ref, v, false)
		if err != nil {
			return corrupt(t.path, "%v", err)
		}
		sh, _ := KeySharedPart(v) // decodeKey read it
		return fn(k, sh)
	})
}
