package hsm

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/hsmkit/hsmkit/internal/state"
)

// KDF costs. Default follows RFC 9106's second recommended option scaled to
// a 2-core machine; Test is for scenarios and benchmarks of everything else.
var (
	DefaultKDF = state.KDF{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}
	TestKDF    = state.KDF{Time: 1, MemoryKiB: 64, Threads: 1}
)

// KDF cost bounds --kdf accepts: argon2id needs at least 8 KiB per
// thread; above 10 passes, 1 GiB or 16 threads a login takes seconds to
// minutes and a typo (m=6553600) would make the cluster unusable.
const (
	maxKDFTime      = state.MaxKDFTime
	maxKDFMemoryKiB = state.MaxKDFMemoryKiB
	maxKDFThreads   = state.MaxKDFThreads
)

// kdfForm is the --kdf syntax an error names.
const kdfForm = "want default, test, or t=TIME,m=MEMORY_KIB,p=THREADS (decimal digits: no sign, space or leading zero) with TIME 1-10, THREADS 1-16, MEMORY_KIB from 8×THREADS to 1048576 (1 GiB)"

// ParseKDF reads --kdf: "default", "test" or "t=3,m=65536,p=4". The
// custom form is parsed strictly, the three fields in that order, each a
// decimal number without sign, leading zero or blank, nothing after the
// last; the costs are bounded (maxKDFTime, maxKDFMemoryKiB,
// maxKDFThreads).
func ParseKDF(s string) (state.KDF, error) {
	switch s {
	case "", "default":
		return DefaultKDF, nil
	case "test":
		return TestKDF, nil
	}
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return state.KDF{}, fmt.Errorf("--kdf %q: %s", s, kdfForm)
	}
	var v [3]uint64
	for i, key := range []string{"t", "m", "p"} {
		num, ok := strings.CutPrefix(fields[i], key+"=")
		if !ok || !canonicalDecimal(num) {
			return state.KDF{}, fmt.Errorf("--kdf %q: %q is not %s=NUMBER; %s", s, fields[i], key, kdfForm)
		}
		n, err := strconv.ParseUint(num, 10, 32)
		if err != nil {
			n = math.MaxUint32 // too large: out of range below
		}
		v[i] = n
	}
	// The bounds are state.KDF's (one place); the messages quote the
	// numbers as given, which may not fit the fields.
	t, m, p := v[0], v[1], v[2]
	switch {
	case t < 1 || t > maxKDFTime:
		return state.KDF{}, fmt.Errorf("--kdf %q: time t=%s is out of range: it is 1 to %d", s, fields[0][2:], maxKDFTime)
	case p < 1 || p > maxKDFThreads:
		return state.KDF{}, fmt.Errorf("--kdf %q: threads p=%s is out of range: it is 1 to %d", s, fields[2][2:], maxKDFThreads)
	case m < 8*p || m > maxKDFMemoryKiB:
		return state.KDF{}, fmt.Errorf("--kdf %q: memory m=%s KiB is out of range: it is 8×THREADS (%d) to %d (1 GiB)", s, fields[1][2:], 8*p, maxKDFMemoryKiB)
	}
	k := state.KDF{Time: uint32(t), MemoryKiB: uint32(m), Threads: uint8(p)}
	return k, k.Check()
}

// canonicalDecimal reports whether s is a decimal number as people write
// it: digits only, no sign, no leading zero.
func canonicalDecimal(s string) bool {
	if s == "" || s[0] == '0' && len(s) > 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// hashPassword derives the argon2id hash. The salt comes from the cluster
// salt and the username (see state.Cluster.Salt).
func hashPassword(cl *state.Cluster, user, pw string) *state.Hash {
	s := sha256.Sum256(append(append([]byte{}, cl.Salt...), user...))
	salt := s[:16]
	k := cl.KDF
	return &state.Hash{
		Alg: "argon2id", Time: k.Time, MemoryKiB: k.MemoryKiB, Threads: k.Threads,
		Salt: salt, Key: argon2.IDKey([]byte(pw), salt, k.Time, k.MemoryKiB, k.Threads, 32),
	}
}

func verifyPassword(h *state.Hash, pw string) bool {
	if h == nil || h.Alg != "argon2id" || len(h.Key) < 16 || len(h.Key) > 64 {
		return false
	}
	// A stored hash is outside input: a cost argon2 cannot run (it panics
	// on zero) or would hang on never verifies.
	if (state.KDF{Time: h.Time, MemoryKiB: h.MemoryKiB, Threads: h.Threads}).Check() != nil {
		return false
	}
	got := argon2.IDKey([]byte(pw), h.Salt, h.Time, h.MemoryKiB, h.Threads, uint32(len(h.Key)))
	return subtle.ConstantTimeCompare(got, h.Key) == 1
}

// HashDigest is a short opaque digest of a hash record, for comparing
// credentials across HSMs without showing the hash.
func HashDigest(h *state.Hash) string {
	if h == nil {
		return ""
	}
	d := sha256.New()
	fmt.Fprintf(d, "%s/%d/%d/%d/", h.Alg, h.Time, h.MemoryKiB, h.Threads)
	d.Write(h.Salt)
	d.Write(h.Key)
	return fmt.Sprintf("%x", d.Sum(nil)[:8])
}

// Rand gives the random bytes of one operation: from crypto/rand, or, for a
// cluster made with --seed, from a stream keyed by the seed and the
// cluster's write count, so the same commands give the same values.
type Rand struct {
	det *mrand.ChaCha8
}

func newRand(seed *int64, counter uint64, purpose string) *Rand {
	if seed == nil {
		return &Rand{}
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(*seed))
	binary.BigEndian.PutUint64(b[8:], counter)
	key := sha256.Sum256(append(b[:], purpose...))
	return &Rand{det: mrand.NewChaCha8(key)}
}

// Secret returns n bytes from crypto/rand, seed or not: a seed makes ids
// and nonces reproducible, never a credential (a session secret drawn
// from the stream is known to anyone who knows the seed and the write
// count, and repeats when a killed command left the count unchanged).
func (r *Rand) Secret(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// Read fills p.
func (r *Rand) Read(p []byte) {
	if r.det == nil {
		_, _ = rand.Read(p)
		return
	}
	_, _ = r.det.Read(p)
}

// Bytes returns n random bytes.
func (r *Rand) Bytes(n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// ID returns prefix + 11 random lowercase base32 characters, the shape of
// CloudHSM's cluster-… and hsm-… ids.
func (r *Rand) ID(prefix string) string {
	b := r.Bytes(11)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return prefix + string(b)
}
