// Package keys loads, checks and uses the RSA keys of quorum approvers.
//
// CloudHSM accepts only RSA-2048 quorum keys, and approvers sign with
// `openssl pkeyutl -sign -pkeyopt digest:sha256`, so Sign and Verify here are
// byte-for-byte that operation: PKCS #1 v1.5 with a SHA-256 DigestInfo wrapped
// around the 32 input bytes, which are taken as the digest, not hashed again.
package keys

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/youmark/pkcs8"
)

// Bits is the only RSA key size accepted (CloudHSM's rule for quorum keys).
const Bits = 2048

// DigestSize is the size of what Sign signs: a SHA-256 quorum token.
const DigestSize = sha256.Size

// Errors callers may test with errors.Is.
var (
	ErrNoPEM           = errors.New("no PEM block found")
	ErrWrongType       = errors.New("wrong PEM type")
	ErrNotRSA          = errors.New("not an RSA key")
	ErrNotRSA2048      = errors.New("not an RSA-2048 key")
	ErrWrongPassphrase = errors.New("wrong passphrase")
	ErrNeedPassphrase  = errors.New("key is encrypted and no passphrase was given")
)

// LoadPrivateKey parses an RSA-2048 private key in PEM: PKCS #1
// ("RSA PRIVATE KEY"), PKCS #8 ("PRIVATE KEY") or encrypted PKCS #8
// ("ENCRYPTED PRIVATE KEY"). passphrase is called only for an encrypted key
// and may be nil when none is available. name (usually the file name)
// prefixes every error.
func LoadPrivateKey(name string, pemBytes []byte, passphrase func() ([]byte, error)) (*rsa.PrivateKey, error) {
	block, err := firstBlock(name, pemBytes)
	if err != nil {
		return nil, err
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		if _, ok := block.Headers["Proc-Type"]; ok {
			return nil, fmt.Errorf("%s: legacy encrypted PEM (Proc-Type header) is not supported; convert it with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in %s -out NEW.pem", name, name)
		}
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: RSA PRIVATE KEY: %w", name, cleanErr(err))
		}
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: PRIVATE KEY: %w", name, cleanErr(err))
		}
	case "ENCRYPTED PRIVATE KEY":
		if passphrase == nil {
			return nil, fmt.Errorf("%s: %w", name, ErrNeedPassphrase)
		}
		pass, err := passphrase()
		if err != nil {
			return nil, err
		}
		if len(pass) == 0 {
			return nil, fmt.Errorf("%s: empty passphrase for an encrypted key", name)
		}
		key, err = pkcs8.ParsePKCS8PrivateKey(block.Bytes, pass)
		if err != nil {
			// The library reports a failed decryption as "incorrect password";
			// anything else is a structure or algorithm it cannot handle.
			if strings.Contains(err.Error(), "incorrect password") {
				return nil, fmt.Errorf("%s: %w (cannot decrypt the ENCRYPTED PRIVATE KEY)", name, ErrWrongPassphrase)
			}
			return nil, fmt.Errorf("%s: ENCRYPTED PRIVATE KEY: %w", name, cleanErr(err))
		}
	case "PUBLIC KEY", "RSA PUBLIC KEY":
		return nil, fmt.Errorf("%s: %w: this is a public key (%s); a private key is needed", name, ErrWrongType, block.Type)
	case "EC PRIVATE KEY", "DSA PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, fmt.Errorf("%s: %w: %s; quorum keys are RSA-2048", name, ErrNotRSA, block.Type)
	default:
		return nil, fmt.Errorf("%s: %w %q: want RSA PRIVATE KEY, PRIVATE KEY or ENCRYPTED PRIVATE KEY", name, ErrWrongType, block.Type)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %w: %s; quorum keys are RSA-2048", name, ErrNotRSA, keyKind(key))
	}
	if err := RequireRSA2048(&rk.PublicKey); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rk, nil
}

// LoadPublicKey parses an RSA-2048 public key in PEM: SubjectPublicKeyInfo
// ("PUBLIC KEY") or PKCS #1 ("RSA PUBLIC KEY").
func LoadPublicKey(name string, pemBytes []byte) (*rsa.PublicKey, error) {
	block, err := firstBlock(name, pemBytes)
	if err != nil {
		return nil, err
	}
	var key any
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "RSA PRIVATE KEY", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, fmt.Errorf("%s: %w: this is a private key (%s); give the public key (openssl pkey -pubout)", name, ErrWrongType, block.Type)
	default:
		return nil, fmt.Errorf("%s: %w %q: want PUBLIC KEY or RSA PUBLIC KEY", name, ErrWrongType, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", name, block.Type, cleanErr(err))
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: %w: %s; quorum keys are RSA-2048", name, ErrNotRSA, keyKind(key))
	}
	if err := RequireRSA2048(pub); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pub, nil
}

// RequireRSA2048 refuses any RSA key whose modulus is not exactly 2048 bits.
func RequireRSA2048(pub *rsa.PublicKey) error {
	if pub == nil || pub.N == nil {
		return fmt.Errorf("%w: no key", ErrNotRSA2048)
	}
	if n := pub.N.BitLen(); n != Bits {
		return fmt.Errorf("%w: the key is RSA-%d; quorum keys must be RSA-%d", ErrNotRSA2048, n, Bits)
	}
	return nil
}

// Sign signs a 32-byte token exactly as
// `openssl pkeyutl -sign -inkey KEY -pkeyopt digest:sha256 -in token.bin`:
// the token is the digest, wrapped in a SHA-256 DigestInfo, not hashed again.
// Like openssl, it refuses input that is not 32 bytes.
func Sign(key *rsa.PrivateKey, token []byte) ([]byte, error) {
	if len(token) != DigestSize {
		return nil, fmt.Errorf("input is %d bytes; a SHA-256 token is %d bytes", len(token), DigestSize)
	}
	if err := RequireRSA2048(&key.PublicKey); err != nil {
		return nil, err
	}
	// PKCS #1 v1.5 is deterministic: no randomness is needed or used.
	return rsa.SignPKCS1v15(nil, key, crypto.SHA256, token)
}

// Verify checks a signature made by Sign (or openssl pkeyutl) over token.
func Verify(pub *rsa.PublicKey, token, sig []byte) error {
	if len(token) != DigestSize {
		return fmt.Errorf("token is %d bytes, want %d", len(token), DigestSize)
	}
	if err := RequireRSA2048(pub); err != nil {
		return err
	}
	if len(sig) != Bits/8 {
		return fmt.Errorf("signature is %d bytes, want %d", len(sig), Bits/8)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, token, sig); err != nil {
		return errors.New("signature does not verify")
	}
	return nil
}

// Fingerprint identifies a public key: the hex SHA-256 of its
// SubjectPublicKeyInfo DER, the same as
// `openssl pkey -pubin -outform DER | sha256sum`.
func Fingerprint(pub *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only unsupported key types fail, and *rsa.PublicKey is supported.
		panic(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// MarshalPublicKeyPEM encodes pub as a SubjectPublicKeyInfo "PUBLIC KEY" PEM,
// what `openssl pkey -pubout` writes.
func MarshalPublicKeyPEM(pub *rsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // see Fingerprint
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// MarshalPrivateKeyPEM encodes key as PKCS #8 PEM; with a non-empty
// passphrase as encrypted PKCS #8 (PBES2: PBKDF2-HMAC-SHA256 and
// AES-256-CBC), which openssl reads.
func MarshalPrivateKeyPEM(key *rsa.PrivateKey, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
	der, err := pkcs8.MarshalPrivateKey(key, passphrase, &pkcs8.Opts{
		Cipher: pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{
			SaltSize:       16,
			IterationCount: 100000,
			HMACHash:       crypto.SHA256,
		},
	})
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}

// GenerateKey makes a new RSA-2048 key.
func GenerateKey() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, Bits)
}

func firstBlock(name string, data []byte) (*pem.Block, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: %w (is it a PEM key file?)", name, ErrNoPEM)
	}
	return block, nil
}

func keyKind(key any) string {
	switch key.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey:
		return "RSA"
	default:
		t := fmt.Sprintf("%T", key)
		t = strings.TrimPrefix(t, "*")
		if i := strings.IndexByte(t, '.'); i >= 0 {
			t = t[:i]
		}
		return strings.ToUpper(t) + " key"
	}
}

// cleanErr drops the "x509: " prefix, which names Go's package, not the
// problem.
func cleanErr(err error) error {
	msg := err.Error()
	if s, ok := strings.CutPrefix(msg, "x509: "); ok {
		return errors.New(s)
	}
	return err
}
