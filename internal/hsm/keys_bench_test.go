package hsm

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// maxClusterKeys is the most keys a CloudHSM cluster holds (docs/design.md,
// "Keys").
const maxClusterKeys = 3300

// BenchmarkKey3300 is generate, list with a filter and sign on a 3-HSM
// cluster holding 3,300 token keys, each beside its floor measured in the
// same binary: a generate writes every HSM (3 × BenchmarkFsyncFloor's
// durable write), a filtered list's floor is the walk of every key record
// of every HSM it made before the label index (a bare read transaction
// walking them; by label it now reads the index), a sign is the RSA-2048
// primitive (a sign by label reads the label's index entries and keys,
// sign-by-ref one record). The fixture is built once and shared by the sub-benchmarks;
// the few keys the generate adds leave it at the limit within noise.
func BenchmarkKey3300(b *testing.B) {
	c, cu1, priv, privRef := benchKeyCluster(b, maxClusterKeys)
	hs := ids(c)

	b.Run("generate", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := c.GenerateKey(Targeting{}, cu1, KeySpec{Type: state.TypeAES, Label: "gen", LengthBytes: 32}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generate-floor", func(b *testing.B) {
		dir := b.TempDir()
		data := make([]byte, 4096)
		for b.Loop() {
			for range hs {
				durableWrite(b, dir, data)
			}
		}
	})

	label, err := ParseKeyFilter([]string{"attr.label=" + benchKeyLabel(maxClusterKeys/2)})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("list-filter", func(b *testing.B) {
		for b.Loop() {
			ks, _, err := c.ListKeys(cu1, label)
			if err != nil || len(ks) != 1 {
				b.Fatal(len(ks), err)
			}
		}
	})
	b.Run("list-floor", func(b *testing.B) {
		for b.Loop() {
			n := 0
			for _, id := range hs {
				h, err := c.Store.Begin(id, false)
				if err != nil {
					b.Fatal(err)
				}
				err = h.ForEachKeyShared(func(uint64, []byte) error { n++; return nil })
				h.Rollback()
				if err != nil {
					b.Fatal(err)
				}
			}
			if n < len(hs)*maxClusterKeys {
				b.Fatal(n)
			}
		}
	})

	sign, err := ParseKeyFilter([]string{"attr.label=sign-priv"})
	if err != nil {
		b.Fatal(err)
	}
	s := SignSpec{Mech: "rsa-pkcs", Hash: crypto.SHA256, Data: []byte("a message to sign")}
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := c.Sign(cu1, sign, s, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	// By reference: one record read per HSM rather than every key.
	byRef, err := ParseKeyFilter([]string{"key-reference=" + RefString(privRef)})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sign-by-ref", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := c.Sign(cu1, byRef, s, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sign-floor", func(b *testing.B) {
		for b.Loop() {
			d := sha256.Sum256(s.Data)
			if _, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, d[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchKeyLabel is the label of fixture key i.
func benchKeyLabel(i int) string { return fmt.Sprintf("key_%06d", i) }

// benchKeyCluster is a 3-HSM cluster whose crypto user cu1, logged in,
// owns keys in all: an RSA-2048 pair labelled sign-pub and sign-priv
// (sign=true) and an EC and an AES key made by the engine, then copies of
// those five records under new references and labels benchKeyLabel(i),
// written through the store on the first HSM and cloned to the others,
// as fillUsers does for users (a generate is three durable commits). The
// copies are as large and as varied as real keys; only the engine's own
// keys are ever unmasked. It returns cu1's session and the private key
// and its reference.
func benchKeyCluster(b *testing.B, keys int) (*Client, *SessionFile, *rsa.PrivateKey, uint64) {
	b.Helper()
	c := benchCluster(b, 3, 0)
	sf, _, err := c.Login(Targeting{}, b.TempDir()+"/cu1.session", "cu1", policy.CryptoUser, "Some-pass1")
	if err != nil {
		b.Fatal(err)
	}
	var made []state.Key
	for _, spec := range []KeySpec{
		{Type: state.TypeRSA, Label: "sign-pub", PrivateLabel: "sign-priv", ModulusBits: 2048, Attrs: []string{"verify=true"}, PrivateAttrs: []string{"sign=true"}},
		{Type: state.TypeEC, Label: "ec-pub", PrivateLabel: "ec-priv", Curve: "prime256v1"},
		{Type: state.TypeAES, Label: "aes", LengthBytes: 32},
	} {
		ks, _, err := c.GenerateKey(Targeting{}, sf, spec)
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range ks {
			made = append(made, k.Key)
		}
	}
	hs := ids(c)
	t, err := c.Store.Begin(hs[0], true)
	if err != nil {
		b.Fatal(err)
	}
	next := t.Meta.NextKey
	for i := range keys - len(made) {
		k := made[i%len(made)]
		next++
		k.Ref, k.Label, k.Pair = next, benchKeyLabel(i), 0
		if err := t.PutKey(&k); err != nil {
			t.Rollback()
			b.Fatal(err)
		}
	}
	t.Meta.NextKey = next
	if err := t.Commit(); err != nil {
		b.Fatal(err)
	}
	for _, id := range hs[1:] {
		benchClone(b, c, hs[0], id)
	}
	h, err := c.Store.Begin(hs[0], false)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Rollback()
	k, err := h.Key(made[1].Ref)
	if err != nil || k == nil {
		b.Fatal(k, err)
	}
	signer, err := privateKey(c.Cluster, k)
	if err != nil {
		b.Fatal(err)
	}
	return c, sf, signer.(*rsa.PrivateKey), k.Ref
}
