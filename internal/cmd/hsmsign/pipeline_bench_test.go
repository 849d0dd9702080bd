package hsmsign

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/keys"
	"github.com/hsmkit/hsmkit/internal/quorum"
)

// The two ways an approver signs a token, each as whole processes, side by
// side: hsm-sign sign, and the documented four-step pipeline (docs/design.md, "Quorum") (base64 -d,
// openssl pkeyutl, base64, editing the JSON).

func pipelineFixture(b *testing.B) (dir, bin string) {
	b.Helper()
	for _, tool := range []string{"openssl", "base64", "sed", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is needed for this benchmark (.ci/run installs openssl): %v", tool, err)
		}
	}
	dir = b.TempDir()
	bin = filepath.Join(dir, "hsm-sign")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hsmkit/hsmkit/cmd/hsm-sign").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	key, err := keys.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	pemBytes, err := keys.MarshalPrivateKeyPEM(key, nil)
	if err != nil {
		b.Fatal(err)
	}
	recs := []quorum.Record{{Service: quorum.ServiceUser, TokenID: 0x18, Username: "admin", Created: time.Unix(0x63e6f6de, 0)}, {Service: quorum.ServiceUser, TokenID: 0x15, Username: "admin", Created: time.Unix(0x63e6f6de, 0)}, {Service: quorum.ServiceUser, TokenID: 0x14, Username: "admin", Created: time.Unix(0x63e6f6de, 0)}}
	for _, f := range []struct {
		name string
		data []byte
	}{{"admin3.key", pemBytes}, {"admin.token", quorum.NewTokenFile(recs).Marshal()}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return dir, bin
}

func BenchmarkSignProcessHsmSign(b *testing.B) {
	dir, bin := pipelineFixture(b)
	for b.Loop() {
		cmd := exec.Command(bin, "sign", "--key", "admin3.key", "--username", "admin3", "--out", "signed.token", "admin.token")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
}

// seedPipeline is the documented four manual steps.
const seedPipeline = `set -e
sed -n 's/.*"token": "\(.*\)".*/\1/p' admin.token | base64 -d > admin.bin
openssl pkeyutl -sign -inkey admin3.key -pkeyopt digest:sha256 -keyform PEM -in admin.bin -out admin.sig.bin
base64 -w0 admin.sig.bin > admin.sig.b64
sig=$(cat admin.sig.b64)
sed "s|\"signatures\": \[\]|\"signatures\": [{\"username\": \"admin3\", \"signature\": \"$sig\"}]|" admin.token > signed.token
`

func BenchmarkSignProcessOpenSSLPipeline(b *testing.B) {
	dir, _ := pipelineFixture(b)
	for b.Loop() {
		cmd := exec.Command("sh", "-c", seedPipeline)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
}

// TestPipelinesAgree keeps the benchmark honest: both ways write the same
// signature into the token.
func TestPipelinesAgree(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hsm-sign")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hsmkit/hsmkit/cmd/hsm-sign").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	key, _ := keys.GenerateKey()
	pemBytes, _ := keys.MarshalPrivateKeyPEM(key, nil)
	tf := quorum.NewTokenFile([]quorum.Record{{Service: quorum.ServiceUser, TokenID: 1, Username: "admin", Created: time.Unix(0x63e6f6de, 0)}})
	os.WriteFile(filepath.Join(dir, "admin3.key"), pemBytes, 0o600)
	os.WriteFile(filepath.Join(dir, "admin.token"), tf.Marshal(), 0o600)
	run := func(name string, args ...string) []byte {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		data, err := os.ReadFile(filepath.Join(dir, "signed.token"))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	viaOpenSSL := run("sh", "-c", seedPipeline)
	viaHsmSign := run(bin, "sign", "--key", "admin3.key", "--username", "admin3", "--out", "signed.token", "admin.token")
	a, err := quorum.ParseTokenFile("openssl", viaOpenSSL)
	if err != nil {
		t.Fatal(err)
	}
	h, err := quorum.ParseTokenFile("hsm-sign", viaHsmSign)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Signatures) != 1 || len(h.Signatures) != 1 || string(a.Signatures[0].Signature) != string(h.Signatures[0].Signature) {
		t.Fatalf("the two pipelines disagree:\n%s\n%s", viaOpenSSL, viaHsmSign)
	}
}
