package hsm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
	"github.com/hsmkit/hsmkit/internal/syncdiff"
)

var syncAdmin = Fixed{User: "admin", Role: policy.Admin}

// ids are the cluster's HSM ids, in cluster order.
func ids(c *Client) []string {
	var out []string
	for _, h := range c.Cluster.HSMs {
		out = append(out, h.ID)
	}
	return out
}

func loadHSM(t *testing.T, c *Client, id string) *state.HSM {
	t.Helper()
	h, err := c.Store.LoadHSM(id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// files reads every HSM file, to prove that a call wrote nothing.
func files(t *testing.T, c *Client) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, id := range ids(c) {
		data, err := os.ReadFile(filepath.Join(c.Config.StateDir(), "hsms", id+".db"))
		if err != nil {
			t.Fatal(err)
		}
		out[id] = data
	}
	return out
}

func sameFiles(t *testing.T, before, after map[string][]byte) {
	t.Helper()
	for id, b := range before {
		if !bytes.Equal(b, after[id]) {
			t.Errorf("%s was written", id)
		}
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// ok fails the test when an engine call fails: ok(t)(c.CreateUser(...)).
func ok(t *testing.T) func(*Result, error) {
	return func(_ *Result, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// user returns name's record on HSM id, nil when absent.
func user(t *testing.T, c *Client, id, name string) *state.User {
	t.Helper()
	return findUser(loadHSM(t, c, id), name)
}

// at moves the engine's clock.
func at(c *Client, d time.Duration) {
	now := testNow.Add(d)
	c.opts.Now = func() time.Time { return now }
}

func TestRepair(t *testing.T) {
	cases := []struct {
		name      string
		hsms      int
		drift     func(t *testing.T, c *Client, h []string)
		skip      []string
		decisions map[string]syncdiff.Decision // what the report says before the repair
		undecided []string                     // Repair refuses naming these
		check     func(t *testing.T, c *Client, h []string)
	}{
		{
			name: "partial create: copy the record, hash included",
			hsms: 3,
			drift: func(t *testing.T, c *Client, h []string) {
				ok(t)(c.CreateUser(Targeting{Server: h[0]}, syncAdmin, "dave", policy.CryptoUser, "Dave-pass12", nil))
				ok(t)(c.CreateUser(Targeting{Server: h[1]}, syncAdmin, "dave", policy.CryptoUser, "Dave-pass12", nil))
			},
			decisions: map[string]syncdiff.Decision{"dave": syncdiff.DecisionCreate},
			check: func(t *testing.T, c *Client, h []string) {
				src, dst := user(t, c, h[0], "dave"), user(t, c, h[2], "dave")
				if dst == nil {
					t.Fatal("dave not copied")
				}
				if !bytes.Equal(dst.Hash.Key, src.Hash.Key) || dst.Role != string(policy.CryptoUser) || dst.Op != src.Op {
					t.Errorf("copy differs: %+v vs %+v", dst, src)
				}
				if !verifyPassword(dst.Hash, "Dave-pass12") {
					t.Error("the copied hash does not verify the password")
				}
			},
		},
		{
			name: "partial delete: delete where it remains, with the deletion record",
			hsms: 3,
			drift: func(t *testing.T, c *Client, h []string) {
				ok(t)(c.CreateUser(Targeting{}, syncAdmin, "dave", policy.CryptoUser, "Dave-pass12", nil))
				at(c, 5*time.Minute)
				ok(t)(c.DeleteUser(Targeting{Server: h[0]}, syncAdmin, "dave", policy.CryptoUser, nil))
				ok(t)(c.DeleteUser(Targeting{Server: h[2]}, syncAdmin, "dave", policy.CryptoUser, nil))
			},
			decisions: map[string]syncdiff.Decision{"dave": syncdiff.DecisionDelete},
			check: func(t *testing.T, c *Client, h []string) {
				if user(t, c, h[1], "dave") != nil {
					t.Fatal("dave left on " + h[1])
				}
				d := loadHSM(t, c, h[1]).Deleted
				if len(d) != 1 || d[0].Name != "dave" || !d[0].Changed.Equal(testNow.Add(5*time.Minute)) {
					t.Errorf("deletion record on %s: %+v", h[1], d)
				}
			},
		},
		{
			name: "re-created after a delete: a partial create, not a delete",
			hsms: 3,
			drift: func(t *testing.T, c *Client, h []string) {
				ok(t)(c.CreateUser(Targeting{}, syncAdmin, "dave", policy.CryptoUser, "Dave-pass12", nil))
				ok(t)(c.DeleteUser(Targeting{}, syncAdmin, "dave", policy.CryptoUser, nil))
				at(c, 5*time.Minute)
				ok(t)(c.CreateUser(Targeting{Server: h[0]}, syncAdmin, "dave", policy.CryptoUser, "Dave-pass34", nil))
			},
			decisions: map[string]syncdiff.Decision{"dave": syncdiff.DecisionCreate},
			check: func(t *testing.T, c *Client, h []string) {
				for _, id := range h {
					u := user(t, c, id, "dave")
					if u == nil || !verifyPassword(u.Hash, "Dave-pass34") {
						t.Errorf("%s: dave %+v", id, u)
					}
					if d := loadHSM(t, c, id).Deleted; slices.ContainsFunc(d, func(x state.Tombstone) bool { return x.Name == "dave" }) {
						t.Errorf("%s keeps dave's deletion record after the copy", id)
					}
				}
			},
		},
		{
			name: "password changed later on one HSM: the majority's hash, the change undone",
			hsms: 3,
			drift: func(t *testing.T, c *Client, h []string) {
				c.opts.Now = func() time.Time { return testNow.Add(time.Minute) }
				ok(t)(c.ChangePassword(Targeting{Server: h[1]}, syncAdmin, "cu1", policy.CryptoUser, "Rotated-pass1", nil))
			},
			decisions: map[string]syncdiff.Decision{"cu1": syncdiff.DecisionUpdate},
			check: func(t *testing.T, c *Client, h []string) {
				for _, id := range h {
					if u := user(t, c, id, "cu1"); !verifyPassword(u.Hash, "Some-pass1") {
						t.Error("cu1's hash on " + id + " is not the majority's")
					}
				}
			},
		},
		{
			name: "password changed at the same time: the majority's hash",
			hsms: 3,
			drift: func(t *testing.T, c *Client, h []string) {
				ok(t)(c.ChangePassword(Targeting{Server: h[1]}, syncAdmin, "cu1", policy.CryptoUser, "Other-pass1", nil))
			},
			decisions: map[string]syncdiff.Decision{"cu1": syncdiff.DecisionUpdate},
			check: func(t *testing.T, c *Client, h []string) {
				if u := user(t, c, h[1], "cu1"); !verifyPassword(u.Hash, "Some-pass1") {
					t.Error("cu1's hash on " + h[1] + " is not the majority's")
				}
			},
		},
		{
			name: "lock: the strictest state is kept, on every HSM",
			hsms: 3,
			drift: func(t *testing.T, c *Client, h []string) {
				for range MaxFailures {
					_, _, err := c.Login(Targeting{Server: h[2]}, filepath.Join(t.TempDir(), "s"), "cu1", policy.CryptoUser, "Wrong-pass1")
					if err == nil {
						t.Fatal("a wrong password logged in")
					}
				}
				if u := user(t, c, h[2], "cu1"); u.Failures != MaxFailures {
					t.Fatalf("failures %d", u.Failures)
				}
			},
			decisions: map[string]syncdiff.Decision{"cu1": syncdiff.DecisionUpdate},
			check: func(t *testing.T, c *Client, h []string) {
				for _, id := range h {
					if u := user(t, c, id, "cu1"); u.Failures != MaxFailures {
						t.Errorf("%s: failures %d after the repair, want %d (locked)", id, u.Failures, MaxFailures)
					}
				}
			},
		},
		{
			name: "role: replace the odd record, keeping user ids unique",
			hsms: 3,
			drift: func(t *testing.T, c *Client, h []string) {
				ok(t)(c.DeleteUser(Targeting{Server: h[2]}, syncAdmin, "victim", policy.CryptoUser, nil))
				ok(t)(c.CreateUser(Targeting{Server: h[2]}, syncAdmin, "victim", policy.Admin, "Some-pass1", nil))
				// Another user takes victim's old id on that HSM.
				ok(t)(c.CreateUser(Targeting{}, syncAdmin, "zed", policy.CryptoUser, "Zed-pass123", nil))
			},
			decisions: map[string]syncdiff.Decision{"victim": syncdiff.DecisionUpdate, "zed": ""},
			check: func(t *testing.T, c *Client, h []string) {
				hsm := loadHSM(t, c, h[2])
				if u := findUser(hsm, "victim"); u == nil || u.Role != string(policy.CryptoUser) {
					t.Fatalf("victim on %s: %+v", h[2], u)
				}
				seen := map[int]string{}
				for _, u := range hsm.Users {
					if o, dup := seen[u.ID]; dup {
						t.Errorf("%s: user id %d held by %s and %s", h[2], u.ID, o, u.Name)
					}
					seen[u.ID] = u.Name
					if u.ID > hsm.NextUserID {
						t.Errorf("%s: user id %d above next_user_id %d", h[2], u.ID, hsm.NextUserID)
					}
				}
			},
		},
		{
			name: "undecidable: refused, nothing written",
			hsms: 2,
			drift: func(t *testing.T, c *Client, h []string) {
				ok(t)(c.CreateUser(Targeting{Server: h[0]}, syncAdmin, "erin", policy.CryptoUser, "Erin-pass-A1", nil))
				ok(t)(c.CreateUser(Targeting{Server: h[1]}, syncAdmin, "erin", policy.CryptoUser, "Erin-pass-B1", nil))
				ok(t)(c.CreateUser(Targeting{Server: h[0]}, syncAdmin, "dave", policy.CryptoUser, "Dave-pass12", nil))
			},
			decisions: map[string]syncdiff.Decision{"erin": syncdiff.DecisionUndecidable, "dave": syncdiff.DecisionCreate},
			undecided: []string{"erin"},
		},
		{
			name: "undecidable skipped: the rest is repaired, the skipped user left alone",
			hsms: 2,
			drift: func(t *testing.T, c *Client, h []string) {
				ok(t)(c.CreateUser(Targeting{Server: h[0]}, syncAdmin, "erin", policy.CryptoUser, "Erin-pass-A1", nil))
				ok(t)(c.CreateUser(Targeting{Server: h[1]}, syncAdmin, "erin", policy.CryptoUser, "Erin-pass-B1", nil))
				ok(t)(c.CreateUser(Targeting{Server: h[0]}, syncAdmin, "dave", policy.CryptoUser, "Dave-pass12", nil))
			},
			skip:      []string{"erin"},
			decisions: map[string]syncdiff.Decision{"erin": syncdiff.DecisionUndecidable, "dave": syncdiff.DecisionCreate},
			check: func(t *testing.T, c *Client, h []string) {
				if user(t, c, h[1], "dave") == nil {
					t.Error("dave not copied")
				}
				if !verifyPassword(user(t, c, h[0], "erin").Hash, "Erin-pass-A1") || !verifyPassword(user(t, c, h[1], "erin").Hash, "Erin-pass-B1") {
					t.Error("the skipped user was changed")
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, tc.hsms, true)
			h := ids(c)
			tc.drift(t, c, h)

			r := must[syncdiff.Report](t)(c.SyncStatus(syncAdmin))
			got := map[string]syncdiff.Decision{}
			for _, u := range r.Users {
				got[u.Name] = u.Authority.Decision
			}
			for name, want := range tc.decisions {
				if want == "" {
					if _, differs := got[name]; differs {
						t.Errorf("%s reported as differing", name)
					}
					continue
				}
				if got[name] != want {
					t.Errorf("%s: decision %q, want %q (report %+v)", name, got[name], want, got)
				}
			}

			before := files(t, c)
			_, plan, _, err := c.Repair(syncAdmin, tc.skip)
			if tc.undecided != nil {
				var ue *UndecidedError
				if !errors.As(err, &ue) || !slices.Equal(ue.Users, tc.undecided) {
					t.Fatalf("Repair: %v, want undecided %v", err, tc.undecided)
				}
				sameFiles(t, before, files(t, c))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Actions) == 0 {
				t.Fatal("nothing planned")
			}
			tc.check(t, c, h)

			// In sync now, but for what was skipped.
			r = must[syncdiff.Report](t)(c.SyncStatus(syncAdmin))
			for _, u := range r.Users {
				if !slices.Contains(tc.skip, u.Name) {
					t.Errorf("%s still differs: %+v", u.Name, u.Differences)
				}
			}
			if tc.skip == nil && !r.InSync() {
				t.Errorf("not in sync after the repair: %+v", r)
			}

			// Idempotent: the same call again plans and writes nothing.
			before = files(t, c)
			_, plan, res, err := c.Repair(syncAdmin, tc.skip)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Actions) != 0 || len(res.Outcomes) != 0 {
				t.Errorf("second repair: %d actions, outcomes %+v", len(plan.Actions), res.Outcomes)
			}
			sameFiles(t, before, files(t, c))
		})
	}
}

func TestRepairRefusals(t *testing.T) {
	c := newTestCluster(t, 3, true)
	h := ids(c)
	ok(t)(c.CreateUser(Targeting{Server: h[0]}, syncAdmin, "dave", policy.CryptoUser, "Dave-pass12", nil))
	before := files(t, c)
	for _, who := range []Authenticator{Fixed{User: "cu1", Role: policy.CryptoUser}, Nobody{}, Fixed{User: "app_user", Role: policy.Appliance}} {
		if _, _, _, err := c.Repair(who, nil); err == nil {
			t.Errorf("%+v: Repair allowed", who)
		}
	}
	sameFiles(t, before, files(t, c))
	// get sync status: any logged-in role, never the unauthenticated.
	if _, err := c.SyncStatus(Nobody{}); err == nil {
		t.Error("SyncStatus allowed unauthenticated")
	}
	if _, err := c.SyncStatus(Fixed{User: "cu1", Role: policy.CryptoUser}); err != nil {
		t.Errorf("SyncStatus as a crypto user: %v", err)
	}
}

// An unreachable HSM gets nothing; once back, its drift is repaired.
func TestRepairUnreachable(t *testing.T) {
	c := newTestCluster(t, 3, true)
	h := ids(c)
	if err := c.SetReachable(h[1], false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUser(Targeting{AllowPartial: true}, syncAdmin, "erin", policy.CryptoUser, "Erin-pass12", nil); err == nil {
		t.Fatal("a partial create reported no error")
	}
	r, plan, res, err := c.Repair(syncAdmin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Actions) != 0 || len(res.Outcomes) != 0 || !slices.Equal(r.Unreachable, []string{h[1]}) || r.InSync() {
		t.Fatalf("while down: actions %d, outcomes %+v, unreachable %v", len(plan.Actions), res.Outcomes, r.Unreachable)
	}
	if err := c.SetReachable(h[1], true); err != nil {
		t.Fatal(err)
	}
	if user(t, c, h[1], "erin") != nil {
		t.Fatal("erin reached the stopped HSM")
	}
	r, _, res, err = c.Repair(syncAdmin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Users) != 1 || r.Users[0].Name != "erin" || !slices.Equal(res.OK(), []string{h[1]}) {
		t.Fatalf("after start: users %+v, written %v", r.Users, res.OK())
	}
	if user(t, c, h[1], "erin") == nil {
		t.Error("erin not copied")
	}
}

// A wrong one-shot password given to hsm-sync counts on every HSM, so the
// tool that reports lock drift does not make it.
func TestSyncStatusWrongPINCountsEverywhere(t *testing.T) {
	c := newTestCluster(t, 3, true)
	_, err := c.SyncStatus(&PIN{User: "admin", Password: "Wrong-pass1", Role: policy.Admin})
	if err == nil {
		t.Fatal("a wrong PIN was accepted")
	}
	for _, id := range ids(c) {
		if u := user(t, c, id, "admin"); u.Failures != 1 {
			t.Errorf("%s: admin has %d failures, want 1", id, u.Failures)
		}
	}
	r := must[syncdiff.Report](t)(c.SyncStatus(syncAdmin))
	if !r.InSync() {
		t.Errorf("a failed login made drift: %+v", r.Users)
	}
	// The right one-shot password works and is not counted.
	if _, err := c.SyncStatus(&PIN{User: "admin", Password: "Admin-pass1", Role: policy.Admin}); err != nil {
		t.Fatal(err)
	}
}

func findUser(h *state.HSM, name string) *state.User {
	for i := range h.Users {
		if h.Users[i].Name == name {
			return &h.Users[i]
		}
	}
	return nil
}
