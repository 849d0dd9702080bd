package state

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

func TestUserCodecRoundTrip(t *testing.T) {
	for _, u := range []*User{
		{Name: "a", Role: "admin"},
		{ID: 7, Name: "alice", Role: "crypto-user", Hash: &Hash{Alg: "argon2id", Time: 3, MemoryKiB: 65536, Threads: 4, Salt: []byte("0123456789abcdef"), Key: bytes.Repeat([]byte{9}, 32)},
			Failures: 4, QuorumKey: &PublicKey{Fingerprint: "ab", PEM: "-----BEGIN PUBLIC KEY-----\n"}, MFA: &PublicKey{Fingerprint: "cd"},
			Changed: time.Date(2026, 11, 22, 10, 0, 0, 123, time.UTC), Seq: 1 << 40, Op: "op-x", Lineage: "op-l", Kind: KindReset, Approvals: 3},
		{Name: "late", Role: "admin", Changed: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
	} {
		rec := EncodeUser(u)
		got, err := DecodeUser(u.Name, rec)
		if err != nil {
			t.Fatalf("%s: %v", u.Name, err)
		}
		if got.Hash != nil && got.Hash.Salt == nil {
			got.Hash.Salt = []byte{}
		}
		if !reflect.DeepEqual(got, u) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, u)
		}
		if !bytes.Equal(EncodeUser(got), rec) {
			t.Errorf("%s: re-encoding differs", u.Name)
		}
	}
}

// The shared part decides whether a user is in sync: what differs between
// HSMs without drift (CMU id, change time, sequence, operation) must not
// reach it, and what is drift must.
func TestSharedPart(t *testing.T) {
	base := User{ID: 1, Name: "u", Role: "crypto-user", Hash: &Hash{Alg: "argon2id", Key: []byte{1}}, Changed: time.Unix(100, 0).UTC(), Seq: 3, Op: "op-a"}
	sh := func(u User) []byte {
		b, err := SharedPart(EncodeUser(&u))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	same := base
	same.ID, same.Changed, same.Seq, same.Op = 9, time.Unix(200, 0).UTC(), 99, "op-b"
	if !bytes.Equal(sh(base), sh(same)) {
		t.Error("per-HSM fields reached the shared part")
	}
	for name, edit := range map[string]func(u *User){
		"role":     func(u *User) { u.Role = "admin" },
		"hash":     func(u *User) { u.Hash = &Hash{Alg: "argon2id", Key: []byte{2}} },
		"failures": func(u *User) { u.Failures = 1 },
		"quorum":   func(u *User) { u.QuorumKey = &PublicKey{Fingerprint: "f"} },
		"mfa":      func(u *User) { u.MFA = &PublicKey{Fingerprint: "f"} },
	} {
		d := base
		edit(&d)
		if bytes.Equal(sh(base), sh(d)) {
			t.Errorf("%s: drift not in the shared part", name)
		}
	}
}

func TestDecodeUserRefuses(t *testing.T) {
	good := EncodeUser(&User{Name: "u", Role: "admin", Op: "x"})
	for name, rec := range map[string][]byte{
		"empty":         {},
		"version":       append([]byte{2}, good[1:]...),
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte{}, good...), 0),
		"non-canonical": {1, 0x80, 0x00},
		"huge length":   {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if _, err := DecodeUser("u", rec); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecodeUser(f *testing.F) {
	f.Add(EncodeUser(&User{Name: "u", Role: "admin", Hash: &Hash{Alg: "argon2id", Salt: []byte("s"), Key: []byte("k")}, QuorumKey: &PublicKey{Fingerprint: "f", PEM: "p"}}))
	f.Add([]byte{1, 0})
	f.Add(EncodeUser(&User{Name: "u", Role: "operator", Disabled: true, Expired: true})) // a flags record (version 2)
	f.Fuzz(func(t *testing.T, rec []byte) {
		u, err := DecodeUser("u", rec)
		if err != nil {
			return
		}
		// Canonical: what decodes re-encodes to the same bytes, so equal
		// records have equal shared parts.
		if !bytes.Equal(EncodeUser(u), rec) {
			t.Fatalf("accepted a non-canonical record %x", rec)
		}
	})
}
