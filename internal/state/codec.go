package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// User records are the bulk of an HSM (up to CloudHSM's 1,024 per cluster
// in practice, 100,000 in the benchmarks), and hsm-sync reads every one of
// them on every HSM. They are stored in a small binary form rather than
// JSON so that reading is a bounds-checked walk over the bytes, not a
// reflection-driven parse (docs/design.md, "The store").
//
// Layout (all integers uvarint, strings and byte strings length-prefixed):
//
//	version (1 byte, userCodecVersion)
//	len(shared) shared
//	id changed(seconds varint, nanoseconds) seq op lineage kind approvals
//
// shared holds what must be equal on every HSM for a user to be in sync:
// role, hash (alg, time, memory, threads, salt, key), failures, quorum key
// (fingerprint, pem), mfa (fingerprint, pem). A key of "" means none. The
// tail (CMU id, change time, sequence, operation, provenance) may differ
// between HSMs without drift, so comparing the shared bytes decides
// whether a user is in sync without decoding it.
const userCodecVersion = 1

// userCodecFlags is the version of a record with a flag set (disabled,
// expired, locked, first password used): its shared part ends with one flags byte. A record
// with no flag keeps version 1, byte for byte, so CloudHSM's records and
// their drift comparisons are what they were.
const userCodecFlags = 2

const (
	flagDisabled = 1 << iota
	flagExpired
	flagLocked
	flagFirstUsed
)

func userFlags(u *User) byte {
	var f byte
	if u.Disabled {
		f |= flagDisabled
	}
	if u.Expired {
		f |= flagExpired
	}
	if u.Locked {
		f |= flagLocked
	}
	if u.FirstUsed {
		f |= flagFirstUsed
	}
	return f
}

// maxField bounds one length-prefixed field: a PEM public key is the
// largest (under 1 KiB for RSA-2048); nothing legitimate comes close.
const maxField = 64 << 10

// EncodeUser returns the stored form of u (its name is the record's key).
func EncodeUser(u *User) []byte {
	var sh []byte
	sh = appendStr(sh, u.Role)
	if u.Hash != nil {
		sh = append(sh, 1)
		sh = appendStr(sh, u.Hash.Alg)
		sh = binary.AppendUvarint(sh, uint64(u.Hash.Time))
		sh = binary.AppendUvarint(sh, uint64(u.Hash.MemoryKiB))
		sh = binary.AppendUvarint(sh, uint64(u.Hash.Threads))
		sh = appendStr(sh, string(u.Hash.Salt))
		sh = appendStr(sh, string(u.Hash.Key))
	} else {
		sh = append(sh, 0)
	}
	sh = binary.AppendUvarint(sh, uint64(u.Failures))
	sh = appendKey(sh, u.QuorumKey)
	sh = appendKey(sh, u.MFA)
	version := byte(userCodecVersion)
	if f := userFlags(u); f != 0 {
		sh, version = append(sh, f), userCodecFlags
	}

	out := make([]byte, 0, len(sh)+48)
	out = append(out, version)
	out = appendStr(out, string(sh))
	out = binary.AppendUvarint(out, uint64(u.ID))
	out = appendTime(out, u.Changed)
	out = binary.AppendUvarint(out, u.Seq)
	out = appendStr(out, u.Op)
	out = appendStr(out, u.Lineage)
	out = appendStr(out, u.Kind)
	out = binary.AppendUvarint(out, uint64(u.Approvals))
	return out
}

// SharedPart is the part of a stored user record that must be equal on
// every HSM (see EncodeUser); it does not decode the record.
func SharedPart(rec []byte) ([]byte, error) {
	r := reader{b: rec}
	if v := r.byte(); v != userCodecVersion && v != userCodecFlags {
		if r.err != nil {
			return nil, r.err
		}
		return nil, fmt.Errorf("user record version %d (this hsmkit reads %d and %d)", v, userCodecVersion, userCodecFlags)
	}
	sh := r.bytes()
	return sh, r.err
}

// DecodeUser reads a stored user record strictly: every field present and
// in range, nothing left over.
func DecodeUser(name string, rec []byte) (*User, error) {
	r := reader{b: rec}
	v := r.byte()
	if r.err == nil && v != userCodecVersion && v != userCodecFlags {
		return nil, fmt.Errorf("user %s: corrupt record: version %d (this hsmkit reads %d and %d)", shown(name), v, userCodecVersion, userCodecFlags)
	}
	s := reader{b: r.bytes()}
	u := &User{Name: name}
	u.Role = s.str()
	switch s.byte() {
	case 0:
	case 1:
		h := &Hash{Alg: s.str()}
		h.Time = uint32(s.uint(1 << 32))
		h.MemoryKiB = uint32(s.uint(1 << 32))
		h.Threads = uint8(s.uint(1 << 8))
		h.Salt = []byte(s.str())
		h.Key = []byte(s.str())
		u.Hash = h
	default:
		s.fail("bad hash marker")
	}
	u.Failures = int(s.uint(1 << 31))
	u.QuorumKey = s.key()
	u.MFA = s.key()
	if v == userCodecFlags {
		f := s.byte()
		if s.err == nil && (f == 0 || f&^(flagDisabled|flagExpired|flagLocked|flagFirstUsed) != 0) {
			s.fail("bad flags") // no flag is written as version 1: one form per record
		}
		u.Disabled, u.Expired, u.Locked, u.FirstUsed = f&flagDisabled != 0, f&flagExpired != 0, f&flagLocked != 0, f&flagFirstUsed != 0
	}
	if s.err == nil && len(s.b) != 0 {
		s.fail("trailing bytes in the shared part")
	}
	u.ID = int(r.uint(1 << 31))
	u.Changed = r.time()
	u.Seq = r.uint(1<<63 - 1)
	u.Op = r.str()
	u.Lineage = r.str()
	u.Kind = r.str()
	u.Approvals = int(r.uint(256))
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if err := errors.Join(r.err, s.err); err != nil {
		return nil, fmt.Errorf("user %s: corrupt record: %v", shown(name), err)
	}
	return u, nil
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// appendTime stores seconds and nanoseconds: UnixNano cannot hold the
// zero time or a clock set past 2262.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendKey(b []byte, k *PublicKey) []byte {
	if k == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendStr(b, k.Fingerprint)
	return appendStr(b, k.PEM)
}

// reader walks a record; the first error sticks and later reads return zero.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uint(limit uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("truncated or overlong number")
		return 0
	}
	// Canonical form only, so that equal records have equal bytes.
	if n != uvarintLen(v) {
		r.fail("non-canonical number")
		return 0
	}
	if v >= limit {
		r.fail("number out of range")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("truncated or overlong number")
		return 0
	}
	var b [binary.MaxVarintLen64]byte
	if n != binary.PutVarint(b[:], v) {
		r.fail("non-canonical number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) time() time.Time {
	sec := r.varint()
	ns := r.uint(1e9)
	if r.err != nil {
		return time.Time{}
	}
	t := time.Unix(sec, int64(ns)).UTC()
	if t.IsZero() {
		return time.Time{}
	}
	return t
}

func (r *reader) bytes() []byte {
	n := r.uint(maxField + 1)
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)) < n {
		r.fail("truncated")
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) str() string { return string(r.bytes()) }

func (r *reader) key() *PublicKey {
	switch r.byte() {
	case 0:
		return nil
	case 1:
		return &PublicKey{Fingerprint: r.str(), PEM: r.str()}
	}
	r.fail("bad key marker")
	return nil
}

// shown quotes a name read from a state file for a message, at most 64
// bytes of it: a damaged page can make a "name" megabytes long.
func shown(name string) string {
	if len(name) > 64 {
		return fmt.Sprintf("%q…", name[:64])
	}
	return fmt.Sprintf("%q", name)
}
