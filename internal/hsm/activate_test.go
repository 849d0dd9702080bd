package hsm

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/hsmkit/hsmkit/internal/policy"
)

// Activation is all or nothing, and an HSM left holding the unactivated
// admin (an activation that missed it under an older hsmkit) is never
// activated by whoever knows the default password: it is repaired from the
// activated HSMs.
func TestActivationAllOrNothing(t *testing.T) {
	c := newTestCluster(t, 3, false)
	for _, tg := range []Targeting{{AllowPartial: true}, {Server: c.Cluster.HSMs[2].ID}} {
		if _, err := c.Activate(tg, "Admin-pass1"); err == nil {
			t.Fatalf("activation with %+v accepted", tg)
		}
	}
	if _, err := c.Activate(Targeting{}, "Admin-pass1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Activate(Targeting{}, "Admin-pass2"); !errors.As(err, new(*AlreadyActivatedError)) {
		t.Fatalf("second activation: %v", err)
	}

	// The third HSM as an activation that missed it left it.
	leftover := c.Cluster.HSMs[2].ID
	h, err := c.Store.Begin(leftover, true)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := h.User("admin")
	u.Role, u.Hash, u.Op, u.Seq = string(policy.Unactivated), hashPassword(c.Cluster, "admin", DefaultPrecoPassword), "op-init", 0
	if err := h.PutUser(u); err != nil {
		t.Fatal(err)
	}
	if err := h.Commit(); err != nil {
		t.Fatal(err)
	}

	// Anyone with the default password: a login there works (the
	// unactivated admin may log in), activating does not, by either route.
	sf, _, err := c.Login(Targeting{Server: leftover}, filepath.Join(t.TempDir(), "rogue.session"), "admin", policy.Admin, DefaultPrecoPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ChangePassword(Targeting{Server: leftover}, sf, "admin", policy.Admin, "Rogue-pass1", nil); !errors.As(err, new(*AlreadyActivatedError)) {
		t.Fatalf("activation through change-password: %v", err)
	}
	if _, err := c.CreateUser(Targeting{Server: leftover}, sf, "rogue", policy.Admin, "Rogue-pass1", nil); !errors.As(err, new(*policy.Denied)) {
		t.Fatalf("the unactivated admin created a user: %v", err)
	}
	if _, _, err := c.Logout(sf); err != nil {
		t.Fatal(err)
	}

	// The repair copies the activated admin there.
	admin, _, err := c.Login(Targeting{AllowPartial: true}, filepath.Join(t.TempDir(), "admin.session"), "admin", policy.Admin, "Admin-pass1")
	var partial *PartialError
	if !errors.As(err, &partial) {
		t.Fatalf("admin login: %v", err)
	}
	if _, _, _, err := c.Repair(admin, nil); err != nil {
		t.Fatal(err)
	}
	got, err := c.Store.LoadHSM(leftover)
	if err != nil {
		t.Fatal(err)
	}
	if a := findUser(got, "admin"); a == nil || a.Role != string(policy.Admin) || !verifyPassword(a.Hash, "Admin-pass1") {
		t.Fatalf("after repair: %+v", a)
	}
}
