package syncdiff

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
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
			case RoleInconsistent:
				if !slices.Contains(u.Drift, "role") {
					t.Fatalf("an inconsistent role that is not drift: %+v", u)
				}
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

// addCaptures seeds a fuzz target with every documented capture and every
// shape of TestCaptureShapes.
func addCaptures(f *testing.F) {
	files, err := filepath.Glob("testdata/captures/*.txt")
	if err != nil || len(files) == 0 {
		f.Fatalf("captures: %v", err)
	}
	for _, p := range files {
		addFixtures(f, strings.TrimPrefix(p, "testdata/"))
	}
	for _, s := range []string{
		"aws-cloudhsm > user list" + shapeJSON,
		"$ /opt/cloudhsm/bin/cloudhsm-cli user list\r\n" + strings.ReplaceAll(shapeJSON, "\n", "\r\n") + "aws-cloudhsm > ",
		"\xef\xbb\xbfPS C:\\> & 'C:\\x\\cloudhsm-cli.exe' user list\n" + shapeJSON,
		"aws-cloudhsm > login\n{}\naws-cloudhsm > user list\n" + shapeJSON + "aws-cloudhsm > quit\n",
		"aws-cloudhsm>listUsers\n" + shapeCMU + "aws-cloudhsm>quit\n",
		"$ cloudhsm_mgmt_util x.cfg\nConnecting\naws-cloudhsm>listU\n" + shapeCMU,
		string(utf16LE("aws-cloudhsm > user list\n" + shapeJSON)),
		`{"error_code":0,"data":{"users":[{"username":"a","role":"inconsistent","locked":"inconsistent","mfa":[{"strategy":"token-sign","status":"inconsistent"}],"quorum":[{"strategy":"token-sign","status":"inconsistent"}],"cluster-coverage":"inconsistent"}]}}`,
	} {
		f.Add([]byte(s))
	}
}

func FuzzImportCMU(f *testing.F) {
	addFixtures(f, "listusers-2servers.txt", "listusers-3servers.txt", "listusers-bad-count.txt", "listusers-bad-type.txt")
	addCaptures(f)
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
	addCaptures(f)
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
