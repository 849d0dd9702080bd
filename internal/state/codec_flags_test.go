package state

import (
	"bytes"
	"strings"
	"testing"
)

// TestUserCodecFlags: a record with a flag set (a Luna profile's disabled,
// expired, locked) is version 2 and round-trips; one without is version 1,
// byte for byte what it was; the flags are shared (drift); a version 2
// record without a flag, or with an unknown one, is refused (one form per
// record).
func TestUserCodecFlags(t *testing.T) {
	plain := User{ID: 3, Name: "james", Role: "operator", Seq: 2, Op: "op-a"}
	if rec := EncodeUser(&plain); rec[0] != userCodecVersion {
		t.Fatalf("a record without flags is version %d", rec[0])
	}
	for _, f := range []func(u *User){
		func(u *User) { u.Disabled = true },
		func(u *User) { u.Expired = true },
		func(u *User) { u.Locked = true },
		func(u *User) { u.FirstUsed = true },
		func(u *User) { u.Disabled, u.Expired, u.Locked, u.FirstUsed = true, true, true, true },
	} {
		u := plain
		f(&u)
		rec := EncodeUser(&u)
		if rec[0] != userCodecFlags {
			t.Fatalf("%+v: version %d", u, rec[0])
		}
		got, err := DecodeUser(u.Name, rec)
		if err != nil || *got != u {
			t.Fatalf("round trip %+v: got %+v, %v", u, got, err)
		}
		a, _ := SharedPart(rec)
		b, _ := SharedPart(EncodeUser(&plain))
		if bytes.Equal(a, b) {
			t.Errorf("%+v: the flags are not in the shared part", u)
		}
	}
	// Forged records: version 2 with flags 0, or an unknown bit.
	for _, flags := range []byte{0, 16, 0x80} {
		u := plain
		u.Expired = true
		rec := EncodeUser(&u)
		r := reader{b: rec[1:]}
		sh := r.bytes()
		forged := append([]byte{userCodecFlags}, appendStr(nil, string(append(append([]byte{}, sh[:len(sh)-1]...), flags)))...)
		forged = append(forged, r.b...)
		if _, err := DecodeUser(u.Name, forged); err == nil || !strings.Contains(err.Error(), "bad flags") {
			t.Errorf("flags %#x: %v", flags, err)
		}
	}
}
