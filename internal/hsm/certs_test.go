package hsm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmkit/hsmkit/internal/config"
	"github.com/hsmkit/hsmkit/internal/state"
)

// uninitialize puts a test cluster back to UNINITIALIZED with a new CSR
// (behind the engine's back, as only a test may) and returns a
// certificate for it and its CA, made as the quick path makes them.
func uninitialize(c *Client) (certPEM, anchorPEM string, err error) {
	cl, err := c.Store.LoadCluster()
	if err != nil {
		return "", "", err
	}
	r := newRand(nil, 0, "test")
	if cl.CSRKey, cl.CSR, err = newClusterCSR(r, "00000001"); err != nil {
		return "", "", err
	}
	cl.State, cl.Cert, cl.TrustAnchor = state.Uninitialized, "", ""
	if err := c.Store.SaveCluster(cl); err != nil {
		return "", "", err
	}
	return quickSign(r, cl.ID, cl.CSR, testNow)
}

func TestInitializeChecksTheChain(t *testing.T) {
	c := newTestCluster(t, 1, false)
	certPEM, anchorPEM, err := uninitialize(c)
	if err != nil {
		t.Fatal(err)
	}
	// Another CA's certificate for the same CSR.
	cl, _ := c.Store.LoadCluster()
	otherCert, otherAnchor, err := quickSign(newRand(nil, 0, "other"), cl.ID, cl.CSR, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		cert, anchor string
		want         string
	}{
		{"other CA's cert", otherCert, anchorPEM, "cert: not signed by the trust anchor anchor"},
		{"cert as anchor", certPEM, certPEM, "anchor: not a CA certificate"},
		{"mismatched pair", certPEM, otherAnchor, "cert: not signed by the trust anchor"},
		{"empty", "", anchorPEM, "cert: no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Initialize("cert", []byte(tc.cert), "anchor", []byte(tc.anchor))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			d, err := c.DescribeCluster()
			if err != nil || d.State != state.Uninitialized || d.TrustAnchorPEM != "" {
				t.Fatalf("a refusal changed the cluster: %+v %v", d, err)
			}
		})
	}
	if err := c.Initialize("cert", []byte(certPEM), "anchor", []byte(anchorPEM)); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeCluster()
	if err != nil {
		t.Fatal(err)
	}
	if d.State != state.Initialized || d.TrustAnchorPEM != anchorPEM || d.CertificateFingerprint != certFingerprint(certPEM) || len(d.CertificateFingerprint) != 64 {
		t.Fatalf("after initialize: %+v", d)
	}
	if _, err := c.Activate(Targeting{}, "Admin-pass1"); err != nil {
		t.Fatal(err)
	}
	if d, _ := c.DescribeCluster(); d.State != state.Active {
		t.Fatalf("after activation: %s", d.State)
	}
	if cl, _ := c.Store.LoadCluster(); cl.State != state.Active {
		t.Fatalf("activation did not record ACTIVE: %q", cl.State)
	}
}

func TestActivationRefusedUninitialized(t *testing.T) {
	c := newTestCluster(t, 2, false)
	if _, _, err := uninitialize(c); err != nil {
		t.Fatal(err)
	}
	var ue *UninitializedError
	if _, err := c.Activate(Targeting{}, "Admin-pass1"); !errors.As(err, &ue) {
		t.Fatalf("Activate: %v", err)
	}
	if _, err := c.ChangePassword(Targeting{}, unactivatedAdmin{}, "admin", "admin", "Admin-pass1", nil); !errors.As(err, &ue) {
		t.Fatalf("change-password as the unactivated admin: %v", err)
	}
}

// A cluster.json from before the state was kept reads as initialized,
// and as ACTIVE once an HSM holds an admin.
func TestOldClusterState(t *testing.T) {
	c := newTestCluster(t, 2, true)
	cl, _ := c.Store.LoadCluster()
	cl.State, cl.Cert, cl.TrustAnchor, cl.CSR, cl.CSRKey = "", "", "", "", nil
	if err := c.Store.SaveCluster(cl); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeCluster()
	if err != nil || d.State != state.Active || d.CertificateFingerprint != "" {
		t.Fatalf("%+v %v", d, err)
	}
	c2 := newTestCluster(t, 1, false)
	cl, _ = c2.Store.LoadCluster()
	cl.State = ""
	_ = c2.Store.SaveCluster(cl)
	if d, err := c2.DescribeCluster(); err != nil || d.State != state.Initialized {
		t.Fatalf("%+v %v", d, err)
	}
}

func TestBackupRestoreDelete(t *testing.T) {
	c := newTestCluster(t, 2, true)
	b, err := c.Backup()
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := ParseBackup("b.json", data)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, cl, err := Init(InitOptions{StateDir: filepath.Join(dir, "st"), ConfigPath: filepath.Join(dir, "c.yaml"), HSMs: 2, FromBackup: b2})
	if err != nil {
		t.Fatal(err)
	}
	if cl.ID == c.Cluster.ID {
		t.Fatal("the new cluster has the old id")
	}
	n, err := OpenConfig(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := c.DescribeCluster()
	d2, err := n.DescribeCluster()
	if err != nil || d2.State != state.Active || d2.CertificateFingerprint != d1.CertificateFingerprint || d2.TrustAnchorPEM != d1.TrustAnchorPEM {
		t.Fatalf("restored: %+v %v", d2, err)
	}
	// The users came along, passwords and all.
	if _, _, err := n.Login(Targeting{}, "", "admin", "admin", "Admin-pass1"); err != nil {
		t.Fatal(err)
	}
	// Delete: refused while other HSMs remain; then not found.
	if err := n.DeleteCluster(); err == nil || !strings.Contains(err.Error(), "still has 2 HSMs") {
		t.Fatalf("delete with HSMs: %v", err)
	}
	if err := n.RemoveHSM(n.Cluster.HSMs[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteCluster(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg.Path, Options{}); !errors.Is(err, ErrClusterNotFound) {
		t.Fatalf("open after delete: %v", err)
	}
	left, _ := os.ReadDir(filepath.Join(dir, "st", "hsms"))
	if len(left) != 0 {
		t.Fatalf("HSM files left: %v", left)
	}
	if _, err := Open(filepath.Join(dir, "nope.yaml"), Options{}); errors.Is(err, ErrClusterNotFound) {
		t.Fatal("a missing config is not a missing cluster")
	}
	_ = config.ErrNotFound
}

func FuzzParseCertPEM(f *testing.F) {
	_, anchor, err := quickSign(newRand(nil, 0, "f"), "cluster-x", mustCSR(f), testNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(anchor))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cert, p, err := ParseCertPEM("f", data)
		if err != nil {
			return
		}
		again, p2, err := ParseCertPEM("f", []byte(p))
		if err != nil || p2 != p || !again.Equal(cert) {
			t.Fatalf("normalized PEM does not read back: %v", err)
		}
	})
}

func mustCSR(f *testing.F) string {
	_, csr, err := newClusterCSR(newRand(nil, 0, "f"), "1")
	if err != nil {
		f.Fatal(err)
	}
	return csr
}

func FuzzParseBackup(f *testing.F) {
	c := newTestCluster(f, 1, true)
	b, err := c.Backup()
	if err != nil {
		f.Fatal(err)
	}
	data, _ := b.Marshal()
	f.Add(data)
	f.Add([]byte(`{"format":"hsmkit-cluster-backup-1"}`))
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBackup("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseBackup("f", out); err != nil {
			t.Fatalf("a parsed backup does not read back: %v", err)
		}
	})
}
