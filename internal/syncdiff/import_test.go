package syncdiff

import (
	"bytes"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportCMUDocumentedExample(t *testing.T) {
	data := readFixture(t, "listusers-2servers.txt")
	for _, variant := range [][]byte{data, bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))} {
		s, err := ImportCMUListUsers("capture.txt", bytes.NewReader(variant))
		if err != nil {
			t.Fatal(err)
		}
		if len(s.HSMs) != 2 || s.HSMs[1].ID != "server 1" || s.HSMs[1].Server != 1 || s.HSMs[1].IP != "10.0.0.2" || s.ConfigHSMs != nil {
			t.Fatalf("HSMs %+v", s.HSMs)
		}
		admin := s.HSMs[0].Users[0]
		if !reflect.DeepEqual(admin, User{ID: 1, Name: "admin", Role: RoleAdmin, QuorumKey: "registered"}) {
			t.Errorf("admin %+v", admin)
		}
		if u := s.HSMs[0].Users[1]; u.Role != RoleAppliance || u.Name != "app_user" {
			t.Errorf("app_user %+v", u)
		}
		r := Diff(s)
		if len(r.Users) != 1 || r.Users[0].Name != "officer2" {
			t.Fatalf("users %+v", r.Users)
		}
		a := r.Users[0].Authority
		if a.Decision != DecisionCreate || a.Source != "server 0" || a.Version.Role != RoleAdmin ||
			!strings.Contains(a.Reason, "a partial create is assumed because deletion records are unavailable") {
			t.Errorf("authority %+v", a)
		}
		var b strings.Builder
		if err := WritePlan(&b, r.Plan(), "cmu"); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"\nserver 1\ncreateUser CO officer2 <PASSWORD-OF-officer2>\nexit\n", "#   server 0\n#   syncUser 6 1\n#   exit\n"} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("plan lacks %q:\n%s", want, b.String())
			}
		}
	}
}

func TestImportCMUSeed003(t *testing.T) {
	s, err := Import("capture.txt", readFixture(t, "listusers-3servers.txt"))
	if err != nil {
		t.Fatal(err)
	}
	_, rows := Diff(s).Matrix()
	want := [][]string{
		{"admin", "ok", "ok", "mfa≠", "update from server 0"},
		{"example_user", "unlocked", "unlocked", "ok", "update from server 2"},
		{"newest_user", "ok", "missing", "ok", "create from server 0"},
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("rows %q", rows)
	}
}

func TestImportCMUErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"listusers-bad-count.txt", `listusers-bad-count.txt:3: server 0: "Number of users found:7" but 6 users are listed`},
		{"listusers-bad-column.txt", `listusers-bad-column.txt:9: server 0: want 6 columns (User Id, User Type, User Name, MofnPubKey, LoginFailureCnt, 2FA), found 5`},
		{"listusers-bad-type.txt", `listusers-bad-type.txt:11: server 0: unknown user type "XO" (want PCO, CO, CU, AU or PRECO)`},
	}
	for _, tt := range tests {
		_, err := ImportCMUListUsers(tt.file, bytes.NewReader(readFixture(t, tt.file)))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: err %v\nwant %s", tt.file, err, tt.want)
		}
	}
	inline := []struct{ in, want string }{
		{"", `x.txt:1: no "Users on server N(IP):" section: not a CMU listUsers capture`},
		{"hello\n", `x.txt:1: expected "Users on server N(IP):", found "hello"`},
		{"Users on server 0(10.0.0.1):\n", `x.txt:1: server 0 has no "Number of users found" line`},
		{"Users on server 0(nowhere):\n", `x.txt:1: server 0: "nowhere" is not an IP address`},
		{"Users on server 0(10.0.0.1):\nNumber of users found:1\n 1 CU bob NO 0 NO\n", `x.txt:3: server 0: expected the column header (User Id, User Type, User Name, MofnPubKey, LoginFailureCnt, 2FA), found "1 CU bob NO 0 NO"`},
		{"Users on server 0(10.0.0.1):\nNumber of users found:0\nUsers on server 0(10.0.0.2):\n", `x.txt:3: server 0 listed twice (first at line 1)`},
		{"Users on server 0(10.0.0.1):\nNumber of users found:2\nUser Id User Type User Name MofnPubKey LoginFailureCnt 2FA\n1 CU bob NO 0 NO\n1 CU carol NO 0 NO\n", `x.txt:5: server 0: user id 1 listed twice for different users (first at line 4)`},
		{"Users on server 0(10.0.0.1):\nNumber of users found:1\nUser Id User Type User Name MofnPubKey LoginFailureCnt 2FA\n1 CU bob MAYBE 0 NO\n", `x.txt:4: server 0: MofnPubKey "MAYBE": want YES or NO`},
		{"Users on server 0(10.0.0.1):\nNumber of users found:1\nUser Id User Type User Name MofnPubKey LoginFailureCnt 2FA\n1 CU bob NO -1 NO\n", `x.txt:4: server 0: LoginFailureCnt "-1" is not a count`},
	}
	for _, tt := range inline {
		_, err := ImportCMUListUsers("x.txt", strings.NewReader(tt.in))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: err %v\nwant %s", tt.in, err, tt.want)
		}
	}
}

func TestImportCLIMergedView(t *testing.T) {
	s, err := Import("captures/userlist.json", readFixture(t, "userlist.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.HSMs) != 1 || s.HSMs[0].ID != "userlist" || len(s.HSMs[0].Users) != 3 {
		t.Fatalf("%+v", s)
	}
	if u := s.HSMs[0].Users[1]; u.Name != "test_user" || u.MFA != "token-sign" || u.Role != RoleAdmin {
		t.Errorf("test_user %+v", u)
	}
	if r := Diff(s); !r.InSync() {
		t.Errorf("a full, consistent view is in sync: %+v", r.Users)
	}

	s, err = ImportCLIUserList("merged.json", bytes.NewReader(readFixture(t, "userlist-inconsistent.json")))
	if err != nil {
		t.Fatal(err)
	}
	if s.HSMs[0].Users[0].QuorumKey != "registered" {
		t.Errorf("quorum %+v", s.HSMs[0].Users[0])
	}
	r := Diff(s)
	_, rows := r.Matrix()
	want := [][]string{
		{"example_user", "inconsistent:locked", "undecidable"},
		{"newest_user", "inconsistent:cluster-coverage", "undecidable"},
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("rows %q", rows)
	}
	if p := r.Plan(); len(p.Actions) != 0 || len(p.Skipped) != 2 || !strings.Contains(p.Skipped[1].Reason, "one cloudhsm-cli user list per HSM") {
		t.Errorf("plan %+v", p)
	}
}

// A terminal capture keeps cloudhsm-cli's prompt lines; the AWS guide's
// own example (quorum-auth-chsm-cli-first-time.md) is copied verbatim.
func TestImportCLIWithPrompt(t *testing.T) {
	s, err := Import("captures/userlist-prompt.txt", readFixture(t, "userlist-prompt.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.HSMs) != 1 || len(s.HSMs[0].Users) != 5 || s.HSMs[0].Users[0].QuorumKey != "registered" {
		t.Fatalf("%+v", s)
	}
	// Line numbers still count the prompt.
	_, err = Import("x.txt", []byte("aws-cloudhsm>user list\n{\"error_code\":0,\n\"data\":{}}\n"))
	if err == nil || err.Error() != `x.txt:3: "data" has no "users" list` {
		t.Errorf("err %v", err)
	}
}

func TestImportCLIPerHSMCaptures(t *testing.T) {
	var snaps []Snapshot
	for _, f := range []string{"hsm-a.json", "hsm-b.json"} {
		s, err := Import(f, readFixture(t, f))
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
	}
	s, err := Combine(snaps...)
	if err != nil {
		t.Fatal(err)
	}
	if s.HSMs[1].ID != "hsm-b" || s.HSMs[1].Server != 1 {
		t.Fatalf("%+v", s.HSMs)
	}
	r := Diff(s)
	if len(r.Users) != 1 || r.Users[0].Name != "newest_user" || r.Users[0].Authority.Decision != DecisionCreate || r.Users[0].Authority.Source != "hsm-a" {
		t.Fatalf("users %+v", r.Users)
	}
	if _, err := Combine(snaps[0], snaps[0]); err == nil || err.Error() != `HSM "hsm-a" appears in more than one capture` {
		t.Errorf("duplicate: %v", err)
	}
}

func TestImportCLIErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"userlist-truncated.json", `userlist-truncated.json:16: truncated JSON: the document ends early`},
		{"userlist-bad-role.json", `userlist-bad-role.json:26: user app_user: unknown role "appliance" (want admin, crypto-user, unactivated-admin, internal(APPLIANCE_USER) or inconsistent)`},
	}
	for _, tt := range tests {
		_, err := ImportCLIUserList(tt.file, bytes.NewReader(readFixture(t, tt.file)))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: err %v\nwant %s", tt.file, err, tt.want)
		}
	}
	inline := []struct{ in, want string }{
		{`{"error_code":1,"data":"Quorum approval is required"}`, `x.json:1: the capture is a failed command (error_code 1): "Quorum approval is required"`},
		{`{"data":{"users":[]}}`, `x.json:1: no "error_code": not a cloudhsm-cli user list capture`},
		{"{\"error_code\":0,\n\"data\":{}}", `x.json:2: "data" has no "users" list`},
		{"{\"error_code\":0,\"data\":{\"users\":[]}}\n{}", `x.json:2: unexpected data after the JSON document`},
		{"{\"error_code\":0,\n\"data\":{\"users\":[\n{\"username\":\"bob\",\"role\":\"admin\",\"locked\":\"maybe\",\"cluster-coverage\":\"full\"}]}}", `x.json:3: user bob: locked "maybe": want true, false or inconsistent`},
		{"{\"error_code\":0,\n\"data\":{\"users\":[\n{\"username\":\"bob\",\"role\":\"admin\",\"locked\":\"false\"}]}}", `x.json:3: user bob has no "cluster-coverage"`},
		{"{\"error_code\":0,\n\"data\":{\"users\":[\n{\"username\":\"b-b\"}]}}", `x.json:3: invalid username "b-b": 1 to 31 characters, letters, digits and _ only`},
		{"{\"error_code\":0,\n\"data\":{\"users\":[\n{\"username\":7}]}}", `x.json:3: user field "username" has the wrong type`},
		{"{\"error_code\":0,\n\"data\": [}", `x.json:2: malformed JSON: invalid character '}' looking for beginning of value`},
	}
	for _, tt := range inline {
		_, err := ImportCLIUserList("x.json", strings.NewReader(tt.in))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: err %v\nwant %s", tt.in, err, tt.want)
		}
	}
}

// TestImportBOM: a capture saved with a UTF-8 byte-order mark (Windows
// editors, PowerShell's Out-File) reads as the same capture, whichever
// entry point reads it.
func TestImportBOM(t *testing.T) {
	for _, f := range []string{"listusers-2servers.txt", "userlist.json", "userlist-prompt.txt"} {
		plain := readFixture(t, f)
		want, err := Import(f, plain)
		if err != nil {
			t.Fatal(err)
		}
		withBOM := append([]byte("\xef\xbb\xbf"), plain...)
		got, err := Import(f, withBOM)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s with a BOM: %v\n%+v\nwant %+v", f, err, got, want)
		}
		read := ImportCLIUserList
		if strings.HasPrefix(f, "listusers") {
			read = ImportCMUListUsers
		}
		got, err = read(f, bytes.NewReader(withBOM))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s with a BOM, read directly: %v", f, err)
		}
	}
	// A BOM is skipped once, at the start only.
	if _, err := Import("x.txt", []byte("\xef\xbb\xbf\xef\xbb\xbfUsers on server 0(10.0.0.1):\nNumber of users found:0\n")); err == nil {
		t.Error("two BOMs accepted")
	}
}

// TestImportDuplicateIsDrift: a user listed twice on one HSM is read, and
// Diff reports it as drift on that HSM with nothing planned.
func TestImportDuplicateIsDrift(t *testing.T) {
	cmu := "Users on server 0(10.0.0.1):\nNumber of users found:3\nUser Id User Type User Name MofnPubKey LoginFailureCnt 2FA\n" +
		"1 CO admin NO 0 NO\n2 CU bob NO 0 NO\n2 CU BOB NO 5 NO\n" +
		"Users on server 1(10.0.0.2):\nNumber of users found:2\nUser Id User Type User Name MofnPubKey LoginFailureCnt 2FA\n" +
		"1 CO admin NO 0 NO\n2 CU bob NO 0 NO\n"
	cliA := `{"error_code":0,"data":{"users":[
{"username":"admin","role":"admin","locked":"false","cluster-coverage":"full"},
{"username":"bob","role":"crypto-user","locked":"false","cluster-coverage":"full"},
{"username":"Bob","role":"admin","locked":"false","cluster-coverage":"full"}]}}`
	cliB := `{"error_code":0,"data":{"users":[
{"username":"admin","role":"admin","locked":"false","cluster-coverage":"full"},
{"username":"bob","role":"crypto-user","locked":"false","cluster-coverage":"full"}]}}`
	a, err := Import("hsm-a.json", []byte(cliA))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Import("hsm-b.json", []byte(cliB))
	if err != nil {
		t.Fatal(err)
	}
	both, err := Combine(a, b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Import("x.txt", []byte(cmu))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		s   Snapshot
		hsm string
	}{{c, "server 0"}, {both, "hsm-a"}} {
		r := Diff(tt.s)
		if r.InSync() || len(r.Users) != 1 || r.Users[0].Name != "bob" {
			t.Fatalf("%s: users %+v", tt.hsm, r.Users)
		}
		u := r.Users[0]
		if !slices.Contains(u.Differences, Difference{tt.hsm, KindDuplicate, "listed 2 times; the first record is compared"}) ||
			u.Authority.Decision != DecisionUndecidable ||
			u.Authority.Reason != tt.hsm+" lists it more than once, so which record that HSM holds cannot be told; capture that HSM again; nothing is planned for this user" {
			t.Errorf("%s: %+v", tt.hsm, u)
		}
		if p := r.Plan(); len(p.Actions) != 0 || len(p.Skipped) != 1 {
			t.Errorf("%s: plan %+v", tt.hsm, p)
		}
		if _, rows := r.Matrix(); !slices.Contains(rows[0], "listed×2") {
			t.Errorf("%s: matrix %q", tt.hsm, rows)
		}
	}
}
