package kms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/statelock"
)

// connected makes a 2-HSM cluster with kmsuser, a connected store and one
// KMS key, through the engine and the service as hsm-kms does.
func connected(tb testing.TB) (*Service, *hsm.Client, KeyMetadata) {
	tb.Helper()
	dir := tb.TempDir()
	cfg := filepath.Join(dir, "cluster.yaml")
	if _, _, err := hsm.Init(hsm.InitOptions{StateDir: filepath.Join(dir, "st"), ConfigPath: cfg, HSMs: 2,
		AZs: []string{"us-east-1a", "us-east-1b"}, KDF: hsm.TestKDF}); err != nil {
		tb.Fatal(err)
	}
	opts := hsm.Options{LockWait: 10 * time.Second}
	open := func(p string) (*hsm.Client, error) { return hsm.Open(p, opts) }
	cl, err := open(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := cl.Activate(hsm.Targeting{}, "Admin-pass1"); err != nil {
		tb.Fatal(err)
	}
	admin := &hsm.PIN{User: "admin", Password: "Admin-pass1", Role: policy.Admin}
	if _, err := cl.CreateUser(hsm.Targeting{}, admin, KMSUser, policy.CryptoUser, "kmsPswd1", nil); err != nil {
		tb.Fatal(err)
	}
	anchor, err := cl.TrustAnchor()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Service{Acct: Account{Root: filepath.Join(dir, "kms"), ID: "111122223333", Region: "us-east-1", Seed: "1"},
		Config: cfg, Open: open, Wait: 10 * time.Second}
	id, err := s.CreateCustomKeyStore(CreateInput{Name: "bench", ClusterID: cl.Cluster.ID, TrustAnchor: anchor, Password: "kmsPswd1"})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.ConnectCustomKeyStore(id); err != nil {
		tb.Fatal(err)
	}
	k, err := s.CreateKey(CreateKeyInput{StoreID: id})
	if err != nil {
		tb.Fatal(err)
	}
	return s, cl, k
}

// TestConnectedRoundTrip: the service end to end in-process, so the
// benchmark's fixture is itself checked.
func TestConnectedRoundTrip(t *testing.T) {
	s, _, k := connected(t)
	enc, err := s.Encrypt(k.KeyID, []byte("hello"), map[string]string{"a": "b"}, "")
	if err != nil {
		t.Fatal(err)
	}
	dec, err := s.Decrypt(enc.CiphertextBlob, map[string]string{"a": "b"}, "", "")
	if err != nil || string(dec.Plaintext) != "hello" {
		t.Fatalf("decrypt: %q, %v", dec.Plaintext, err)
	}
	if _, err := s.Decrypt(enc.CiphertextBlob, nil, "", ""); err == nil {
		t.Fatal("decrypted without its encryption context")
	}
}

// BenchmarkKMS: Encrypt and Decrypt of 1 KiB through the service, beside
// their floor in the same binary: what a call cannot avoid (the account's
// lock and state read, one engine read of the key as kmsuser, AES-256-GCM).
func BenchmarkKMS(b *testing.B) {
	s, cl, k := connected(b)
	plain := make([]byte, 1024)
	b.Run("encrypt", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Encrypt(k.KeyID, plain, nil, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	enc, err := s.Encrypt(k.KeyID, plain, nil, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decrypt", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Decrypt(enc.CiphertextBlob, nil, "", ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	sf, err := hsm.LoadSession(s.Acct.sessionPath(k.CustomKeyStoreID))
	if err != nil || sf == nil {
		b.Fatal("no session", err)
	}
	ref, err := hsm.ParseRef(mustKey(b, s, k.KeyID).BackingRef)
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	blk, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(blk)
	nonce := make([]byte, 12)
	b.Run("floor", func(b *testing.B) {
		for b.Loop() {
			unlock, err := statelock.Acquire(s.Acct.dir(), time.Second, "bench", time.Second, nil)
			if err != nil {
				b.Fatal(err)
			}
			data, err := fileio.ReadFile(filepath.Join(s.Acct.dir(), dbName), maxDB)
			var d db
			if err == nil {
				err = json.Unmarshal(data, &d)
			}
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := cl.ListKeys(sf, hsm.KeyFilter{Ref: &ref}); err != nil {
				b.Fatal(err)
			}
			gcm.Seal(nil, nonce, plain, nil)
			unlock()
		}
	})
}

func mustKey(tb testing.TB, s *Service, id string) *Key {
	var k *Key
	err := s.run(func(d *db) (bool, error) {
		var err error
		k, err = s.key(d, "bench", id)
		return false, err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
