package hsm

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// TestTokenLimit: an HSM keeps at most 1,024 quorum tokens. A full HSM
// makes room by purging expired ones; with none expired it refuses, and
// the refusal changes nothing.
func TestTokenLimit(t *testing.T) {
	c := newTestCluster(t, 1, true)
	id := c.Cluster.HSMs[0].ID
	fill := func(expires time.Time) {
		t.Helper()
		h, err := c.Store.Begin(id, true)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1024; i++ {
			h.Meta.NextTokenID++
			tok := &state.Token{ID: h.Meta.NextTokenID, User: "admin2", Session: "other", Service: ServiceUser, Created: testNow, Expires: expires, Coverage: 1}
			if err := h.PutToken(tok); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		t.Helper()
		n := 0
		if err := c.Store.View(id, func(h *state.HSMTx) error {
			toks, err := h.Tokens()
			n = len(toks)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	admin := Fixed{User: "admin", Role: policy.Admin, Session: "s1"}
	path := filepath.Join(t.TempDir(), "t.json")

	fill(testNow.Add(time.Hour))
	_, err := c.GenerateToken(Targeting{}, admin, ServiceUser, path)
	if err == nil || !strings.Contains(err.Error(), "already holds 1024 quorum tokens, the most it can, and none has expired") {
		t.Fatalf("generate on a full HSM = %v", err)
	}
	if n := count(); n != 1024 {
		t.Fatalf("after the refusal the HSM holds %d tokens, want 1024", n)
	}

	// Expired ones make room.
	c2 := newTestCluster(t, 1, true)
	c, id = c2, c2.Cluster.HSMs[0].ID
	fill(testNow.Add(-time.Second))
	if _, err := c.GenerateToken(Targeting{}, admin, ServiceUser, path); err != nil {
		t.Fatalf("generate with 1024 expired tokens: %v", err)
	}
	if n := count(); n != 1 {
		t.Fatalf("the HSM holds %d tokens, want 1 (the expired ones purged)", n)
	}
}
