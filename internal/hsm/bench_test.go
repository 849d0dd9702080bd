package hsm

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/renameio/v2"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/simclock"
)

// BenchmarkFsyncFloor is one atomic durable write (temp, fsync, rename,
// directory fsync): the floor a per-HSM write cannot beat on this disk.
func BenchmarkFsyncFloor(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 4096)
	for b.Loop() {
		durableWrite(b, dir, data)
	}
}

// durableWrite is the floor's one atomic durable write in dir.
func durableWrite(b *testing.B, dir string, data []byte) {
	if err := renameio.WriteFile(filepath.Join(dir, "f.json"), data, 0o600); err != nil {
		b.Fatal(err)
	}
	d, _ := os.Open(dir)
	d.Sync()
	d.Close()
}

// BenchmarkUserCreate3HSMs is one user create on a 3-HSM cluster (three
// HSM commits), with the cheap test KDF so the writes dominate, on HSMs
// holding 0, 1,024 and 10,000 users: a create's cost should not grow with
// them. (benchreport times the hsm-user create process beside a floor
// process; this is the engine call alone.)
func BenchmarkUserCreate3HSMs(b *testing.B) {
	for _, users := range []int{0, 1024, 10000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			c := benchCluster(b, 3, users)
			admin := Fixed{User: "admin", Role: policy.Admin}
			i := 0
			for b.Loop() {
				i++
				if _, err := c.CreateUser(Targeting{}, admin, fmt.Sprintf("u%d", i), policy.CryptoUser, "Bench-pass1", nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/3/1e6, "ms/HSM-write")
		})
	}
}

// BenchmarkUserList1000 lists a 3-HSM cluster with 1,000 users.
func BenchmarkUserList1000(b *testing.B) {
	c := benchCluster(b, 3, 1000-5) // beside admin, app_user and newTestCluster's admin2, cu1 and victim
	for b.Loop() {
		users, _, err := c.ListUsers(Nobody{})
		if err != nil || len(users) != 1000 {
			b.Fatal(len(users), err)
		}
	}
}

// BenchmarkLoginDefaultKDF is one login on a 3-HSM cluster at the default
// argon2id cost: one KDF run (the hash is the same on every HSM) and three writes.
func BenchmarkLoginDefaultKDF(b *testing.B) {
	dir := b.TempDir()
	cfg, _, err := Init(InitOptions{StateDir: filepath.Join(dir, "st"), ConfigPath: filepath.Join(dir, "cluster.yaml"), HSMs: 3, KDF: DefaultKDF, Clock: &simclock.Clock{Mode: simclock.Fixed, At: testNow}})
	if err != nil {
		b.Fatal(err)
	}
	c, err := Open(cfg.Path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Activate(Targeting{}, "Admin-pass1"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sess := filepath.Join(dir, "session")
		sf, _, err := c.Login(Targeting{}, sess, "admin", policy.Admin, "Admin-pass1")
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, _, err := c.Logout(sf); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
