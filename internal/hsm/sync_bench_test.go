package hsm

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/hsmkit/hsmkit/internal/policy"
)

// BenchmarkSyncStatus is hsm-sync diff's whole engine path: take the lock,
// load the cluster, read every HSM's database, authorize, and diff. The
// HSMs are filled through the store (benchCluster); the last HSM lacks 1%
// of the users, so the report has drift to explain. Time and memory are
// also reported per HSM-user. (The pure Diff over 3, 8 and 28 HSMs × 1,000
// and 100,000 users is syncdiff's BenchmarkDiff; benchreport times the
// hsm-sync diff process on 28 HSMs × 1,024 and 100,000 users.)
func BenchmarkSyncStatus(b *testing.B) {
	const users = 1000
	for _, hsms := range []int{3, 8, 28} {
		b.Run(fmt.Sprintf("hsms=%d/users=%d", hsms, users), func(b *testing.B) {
			c := benchCluster(b, hsms, users)
			hs := ids(c)
			missing := dropUsers(b, c, hs[hsms-1], users, func(i int) bool { return i%100 == 0 })
			admin := Fixed{User: "admin", Role: policy.Admin}
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			n := 0
			for b.Loop() {
				r, err := c.SyncStatus(admin)
				if err != nil {
					b.Fatal(err)
				}
				n = len(r.Users)
			}
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			if n != missing {
				b.Fatalf("%d differing users, want %d", n, missing)
			}
			per := float64(b.N * hsms * users)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/hsm-user")
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/per, "B/hsm-user")
		})
	}
}

// BenchmarkRepair is hsm-sync apply's engine call on 3 HSMs with 10% of
// the users missing on the last one (a create that missed it); the users
// are deleted again, untimed, before each repair. Its time per copied user
// should not grow with the users (benchreport times the process).
func BenchmarkRepair(b *testing.B) {
	for _, users := range []int{1024, 65536} {
		b.Run(fmt.Sprintf("hsms=3/users=%d", users), func(b *testing.B) {
			c := benchCluster(b, 3, users)
			last := ids(c)[2]
			gone := func(i int) bool { return i%10 == 0 }
			admin := Fixed{User: "admin", Role: policy.Admin}
			copied := 0
			for b.Loop() {
				b.StopTimer()
				missing := dropUsers(b, c, last, users, gone)
				b.StartTimer()
				_, p, _, err := c.Repair(admin, nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Actions) != missing {
					b.Fatalf("%d repairs, want %d", len(p.Actions), missing)
				}
				copied += missing
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(copied), "µs/copied-user")
		})
	}
}
