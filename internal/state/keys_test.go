package state

import (
	"bytes"
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
