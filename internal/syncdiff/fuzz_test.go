package syncdiff

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

func addFixtures(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkImported asserts a successful import is internally consistent and
// that the rest of the pipeline accepts it.
func checkImported(t *testing.T, s Snapshot) {
	servers := map[int]bool{}
	for _, h := range s.HSMs {
		if servers[h.Server] {
			t.Fatalf("server %d twice", h.Server)
		}
		servers[h.Server] = true
		for _, u := range h.Users {
			if u.Name == "" || u.Name != strings.ToLower(u.Name) || len(u.Name) > 31 {
				t.Fatalf("bad name %q on %s", u.Name, h.ID)
			}
			switch u.Role {
			case RoleAdmin, RoleCryptoUser, RoleAppliance, RoleUnactivatedAdmin:
			default:
				t.Fatalf("role %q", u.Role)
			}
			if u.Failures < 0 || u.Locked && len(u.Drift) == 0 && u.Failures < lockThreshold && u.Failures != 0 {
				t.Fatalf("lock state %+v", u)
			}
		}
	}
	r := Diff(s)
	// A name listed twice is drift on its HSM, never in sync.
	for _, h := range s.HSMs {
		if len(h.Users) != len(names(h)) && r.UsersInSync() {
			t.Fatalf("%s lists a user twice but the users are in sync", h.ID)
		}
	}
	for _, d := range Dialects() {
		if err := WritePlan(io.Discard, r.Plan(), d); err != nil {
			t.Fatal(err)
		}
	}
	r.Matrix()
}

func FuzzImportCMU(f *testing.F) {
	addFixtures(f, "listusers-2servers.txt", "listusers-3servers.txt", "listusers-bad-count.txt", "listusers-bad-type.txt")
	f.Add([]byte("Users on server 0(10.0.0.1):\r\nNumber of users found:0\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ImportCMUListUsers("fuzz.txt", bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.txt:") {
				t.Fatalf("error does not name file:line: %v", err)
			}
			return
		}
		for _, h := range s.HSMs {
			if h.ID != "server "+itoa(h.Server) || !h.Reachable {
				t.Fatalf("HSM %+v", h)
			}
		}
		checkImported(t, s)
	})
}

func FuzzImportCLI(f *testing.F) {
	addFixtures(f, "userlist.json", "userlist-inconsistent.json", "hsm-b.json", "userlist-truncated.json", "userlist-bad-role.json", "userlist-prompt.txt")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ImportCLIUserList("fuzz.json", bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.json:") {
				t.Fatalf("error does not name file:line: %v", err)
			}
			return
		}
		if len(s.HSMs) != 1 || s.HSMs[0].ID != "fuzz" {
			t.Fatalf("HSMs %+v", s.HSMs)
		}
		checkImported(t, s)
	})
}

func names(h HSM) map[string]bool {
	m := map[string]bool{}
	for _, u := range h.Users {
		m[u.Name] = true
	}
	return m
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
