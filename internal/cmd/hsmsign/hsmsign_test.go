package hsmsign

import (
	"bytes"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/keys"
	"github.com/hsmkit/hsmkit/internal/quorum"
)

// hsmSign runs the command in-process with a private environment.
func hsmSign(t *testing.T, vars map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := cli.Env{
		Name:   "hsm-sign",
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string { return vars[k] },
	}
	code = run(env, append([]string{"hsm-sign"}, args...))
	return code, out.String(), errb.String()
}

const seedToken = `{ "version": "2.0", "approval_data": "AAEAAwAAABgAAAAAAAAAAJ9eFkfcP3mNzJAlfK+OWbNhZG1pbgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABj5vbeAAAAAAAAAAAAAQADAAAAFQAAAAAAAAAAW/v5Euk83amq1fij0zyvD2FkbWluAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAGPm9t4AAAAAAAAAAAABAAMAAAAUAAAAAAAAAABDw2XDwfK4hB8a15Xh1E0nYWRtaW4AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAY+b23gAAAAAAAAAA", "token": "0l2LZkmAHZyAc1hPhyckOoVW33aGrgG77qmDHWQ3CJ8=", "signatures": [] }`

func TestKeygenSignVerifyInProcess(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "a.key"), filepath.Join(dir, "a.pub")
	vars := map[string]string{passphraseEnv: "pass phrase"}
	if code, _, stderr := hsmSign(t, vars, "", "keygen", "--encrypt", "--private-key", priv, "--public-key", pub); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	// The passphrase came from the injected environment, not os.Getenv.
	data, _ := os.ReadFile(priv)
	if _, err := keys.LoadPrivateKey(priv, data, func() ([]byte, error) { return []byte("pass phrase"), nil }); err != nil {
		t.Fatal(err)
	}

	// Sign from stdin to stdout; the key's passphrase from stdin is refused
	// in that case, from the environment accepted.
	code, _, stderr := hsmSign(t, vars, seedToken, "sign", "--passphrase-stdin", "--key", priv, "--username", "admin2", "-")
	if code != cli.ExitUsage || !strings.Contains(stderr, "both want standard input") {
		t.Errorf("passphrase and token both on stdin: %d %s", code, stderr)
	}
	code, signed, stderr := hsmSign(t, vars, seedToken, "sign", "--key", priv, "--username", "admin2", "-")
	if code != 0 {
		t.Fatalf("sign: %d %s", code, stderr)
	}
	tf, err := quorum.ParseTokenFile("out", []byte(signed))
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := keys.LoadPublicKey(pub, mustRead(t, pub))
	if got, err := quorum.Approvers(tf, map[string]*rsa.PublicKey{"admin2": pk}); err != nil || len(got) != 1 {
		t.Fatalf("approvers %v %v", got, err)
	}

	tokenPath := filepath.Join(dir, "t.token")
	os.WriteFile(tokenPath, []byte(signed), 0o644)
	code, stdout, stderr := hsmSign(t, nil, "", "-o", "json", "verify", "--public-key", "admin2="+pub, tokenPath)
	if code != 0 || !strings.Contains(stdout, `"approvers": [`) {
		t.Errorf("verify: %d %s %s", code, stdout, stderr)
	}

	// No passphrase anywhere and no terminal: a usage error, not a hang.
	code, _, stderr = hsmSign(t, nil, "", "sign", "--key", priv, "--username", "admin2", tokenPath)
	if code != cli.ExitUsage || !strings.Contains(stderr, "is encrypted and needs a passphrase") {
		t.Errorf("no passphrase: %d %s", code, stderr)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteNewNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	if err := writeNew(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := writeNew(p, []byte("two"), 0o600)
	if err == nil || cli.ExitCode(err) != cli.ExitFailed || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second write: %v", err)
	}
	if string(mustRead(t, p)) != "one" {
		t.Error("the existing file was changed")
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestFailedSignWritesNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.token")
	code, _, stderr := hsmSign(t, nil, `{"version":"2.0"}`, "sign", "--key", filepath.Join(dir, "none.key"), "--username", "u", "--out", out, "-")
	if code != cli.ExitFailed || !strings.Contains(stderr, `stdin: missing field "approval_data"`) {
		t.Errorf("%d %s", code, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files written: %v", entries)
	}
}

// TestKeygenLeavesNoTemp: keygen's files appear whole or not at all, and
// neither success nor a failure part-way leaves a temp file (which could
// hold a private key nobody knows to delete) in the directory.
func TestKeygenLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "a.key"), filepath.Join(dir, "a.pub")
	if code, _, stderr := hsmSign(t, nil, "", "keygen", "--private-key", priv, "--public-key", pub); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	fi, err := os.Stat(priv)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key: %v %v", fi, err)
	}
	names := func() []string {
		es, _ := os.ReadDir(dir)
		var n []string
		for _, e := range es {
			n = append(n, e.Name())
		}
		return n
	}
	if got := names(); len(got) != 2 {
		t.Errorf("after keygen: %v", got)
	}
	// The public key cannot be written (its directory is missing) after
	// the private key was: the private key is removed again, no temp stays.
	priv2 := filepath.Join(dir, "b.key")
	code, _, stderr := hsmSign(t, nil, "", "keygen", "--private-key", priv2, "--public-key", filepath.Join(dir, "no", "b.pub"))
	if code == 0 {
		t.Fatal("keygen into a missing directory succeeded")
	}
	if !strings.Contains(stderr, "b.pub") {
		t.Errorf("error does not name the file: %s", stderr)
	}
	if got := names(); len(got) != 2 {
		t.Errorf("after a failed keygen: %v", got)
	}
}
