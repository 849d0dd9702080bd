package hsm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

// FuzzParseKeyFilter: an accepted filter names known attributes only and
// its reference reads back as written.
func FuzzParseKeyFilter(f *testing.F) {
	f.Add("key-reference=0x1f attr.label=\"a b\"")
	f.Add("attr.class=private-key attr.key-type=rsa")
	f.Add("attr.=x key-reference=0x")
	f.Fuzz(func(t *testing.T, s string) {
		fl, err := ParseKeyFilter(strings.Fields(s))
		if err != nil {
			return
		}
		for _, a := range fl.Attrs {
			if !knownAttr(a.Name) {
				t.Fatalf("accepted attribute %q", a.Name)
			}
		}
		if fl.Ref != nil {
			if r, err := ParseRef(RefString(*fl.Ref)); err != nil || r != *fl.Ref {
				t.Fatalf("reference %x does not read back", *fl.Ref)
			}
		}
	})
}

// FuzzKeyMaterial: unwrapped material and imported PEM are parsed without
// panicking, and what is accepted is a key hsmkit holds.
func FuzzKeyMaterial(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	f.Add("ec-private", der)
	f.Add("aes", make([]byte, 16))
	f.Add("ec-public", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	f.Fuzz(func(t *testing.T, class string, b []byte) {
		if nk, err := ParseKeyMaterial(class, b); err == nil && nk.secret == nil {
			t.Fatal("accepted key material without its secret")
		}
		if nk, err := ParsePublicPEM(class, b); err == nil && (nk.rec.Public == nil || nk.rec.Type == "") {
			t.Fatal("accepted a public key without its type or bytes")
		}
	})
}
