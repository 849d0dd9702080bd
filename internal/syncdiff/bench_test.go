package syncdiff

import (
	"fmt"
	"testing"
)

// benchSnapshot builds hsms HSMs sharing one table of users, one HSM with
// 1% of users missing or changed so Diff has drift to explain.
func benchSnapshot(hsms, users int) Snapshot {
	table := make([]User, users)
	for i := range table {
		table[i] = User{ID: i + 1, Name: fmt.Sprintf("user_%07d", i), Role: RoleCryptoUser,
			PasswordHash: fmt.Sprintf("h%07d", i), Changed: t0, Seq: uint64(i + 1)}
	}
	drifted := make([]User, 0, users)
	for i, u := range table {
		switch i % 100 {
		case 0:
			continue // missing: a partial create
		case 50:
			u.Failures = 2
		}
		drifted = append(drifted, u)
	}
	s := Snapshot{ClusterID: "bench"}
	for h := range hsms {
		t := table
		if h == hsms-1 {
			t = drifted
		}
		id := fmt.Sprintf("hsm-%02d", h)
		s.HSMs = append(s.HSMs, HSM{ID: id, Server: h, Reachable: true, Users: t, Deleted: []Tombstone{}})
		s.ConfigHSMs = append(s.ConfigHSMs, id)
	}
	return s
}

func BenchmarkDiff(b *testing.B) {
	for _, users := range []int{1000, 100000} {
		for _, hsms := range []int{3, 8, 28} {
			b.Run(fmt.Sprintf("hsms=%d/users=%d", hsms, users), func(b *testing.B) {
				s := benchSnapshot(hsms, users)
				b.ReportAllocs()
				b.ResetTimer()
				var r Report
				for b.Loop() {
					r = Diff(s)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(hsms*users), "ns/hsm-user")
				if want := users / 50; len(r.Users) != want {
					b.Fatalf("%d differing users, want %d", len(r.Users), want)
				}
			})
		}
	}
}
