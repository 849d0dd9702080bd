package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func sampleKey() *Key {
	k := &Key{Ref: 7, Class: ClassPrivate, Type: TypeRSA, Owner: "cu1", Shared: []string{"a", "b"}, ManageQuorum: 2, UseQuorum: 2,
		Label: "l", Check: []byte{1, 2, 3}, Public: []byte("pub"), Masked: []byte("masked"), Pair: 6, Changed: time.Unix(5, 6).UTC(), Seq: 3, Op: "op-x"}
	k.Set("sign", true)
	return k
}

func TestKeyRoundTrip(t *testing.T) {
	k := sampleKey()
	got, err := DecodeKey(7, EncodeKey(k))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(EncodeKey(got), EncodeKey(k)) || !got.Has("sign") || got.Has("wrap") {
		t.Fatalf("%+v", got)
	}
	k.Shared = []string{"b", "a"}
	if _, err := DecodeKey(7, EncodeKey(k)); err == nil {
		t.Fatal("unsorted share list accepted")
	}
}

// FuzzDecodeKey: a decoded key record encodes to the same bytes.
func FuzzDecodeKey(f *testing.F) {
	f.Add(EncodeKey(sampleKey()))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, rec []byte) {
		k, err := DecodeKey(1, rec)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeKey(k), rec) {
			t.Fatalf("decoded %+v does not encode back to its bytes", k)
		}
		if _, err := KeySharedPart(rec); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzDecodeMaskedAndTombstone: the masked blob and key deletion decoders
// never panic and keep their bounds.
func FuzzDecodeMaskedAndTombstone(f *testing.F) {
	f.Add(MaskedBlob{Nonce: make([]byte, MaskNonceSize), Sealed: make([]byte, 32)}.Encode())
	f.Add(encodeKeyTomb(&KeyTombstone{Owner: "cu1", Op: "op"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := DecodeMasked(b); err == nil {
			if len(m.Nonce) != MaskNonceSize || len(m.Sealed) < 16 || !bytes.Equal(m.Encode(), b) {
				t.Fatalf("accepted %x", b)
			}
		}
		if d, err := DecodeKeyTombstone(1, b); err == nil && !bytes.Equal(encodeKeyTomb(d), b) {
			t.Fatalf("tombstone %+v does not encode back", d)
		}
	})
}

// labelIndex lists the label index entries of hsm-a as "label@ref",
// checking each is well formed, or nil when the HSM has no index.
func labelIndexEntries(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := s.View("hsm-a", func(tx *HSMTx) error {
		ix := tx.tx.Bucket(bKeyLabels)
		if ix == nil {
			return nil
		}
		out = []string{}
		return ix.ForEach(func(k, v []byte) error {
			n, w := binary.Uvarint(k)
			if w <= 0 || len(k) != w+int(n)+8 || len(v) != 0 {
				t.Fatalf("malformed entry %x", k)
			}
			out = append(out, fmt.Sprintf("%s@%d", k[w:w+int(n)], binary.BigEndian.Uint64(k[w+int(n):])))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func labelled(ref uint64, label string) Key {
	k := *sampleKey()
	k.Ref, k.Label = ref, label
	return k
}

// keyedHSM is a store whose HSM hsm-a holds keys.
func keyedHSM(t *testing.T, keys ...Key) *Store {
	t.Helper()
	s, err := Create(filepath.Join(t.TempDir(), "st"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateHSM(&HSM{ID: "hsm-a", Quorum: DefaultQuorum(), Keys: keys}); err != nil {
		t.Fatal(err)
	}
	return s
}

func writeHSM(t *testing.T, s *Store, fn func(tx *HSMTx) error) {
	t.Helper()
	tx, err := s.Begin("hsm-a", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// The label index lists exactly the keys' labels after every way keys are
// written: a put, a relabel, a delete, a clone (CreateHSM), a zeroize or
// restore (Replace), a copy from another HSM (PutKey over a record).
func TestKeyLabelIndex(t *testing.T) {
	s := keyedHSM(t, labelled(1, "a"), labelled(2, "b")) // CreateHSM, as add-hsm's clone
	for _, tc := range []struct {
		name string
		op   func(tx *HSMTx) error
		want []string
	}{
		{"clone", func(*HSMTx) error { return nil }, []string{"a@1", "b@2"}},
		{"put", func(tx *HSMTx) error { k := labelled(3, "a"); return tx.PutKey(&k) }, []string{"a@1", "a@3", "b@2"}},
		{"relabel", func(tx *HSMTx) error { k := labelled(1, "c"); return tx.PutKey(&k) }, []string{"a@3", "b@2", "c@1"}},
		{"same label rewritten", func(tx *HSMTx) error { k := labelled(1, "c"); k.Owner = "cu2"; return tx.PutKey(&k) }, []string{"a@3", "b@2", "c@1"}},
		{"empty label", func(tx *HSMTx) error { k := labelled(4, ""); return tx.PutKey(&k) }, []string{"@4", "a@3", "b@2", "c@1"}},
		{"delete", func(tx *HSMTx) error { return tx.DeleteKey(3, &KeyTombstone{Ref: 3, Owner: "cu1"}) }, []string{"@4", "b@2", "c@1"}},
		{"delete of no key", func(tx *HSMTx) error { return tx.DeleteKey(9, nil) }, []string{"@4", "b@2", "c@1"}},
		{"sync copy over a record", func(tx *HSMTx) error { k := labelled(2, "ab"); return tx.PutKey(&k) }, []string{"@4", "c@1", "ab@2"}}, // by label length, then label
		{"restore", func(tx *HSMTx) error {
			return tx.Replace(&HSM{Quorum: DefaultQuorum(), Keys: []Key{labelled(5, "x")}})
		}, []string{"x@5"}},
		{"zeroize", func(tx *HSMTx) error { return tx.Replace(&HSM{Quorum: DefaultQuorum()}) }, nil},
		{"first key after a zeroize", func(tx *HSMTx) error { k := labelled(6, "y"); return tx.PutKey(&k) }, []string{"y@6"}},
	} {
		writeHSM(t, s, tc.op)
		if got := labelIndexEntries(t, s); !slices.Equal(got, tc.want) {
			t.Errorf("%s: index %q, want %q", tc.name, got, tc.want)
		}
	}
	err := s.View("hsm-a", func(tx *HSMTx) error {
		var refs []uint64
		indexed, err := tx.KeysWithLabel("y", func(k *Key) error { refs = append(refs, k.Ref); return nil })
		if !indexed || !slices.Equal(refs, []uint64{6}) {
			t.Errorf("KeysWithLabel(y) = %v %v", indexed, refs)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An HSM written before the index (keys, no keylabel bucket) reads as
// unindexed, and the first key write builds the whole index.
func TestKeyLabelIndexBuiltOnFirstWrite(t *testing.T) {
	s := keyedHSM(t, labelled(1, "a"), labelled(2, "b"))
	writeHSM(t, s, func(tx *HSMTx) error { return tx.tx.DeleteBucket(bKeyLabels) })
	if got := labelIndexEntries(t, s); got != nil {
		t.Fatalf("index %q left", got)
	}
	err := s.View("hsm-a", func(tx *HSMTx) error {
		indexed, err := tx.KeysWithLabel("a", func(*Key) error { t.Error("fn called without an index"); return nil })
		if indexed {
			t.Error("indexed without an index")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	writeHSM(t, s, func(tx *HSMTx) error { return tx.DeleteKey(2, nil) })
	if got, want := labelIndexEntries(t, s), []string{"a@1"}; !slices.Equal(got, want) {
		t.Fatalf("index %q, want %q", got, want)
	}
}

// A label index entry naming a missing key, a key of another label, or
// malformed is a CorruptError.
func TestKeyLabelIndexCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry []byte
		label string
		want  string
	}{
		{"missing key", labelKey("a", 9), "a", "names key 0x0000000000000009, which is not labelled \"a\""},
		{"other label", labelKey("z", 1), "z", "names key 0x0000000000000001, which is not labelled \"z\""},
		{"short entry", labelPrefix("a"), "a", "the key label index is damaged"},
		{"long entry", append(labelKey("a", 1), 0), "a", "the key label index is damaged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := keyedHSM(t, labelled(1, "a"))
			writeHSM(t, s, func(tx *HSMTx) error { return tx.tx.Bucket(bKeyLabels).Put(tc.entry, nil) })
			err := s.View("hsm-a", func(tx *HSMTx) error {
				_, err := tx.KeysWithLabel(tc.label, func(*Key) error { return nil })
				return err
			})
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a CorruptError %q", err, tc.want)
			}
		})
	}
}
