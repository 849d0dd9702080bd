package hsm

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// Using keys: each operation reads the key on one HSM of the client's
// config that holds it (the first, in the config's order), after the key
// availability check.

// KeyAvailabilityError is SDK 5's refusal to use a token key that fewer
// than two HSMs hold, in a cluster of two or more.
type KeyAvailabilityError struct{ Ref uint64 }

func (e *KeyAvailabilityError) Error() string {
	return fmt.Sprintf("Key %s does not meet the availability requirements - The key must be available on at least 2 HSMs before being used.", RefString(e.Ref))
}

// Hint gives the ways out CloudHSM documents.
func (e *KeyAvailabilityError) Hint() string {
	return "hsm-sync apply copies the key to the other HSMs; --disable-key-availability-check (HSM_DISABLE_KEY_AVAILABILITY_CHECK=1) turns the check off"
}

// keyUse is one key an operation uses, and what it does to it.
type keyUse struct {
	filter KeyFilter
	action policy.KeyAction
	attr   string // the attribute the key must have ("" none)
}

// useKeys selects each key of uses on the first HSM of the client config
// that holds them all, checks the key table and the availability rule,
// and calls fn there. A write opens that HSM for writing (a quorum token
// spent); reads leave it as it was. Every selection by attribute reads
// every key of an HSM, so it reads no more HSMs than the availability
// rule needs, and a read reuses what it selected on the chosen HSM.
func (c *Client) useKeys(name string, auth Authenticator, perm policy.Op, uses []keyUse, write bool,
	fn func(tx *Tx, h *state.HSMTx, p Principal, ks []*state.Key) error) error {
	_, err := c.run(op{name: name, scope: scopeCluster, perm: perm, auth: auth, write: write,
		whole: func(tx *Tx, p Principal) error {
			var chosen string
			var chosenKeys []*state.Key
			var firstErr error
			holders := map[uint64]int{}
			check := len(tx.Cluster.HSMs) >= 2 && !c.opts.NoKeyAvailabilityCheck
			available := func() bool {
				return chosen != "" && (!check || !slices.ContainsFunc(chosenKeys, func(k *state.Key) bool { return holders[k.Ref] < 2 }))
			}
			for _, ch := range c.Config.HSMs {
				if available() {
					break
				}
				info := c.hsmInfo(tx.Cluster, ch.ID)
				if info == nil || info.Status != state.Running {
					continue
				}
				err := tx.View(ch.ID, func(h *state.HSMTx) error {
					found := true
					var ks []*state.Key
					for _, u := range uses {
						k, err := selectKey(h, p, u.filter)
						if err != nil {
							if isTrouble(err) {
								return err
							}
							if firstErr == nil {
								firstErr = err
							}
							found = false
							continue
						}
						ks = append(ks, k)
						holders[k.Ref]++
						if k.Session != "" {
							holders[k.Ref] = 2 // a session key is on one HSM by design
						}
					}
					if found && chosen == "" {
						chosen, chosenKeys = ch.ID, ks
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			if chosen == "" {
				if firstErr == nil {
					firstErr = trouble("hsm-sim start ID", "no HSM of the client config %s is reachable", c.Config.Path)
				}
				return firstErr
			}
			var h *state.HSMTx
			var err error
			if write {
				h, err = tx.HSM(chosen)
			} else {
				h, err = tx.Read(chosen)
			}
			if err != nil {
				return err
			}
			ks := chosenKeys // read under the lock: nothing changed since
			if write {
				// The keys as the write transaction reads them.
				ks = make([]*state.Key, len(uses))
				for i, u := range uses {
					if ks[i], err = selectKey(h, p, u.filter); err != nil {
						return err
					}
				}
			}
			for i, u := range uses {
				if err := keyAllowed(p, ks[i], u.action); err != nil {
					return err
				}
				if u.attr != "" && !ks[i].Has(u.attr) {
					return fmt.Errorf("key %s does not have %s=true", RefString(ks[i].Ref), u.attr)
				}
				if check && holders[ks[i].Ref] < 2 {
					return &KeyAvailabilityError{Ref: ks[i].Ref}
				}
			}
			return fn(tx, h, p, ks)
		}})
	return err
}

// hashes are the hash functions cloudhsm-cli names.
var hashes = map[string]crypto.Hash{
	"sha1": crypto.SHA1, "sha224": crypto.SHA224, "sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512,
}

// ParseHash reads --hash-function.
func ParseHash(s string) (crypto.Hash, error) {
	if h, ok := hashes[s]; ok {
		return h, nil
	}
	return 0, fmt.Errorf("--hash-function %q: want sha1, sha224, sha256, sha384 or sha512", s)
}

// SignSpec is a signature's mechanism and input.
type SignSpec struct {
	Mech       string // rsa-pkcs, rsa-pkcs-pss, ecdsa
	Hash       crypto.Hash
	Data       []byte
	Digest     bool // Data is already the digest (--data-type digest)
	SaltLength int  // rsa-pkcs-pss; 0: the hash's length
}

func (s SignSpec) digest() ([]byte, error) {
	if !s.Hash.Available() {
		return nil, errors.New("no hash function")
	}
	if s.Digest {
		if len(s.Data) != s.Hash.Size() {
			return nil, fmt.Errorf("--data-type digest: %d bytes, but a %s digest is %d", len(s.Data), s.Hash, s.Hash.Size())
		}
		return s.Data, nil
	}
	h := s.Hash.New()
	h.Write(s.Data)
	return h.Sum(nil), nil
}

func (s SignSpec) keyType() (string, error) {
	switch s.Mech {
	case "rsa-pkcs", "rsa-pkcs-pss":
		return state.TypeRSA, nil
	case "ecdsa":
		return state.TypeEC, nil
	}
	return "", fmt.Errorf("mechanism %q: want rsa-pkcs, rsa-pkcs-pss or ecdsa", s.Mech)
}

func (s SignSpec) pssOpts() *rsa.PSSOptions {
	salt := s.SaltLength
	if salt == 0 {
		salt = rsa.PSSSaltLengthEqualsHash
	}
	return &rsa.PSSOptions{SaltLength: salt, Hash: s.Hash}
}

// Sign signs with the private key f selects (sign=true); ECDSA
// signatures are DER, as openssl makes and checks them. A key whose
// key-usage quorum is on needs an approval.
func (c *Client) Sign(auth Authenticator, f KeyFilter, s SignSpec, approval *Approval) (ref string, sig []byte, err error) {
	want, err := s.keyType()
	if err != nil {
		return "", nil, err
	}
	digest, err := s.digest()
	if err != nil {
		return "", nil, err
	}
	// Only a token to spend makes a sign write (and sync) an HSM.
	err = c.useKeys("sign", auth, policy.SignVerify, []keyUse{{f, policy.KeyUse, "sign"}}, approval != nil, func(tx *Tx, h *state.HSMTx, p Principal, ks []*state.Key) error {
		k := ks[0]
		if k.Class != state.ClassPrivate || k.Type != want {
			return fmt.Errorf("key %s is a %s %s; %s signs with an %s private key", RefString(k.Ref), k.Type, k.Class, s.Mech, want)
		}
		if err := tx.keyQuorum(h, p, ServiceKeyUsage, k, approval); err != nil {
			return err
		}
		priv, err := privateKey(tx.Cluster, k)
		if err != nil {
			return err
		}
		ref = RefString(k.Ref)
		switch key := priv.(type) {
		case *rsa.PrivateKey:
			if s.Mech == "rsa-pkcs-pss" {
				sig, err = rsa.SignPSS(rand.Reader, key, s.Hash, digest, s.pssOpts())
			} else {
				sig, err = rsa.SignPKCS1v15(rand.Reader, key, s.Hash, digest)
			}
		case *ecdsa.PrivateKey:
			sig, err = ecdsa.SignASN1(rand.Reader, key, digest)
		default:
			err = fmt.Errorf("key %s cannot sign", ref)
		}
		return err
	})
	return ref, sig, err
}

// ErrSignatureInvalid is cloudhsm-cli's refusal of a bad signature.
//
//lint:ignore ST1005 cloudhsm-cli's exact message
var ErrSignatureInvalid = errors.New("Signature verification failed")

// Verify checks a signature with the key f selects (verify=true): a
// public key, every crypto user's to use.
func (c *Client) Verify(auth Authenticator, f KeyFilter, s SignSpec, sig []byte) error {
	want, err := s.keyType()
	if err != nil {
		return err
	}
	digest, err := s.digest()
	if err != nil {
		return err
	}
	return c.useKeys("verify", auth, policy.SignVerify, []keyUse{{f, policy.KeyUse, "verify"}}, false, func(tx *Tx, h *state.HSMTx, p Principal, ks []*state.Key) error {
		k := ks[0]
		if k.Type != want || k.Public == nil {
			return fmt.Errorf("key %s is a %s %s; %s verifies with an %s key", RefString(k.Ref), k.Type, k.Class, s.Mech, want)
		}
		pub, err := x509.ParsePKIXPublicKey(k.Public)
		if err != nil {
			return &TroubleError{Err: fmt.Errorf("key %s: %v", RefString(k.Ref), err)}
		}
		ok := false
		switch key := pub.(type) {
		case *rsa.PublicKey:
			if s.Mech == "rsa-pkcs-pss" {
				ok = rsa.VerifyPSS(key, s.Hash, digest, sig, s.pssOpts()) == nil
			} else {
				ok = rsa.VerifyPKCS1v15(key, s.Hash, digest, sig) == nil
			}
		case *ecdsa.PublicKey:
			ok = ecdsa.VerifyASN1(key, digest, sig)
		}
		if !ok {
			return ErrSignatureInvalid
		}
		return nil
	})
}

// privateKey unmasks a private key.
func privateKey(cl *state.Cluster, k *state.Key) (crypto.Signer, error) {
	der, err := unmask(cl, k)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, &TroubleError{Err: fmt.Errorf("key %s: %v", RefString(k.Ref), err)}
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, &TroubleError{Err: fmt.Errorf("key %s: not a signing key", RefString(k.Ref))}
	}
	return s, nil
}

// PublicPEM is the public key of the key f selects (a public key, or a
// private key's public half) as PEM: key generate-file.
func (c *Client) PublicPEM(auth Authenticator, f KeyFilter) ([]byte, error) {
	var out []byte
	err := c.useKeys("generate-file", auth, policy.KeyManagement, []keyUse{{f, policy.KeyUse, ""}}, false, func(tx *Tx, h *state.HSMTx, p Principal, ks []*state.Key) error {
		if ks[0].Public == nil {
			return fmt.Errorf("key %s is a %s: it has no public key", RefString(ks[0].Ref), ks[0].Class)
		}
		out = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ks[0].Public})
		return nil
	})
	return out, err
}

// Ciphertext is what Encrypt returns: the IV of AES-GCM (nil for RSA) and
// the data, tag included.
type Ciphertext struct {
	IV   []byte
	Data []byte
}

// CipherSpec is an encryption's mechanism: aes-gcm (AAD optional) or
// rsa-oaep (Hash for both OAEP and MGF1).
type CipherSpec struct {
	Mech string
	Hash crypto.Hash
	AAD  []byte
}

// Encrypt encrypts with the key f selects (encrypt=true). hsmkit's own
// verb: cloudhsm-cli has no encrypt command.
func (c *Client) Encrypt(auth Authenticator, f KeyFilter, s CipherSpec, plain []byte) (*Ciphertext, error) {
	var out *Ciphertext
	err := c.useKeys("encrypt", auth, policy.EncryptDecrypt, []keyUse{{f, policy.KeyUse, "encrypt"}}, false, func(tx *Tx, h *state.HSMTx, p Principal, ks []*state.Key) error {
		var err error
		out, err = seal(tx.Cluster, ks[0], s, plain)
		return err
	})
	return out, err
}

// Decrypt decrypts with the key f selects (decrypt=true).
func (c *Client) Decrypt(auth Authenticator, f KeyFilter, s CipherSpec, ct *Ciphertext) ([]byte, error) {
	var out []byte
	err := c.useKeys("decrypt", auth, policy.EncryptDecrypt, []keyUse{{f, policy.KeyUse, "decrypt"}}, false, func(tx *Tx, h *state.HSMTx, p Principal, ks []*state.Key) error {
		var err error
		out, err = open(tx.Cluster, ks[0], s, ct)
		return err
	})
	return out, err
}

// HMAC computes an HMAC with the generic secret or AES key f selects
// (sign=true). hsmkit's own verb.
func (c *Client) HMAC(auth Authenticator, f KeyFilter, h crypto.Hash, data []byte) ([]byte, error) {
	var out []byte
	err := c.useKeys("hmac", auth, policy.DigestHMAC, []keyUse{{f, policy.KeyUse, "sign"}}, false, func(tx *Tx, _ *state.HSMTx, p Principal, ks []*state.Key) error {
		k := ks[0]
		if k.Class != state.ClassSecret {
			return fmt.Errorf("key %s is a %s; an HMAC needs a secret key", RefString(k.Ref), k.Class)
		}
		secret, err := unmask(tx.Cluster, k)
		if err != nil {
			return err
		}
		m := hmac.New(h.New, secret)
		m.Write(data)
		out = m.Sum(nil)
		return nil
	})
	return out, err
}

// seal encrypts plain under k: AES-GCM with a fresh 12-byte IV, or
// RSA-OAEP / RSA PKCS #1 v1.5 under a public key.
func seal(cl *state.Cluster, k *state.Key, s CipherSpec, plain []byte) (*Ciphertext, error) {
	switch s.Mech {
	case "aes-gcm":
		g, err := aesGCM(cl, k, 16)
		if err != nil {
			return nil, err
		}
		iv := make([]byte, 12)
		_, _ = rand.Read(iv)
		return &Ciphertext{IV: iv, Data: g.Seal(nil, iv, plain, s.AAD)}, nil
	case "rsa-oaep", "rsa-pkcs":
		pub, err := rsaPublic(k)
		if err != nil {
			return nil, err
		}
		var data []byte
		if s.Mech == "rsa-oaep" {
			data, err = rsa.EncryptOAEP(s.Hash.New(), rand.Reader, pub, plain, nil)
		} else {
			// cloudhsm-cli offers rsa-pkcs wrapping; it is kept for that.
			//lint:ignore SA1019 CloudHSM's documented mechanism
			data, err = rsa.EncryptPKCS1v15(rand.Reader, pub, plain)
		}
		if err != nil {
			return nil, fmt.Errorf("%s under key %s: %v", s.Mech, RefString(k.Ref), err)
		}
		return &Ciphertext{Data: data}, nil
	}
	return nil, fmt.Errorf("mechanism %q: want aes-gcm, rsa-oaep or rsa-pkcs", s.Mech)
}

// open is seal's inverse, with the private or secret key.
func open(cl *state.Cluster, k *state.Key, s CipherSpec, ct *Ciphertext) ([]byte, error) {
	switch s.Mech {
	case "aes-gcm":
		g, err := aesGCM(cl, k, 16)
		if err != nil {
			return nil, err
		}
		if len(ct.IV) != g.NonceSize() {
			return nil, fmt.Errorf("aes-gcm: the IV is %d bytes; want %d", len(ct.IV), g.NonceSize())
		}
		plain, err := g.Open(nil, ct.IV, ct.Data, s.AAD)
		if err != nil {
			return nil, errors.New("aes-gcm: the data does not authenticate under this key, IV and AAD")
		}
		return plain, nil
	case "rsa-oaep", "rsa-pkcs":
		if k.Class != state.ClassPrivate || k.Type != state.TypeRSA {
			return nil, fmt.Errorf("key %s is a %s %s; %s needs an RSA private key", RefString(k.Ref), k.Type, k.Class, s.Mech)
		}
		priv, err := privateKey(cl, k)
		if err != nil {
			return nil, err
		}
		rk := priv.(*rsa.PrivateKey)
		var plain []byte
		if s.Mech == "rsa-oaep" {
			plain, err = rsa.DecryptOAEP(s.Hash.New(), nil, rk, ct.Data, nil)
		} else {
			//lint:ignore SA1019 CloudHSM's documented mechanism
			plain, err = rsa.DecryptPKCS1v15(nil, rk, ct.Data)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: the data does not decrypt under key %s", s.Mech, RefString(k.Ref))
		}
		return plain, nil
	}
	return nil, fmt.Errorf("mechanism %q: want aes-gcm, rsa-oaep or rsa-pkcs", s.Mech)
}

func aesGCM(cl *state.Cluster, k *state.Key, tagBytes int) (cipher.AEAD, error) {
	if k.Type != state.TypeAES {
		return nil, fmt.Errorf("key %s is a %s key; aes-gcm needs an AES key", RefString(k.Ref), k.Type)
	}
	secret, err := unmask(cl, k)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithTagSize(b, tagBytes)
}

func rsaPublic(k *state.Key) (*rsa.PublicKey, error) {
	if k.Type != state.TypeRSA || k.Public == nil {
		return nil, fmt.Errorf("key %s is a %s %s; this needs an RSA public key", RefString(k.Ref), k.Type, k.Class)
	}
	pub, err := x509.ParsePKIXPublicKey(k.Public)
	if err != nil {
		return nil, &TroubleError{Err: fmt.Errorf("key %s: %v", RefString(k.Ref), err)}
	}
	return pub.(*rsa.PublicKey), nil
}

// WrapSpec is a key wrap: the mechanism, the payload and wrapping keys,
// and the mechanism's options.
type WrapSpec struct {
	Mech     string // aes-gcm, rsa-oaep, rsa-pkcs
	Payload  KeyFilter
	Wrapping KeyFilter
	Hash     crypto.Hash // rsa-oaep (OAEP and MGF1)
	TagBits  int         // aes-gcm: 96 to 128, a multiple of 8
	AAD      []byte
}

// Wrapped is a wrapped key: cloudhsm-cli's output of key wrap.
type Wrapped struct {
	PayloadRef  string
	WrappingRef string
	IV          []byte // aes-gcm only
	Data        []byte
}

// wrapMechs are the mechanisms hsmkit wraps and unwraps with.
var wrapMechs = []string{"aes-gcm", "rsa-oaep", "rsa-pkcs"}

func (s WrapSpec) cipher() (CipherSpec, int, error) {
	if !slices.Contains(wrapMechs, s.Mech) {
		return CipherSpec{}, 0, fmt.Errorf("mechanism %q: hsmkit wraps with aes-gcm, rsa-oaep or rsa-pkcs", s.Mech)
	}
	tag := 16
	if s.Mech == "aes-gcm" {
		if s.TagBits < 96 || s.TagBits > 128 || s.TagBits%8 != 0 {
			return CipherSpec{}, 0, fmt.Errorf("--tag-length-bits %d: want 96 to 128, a multiple of 8", s.TagBits)
		}
		tag = s.TagBits / 8
	}
	if s.Mech == "rsa-oaep" && !s.Hash.Available() {
		return CipherSpec{}, 0, errors.New("rsa-oaep needs --hash-function")
	}
	return CipherSpec{Mech: s.Mech, Hash: s.Hash, AAD: s.AAD}, tag, nil
}

// Wrap exports the payload key (its owner only, extractable=true) under
// the wrapping key (wrap=true). A secret key is wrapped as its raw bytes,
// a private key as PKCS #8 DER (too long for RSA-OAEP under RSA-2048).
func (c *Client) Wrap(auth Authenticator, s WrapSpec, approval *Approval) (*Wrapped, error) {
	cs, tag, err := s.cipher()
	if err != nil {
		return nil, err
	}
	var out *Wrapped
	uses := []keyUse{{s.Payload, policy.KeyWrap, "extractable"}, {s.Wrapping, policy.KeyUse, "wrap"}}
	err = c.useKeys("wrap", auth, policy.KeyManagement, uses, approval != nil, func(tx *Tx, h *state.HSMTx, p Principal, ks []*state.Key) error {
		payload, wrapping := ks[0], ks[1]
		if payload.Class == state.ClassPublic {
			return fmt.Errorf("key %s is a public key: there is nothing to wrap (key generate-file exports it)", RefString(payload.Ref))
		}
		if err := tx.keyQuorum(h, p, ServiceKeyManagement, payload, approval); err != nil {
			return err
		}
		if wrapping.Has("wrap-with-trusted") || payload.Has("wrap-with-trusted") {
			if !wrapping.Has("trusted") {
				return fmt.Errorf("key %s may be wrapped only with a trusted key; key %s is not trusted", RefString(payload.Ref), RefString(wrapping.Ref))
			}
		}
		material, err := unmask(tx.Cluster, payload)
		if err != nil {
			return err
		}
		var ct *Ciphertext
		if s.Mech == "aes-gcm" {
			g, err := aesGCM(tx.Cluster, wrapping, tag)
			if err != nil {
				return err
			}
			iv := make([]byte, 12)
			_, _ = rand.Read(iv)
			ct = &Ciphertext{IV: iv, Data: g.Seal(nil, iv, material, s.AAD)}
		} else if ct, err = seal(tx.Cluster, wrapping, cs, material); err != nil {
			return err
		}
		out = &Wrapped{PayloadRef: RefString(payload.Ref), WrappingRef: RefString(wrapping.Ref), IV: ct.IV, Data: ct.Data}
		return nil
	})
	return out, err
}

// UnwrapSpec is a key unwrap: the mechanism and unwrapping key, the
// wrapped data, and the new key's class, label and attributes.
type UnwrapSpec struct {
	WrapSpec            // Mech, Wrapping (the unwrapping key), Hash, TagBits, AAD
	IV           []byte // aes-gcm
	Data         []byte
	KeyTypeClass string // aes, generic-secret, rsa-private, ec-private
	Label        string
	Attrs        []string
	Ownership
}

// Unwrap imports a wrapped key under the unwrapping key (unwrap=true) as
// a new key of the caller's (local=false). The unwrap is read on one HSM,
// then the key is created like a generated one.
func (c *Client) Unwrap(t Targeting, auth Authenticator, s UnwrapSpec) ([]KeyInfo, *Result, error) {
	if err := s.Ownership.check(); err != nil {
		return nil, nil, err
	}
	if err := checkLabel(s.Label); err != nil {
		return nil, nil, err
	}
	cs, tag, err := s.cipher()
	if err != nil {
		return nil, nil, err
	}
	var material []byte
	err = c.useKeys("unwrap", auth, policy.KeyManagement, []keyUse{{s.Wrapping, policy.KeyUse, "unwrap"}}, false, func(tx *Tx, h *state.HSMTx, p Principal, ks []*state.Key) error {
		if s.Mech == "aes-gcm" {
			g, err := aesGCM(tx.Cluster, ks[0], tag)
			if err != nil {
				return err
			}
			if len(s.IV) != 12 {
				return fmt.Errorf("aes-gcm: --iv is %d bytes; want 12", len(s.IV))
			}
			if material, err = g.Open(nil, s.IV, s.Data, s.AAD); err != nil {
				return errors.New("aes-gcm: the wrapped data does not authenticate under this key, IV and AAD")
			}
			return nil
		}
		var err error
		material, err = open(tx.Cluster, ks[0], cs, &Ciphertext{Data: s.Data})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	k, err := ParseKeyMaterial(s.KeyTypeClass, material)
	if err != nil {
		return nil, nil, err
	}
	k.rec.Label = s.Label
	defaultFlags(&k.rec)
	k.rec.Set("local", false)
	if err := applyAttrs(&k.rec, s.Attrs); err != nil {
		return nil, nil, err
	}
	k.rec.Check = checkValue(&k.rec, k.secret)
	keys := []*newKey{k}
	return c.createKeys(t, auth, "unwrap-key", s.Ownership, &keys, nil)
}

// ParseKeyMaterial reads unwrapped key material as --key-type-class
// says: raw bytes of an AES key or generic secret, PKCS #8 DER of a
// private key.
func ParseKeyMaterial(class string, material []byte) (*newKey, error) {
	switch class {
	case "aes":
		if !slices.Contains([]int{16, 24, 32}, len(material)) {
			return nil, fmt.Errorf("the unwrapped key is %d bytes: not an AES key", len(material))
		}
		return &newKey{rec: state.Key{Class: state.ClassSecret, Type: state.TypeAES, Length: len(material)}, secret: material}, nil
	case "generic-secret":
		if len(material) < 1 || len(material) > 800 {
			return nil, fmt.Errorf("the unwrapped key is %d bytes: a generic secret is 1 to 800", len(material))
		}
		return &newKey{rec: state.Key{Class: state.ClassSecret, Type: state.TypeGenericSecret, Length: len(material)}, secret: material}, nil
	case "rsa-private", "ec-private":
		key, err := x509.ParsePKCS8PrivateKey(material)
		if err != nil {
			return nil, errors.New("the unwrapped key is not a PKCS #8 private key")
		}
		var pub any
		typ, curve := state.TypeRSA, ""
		switch k := key.(type) {
		case *rsa.PrivateKey:
			if k.N.BitLen() < 2048 {
				return nil, fmt.Errorf("the unwrapped RSA key is %d bits; at least 2048", k.N.BitLen())
			}
			pub = &k.PublicKey
		case *ecdsa.PrivateKey:
			typ, pub = state.TypeEC, &k.PublicKey
			if curve = curveName(k.Curve); curve == "" {
				return nil, errors.New("the unwrapped EC key is on a curve hsmkit does not hold")
			}
		default:
			return nil, fmt.Errorf("the unwrapped key is a %T", key)
		}
		if (typ == state.TypeRSA) != (class == "rsa-private") {
			return nil, fmt.Errorf("the unwrapped key is an %s key, not %s", typ, class)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		return &newKey{rec: state.Key{Class: state.ClassPrivate, Type: typ, Curve: curve, Public: der}, secret: material}, nil
	}
	return nil, fmt.Errorf("--key-type-class %q: want aes, generic-secret, rsa-private or ec-private", class)
}

// curveName is the name hsmkit gives a curve it did not generate.
func curveName(c elliptic.Curve) string {
	switch c {
	case elliptic.P224():
		return "secp224r1"
	case elliptic.P256():
		return "prime256v1"
	case elliptic.P384():
		return "secp384r1"
	case elliptic.P521():
		return "secp521r1"
	}
	return ""
}

// ImportPEM imports an openssl public key (PEM "PUBLIC KEY") as a public
// key of the caller's: --key-type-class rsa-public or ec-public.
func (c *Client) ImportPEM(t Targeting, auth Authenticator, pemData []byte, class, label string, attrs []string) ([]KeyInfo, *Result, error) {
	if err := checkLabel(label); err != nil {
		return nil, nil, err
	}
	k, err := ParsePublicPEM(class, pemData)
	if err != nil {
		return nil, nil, err
	}
	k.rec.Label = label
	defaultFlags(&k.rec)
	k.rec.Set("local", false)
	if err := applyAttrs(&k.rec, attrs); err != nil {
		return nil, nil, err
	}
	k.rec.Check = checkValue(&k.rec, nil)
	keys := []*newKey{k}
	return c.createKeys(t, auth, "import-key", Ownership{}, &keys, nil)
}

// ParsePublicPEM reads one PEM public key (SubjectPublicKeyInfo) of the
// class named: RSA of at least 2048 bits, or EC on a curve hsmkit holds.
func ParsePublicPEM(class string, data []byte) (*newKey, error) {
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key (want -----BEGIN PUBLIC KEY-----, as openssl pkey -pubout writes)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("more than one PEM block: import one public key at a time")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the PEM public key does not parse: %v", err)
	}
	k := &newKey{rec: state.Key{Class: state.ClassPublic, Public: b.Bytes}}
	switch key := pub.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < 2048 {
			return nil, fmt.Errorf("the RSA key is %d bits; at least 2048", key.N.BitLen())
		}
		k.rec.Type = state.TypeRSA
	case *ecdsa.PublicKey:
		k.rec.Type, k.rec.Curve = state.TypeEC, curveName(key.Curve)
		if k.rec.Curve == "" {
			return nil, errors.New("the EC key is on a curve hsmkit does not hold")
		}
	default:
		return nil, fmt.Errorf("a %T public key: want RSA or EC", pub)
	}
	if want := map[string]string{"rsa-public": state.TypeRSA, "ec-public": state.TypeEC}[class]; want != k.rec.Type {
		if want == "" {
			return nil, fmt.Errorf("--key-type-class %q: want rsa-public or ec-public", class)
		}
		return nil, fmt.Errorf("the PEM holds an %s key, not %s", k.rec.Type, class)
	}
	return k, nil
}

// keyQuorum asks for the approvals a key's quorum value for service
// needs, and spends the token that gives them.
func (tx *Tx) keyQuorum(h *state.HSMTx, p Principal, service string, k *state.Key, a *Approval) error {
	need := k.UseQuorum
	if service == ServiceKeyManagement {
		need = k.ManageQuorum
	}
	ok, err := tx.requireQuorum(h, p, service, need, a, k.Ref)
	if err != nil || !ok {
		return err
	}
	digest, err := a.digest()
	if err != nil {
		return err
	}
	if len(tx.targets) > 0 {
		return spendToken(h, digest, tx.Now)
	}
	// A use runs on one HSM: the token is spent on every reachable HSM,
	// so that it approves no second operation elsewhere.
	for _, info := range tx.Cluster.HSMs {
		if info.Status != state.Running {
			continue
		}
		hh, err := tx.HSM(info.ID)
		if err != nil {
			return err
		}
		if err := spendToken(hh, digest, tx.Now); err != nil {
			return err
		}
	}
	return nil
}
