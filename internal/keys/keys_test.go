package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The openssl keys are made once: RSA key generation is the slow part.
var (
	fixturesOnce sync.Once
	fixturesDir  string
	fixturesErr  error
)

const testPass = "correct horse"

func fixtures(t testing.TB) string {
	t.Helper()
	fixturesOnce.Do(func() {
		if _, err := exec.LookPath("openssl"); err != nil {
			fixturesErr = errors.New("openssl is needed for the interop tests (apt-get install openssl)")
			return
		}
		fixturesDir, fixturesErr = os.MkdirTemp("", "keys-test")
		if fixturesErr != nil {
			return
		}
		cmds := [][]string{
			{"genrsa", "-out", "pkcs8.pem", "2048"},
			{"genrsa", "-traditional", "-out", "pkcs1.pem", "2048"},
			{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-aes-256-cbc", "-pass", "pass:" + testPass, "-out", "enc.pem"},
			{"genrsa", "-out", "rsa1024.pem", "1024"},
			{"genrsa", "-out", "rsa3072.pem", "3072"},
			{"genrsa", "-traditional", "-aes256", "-passout", "pass:" + testPass, "-out", "legacy.pem", "2048"},
			{"ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.pem"},
			{"genpkey", "-algorithm", "ed25519", "-out", "ed25519.pem"},
			{"pkey", "-in", "pkcs8.pem", "-pubout", "-out", "pkcs8.pub"},
			{"rsa", "-in", "pkcs8.pem", "-RSAPublicKey_out", "-out", "pkcs8.rsapub"},
			{"pkey", "-in", "pkcs8.pem", "-pubout", "-outform", "DER", "-out", "pkcs8.pub.der"},
			{"pkey", "-in", "rsa1024.pem", "-pubout", "-out", "rsa1024.pub"},
			{"pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub"},
		}
		for _, c := range cmds {
			cmd := exec.Command("openssl", c...)
			cmd.Dir = fixturesDir
			if out, err := cmd.CombinedOutput(); err != nil {
				fixturesErr = errors.New("openssl " + strings.Join(c, " ") + ": " + err.Error() + "\n" + string(out))
				return
			}
		}
	})
	if fixturesErr != nil {
		t.Fatal(fixturesErr)
	}
	return fixturesDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixturesDir != "" {
		os.RemoveAll(fixturesDir)
	}
	os.Exit(code)
}

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openssl(t testing.TB, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = fixtures(t)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errors.New(err.Error() + ": " + stderr.String())
	}
	return out, nil
}

func passFunc(calls *int, pass string) func() ([]byte, error) {
	return func() ([]byte, error) {
		*calls++
		return []byte(pass), nil
	}
}

func TestLoadPrivateKeyOpenSSLFormats(t *testing.T) {
	want, err := LoadPublicKey("pkcs8.pub", read(t, "pkcs8.pub"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file      string
		wantCalls int
	}{
		{"pkcs8.pem", 0},
		{"pkcs1.pem", 0},
		{"enc.pem", 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			calls := 0
			k, err := LoadPrivateKey(tc.file, read(t, tc.file), passFunc(&calls, testPass))
			if err != nil {
				t.Fatal(err)
			}
			if calls != tc.wantCalls {
				t.Errorf("passphrase called %d times, want %d", calls, tc.wantCalls)
			}
			if k.N.BitLen() != 2048 {
				t.Errorf("bits = %d", k.N.BitLen())
			}
			if tc.file == "pkcs8.pem" && !k.PublicKey.Equal(want) {
				t.Error("public key from openssl pkey -pubout differs")
			}
		})
	}
}

func TestLoadPublicKeyFormats(t *testing.T) {
	spki, err := LoadPublicKey("pkcs8.pub", read(t, "pkcs8.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pkcs1, err := LoadPublicKey("pkcs8.rsapub", read(t, "pkcs8.rsapub"))
	if err != nil {
		t.Fatal(err)
	}
	if !spki.Equal(pkcs1) {
		t.Error("SPKI and PKCS#1 forms of the same key differ")
	}
	sum := sha256.Sum256(read(t, "pkcs8.pub.der"))
	if got := Fingerprint(spki); got != hex.EncodeToString(sum[:]) {
		t.Errorf("Fingerprint = %s, want sha256 of openssl's DER %x", got, sum)
	}
	again, err := LoadPublicKey("m", MarshalPublicKeyPEM(spki))
	if err != nil || !again.Equal(spki) {
		t.Fatalf("MarshalPublicKeyPEM round trip: %v", err)
	}
	if !bytes.Equal(MarshalPublicKeyPEM(spki), read(t, "pkcs8.pub")) {
		t.Error("MarshalPublicKeyPEM differs from openssl pkey -pubout")
	}
}

func TestLoadRefusals(t *testing.T) {
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})
	garbled := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	for _, tc := range []struct {
		name    string
		data    []byte
		pass    func() ([]byte, error)
		public  bool
		wantIs  error
		wantMsg string
	}{
		{name: "empty", data: nil, wantIs: ErrNoPEM, wantMsg: "empty: no PEM block found"},
		{name: "text", data: []byte("hello\n"), wantIs: ErrNoPEM},
		{name: "cert", data: certPEM, wantIs: ErrWrongType, wantMsg: `cert: wrong PEM type "CERTIFICATE"`},
		{name: "garbled", data: garbled, wantMsg: "garbled: PRIVATE KEY: "},
		{name: "pub-as-priv", data: read(t, "pkcs8.pub"), wantIs: ErrWrongType, wantMsg: "this is a public key"},
		{name: "priv-as-pub", data: read(t, "pkcs8.pem"), public: true, wantIs: ErrWrongType, wantMsg: "this is a private key"},
		{name: "rsa1024", data: read(t, "rsa1024.pem"), wantIs: ErrNotRSA2048, wantMsg: "rsa1024: not an RSA-2048 key: the key is RSA-1024"},
		{name: "rsa3072", data: read(t, "rsa3072.pem"), wantIs: ErrNotRSA2048, wantMsg: "RSA-3072"},
		{name: "rsa1024.pub", data: read(t, "rsa1024.pub"), public: true, wantIs: ErrNotRSA2048},
		{name: "ec", data: read(t, "ec.pem"), wantIs: ErrNotRSA, wantMsg: "ec: not an RSA key: EC PRIVATE KEY"},
		{name: "ec.pub", data: read(t, "ec.pub"), public: true, wantIs: ErrNotRSA, wantMsg: "ECDSA key"},
		{name: "ed25519", data: read(t, "ed25519.pem"), wantIs: ErrNotRSA, wantMsg: "ED25519 key"},
		{name: "legacy", data: read(t, "legacy.pem"), wantMsg: "legacy encrypted PEM"},
		{name: "enc-nopass", data: read(t, "enc.pem"), wantIs: ErrNeedPassphrase},
		{name: "enc-wrong", data: read(t, "enc.pem"), pass: func() ([]byte, error) { return []byte("wrong"), nil }, wantIs: ErrWrongPassphrase, wantMsg: "enc-wrong: wrong passphrase"},
		{name: "enc-empty", data: read(t, "enc.pem"), pass: func() ([]byte, error) { return nil, nil }, wantMsg: "empty passphrase"},
		{name: "enc-err", data: read(t, "enc.pem"), pass: func() ([]byte, error) { return nil, errors.New("no tty") }, wantMsg: "no tty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.public {
				_, err = LoadPublicKey(tc.name, tc.data)
			} else {
				_, err = LoadPrivateKey(tc.name, tc.data, tc.pass)
			}
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q is not %q", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tc.wantMsg)
			}
			if tc.name != "enc-err" && !strings.HasPrefix(err.Error(), tc.name+": ") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestSignMatchesOpenSSL(t *testing.T) {
	for _, file := range []string{"pkcs8.pem", "pkcs1.pem"} {
		key, err := LoadPrivateKey(file, read(t, file), nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			token := make([]byte, 32)
			rand.Read(token)
			if i == 0 {
				sum := sha256.Sum256([]byte("approval data"))
				token = sum[:]
			}
			sig, err := Sign(key, token)
			if err != nil {
				t.Fatal(err)
			}
			want, err := openssl(t, token, "pkeyutl", "-sign", "-inkey", file, "-pkeyopt", "digest:sha256")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sig, want) {
				t.Fatalf("%s: Sign differs from openssl pkeyutl -sign -pkeyopt digest:sha256", file)
			}
			if err := Verify(&key.PublicKey, token, sig); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestOpenSSLVerifiesSign(t *testing.T) {
	key, err := LoadPrivateKey("pkcs8.pem", read(t, "pkcs8.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	token := sha256.Sum256([]byte("x"))
	sig, err := Sign(key, token[:])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sigFile := filepath.Join(dir, "sig.bin")
	if err := os.WriteFile(sigFile, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := openssl(t, token[:], "pkeyutl", "-verify", "-pubin", "-inkey", "pkcs8.pub", "-pkeyopt", "digest:sha256", "-sigfile", sigFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl says %q", out)
	}
}

func TestSignRefusesNon32Bytes(t *testing.T) {
	key, err := LoadPrivateKey("pkcs8.pem", read(t, "pkcs8.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 31, 33, 64} {
		in := make([]byte, n)
		if _, err := Sign(key, in); err == nil {
			t.Errorf("Sign accepted %d bytes", n)
		}
		// openssl refuses it too: that is the behaviour we copy.
		if _, err := openssl(t, in, "pkeyutl", "-sign", "-inkey", "pkcs8.pem", "-pkeyopt", "digest:sha256"); err == nil {
			t.Errorf("openssl accepted %d bytes; the contract assumed it refuses", n)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	key, err := LoadPrivateKey("pkcs8.pem", read(t, "pkcs8.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadPrivateKey("pkcs1.pem", read(t, "pkcs1.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	token := sha256.Sum256([]byte("t"))
	sig, _ := Sign(key, token[:])
	token2 := sha256.Sum256([]byte("u"))
	tampered := bytes.Clone(sig)
	tampered[100] ^= 1
	for name, err := range map[string]error{
		"other key":   Verify(&other.PublicKey, token[:], sig),
		"other token": Verify(&key.PublicKey, token2[:], sig),
		"tampered":    Verify(&key.PublicKey, token[:], tampered),
		"short sig":   Verify(&key.PublicKey, token[:], sig[:255]),
		"short token": Verify(&key.PublicKey, token[:31], sig),
	} {
		if err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestMarshalPrivateKeyPEM(t *testing.T) {
	key, err := LoadPrivateKey("pkcs8.pem", read(t, "pkcs8.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := MarshalPrivateKeyPEM(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, read(t, "pkcs8.pem")) {
		t.Error("unencrypted PKCS#8 differs from openssl genrsa's")
	}
	enc, err := MarshalPrivateKeyPEM(key, []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")) {
		t.Fatalf("encrypted key starts %q", enc[:40])
	}
	calls := 0
	back, err := LoadPrivateKey("enc", enc, passFunc(&calls, testPass))
	if err != nil || !back.Equal(key) {
		t.Fatalf("round trip: %v", err)
	}
	// openssl must read what we write.
	out, err := openssl(t, enc, "pkey", "-passin", "pass:"+testPass, "-pubout")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, MarshalPublicKeyPEM(&key.PublicKey)) {
		t.Error("openssl decrypted another key")
	}
}

func TestGenerateKey(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := RequireRSA2048(&k.PublicKey); err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	if _, err := LoadPublicKey("x", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); !errors.Is(err, ErrNotRSA) {
		t.Errorf("EC public key: %v", err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(small, make([]byte, 32)); !errors.Is(err, ErrNotRSA2048) {
		t.Errorf("Sign with RSA-1024: %v", err)
	}
}

func BenchmarkSign(b *testing.B) {
	key, err := LoadPrivateKey("pkcs8.pem", read(b, "pkcs8.pem"), nil)
	if err != nil {
		b.Fatal(err)
	}
	token := sha256.Sum256([]byte("bench"))
	for b.Loop() {
		if _, err := Sign(key, token[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzLoadPrivateKey(f *testing.F) {
	for _, name := range []string{"pkcs8.pem", "pkcs1.pem", "enc.pem", "ec.pem", "rsa1024.pem", "legacy.pem"} {
		f.Add(read(f, name))
	}
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := LoadPrivateKey("f", data, func() ([]byte, error) { return []byte(testPass), nil })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if k.N.BitLen() != Bits {
			t.Fatalf("accepted a %d-bit key", k.N.BitLen())
		}
	})
}

func FuzzLoadPublicKey(f *testing.F) {
	for _, name := range []string{"pkcs8.pub", "pkcs8.rsapub", "rsa1024.pub", "ec.pub", "pkcs8.pem"} {
		f.Add(read(f, name))
	}
	f.Add([]byte("-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := LoadPublicKey("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if pub.N.BitLen() != Bits {
			t.Fatalf("accepted a %d-bit key", pub.N.BitLen())
		}
		if _, err := LoadPublicKey("g", MarshalPublicKeyPEM(pub)); err != nil {
			t.Fatalf("cannot reload what was accepted: %v", err)
		}
	})
}
