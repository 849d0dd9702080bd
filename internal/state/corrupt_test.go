package state

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// validHSMFile makes a state with one HSM holding a few records and
// returns the store and the bytes of its database.
func validHSMFile(t testing.TB) (*Store, []byte) {
	t.Helper()
	s, err := Create(filepath.Join(t.TempDir(), "st"))
	if err != nil {
		t.Fatal(err)
	}
	h := &HSM{ID: "hsm-a", Quorum: DefaultQuorum(), Users: []User{
		{ID: 1, Name: "admin", Role: "admin", Hash: &Hash{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1, Salt: []byte("salt"), Key: []byte("key")}},
		{ID: 2, Name: "app_user", Role: "internal(APPLIANCE_USER)"},
		{ID: 3, Name: "carol", Role: "crypto-user", Failures: 2, Changed: time.Unix(1_800_000_000, 0).UTC(), Op: "op-x"},
	}, Deleted: []Tombstone{{Name: "bob", Role: "crypto-user", Op: "op-y"}},
		Sessions: []Session{{ID: "session-a", SecretHash: []byte{1, 2}, User: "admin"}},
		Tokens:   []Token{{ID: 17, User: "admin", Service: "user", Digest: []byte{3}}}}
	if err := s.SaveHSM(h); err != nil {
		t.Fatal(err)
	}
	// A few more commits, as a cluster's life makes: bbolt writes pages
	// anew on each, so the tree spreads over the file.
	for i := range 3 {
		tx, err := s.Begin("hsm-a", true)
		if err != nil {
			t.Fatal(err)
		}
		u := &User{ID: 10 + i, Name: "u" + string(rune('a'+i)), Role: "crypto-user", Op: "op-z"}
		if err := tx.PutUser(u); err != nil {
			t.Fatal(err)
		}
		if err := tx.PutSession(&Session{ID: "session-b", User: "carol"}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(s.hsmPath("hsm-a"))
	if err != nil {
		t.Fatal(err)
	}
	return s, data
}

// readAll does what commands do with an HSM: every read the engine makes.
func readAll(s *Store) error {
	return s.View("hsm-a", func(t *HSMTx) error {
		if _, err := t.Snapshot(); err != nil {
			return err
		}
		if _, err := t.User("carol"); err != nil {
			return err
		}
		if err := t.UsersWithRole("admin", func(*User) error { return nil }); err != nil {
			return err
		}
		return t.ForEachShared(func(_, _ []byte) error { return nil })
	})
}

// Garbage anywhere in an HSM's database is an error naming the file, never
// a crash: bbolt reads through a memory map, where a corrupt page can make
// it fault, and panics on some corruptions.
func TestCorruptPagesNeverCrash(t *testing.T) {
	s, good := validHSMFile(t)
	path := s.hsmPath("hsm-a")
	rng := rand.New(rand.NewPCG(1, 2))
	var offsets []int
	for page := 0; page < len(good); page += 4096 {
		for range 100 {
			offsets = append(offsets, page+16) // just past a page header
		}
	}
	for range 500 {
		offsets = append(offsets, rng.IntN(len(good)))
	}
	for _, off := range offsets {
		bad := append([]byte{}, good...)
		for i := off; i < min(off+64, len(bad)); i++ {
			bad[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		err := readAll(s)
		var ce *CorruptError
		var se *SchemaError
		if err != nil && !errors.As(err, &ce) && !errors.As(err, &se) {
			t.Errorf("offset %d: %v is not a state error", off, err)
		}
	}
}

// FuzzHSMFile patches a valid HSM database with fuzzed bytes at a fuzzed
// offset: reading it must give the records or a clean error.
func FuzzHSMFile(f *testing.F) {
	f.Add(uint32(8208), []byte("\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add(uint32(16), []byte{0})
	f.Add(uint32(4112), []byte("garbage garbage garbage"))
	s, good := validHSMFile(f)
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		bad := append([]byte{}, good...)
		o := int(off) % len(bad)
		copy(bad[o:], patch)
		if len(patch) > 0 && patch[0] == 0xee {
			bad = bad[:o] // a truncated file too
		}
		if err := os.WriteFile(s.hsmPath("hsm-a"), bad, 0o600); err != nil {
			t.Fatal(err)
		}
		err := readAll(s)
		var ce *CorruptError
		var se *SchemaError
		if err != nil && !errors.As(err, &ce) && !errors.As(err, &se) {
			t.Fatalf("%v is not a state error", err)
		}
	})
}
