package hsm

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"

	"golang.org/x/crypto/argon2"

	"github.com/hsmkit/hsmkit/internal/state"
)

// KDF costs. Default follows RFC 9106's second recommended option scaled to
// a 2-core machine; Test is for scenarios and benchmarks of everything else.
var (
	DefaultKDF = state.KDF{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}
	TestKDF    = state.KDF{Time: 1, MemoryKiB: 64, Threads: 1}
)

// ParseKDF reads --kdf: "default", "test" or "t=3,m=65536,p=4".
func ParseKDF(s string) (state.KDF, error) {
	switch s {
	case "", "default":
		return DefaultKDF, nil
	case "test":
		return TestKDF, nil
	}
	var k state.KDF
	var p int
	if _, err := fmt.Sscanf(s, "t=%d,m=%d,p=%d", &k.Time, &k.MemoryKiB, &p); err != nil || k.Time < 1 || p < 1 || p > 255 || k.MemoryKiB < 8*uint32(p) {
		return k, fmt.Errorf("--kdf %q: want default, test, or t=TIME,m=MEMORY_KIB,p=THREADS", s)
	}
	k.Threads = uint8(p)
	return k, nil
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
	if h == nil || h.Alg != "argon2id" {
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
