package hsm

import (
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

// principals: who acts as each role of the table.
var principals = map[policy.Role]Authenticator{
	policy.Admin:           Fixed{User: "admin", Role: policy.Admin, Session: "session-admin"},
	policy.CryptoUser:      Fixed{User: "cu1", Role: policy.CryptoUser, Session: "session-cu1"},
	policy.Appliance:       Fixed{User: "app_user", Role: policy.Appliance, Session: "session-au"},
	policy.Unactivated:     Fixed{User: "admin", Role: policy.Unactivated, Session: "session-preco"},
	policy.Unauthenticated: Nobody{},
}

// selfRole is the role a principal changes its own password as.
var selfRole = map[policy.Role]policy.Role{
	policy.Admin: policy.Admin, policy.CryptoUser: policy.CryptoUser, policy.Appliance: policy.Appliance,
	policy.Unactivated: policy.Admin, policy.Unauthenticated: policy.CryptoUser,
}

// engineOps run each operation of the table that the engine implements.
var engineOps = map[policy.Op]func(c *Client, role policy.Role, auth Authenticator) error{
	policy.ClusterInfo: func(c *Client, _ policy.Role, auth Authenticator) error {
		_, err := c.ListHSMs(auth)
		return err
	},
	policy.Zeroize: func(c *Client, _ policy.Role, auth Authenticator) error {
		return c.Zeroize(auth, c.Cluster.HSMs[0].ID)
	},
	policy.ChangeOwnPassword: func(c *Client, role policy.Role, auth Authenticator) error {
		p, _ := auth.On(nil, nil)
		name := p.User
		if name == "" {
			name = "cu1"
		}
		_, err := c.ChangePassword(Targeting{}, auth, name, selfRole[role], "Own-newpass1", nil)
		return err
	},
	policy.ChangeAnyPassword: func(c *Client, _ policy.Role, auth Authenticator) error {
		_, err := c.ChangePassword(Targeting{}, auth, "victim", policy.CryptoUser, "Their-newpass1", nil)
		return err
	},
	policy.ManageUsers: func(c *Client, _ policy.Role, auth Authenticator) error {
		if _, err := c.CreateUser(Targeting{}, auth, "newbie", policy.CryptoUser, "Newbie-pass1", nil); err != nil {
			return err
		}
		_, err := c.DeleteUser(Targeting{}, auth, "victim", policy.CryptoUser, nil)
		return err
	},
	policy.ListUsers: func(c *Client, _ policy.Role, auth Authenticator) error {
		_, _, err := c.ListUsers(auth)
		return err
	},
	policy.QuorumToken: func(c *Client, _ policy.Role, auth Authenticator) error {
		_, err := c.GenerateToken(Targeting{}, auth, ServiceUser, filepath.Join(filepath.Dir(c.Config.Path), "t.token"))
		if err != nil {
			return err
		}
		_, err = c.DeleteTokens(Targeting{}, auth, "all")
		return err
	},
	policy.QuorumPolicyRead: func(c *Client, _ policy.Role, auth Authenticator) error {
		if _, _, err := c.QuorumPolicy(); err != nil {
			return err
		}
		_, _, err := c.ListTokens(auth)
		return err
	},
	policy.QuorumPolicyWrite: func(c *Client, _ policy.Role, auth Authenticator) error {
		if _, err := c.SetTimeouts(Targeting{}, auth, 900, 0); err != nil {
			return err
		}
		_, err := c.SetQuorumValue(Targeting{}, auth, ServiceUser, 1, nil)
		return err
	},
	policy.RegisterQuorumKey: func(c *Client, _ policy.Role, auth Authenticator) error {
		// The registration token is the admin's; a refused role is refused
		// by the table before the token is looked at.
		admin := principals[policy.Admin]
		if c.Cluster.HSMs != nil && adminMissing(c) {
			return errors.New("fixture has no activated admin")
		}
		path := filepath.Join(filepath.Dir(c.Config.Path), "reg.json")
		if _, err := c.GenerateToken(Targeting{}, admin, ServiceRegistration, path); err != nil {
			return err
		}
		key := testKey()
		data, _ := os.ReadFile(path)
		rf, err := quorum.ParseRegistrationFile(path, data)
		if err != nil {
			return err
		}
		if err := rf.Sign(key); err != nil {
			return err
		}
		_, err = c.RegisterQuorumKey(Targeting{}, auth, "k.pub", keys.MarshalPublicKeyPEM(&key.PublicKey), path, rf.Marshal())
		return err
	},
	policy.SyncStatus: func(c *Client, _ policy.Role, auth Authenticator) error {
		_, err := c.SyncStatus(auth)
		return err
	},
	policy.SyncUsers: func(c *Client, _ policy.Role, auth Authenticator) error {
		_, _, _, err := c.Repair(auth, nil)
		return err
	},
}

// needsActivated lists operations whose allowed case needs an activated
// admin in the fixture even when acting as another role.
var needsActivated = map[policy.Op]bool{policy.RegisterQuorumKey: true}

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

// TestPermissionTableCells walks every cell: each operation the engine has,
// as each role and unauthenticated, on a real cluster, checking both the
// allowed and the refused. Operations not implemented yet are checked in
// the table alone (package policy pins every cell).
func TestPermissionTableCells(t *testing.T) {
	table := policy.CloudHSM
	for _, op := range table.Ops {
		run, ok := engineOps[op]
		if !ok {
			continue
		}
		for _, role := range table.Roles {
			t.Run(string(op)+"/"+string(role), func(t *testing.T) {
				c := newTestCluster(t, 2, role != policy.Unactivated || needsActivated[op])
				err := run(c, role, principals[role])
				var denied *policy.Denied
				if table.Allowed(role, op) {
					if err != nil {
						t.Fatalf("allowed by the table, but: %v", err)
					}
				} else if !errors.As(err, &denied) {
					t.Fatalf("refused by the table, but the engine said %v", err)
				}
			})
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
		if _, err := NormalizeUsername(p.User); err != nil || !strings.HasPrefix(strings.ToLower(pin), p.User+":") {
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
