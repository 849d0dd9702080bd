package hsm

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/config"
	"github.com/hsmkit/hsmkit/internal/keys"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/quorum"
	"github.com/hsmkit/hsmkit/internal/simclock"
	"github.com/hsmkit/hsmkit/internal/state"
)

var testNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// newTestCluster makes a cluster of n HSMs in a temp dir; activated, it
// has admin, admin2, cu1 and victim (a crypto user).
func newTestCluster(t testing.TB, n int, activated bool) *Client {
	t.Helper()
	dir := t.TempDir()
	seed := int64(1)
	cfg, _, err := Init(InitOptions{StateDir: filepath.Join(dir, "st"), ConfigPath: filepath.Join(dir, "cluster.yaml"), HSMs: n, Seed: &seed, KDF: TestKDF, Clock: &simclock.Clock{Mode: simclock.Fixed, At: testNow}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err = config.Load(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenConfig(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !activated {
		return c
	}
	if _, err := c.Activate(Targeting{}, "Admin-pass1"); err != nil {
		t.Fatal(err)
	}
	admin := Fixed{User: "admin", Role: policy.Admin}
	for _, u := range []struct {
		name string
		role policy.Role
	}{{"admin2", policy.Admin}, {"cu1", policy.CryptoUser}, {"victim", policy.CryptoUser}} {
		if _, err := c.CreateUser(Targeting{}, admin, u.name, u.role, "Some-pass1", nil); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// who is a principal of the walk: how it authenticates, and the user it
// is (for one's own password).
type who struct {
	auth Authenticator
	user string
	self policy.Role // the role it changes its own password as
}

// engineOps run each operation of the table that the engine implements,
// as w. Login and Logout are proven by their own credentials rather than
// by a principal's; TestSessionsFollowTheUser and the scenarios cover them.
var engineOps = map[policy.Op]func(c *Client, w who) error{
	policy.InitializeCluster: func(c *Client, w who) error {
		certPEM, anchorPEM, err := uninitialize(c)
		if err != nil {
			return err
		}
		return c.initialize(w.auth, "cert", []byte(certPEM), "anchor", []byte(anchorPEM))
	},
	policy.BackupCluster: func(c *Client, w who) error {
		_, err := c.backup(w.auth)
		return err
	},
	policy.DeleteCluster: func(c *Client, w who) error {
		for _, h := range c.Cluster.HSMs[1:] {
			if err := c.RemoveHSM(h.ID); err != nil {
				return err
			}
		}
		return c.deleteCluster(w.auth)
	},
	policy.ClusterInfo: func(c *Client, w who) error {
		_, err := c.ListHSMs(w.auth)
		return err
	},
	policy.Zeroize: func(c *Client, w who) error {
		return c.Zeroize(w.auth, c.Cluster.HSMs[1].ID)
	},
	policy.ChangeOwnPassword: func(c *Client, w who) error {
		name := w.user
		if name == "" {
			name = "cu1"
		}
		_, err := c.ChangePassword(Targeting{}, w.auth, name, w.self, "Own-newpass1", nil)
		return err
	},
	policy.ChangeAnyPassword: func(c *Client, w who) error {
		_, err := c.ChangePassword(Targeting{}, w.auth, "victim", policy.CryptoUser, "Their-newpass1", nil)
		return err
	},
	policy.ManageUsers: func(c *Client, w who) error {
		if _, err := c.CreateUser(Targeting{}, w.auth, "newbie", policy.CryptoUser, "Newbie-pass1", nil); err != nil {
			return err
		}
		_, err := c.DeleteUser(Targeting{}, w.auth, "victim", policy.CryptoUser, nil)
		return err
	},
	policy.ListUsers: func(c *Client, w who) error {
		_, _, err := c.ListUsers(w.auth)
		return err
	},
	policy.QuorumToken: func(c *Client, w who) error {
		_, err := c.GenerateToken(Targeting{}, w.auth, ServiceUser, filepath.Join(filepath.Dir(c.Config.Path), "t.token"))
		if err != nil {
			return err
		}
		_, err = c.DeleteTokens(Targeting{}, w.auth, "all")
		return err
	},
	policy.QuorumPolicyRead: func(c *Client, w who) error {
		if _, _, err := c.quorumPolicy(w.auth); err != nil {
			return err
		}
		_, _, err := c.ListTokens(w.auth)
		return err
	},
	policy.QuorumPolicyWrite: func(c *Client, w who) error {
		if _, err := c.SetTimeouts(Targeting{}, w.auth, 900, 0, nil); err != nil {
			return err
		}
		_, err := c.SetQuorumValue(Targeting{}, w.auth, ServiceUser, 1, nil)
		return err
	},
	policy.RegisterQuorumKey: func(c *Client, w who) error {
		// The registration token is generated in w's own session where it
		// has one; a refused principal is refused by the gate before the
		// token is looked at.
		path := filepath.Join(filepath.Dir(c.Config.Path), "reg.json")
		key := testKey()
		if _, err := c.GenerateToken(Targeting{}, w.auth, ServiceRegistration, path); err != nil {
			// One that may not: a valid token of another admin's.
			pw := "Admin-pass1"
			if adminMissing(c) {
				pw = DefaultPrecoPassword
			}
			admin, _, err := c.Login(Targeting{}, filepath.Join(filepath.Dir(c.Config.Path), "other.session"), "admin", policy.Admin, pw)
			if err != nil {
				return err
			}
			if _, err := c.GenerateToken(Targeting{}, admin, ServiceRegistration, path); err != nil {
				return err
			}
		}
		d, _ := os.ReadFile(path)
		rf, err := quorum.ParseRegistrationFile(path, d)
		if err != nil {
			return err
		}
		if err := rf.Sign(key); err != nil {
			return err
		}
		_, err = c.RegisterQuorumKey(Targeting{}, w.auth, "k.pub", keys.MarshalPublicKeyPEM(&key.PublicKey), path, rf.Marshal())
		return err
	},
	policy.ChangeOwnMFA: func(c *Client, w who) error {
		name := w.user
		if name == "" {
			name = "cu1"
		}
		return registerMFA(c, w.auth, name, w.self)
	},
	policy.ChangeAnyMFA: func(c *Client, w who) error {
		return registerMFA(c, w.auth, "victim", policy.CryptoUser)
	},
	policy.SyncStatus: func(c *Client, w who) error {
		_, err := c.SyncStatus(w.auth)
		return err
	},
	policy.SyncUsers: func(c *Client, w who) error {
		_, _, _, err := c.Repair(w.auth, nil)
		return err
	},
	policy.AddHSM: func(c *Client, w who) error {
		_, err := c.addHSM(w.auth, "", nil, nil)
		return err
	},
	policy.RemoveHSM: func(c *Client, w who) error {
		return c.removeHSM(w.auth, c.Cluster.HSMs[1].ID)
	},
	policy.Reachability: func(c *Client, w who) error {
		return c.setReachable(w.auth, c.Cluster.HSMs[1].ID, false)
	},
	// The key operations: a key is made by victim (a crypto user no
	// principal of the walk is) where the operation needs one.
	policy.KeyManagement: func(c *Client, w who) error {
		ks, _, err := c.GenerateKey(Targeting{}, w.auth, KeySpec{Type: "aes", LengthBytes: 16, Label: "walk"})
		if err != nil {
			return err
		}
		f := refFilter(ks[0].Key.Ref)
		if _, err := c.ShareKey(Targeting{}, w.auth, f, "victim", nil); err != nil {
			return err
		}
		if _, err := c.UnshareKey(Targeting{}, w.auth, f, "victim", nil); err != nil {
			return err
		}
		if _, err := c.SetKeyAttribute(Targeting{}, w.auth, f, "label", "walked", nil); err != nil {
			return err
		}
		_, err = c.DeleteKey(Targeting{}, w.auth, f, nil)
		return err
	},
	policy.SignVerify: func(c *Client, w who) error {
		ks, err := victimKeys(c, KeySpec{Type: "ec", Curve: "prime256v1", Attrs: []string{"verify=true"}, PrivateAttrs: []string{"sign=true"}})
		if err != nil {
			return err
		}
		s := SignSpec{Mech: "ecdsa", Hash: crypto.SHA256, Data: []byte("walk")}
		var sig []byte
		if !adminMissing(c) {
			if _, sig, err = c.Sign(Fixed{User: "victim"}, refFilter(ks[1].Key.Ref), s, nil); err != nil {
				return err
			}
		}
		return c.Verify(w.auth, refFilter(ks[0].Key.Ref), s, sig)
	},
	policy.EncryptDecrypt: func(c *Client, w who) error {
		ks, err := victimKeys(c, KeySpec{Type: "ec", Curve: "prime256v1", Attrs: []string{"encrypt=true"}})
		if err != nil {
			return err
		}
		_, err = c.Encrypt(w.auth, refFilter(ks[0].Key.Ref), CipherSpec{Mech: "aes-gcm"}, []byte("walk"))
		if err != nil && strings.Contains(err.Error(), "aes-gcm needs an AES key") {
			return nil // the gate let it through to the key
		}
		return err
	},
	policy.DigestHMAC: func(c *Client, w who) error {
		ks, err := victimKeys(c, KeySpec{Type: "generic-secret", LengthBytes: 32, Ownership: Ownership{ShareWith: []string{w.user}}})
		if err != nil {
			ks, err = victimKeys(c, KeySpec{Type: "generic-secret", LengthBytes: 32})
		}
		if err != nil {
			return err
		}
		_, err = c.HMAC(w.auth, refFilter(ks[0].Key.Ref), crypto.SHA256, []byte("walk"))
		return err
	},
	policy.ListKeys: func(c *Client, w who) error {
		_, _, err := c.ListKeys(w.auth, KeyFilter{})
		return err
	},
	policy.SetTrusted: func(c *Client, w who) error {
		ks, err := victimKeys(c, KeySpec{Type: "aes", LengthBytes: 16})
		if err != nil {
			return err
		}
		_, err = c.SetKeyAttribute(Targeting{}, w.auth, refFilter(ks[0].Key.Ref), "trusted", "true", nil)
		return err
	},
	policy.DumpState: func(c *Client, w who) error {
		_, err := c.dump(w.auth, "")
		return err
	},
	policy.SetFault: func(c *Client, w who) error { return c.setFault(w.auth, FaultNetwork, true) },
	policy.InspectUser: func(c *Client, w who) error {
		_, err := c.inspectUser(w.auth, "admin", "")
		return err
	},
}

// registerMFA runs both steps of an MFA registration as auth, signing
// the tokens with the walk's key.
func registerMFA(c *Client, auth Authenticator, user string, role policy.Role) error {
	path := filepath.Join(filepath.Dir(c.Config.Path), "mfa.json")
	if _, err := c.BeginMFARegistration(Targeting{}, auth, user, role, path); err != nil {
		return err
	}
	d, _ := os.ReadFile(path)
	rf, err := quorum.ParseRegistrationFile(path, d)
	if err != nil {
		return err
	}
	key := testKey()
	if err := rf.Sign(key); err != nil {
		return err
	}
	_, err = c.ChangeMFA(Targeting{}, auth, ChangeMFARequest{Username: user, Role: role, Password: "Mfa-newpass1",
		PublicKeyPath: "k.pub", PublicKey: keys.MarshalPublicKeyPEM(&key.PublicKey), Signed: &MFAToken{Path: path, Data: rf.Marshal()}})
	return err
}

// victimKeys makes keys of victim's for an operation of the walk to use;
// on a cluster not yet activated, which has no victim, it names keys that
// do not exist: the gate refuses every caller there before any key is read.
func victimKeys(c *Client, spec KeySpec) ([]KeyInfo, error) {
	if adminMissing(c) {
		return []KeyInfo{{Key: state.Key{Ref: 1}}, {Key: state.Key{Ref: 2}}}, nil
	}
	ks, _, err := c.GenerateKey(Targeting{}, Fixed{User: "victim"}, spec)
	return ks, err
}

func adminMissing(c *Client) bool {
	users, _, err := c.ListUsers(Nobody{})
	if err != nil {
		return true
	}
	for _, u := range users {
		if u.Username == "admin" && u.Role == string(policy.Admin) {
			return false
		}
	}
	return true
}

var walkKey *rsa.PrivateKey

func testKey() *rsa.PrivateKey {
	if walkKey == nil {
		walkKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	}
	return walkKey
}

// principal is one kind of caller of the walk: each role of the table,
// and the sessions whose user changed since they logged in.
type principal struct {
	name      string
	activated bool
	// make builds the caller on a fresh cluster.
	make func(t *testing.T, c *Client) who
	// effective is the role whose column of the table decides; locked and
	// gone callers may do only what needs no login.
	effective policy.Role
	gone      bool // the HSMs no longer hold its user
}

func login(t *testing.T, c *Client, user string, role policy.Role, pw string) *SessionFile {
	t.Helper()
	sf, _, err := c.Login(Targeting{}, filepath.Join(t.TempDir(), user+".session"), user, role, pw)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return sf
}

// editUser changes a user's record on every HSM behind the engine's back:
// what another client, a repair or an HSM-side event may leave.
func editUser(t *testing.T, c *Client, name string, edit func(u *state.User) *state.User) {
	t.Helper()
	for _, info := range c.Cluster.HSMs {
		h, err := c.Store.Begin(info.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		u, err := h.User(name)
		if err != nil || u == nil {
			t.Fatalf("%s on %s: %v", name, info.ID, err)
		}
		if nu := edit(u); nu == nil {
			err = h.DeleteUser(name)
		} else {
			err = h.PutUser(nu)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

var walkPrincipals = []principal{
	{name: "admin", activated: true, effective: policy.Admin, make: func(t *testing.T, c *Client) who {
		return who{auth: login(t, c, "admin", policy.Admin, "Admin-pass1"), user: "admin", self: policy.Admin}
	}},
	{name: "crypto-user", activated: true, effective: policy.CryptoUser, make: func(t *testing.T, c *Client) who {
		return who{auth: login(t, c, "cu1", policy.CryptoUser, "Some-pass1"), user: "cu1", self: policy.CryptoUser}
	}},
	{name: "appliance", activated: true, effective: policy.Appliance, make: func(t *testing.T, c *Client) who {
		// The appliance user never logs in; it acts inside the cluster.
		return who{auth: Fixed{User: "app_user"}, user: "app_user", self: policy.Appliance}
	}},
	{name: "unactivated-admin", effective: policy.Unactivated, make: func(t *testing.T, c *Client) who {
		return who{auth: login(t, c, "admin", policy.Admin, DefaultPrecoPassword), user: "admin", self: policy.Admin}
	}},
	{name: "unauthenticated", activated: true, effective: policy.Unauthenticated, make: func(t *testing.T, c *Client) who {
		return who{auth: Nobody{}, self: policy.CryptoUser}
	}},
	{name: "aws-account", activated: true, effective: policy.Account, make: func(t *testing.T, c *Client) who {
		return who{auth: Account{}, self: policy.CryptoUser}
	}},
	{name: "locked-admin", activated: true, effective: policy.Unauthenticated, make: func(t *testing.T, c *Client) who {
		sf := login(t, c, "admin2", policy.Admin, "Some-pass1")
		for range MaxFailures {
			_, _, _ = c.ListUsers(&PIN{User: "admin2", Password: "Wrong-pass1", Role: policy.Admin})
		}
		return who{auth: sf, user: "admin2", self: policy.Admin}
	}},
	{name: "locked-crypto-user", activated: true, effective: policy.Unauthenticated, make: func(t *testing.T, c *Client) who {
		sf := login(t, c, "cu1", policy.CryptoUser, "Some-pass1")
		editUser(t, c, "cu1", func(u *state.User) *state.User { u.Failures = MaxFailures; return u })
		return who{auth: sf, user: "cu1", self: policy.CryptoUser}
	}},
	{name: "demoted-since-login", activated: true, effective: policy.CryptoUser, make: func(t *testing.T, c *Client) who {
		sf := login(t, c, "admin2", policy.Admin, "Some-pass1")
		editUser(t, c, "admin2", func(u *state.User) *state.User { u.Role = string(policy.CryptoUser); return u })
		return who{auth: sf, user: "admin2", self: policy.CryptoUser}
	}},
	{name: "deleted-since-login", activated: true, effective: policy.Unauthenticated, gone: true, make: func(t *testing.T, c *Client) who {
		sf := login(t, c, "admin2", policy.Admin, "Some-pass1")
		editUser(t, c, "admin2", func(*state.User) *state.User { return nil })
		return who{auth: sf, user: "admin2", self: policy.Admin}
	}},
}

// TestGateWalk walks every engine operation as every principal — each role
// of the table, the AWS account, and sessions whose user was locked,
// demoted or deleted since they logged in — on a real cluster, and checks
// the outcome against the permission table: allowed where the principal's
// current role may, refused by the gate where it may not.
func TestGateWalk(t *testing.T) {
	table := policy.CloudHSM
	for _, op := range table.Ops {
		run, ok := engineOps[op]
		if !ok {
			switch op {
			case policy.Login, policy.Logout, policy.InitCluster, policy.SetClock:
				continue // proven by their own tests
			case policy.MaskedObjects:
				continue // the appliance user's, inside a repair (TestRepair)
			}
			t.Errorf("operation %q of the table has no engine operation in the walk", op)
			continue
		}
		for _, pr := range walkPrincipals {
			t.Run(string(op)+"/"+pr.name, func(t *testing.T) {
				c := newTestCluster(t, 2, pr.activated)
				w := pr.make(t, c)
				err := run(c, w)
				allowed := table.Allowed(pr.effective, op)
				var denied *policy.Denied
				var lockedErr *LockedError
				switch {
				case allowed && err != nil:
					t.Fatalf("allowed by the table for %s, but: %v", pr.effective, err)
				case !allowed && err == nil:
					t.Fatalf("refused by the table for %s, but the engine did it", pr.effective)
				case !allowed && pr.gone:
					if !strings.Contains(err.Error(), "no longer exists") {
						t.Fatalf("refused, but not because the user is gone: %v", err)
					}
				case !allowed && pr.effective == policy.Unauthenticated && pr.name != "unauthenticated":
					if !errors.As(err, &lockedErr) {
						t.Fatalf("refused, but not because the user is locked: %v", err)
					}
				case !allowed && !errors.As(err, &denied):
					t.Fatalf("refused by the table, but the engine said %v", err)
				}
			})
		}
	}
}

// TestCreateRoleValidated: only the roles a user may be created with are
// assigned, whatever the caller passes.
func TestCreateRoleValidated(t *testing.T) {
	c := newTestCluster(t, 1, true)
	admin := login(t, c, "admin", policy.Admin, "Admin-pass1")
	for _, r := range []policy.Role{"root", policy.Appliance, policy.Unactivated, policy.Unauthenticated, policy.Account, ""} {
		if _, err := c.CreateUser(Targeting{}, admin, "x", r, "Some-pass1", nil); err == nil || !strings.Contains(err.Error(), "cannot be given to a user") {
			t.Errorf("role %q: %v", r, err)
		}
	}
}

func FuzzParsePIN(f *testing.F) {
	f.Add("admin:Admin-pass1", "admin")
	f.Add("a:", "CU")
	f.Add(":x", "crypto-user")
	f.Fuzz(func(t *testing.T, pin, role string) {
		p, err := ParsePIN(pin, role)
		if err != nil {
			return
		}
		if _, err := policy.NormalizeUsername(p.User); err != nil || !strings.HasPrefix(strings.ToLower(pin), p.User+":") {
			t.Fatalf("accepted %q as user %q", pin, p.User)
		}
	})
}

func FuzzClockAndKDF(f *testing.F) {
	f.Add("2026-11-22T10:00:00Z", "t=3,m=65536,p=4")
	f.Add("1700000000", "test")
	f.Add("", "t=0,m=1,p=0")
	f.Fuzz(func(t *testing.T, now, kdf string) {
		if at, err := simclock.Parse(now); err == nil {
			_ = (&simclock.Clock{Mode: simclock.Fixed, At: at}).Now()
		}
		if k, err := ParseKDF(kdf); err == nil && (k.Time < 1 || k.Threads < 1 || k.MemoryKiB < 8*uint32(k.Threads)) {
			t.Fatalf("accepted a cost argon2 cannot run: %+v", k)
		}
	})
}
