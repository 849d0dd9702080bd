package hsm

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/keys"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/quorum"
)

// quorumFixture: a 3-HSM cluster, admins admin, admin2, admin3 with
// registered keys, the user service's quorum value at 2, admin logged in.
type quorumFixture struct {
	t       *testing.T
	c       *Client
	dir     string
	now     time.Time
	keys    map[string]*rsa.PrivateKey
	session map[string]*SessionFile
}

var fixtureKeys = map[string]*rsa.PrivateKey{}

func fixtureKey(t testing.TB, name string) *rsa.PrivateKey {
	if k, ok := fixtureKeys[name]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fixtureKeys[name] = k
	return k
}

func newQuorumFixture(t *testing.T) *quorumFixture {
	f := &quorumFixture{t: t, now: testNow, keys: map[string]*rsa.PrivateKey{}, session: map[string]*SessionFile{}}
	f.c = newTestCluster(t, 3, true)
	f.c.opts.Now = func() time.Time { return f.now }
	f.dir = t.TempDir()
	admin := Fixed{User: "admin", Role: policy.Admin}
	for _, name := range []string{"admin3"} {
		if _, err := f.c.CreateUser(Targeting{}, admin, name, policy.Admin, "Some-pass1", nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"admin", "admin2", "admin3"} {
		f.login(name)
		f.keys[name] = fixtureKey(t, name)
		f.register(name, f.keys[name])
	}
	if _, err := f.c.SetQuorumValue(Targeting{}, f.session["admin"], ServiceUser, 2, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *quorumFixture) login(name string) *SessionFile {
	f.t.Helper()
	pw := "Admin-pass1"
	if name != "admin" {
		pw = "Some-pass1"
	}
	sf, _, err := f.c.Login(Targeting{}, filepath.Join(f.dir, name+"-"+f.now.Format("150405")+".session"), name, policy.Admin, pw)
	if err != nil {
		f.t.Fatal(err)
	}
	f.session[name] = sf
	return sf
}

func (f *quorumFixture) register(name string, key *rsa.PrivateKey) error {
	f.t.Helper()
	path := filepath.Join(f.dir, name+".reg")
	if _, err := f.c.GenerateToken(Targeting{}, f.session[name], ServiceRegistration, path); err != nil {
		f.t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	rf, err := quorum.ParseRegistrationFile(path, data)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := rf.Sign(key); err != nil {
		f.t.Fatal(err)
	}
	_, err = f.c.RegisterQuorumKey(Targeting{}, f.session[name], name+".pub", keys.MarshalPublicKeyPEM(&key.PublicKey), path, rf.Marshal())
	return err
}

// token generates a user token for admin and returns it parsed.
func (f *quorumFixture) token(service string) *quorum.TokenFile {
	f.t.Helper()
	path := filepath.Join(f.dir, "t-"+service+f.now.Format("150405.000000000"))
	if _, err := f.c.GenerateToken(Targeting{}, f.session["admin"], service, path); err != nil {
		f.t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	tf, err := quorum.ParseTokenFile(path, data)
	if err != nil {
		f.t.Fatal(err)
	}
	return tf
}

func (f *quorumFixture) create(name string, tf *quorum.TokenFile) error {
	f.t.Helper()
	var a *Approval
	if tf != nil {
		a = &Approval{Path: "approval.token", Data: tf.Marshal()}
	}
	_, err := f.c.CreateUser(Targeting{}, f.session["admin"], name, policy.CryptoUser, "User-pass1", a)
	return err
}

func TestTokenHasOneRecordPerHSM(t *testing.T) {
	f := newQuorumFixture(t)
	tf := f.token(ServiceUser)
	recs, err := tf.Records()
	if err != nil {
		t.Fatal(err)
	}
	if len(tf.ApprovalData) != 3*quorum.RecordSize || len(recs) != 3 {
		t.Fatalf("%d bytes, %d records; want 3 records of 80 bytes", len(tf.ApprovalData), len(recs))
	}
	seen := map[[16]byte]bool{}
	for _, r := range recs {
		if r.Version != 1 || r.Service != quorum.ServiceUser || r.Username != "admin" || !r.Created.Equal(f.now) || r.TokenID == 0 {
			t.Errorf("record %+v", r)
		}
		if seen[r.Nonce] {
			t.Error("nonce repeated across HSMs")
		}
		seen[r.Nonce] = true
	}
}

// TestQuorumRefusals: every way a quorum can be cheated or broken is
// refused, with a message that says which, and nothing is created.
func TestQuorumRefusals(t *testing.T) {
	other := fixtureKey(t, "mallory")
	for _, tc := range []struct {
		name string
		run  func(f *quorumFixture) error
		want string
	}{
		{"no approval", func(f *quorumFixture) error { return f.create("u", nil) },
			"Quorum approval is required for this operation"},
		{"signature by an unregistered user", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin2", f.keys["admin2"])
			tf.Sign("carol", other)
			return f.create("u", tf)
		}, "carol"},
		{"signature by a key that is not that user's", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin", f.keys["admin"])
			tf.Sign("admin2", f.keys["admin3"])
			return f.create("u", tf)
		}, "admin2"},
		{"signature over another token", func(f *quorumFixture) error {
			first := f.token(ServiceUser)
			first.Sign("admin2", f.keys["admin2"])
			f.c.DeleteTokens(Targeting{}, f.session["admin"], "user")
			tf := f.token(ServiceUser)
			tf.Sign("admin", f.keys["admin"])
			tf.Signatures = append(tf.Signatures, quorum.Signature{Username: "admin2", Signature: first.Signatures[0].Signature})
			return f.create("u", tf)
		}, "does not verify"},
		{"tampered approval_data, token recomputed", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			recs, _ := tf.Records()
			recs[0].Nonce[0] ^= 1
			forged := quorum.NewTokenFile(recs)
			forged.Sign("admin", f.keys["admin"])
			forged.Sign("admin2", f.keys["admin2"])
			return f.create("u", forged)
		}, "no HSM holds a token matching"},
		{"tampered approval_data, token kept", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.ApprovalData[20] ^= 1
			_, err := f.c.CreateUser(Targeting{}, f.session["admin"], "u", policy.CryptoUser, "User-pass1",
				&Approval{Path: "approval.token", Data: tf.Marshal()})
			return err
		}, "token"},
		{"the same approver twice counts once", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin2", f.keys["admin2"])
			tf.Signatures = append(tf.Signatures, tf.Signatures[0])
			return f.create("u", tf)
		}, "1 of 2 approvals"},
		{"too few approvals", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin", f.keys["admin"])
			return f.create("u", tf)
		}, "1 of 2 approvals ([admin])"},
		{"expired token", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin", f.keys["admin"])
			tf.Sign("admin2", f.keys["admin2"])
			f.now = f.now.Add(601 * time.Second)
			return f.create("u", tf)
		}, "expired at 2026-11-22T10:10:00Z"},
		{"token replayed after use", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin", f.keys["admin"])
			tf.Sign("admin2", f.keys["admin2"])
			if err := f.create("first", tf); err != nil {
				return errors.New("first use failed: " + err.Error())
			}
			return f.create("u", tf)
		}, "was already used"},
		{"token from another session", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin", f.keys["admin"])
			tf.Sign("admin2", f.keys["admin2"])
			f.now = f.now.Add(time.Second)
			f.c.Logout(f.session["admin"])
			f.login("admin")
			f.c.Logout(f.session["admin"])
			f.session["admin"] = nil
			f.login("admin")
			return f.create("u", tf)
		}, "no HSM holds a token matching"},
		{"token after logout", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin", f.keys["admin"])
			tf.Sign("admin2", f.keys["admin2"])
			f.c.Logout(f.session["admin"])
			f.now = f.now.Add(time.Second)
			f.login("admin")
			return f.create("u", tf)
		}, "its session ended"},
		{"token of a second live session", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin", f.keys["admin"])
			tf.Sign("admin2", f.keys["admin2"])
			f.now = f.now.Add(time.Second)
			f.login("admin") // a second session file; the first stays open
			return f.create("u", tf)
		}, "generated in another login session"},
		{"token used on one of the HSMs it covers (--server)", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin", f.keys["admin"])
			tf.Sign("admin2", f.keys["admin2"])
			_, err := f.c.CreateUser(Targeting{Server: f.c.Cluster.HSMs[0].ID}, f.session["admin"], "u", policy.CryptoUser, "User-pass1",
				&Approval{Path: "approval.token", Data: tf.Marshal()})
			return err
		}, "was generated on 3 HSMs and this operation reaches 1; a token approves one operation on every HSM it covers"},
		{"token used with --allow-partial while an HSM it covers is down", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			tf.Sign("admin", f.keys["admin"])
			tf.Sign("admin2", f.keys["admin2"])
			if err := f.c.SetReachable(f.c.Cluster.HSMs[2].ID, false); err != nil {
				return err
			}
			_, err := f.c.CreateUser(Targeting{AllowPartial: true}, f.session["admin"], "u", policy.CryptoUser, "User-pass1",
				&Approval{Path: "approval.token", Data: tf.Marshal()})
			return err
		}, "was generated on 3 HSMs and this operation reaches 2"},
		{"token for another service", func(f *quorumFixture) error {
			tf := f.token(ServiceQuorum)
			tf.Sign("admin", f.keys["admin"])
			tf.Sign("admin2", f.keys["admin2"])
			return f.create("u", tf)
		}, "is for the quorum service, not user"},
		{"quorum value above the admins with keys", func(f *quorumFixture) error {
			tf := f.token(ServiceQuorum)
			tf.Sign("admin", f.keys["admin"])
			tf.Sign("admin2", f.keys["admin2"])
			_, err := f.c.SetQuorumValue(Targeting{}, f.session["admin"], ServiceUser, 4, &Approval{Path: "q", Data: tf.Marshal()})
			return err
		}, "--value 4 is more than the 3 admin(s) with a registered quorum key"},
		{"key that is not RSA-2048", func(f *quorumFixture) error {
			small, _ := rsa.GenerateKey(rand.Reader, 1024)
			_, err := f.c.RegisterQuorumKey(Targeting{}, f.session["admin"], "small.pub", keys.MarshalPublicKeyPEM(&small.PublicKey), "r", []byte("{}"))
			return err
		}, "2048"},
		{"malformed JSON", func(f *quorumFixture) error {
			_, err := f.c.CreateUser(Targeting{}, f.session["admin"], "u", policy.CryptoUser, "User-pass1", &Approval{Path: "bad.token", Data: []byte(`{"version":"2.0",`)})
			return err
		}, "bad.token"},
		{"malformed base64", func(f *quorumFixture) error {
			tf := f.token(ServiceUser)
			data := strings.Replace(string(tf.Marshal()), base64.StdEncoding.EncodeToString(tf.Token), "!!!", 1)
			_, err := f.c.CreateUser(Targeting{}, f.session["admin"], "u", policy.CryptoUser, "User-pass1", &Approval{Path: "bad.token", Data: []byte(data)})
			return err
		}, "bad.token: token"},
		{"malformed PEM", func(f *quorumFixture) error {
			_, err := f.c.RegisterQuorumKey(Targeting{}, f.session["admin"], "bad.pub", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), "r", []byte("{}"))
			return err
		}, "bad.pub"},
		{"one-shot login cannot hold a token", func(f *quorumFixture) error {
			_, err := f.c.GenerateToken(Targeting{}, &PIN{User: "admin", Password: "Admin-pass1", Role: policy.Admin}, ServiceUser, filepath.Join(f.dir, "x"))
			return err
		}, "bound to a login session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newQuorumFixture(t)
			err := tc.run(f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to contain %q", err, tc.want)
			}
			users, _, lerr := f.c.ListUsers(Nobody{})
			if lerr != nil {
				t.Fatal(lerr)
			}
			for _, u := range users {
				if u.Username == "u" {
					t.Fatal("the refused operation created the user")
				}
			}
		})
	}
}

// TestQuorumApproves: the accepted path, and that the policy's own
// changes then need a quorum token.
func TestQuorumApproves(t *testing.T) {
	f := newQuorumFixture(t)
	tf := f.token(ServiceUser)
	tf.Sign("admin2", f.keys["admin2"])
	tf.Sign("admin3", f.keys["admin3"])
	if err := f.create("u", tf); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.SetQuorumValue(Targeting{}, f.session["admin"], ServiceQuorum, 2, nil); err != nil {
		t.Fatal(err)
	}
	_, err := f.c.SetQuorumValue(Targeting{}, f.session["admin"], ServiceUser, 3, nil)
	if !errors.Is(err, ErrQuorumRequired) {
		t.Fatalf("changing a value once the quorum service is on: %v", err)
	}
	q := f.token(ServiceQuorum)
	q.Sign("admin", f.keys["admin"])
	q.Sign("admin3", f.keys["admin3"])
	if _, err := f.c.SetQuorumValue(Targeting{}, f.session["admin"], ServiceUser, 3, &Approval{Path: "q", Data: q.Marshal()}); err != nil {
		t.Fatal(err)
	}
}

// TestDeleteKeepsApprovers: deleting admins may not leave fewer key holders
// than a quorum value, or nobody could approve that service again.
func TestDeleteKeepsApprovers(t *testing.T) {
	f := newQuorumFixture(t)
	for _, name := range []string{"admin2", "admin3"} {
		if _, _, err := f.c.Logout(f.session[name]); err != nil {
			t.Fatal(err)
		}
	}
	del := func(name string) error {
		tf := f.token(ServiceUser)
		tf.Sign("admin", f.keys["admin"])
		tf.Sign("admin2", f.keys["admin2"])
		_, err := f.c.DeleteUser(Targeting{}, f.session["admin"], name, policy.Admin, &Approval{Path: "approval.token", Data: tf.Marshal()})
		f.now = f.now.Add(time.Second)
		return err
	}
	if err := del("admin3"); err != nil {
		t.Fatalf("3 key holders, value 2: deleting one must pass: %v", err)
	}
	err := del("admin2")
	want := "deleting admin2 would leave 1 admin(s) with a registered quorum key, fewer than the user service's quorum value 2: nobody could approve it again"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v; want %q…", err, want)
	}
	users, _, err := f.c.ListUsers(Nobody{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(users, func(u UserView) bool { return u.Username == "admin2" }) {
		t.Fatal("admin2 was deleted")
	}
}
