package hsm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hsmkit/hsmkit/internal/config"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/simclock"
	"github.com/hsmkit/hsmkit/internal/syncdiff"
)

// The Luna 7 profile's walk (docs/design.md, "The Luna 7 profile"): every
// operation of its table as every kind of caller, on a real cluster, checked
// against what the table's data says (CheckCaller), as TestGateWalk does
// for CloudHSM's.

const (
	lunaPW = "Luna-pass1!"
	ringPW = "Ring-pass1!"
)

// lunaTemplate makes the walk's cluster once, in dir; each cell of the
// walk copies it.
func lunaTemplate(dir string) error {
	seed := int64(1)
	cfg, _, err := Init(InitOptions{StateDir: filepath.Join(dir, "st"), ConfigPath: filepath.Join(dir, "cluster.yaml"), HSMs: 2, Seed: &seed, KDF: TestKDF,
		Clock: &simclock.Clock{Mode: simclock.Fixed, At: testNow}, Profile: "luna"})
	if err != nil {
		return err
	}
	c, err := OpenConfig(cfg, Options{})
	if err != nil {
		return err
	}
	self := func(name, old string) error {
		_, err := c.ChangePassword(Targeting{}, &PIN{User: name, Password: old}, name, "", lunaPW, nil)
		return err
	}
	admin := &PIN{User: "admin", Password: lunaPW}
	steps := []func() error{
		func() error { return self("admin", policy.DefaultLunaPassword) },
		func() error {
			_, err := c.ImportRole(Targeting{}, admin, "readers", []byte("user list\nhsm show\n"))
			return err
		},
	}
	for _, u := range []struct{ name, role string }{
		{"james", "operator"}, {"victim", "operator"}, {"root2", "admin"}, {"cust", "readers"}, {"blank", ""}, {"stale", "admin"}, {"off", "monitor"},
	} {
		steps = append(steps, func() error {
			if _, err := c.CreateUser(Targeting{}, admin, u.name, policy.NoRole, "First-pass1", nil); err != nil {
				return err
			}
			if u.role != "" {
				if _, err := c.AssignRole(Targeting{}, admin, u.name, u.role); err != nil {
					return err
				}
			}
			if u.name == "stale" || u.role == "" {
				return nil // keeps its expired first password (one without a role can do nothing)
			}
			return self(u.name, "First-pass1")
		})
	}
	for _, name := range []string{"monitor", "audit"} {
		steps = append(steps, func() error {
			if _, err := c.SetUserEnabled(Targeting{}, admin, name, true); err != nil {
				return err
			}
			return self(name, policy.DefaultLunaPassword)
		})
	}
	steps = append(steps, func() error {
		_, err := c.SetUserEnabled(Targeting{}, admin, "off", false)
		return err
	})
	// The HSM's roles, and partition par1's, with HSM policy 15 on (it
	// erases partitions when turned on: first).
	so := &PIN{User: "so@hsm", Password: lunaPW, Via: admin}
	po := &PIN{User: "po@par1", Password: lunaPW}
	co := &PIN{User: "co@par1", Password: lunaPW}
	steps = append(steps,
		func() error { _, err := c.InitHSM(Targeting{}, admin, lunaPW); return err },
		func() error {
			_, err := c.InitAuditor(Targeting{}, &PIN{User: "audit", Password: lunaPW}, lunaPW)
			return err
		},
		func() error { _, err := c.ChangePolicy(Targeting{}, so, policy.PolicySOReset, 1); return err },
		func() error { _, err := c.InitRole(Targeting{}, so, policy.PartSO, "par1", lunaPW); return err },
		func() error { _, err := c.InitRole(Targeting{}, po, policy.CryptoOf, "", "First-pass1"); return err },
		func() error { return self("co@par1", "First-pass1") },
		func() error { _, err := c.InitRole(Targeting{}, co, policy.CryptoU, "", "First-pass1"); return err },
		func() error { return self("cu@par1", "First-pass1") },
		// A keyring: its password is not the PO's (they are kept apart).
		func() error { _, err := c.CreateKeyring(Targeting{}, po, "kr1", "Ring-first1"); return err },
		func() error {
			_, err := c.ChangePassword(Targeting{}, &PIN{User: "krso@kr1", Password: "Ring-first1"}, "krso@kr1", "", ringPW, nil)
			return err
		},
	)
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// newLunaCluster copies the walk's template cluster into a test's own
// dir, with the private modes the state wants.
func newLunaCluster(t *testing.T, src string) *Client {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o700)
		}
		return os.Chmod(p, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenConfig(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// lunaEdit deletes a record on every HSM behind the engine's back.
func lunaEdit(c *Client, name string) {
	for _, info := range c.Cluster.HSMs {
		h, err := c.Store.Begin(info.ID, true)
		if err != nil {
			panic(err)
		}
		if err := h.DeleteUser(name); err != nil {
			panic(err)
		}
		if err := h.Commit(); err != nil {
			panic(err)
		}
	}
}

// lunaCaller is one caller of the walk: its credentials, and what the
// gate should know of it (the table decides from that).
type lunaCaller struct {
	name   string
	user   string
	pw     string
	caller policy.Caller
	locked bool // may do only what needs no login
	auth   Authenticator
	via    Authenticator // the appliance login before its own (RoleSpec.Via)
}

var lunaCallers = []lunaCaller{
	{name: "admin", user: "admin", pw: lunaPW, caller: policy.Caller{User: "admin", Role: policy.Admin}},
	{name: "second-admin", user: "root2", pw: lunaPW, caller: policy.Caller{User: "root2", Role: policy.Admin}},
	{name: "operator", user: "james", pw: lunaPW, caller: policy.Caller{User: "james", Role: policy.Operator}},
	{name: "monitor", user: "monitor", pw: lunaPW, caller: policy.Caller{User: "monitor", Role: policy.Monitor}},
	{name: "audit", user: "audit", pw: lunaPW, caller: policy.Caller{User: "audit", Role: policy.Audit}},
	{name: "custom", user: "cust", pw: lunaPW, caller: policy.Caller{User: "cust", Role: "readers", Custom: []string{"user list", "hsm show"}}},
	{name: "no-role", user: "blank", pw: "First-pass1", caller: policy.Caller{User: "blank", Role: policy.NoRole, Expired: true}},
	{name: "expired-admin", user: "stale", pw: "First-pass1", caller: policy.Caller{User: "stale", Role: policy.Admin, Expired: true}},
	{name: "disabled", user: "off", pw: lunaPW, caller: policy.Caller{User: "off", Role: policy.Monitor}, locked: true},
	{name: "hsm-so", user: "so@hsm", pw: lunaPW, caller: policy.Caller{User: "so@hsm", Role: policy.HSMSO}, via: &PIN{User: "admin", Password: lunaPW}},
	{name: "auditor", user: "au@hsm", pw: lunaPW, caller: policy.Caller{User: "au@hsm", Role: policy.Auditor}, via: &PIN{User: "audit", Password: lunaPW}},
	{name: "partition-so", user: "po@par1", pw: lunaPW, caller: policy.Caller{User: "po@par1", Role: policy.PartSO}},
	{name: "crypto-officer", user: "co@par1", pw: lunaPW, caller: policy.Caller{User: "co@par1", Role: policy.CryptoOf}},
	{name: "crypto-user", user: "cu@par1", pw: lunaPW, caller: policy.Caller{User: "cu@par1", Role: policy.CryptoU}},
	{name: "keyring-so", user: "krso@kr1", pw: ringPW, caller: policy.Caller{User: "krso@kr1", Role: policy.KRSO}},
	{name: "keyring-co", user: "krco@kr1", pw: ringPW, caller: policy.Caller{User: "krco@kr1", Role: policy.KRCO}},
	{name: "unauthenticated", caller: policy.Caller{Role: policy.Unauthenticated}, auth: Nobody{}},
	{name: "owner", caller: policy.Caller{Role: policy.Account}, auth: Account{}},
}

var lunaOps = map[policy.Op]func(c *Client, w lunaCaller, auth Authenticator) error{
	policy.ClusterInfo: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.ListHSMs(auth)
		return err
	},
	policy.Login: func(c *Client, w lunaCaller, _ Authenticator) error {
		_, _, err := c.LoginVia(Targeting{}, filepath.Join(filepath.Dir(c.Config.Path), "walk.session"), w.user, w.pw, w.via)
		return err
	},
	policy.InitHSM: func(c *Client, _ lunaCaller, auth Authenticator) error {
		// The HSM is initialized: a caller the gate lets through is told
		// so, and then tries again on a zeroized one.
		_, err := c.InitHSM(Targeting{}, auth, "New-so-pass1")
		if err == nil || !strings.Contains(err.Error(), "is initialized") {
			return err
		}
		for _, info := range c.Cluster.HSMs {
			if err := c.Zeroize(&PIN{User: "admin", Password: lunaPW}, info.ID); err != nil {
				return err
			}
		}
		_, err = c.InitHSM(Targeting{}, auth, "New-so-pass1")
		return err
	},
	policy.LoginHSM: func(c *Client, _ lunaCaller, auth Authenticator) error {
		// The caller is the appliance login the SO's needs.
		_, _, err := c.LoginVia(Targeting{}, filepath.Join(filepath.Dir(c.Config.Path), "so.session"), "so@hsm", lunaPW, auth)
		return err
	},
	policy.AuditLog: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.InitAuditor(Targeting{}, auth, "New-au-pass1")
		return err
	},
	policy.InitRole: func(c *Client, w lunaCaller, auth Authenticator) error {
		// Each caller the role it would initialize, where it would.
		switch w.caller.Role {
		case policy.HSMSO:
			_, err := c.InitRole(Targeting{}, auth, policy.PartSO, "par2", "New-po-pass1")
			return err
		case policy.PartSO:
			lunaEdit(c, "co@par1") // the PO's one role to initialize: gone, behind the gate's back
			_, err := c.InitRole(Targeting{}, auth, policy.CryptoOf, "", "New-co-pass1")
			return err
		}
		_, err := c.InitRole(Targeting{}, auth, policy.LimitCO, "par1", "New-lco-pass1")
		return err
	},
	policy.ResetRole: func(c *Client, w lunaCaller, auth Authenticator) error {
		r := policy.CryptoU
		if w.caller.Role == policy.PartSO {
			r = policy.CryptoOf // under HSM policy 15, which the template turned on
		}
		_, err := c.ResetRole(Targeting{}, auth, r, "Reset-pass1")
		return err
	},
	policy.ShowRoles: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.Roles(auth, "par1")
		return err
	},
	policy.HSMPolicy: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.ChangePolicy(Targeting{}, auth, policy.PolicySOReset, 1)
		return err
	},
	policy.CreateKeyring: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.CreateKeyring(Targeting{}, auth, "walkring", "Walk-ring-pass1")
		return err
	},
	policy.PartitionPolicy: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.ChangePolicy(Targeting{}, auth, policy.PolicyMaxFailures, 5)
		return err
	},
	policy.ChangeOwnPassword: func(c *Client, w lunaCaller, auth Authenticator) error {
		name := w.user
		if name == "" {
			name = "james"
		}
		_, err := c.ChangePassword(Targeting{}, auth, name, "", "Own-newpass1", nil)
		return err
	},
	policy.ChangeAnyPassword: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.ChangePassword(Targeting{}, auth, "victim", "", "Their-newpass1", nil)
		return err
	},
	policy.ManageUsers: func(c *Client, _ lunaCaller, auth Authenticator) error {
		if _, err := c.CreateUser(Targeting{}, auth, "newbie", policy.NoRole, "Newbie-pass1", nil); err != nil {
			return err
		}
		_, err := c.DeleteUser(Targeting{}, auth, "victim", "", nil)
		return err
	},
	policy.AssignRole: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.AssignRole(Targeting{}, auth, "victim", "monitor")
		return err
	},
	policy.EnableUser: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.SetUserEnabled(Targeting{}, auth, "victim", false)
		return err
	},
	policy.ListUsers: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, _, err := c.ListUsers(auth)
		return err
	},
	policy.ImportRole: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.ImportRole(Targeting{}, auth, "walkers", []byte("hsm show\n"))
		return err
	},
	policy.SyncStatus: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.SyncStatus(auth)
		return err
	},
	policy.SyncUsers: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, _, _, err := c.Repair(auth, nil)
		return err
	},
	policy.Zeroize: func(c *Client, _ lunaCaller, auth Authenticator) error {
		return c.Zeroize(auth, c.Cluster.HSMs[1].ID)
	},
	policy.AddHSM: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.addHSM(auth, "", nil, nil)
		return err
	},
	policy.RemoveHSM: func(c *Client, _ lunaCaller, auth Authenticator) error {
		return c.removeHSM(auth, c.Cluster.HSMs[1].ID)
	},
	policy.Reachability: func(c *Client, _ lunaCaller, auth Authenticator) error {
		return c.setReachable(auth, c.Cluster.HSMs[1].ID, false)
	},
	policy.DumpState: func(c *Client, _ lunaCaller, auth Authenticator) error {
		_, err := c.dump(auth, "")
		return err
	},
}

// TestLunaGateWalk walks every operation of Luna's table as every caller
// and checks the engine against the table's data: allowed where
// CheckCaller allows, refused by the gate (Denied, Expired, or the lock of
// a disabled user) where it does not.
func TestLunaGateWalk(t *testing.T) {
	table := policy.Luna
	src := t.TempDir()
	if err := lunaTemplate(src); err != nil {
		t.Fatal(err)
	}
	for _, op := range table.Ops {
		run, ok := lunaOps[op]
		if !ok {
			switch op {
			case policy.InitCluster, policy.SetClock, policy.Logout:
				continue // proven by their own tests and credentials
			case policy.MaskedObjects:
				continue // the cluster service's, inside a repair
			}
			t.Errorf("operation %q of the Luna table has no engine operation in the walk", op)
			continue
		}
		for _, w := range lunaCallers {
			if op == policy.Login && w.pw == "" {
				continue // a login is its own credentials: these have none
			}
			t.Run(string(op)+"/"+w.name, func(t *testing.T) {
				c := newLunaCluster(t, src)
				auth := w.auth
				if auth == nil {
					auth = &PIN{User: w.user, Password: w.pw, Via: w.via}
				}
				err := run(c, w, auth)
				want := table.CheckCaller(w.caller, op)
				if w.locked {
					want = errors.New("a disabled user logs in nowhere")
				}
				var denied *policy.Denied
				var expired *policy.Expired
				switch {
				case want == nil && err != nil:
					t.Fatalf("allowed by the table, but: %v", err)
				case want != nil && err == nil:
					t.Fatalf("refused by the table (%v), but the engine did it", want)
				case want == nil:
				case w.locked:
					if !strings.Contains(err.Error(), "is disabled") {
						t.Fatalf("refused, but not because the user is disabled: %v", err)
					}
				case !errors.As(err, &denied) && !errors.As(err, &expired):
					t.Fatalf("refused by the table, but the engine said %v", err)
				}
			})
		}
	}
}

// TestLunaProfileIsData: the Luna table names every role it has a spec
// for, every command of its shell names an operation of a row (or an
// audit command, never given), and the CloudHSM profile's rules are what
// they were.
func TestLunaProfileIsData(t *testing.T) {
	for r := range policy.Luna.Specs {
		if !policy.Luna.IsRole(r) {
			t.Errorf("spec for %s, which is not a role of the table", r)
		}
	}
	for _, cmd := range policy.Luna.Commands {
		if cmd.Audit {
			continue
		}
		found := false
		for _, op := range policy.Luna.Ops {
			found = found || op == cmd.Op
		}
		if !found {
			t.Errorf("command %q runs %q, which is no row of the table", cmd.Name, cmd.Op)
		}
	}
	for name, ps := range policy.Luna.Policies {
		if !slices.Contains(policy.Luna.Ops, ps.Set) || ps.Default < ps.Min || ps.Default > ps.Max {
			t.Errorf("policy %s: set by %q, default %d outside %d..%d", name, ps.Set, ps.Default, ps.Min, ps.Max)
		}
	}
	for r, spec := range policy.Luna.Specs {
		if p := spec.Lockout.Policy; p != "" && policy.Luna.Policies[p].Max != spec.Lockout.Threshold {
			t.Errorf("%s's lockout is set by %q, whose capability is not its threshold", r, p)
		}
		for _, o := range append(append([]policy.Role{spec.InitBy, spec.ResetBy, spec.SeparateFrom}, spec.SharesPassword...), spec.Lockout.Also...) {
			if o != "" && !policy.Luna.IsRole(o) {
				t.Errorf("%s's spec names %q, not a role of the table", r, o)
			}
		}
	}
	if MaxFailures != 5 || policy.CloudHSM.LockThreshold(policy.Admin, "admin", nil) != 5 {
		t.Errorf("CloudHSM's lockout is no longer five failures")
	}
}

// TestLunaStatusDrift: a user disabled on one member only is drift that
// hsm-sync reports (the profile's flags are part of the record every HSM
// must hold alike), naming the status.
func TestLunaStatusDrift(t *testing.T) {
	src := t.TempDir()
	if err := lunaTemplate(src); err != nil {
		t.Fatal(err)
	}
	c := newLunaCluster(t, src)
	h, err := c.Store.Begin(c.Cluster.HSMs[1].ID, true)
	if err != nil {
		t.Fatal(err)
	}
	u, err := h.User("james")
	if err != nil || u == nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := h.PutUser(u); err != nil {
		t.Fatal(err)
	}
	if err := h.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := c.SyncStatus(&PIN{User: "admin", Password: lunaPW})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Users) != 1 || r.Users[0].Name != "james" || len(r.Users[0].Differences) != 1 ||
		r.Users[0].Differences[0].Kind != syncdiff.KindStatus || !strings.Contains(r.Users[0].Differences[0].Detail, "status disabled") {
		t.Fatalf("drift of james's status not reported: %+v", r.Users)
	}
}
