package hsm

import (
	"testing"

	"github.com/hsmkit/hsmkit/internal/state"
)

// A stored hash is outside input: a cost argon2 cannot run (it panics on a
// zero time or thread count) or that would hang never verifies, and never
// crashes the command that reads it.
func TestVerifyPasswordBoundedCosts(t *testing.T) {
	good := &state.Hash{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1, Salt: []byte("0123456789abcdef")}
	good.Key = hashPassword(&state.Cluster{Salt: []byte("s"), KDF: TestKDF}, "u", "Some-pass1").Key
	for name, h := range map[string]state.Hash{
		"time 0":       {Alg: "argon2id", Time: 0, MemoryKiB: 64, Threads: 1, Salt: good.Salt, Key: good.Key},
		"threads 0":    {Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 0, Salt: good.Salt, Key: good.Key},
		"memory 0":     {Alg: "argon2id", Time: 1, MemoryKiB: 0, Threads: 1, Salt: good.Salt, Key: good.Key},
		"huge time":    {Alg: "argon2id", Time: 1 << 30, MemoryKiB: 64, Threads: 1, Salt: good.Salt, Key: good.Key},
		"huge memory":  {Alg: "argon2id", Time: 1, MemoryKiB: 1 << 31, Threads: 1, Salt: good.Salt, Key: good.Key},
		"empty key":    {Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1, Salt: good.Salt},
		"other alg":    {Alg: "md5", Time: 1, MemoryKiB: 64, Threads: 1, Salt: good.Salt, Key: good.Key},
		"huge key len": {Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1, Salt: good.Salt, Key: make([]byte, 1<<20)},
	} {
		if verifyPassword(&h, "Some-pass1") {
			t.Errorf("%s: verified", name)
		}
	}
}
