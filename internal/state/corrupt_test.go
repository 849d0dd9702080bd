package state

import (
	"errors"

	bolt "go.etcd.io/bbolt"
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
		Tokens:   []Token{{ID: 17, User: "admin", Service: "user", Digest: []byte{3}}},
		Keys:     []Key{*sampleKey()}}
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
		if _, err := t.KeysWithLabel("l", func(*Key) error { return nil }); err != nil {
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

// FuzzHSMRecords writes arbitrary bytes as any record of an HSM's
// database (a user, a role or id index entry, a deletion record, a
// session, a token, the meta record, a key or a key label index entry) and reads the HSM as commands do: the
// records or a clean state error, never a panic, a hang or a read without
// bound. Damage to bbolt's own page structure is TestCorruptPagesNeverCrash's.
func FuzzHSMRecords(f *testing.F) {
	f.Add(byte(0), []byte("carol"), EncodeUser(&User{Name: "carol", Role: "admin"}))
	f.Add(byte(1), []byte("admin\x00carol"), []byte{})
	f.Add(byte(3), []byte("bob"), []byte(`{"name":"bob","role":"crypto-user","changed":"2026-01-01T00:00:00Z","seq":1,"op":"x"}`))
	f.Add(byte(6), []byte("meta"), []byte(`{"schema":2,"id":"hsm-a","quorum":{"values":{"user":1,"quorum":1},"generated_timeout":600,"approved_timeout":600}}`))
	f.Add(byte(0), []byte("admin"), []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	s, good := validHSMFile(f)
	f.Add(byte(8), labelKey("l", 9), []byte{})
	bkts := [][]byte{bUsers, bRoles, bIDs, bDeleted, bSessions, bTokens, bMeta, bKeys, bKeyLabels}
	f.Fuzz(func(t *testing.T, which byte, key, value []byte) {
		if len(key) == 0 || len(key) > 512 {
			return // bbolt's own limits on keys
		}
		path := s.hsmPath("hsm-a")
		if err := os.WriteFile(path, good, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := openBolt(path, false)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bkts[int(which)%len(bkts)]).Put(key, value)
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		err = readAll(s)
		var ce *CorruptError
		var se *SchemaError
		if err != nil && !errors.As(err, &ce) && !errors.As(err, &se) {
			t.Fatalf("%v is not a state error", err)
		}
	})
}
