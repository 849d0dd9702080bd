package kms

import (
	"bytes"
	"testing"
)

func TestBlobRoundTrip(t *testing.T) {
	bl := &Blob{KeyID: [16]byte{1, 2, 3}, IV: bytes.Repeat([]byte{7}, 12), Data: bytes.Repeat([]byte{9}, 20)}
	got, err := ParseBlob(bl.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyID != bl.KeyID || !bytes.Equal(got.IV, bl.IV) || !bytes.Equal(got.Data, bl.Data) {
		t.Fatalf("round trip changed the blob: %+v", got)
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"short":     bl.Bytes()[:40],
		"magic":     append([]byte("XKB1"), bl.Bytes()[4:]...),
		"too large": append(bl.Bytes(), make([]byte, MaxBlob)...),
	} {
		if _, err := ParseBlob(b); err != ErrBlob {
			t.Errorf("%s: got %v, want ErrBlob", name, err)
		}
	}
}

func TestAADSeparatesContexts(t *testing.T) {
	id := [16]byte{1}
	seen := map[string]string{}
	for name, ctx := range map[string]map[string]string{
		"none":   nil,
		"a=bc":   {"a": "bc"},
		"ab=c":   {"ab": "c"},
		"two":    {"a": "b", "c": "d"},
		"joined": {"a": "bc", "": ""},
	} {
		k := string(AAD(id, ctx))
		if prev, ok := seen[k]; ok {
			t.Errorf("%s and %s encode alike", name, prev)
		}
		seen[k] = name
	}
	if string(AAD(id, map[string]string{"a": "1", "b": "2"})) != string(AAD(id, map[string]string{"b": "2", "a": "1"})) {
		t.Error("the order of a map changed the AAD")
	}
}

func FuzzParseBlob(f *testing.F) {
	f.Add((&Blob{IV: make([]byte, 12), Data: make([]byte, 16)}).Bytes())
	f.Add([]byte("HKB1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		bl, err := ParseBlob(b)
		if err != nil {
			return
		}
		if !bytes.Equal(bl.Bytes(), b) {
			t.Fatalf("a parsed blob does not encode back to its bytes")
		}
	})
}
