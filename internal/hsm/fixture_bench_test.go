package hsm

import (
	"fmt"
	"testing"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// Fixtures for the benchmarks: big HSMs are filled through the store, not
// through the engine (one create is three durable commits; a benchmark
// needs 100,000 users in seconds).

// benchName is the name of fixture user i.
func benchName(i int) string { return fmt.Sprintf("user_%06d", i) }

// fillUsers adds users benchName(0..users-1) to HSM id in one transaction:
// crypto users with admin's password hash record, so that each record is
// as large as a real one, and the same fields on every HSM filled alike.
func fillUsers(tb testing.TB, c *Client, id string, users int) {
	tb.Helper()
	t, err := c.Store.Begin(id, true)
	if err != nil {
		tb.Fatal(err)
	}
	admin, err := t.User("admin")
	if err != nil || admin == nil || admin.Hash == nil {
		t.Rollback()
		tb.Fatalf("%s: no admin with a password (%v)", id, err)
	}
	base := t.Meta.NextUserID + 1
	for i := range users {
		u := &state.User{ID: base + i, Name: benchName(i), Role: string(policy.CryptoUser), Hash: admin.Hash,
			Changed: testNow, Seq: uint64(i + 1), Op: fmt.Sprintf("op-bench%06d", i)}
		if err := t.PutUser(u); err != nil {
			t.Rollback()
			tb.Fatal(err)
		}
	}
	t.Meta.NextUserID = base + users
	if err := t.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// benchClone makes HSM dst a copy of src (its database written anew by
// Store.CreateHSM, all in one transaction), as hsm-sim add-hsm clones.
func benchClone(tb testing.TB, c *Client, src, dst string) {
	tb.Helper()
	h, err := c.Store.LoadHSM(src)
	if err != nil {
		tb.Fatal(err)
	}
	h.ID = dst
	if err := c.Store.CreateHSM(h); err != nil {
		tb.Fatal(err)
	}
}

// dropUsers deletes fixture user i from HSM id, in one transaction, for
// every i that gone says, leaving no deletion record: a create that
// missed that HSM. It returns how many it deleted.
func dropUsers(tb testing.TB, c *Client, id string, users int, gone func(i int) bool) int {
	tb.Helper()
	t, err := c.Store.Begin(id, true)
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for i := range users {
		if gone(i) {
			if err := t.DeleteUser(benchName(i)); err != nil {
				t.Rollback()
				tb.Fatal(err)
			}
			n++
		}
	}
	if err := t.Commit(); err != nil {
		tb.Fatal(err)
	}
	return n
}

// benchCluster is a test cluster of hsms HSMs with users fixture users on
// each: the first filled, the others cloned from it.
func benchCluster(tb testing.TB, hsms, users int) *Client {
	tb.Helper()
	c := newTestCluster(tb, hsms, true)
	if users == 0 {
		return c
	}
	hs := ids(c)
	fillUsers(tb, c, hs[0], users)
	for _, id := range hs[1:] {
		benchClone(tb, c, hs[0], id)
	}
	return c
}
