package policy

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestLunaTable pins every cell of Luna's table so that a change to the
// data is a deliberate one.
func TestLunaTable(t *testing.T) {
	// admin, operator, monitor, audit, none, cluster | so, au | po, co, lco, cu | krso, krco | unauthenticated, owner
	o := func(idx ...int) [16]bool {
		var r [16]bool
		for _, i := range idx {
			r[i] = true
		}
		return r
	}
	const (
		admin, operator, monitor, audit, none, cluster = 0, 1, 2, 3, 4, 5
		so, au, po, co, lco, cu, krso, krco            = 6, 7, 8, 9, 10, 11, 12, 13
		unauth, owner                                  = 14, 15
	)
	hsmRoles := []int{so, au, po, co, lco, cu}
	appliance := []int{admin, operator, monitor, audit}
	both := append(append(append([]int{}, appliance...), hsmRoles...), krso, krco)
	want := map[Op][16]bool{
		ClusterInfo:       o(admin, operator, monitor, audit, unauth, owner),
		Login:             o(both...),
		Logout:            o(append(both, none, unauth)...),
		ChangeOwnPassword: o(both...),
		ChangeAnyPassword: o(admin),
		ManageUsers:       o(admin),
		AssignRole:        o(admin),
		EnableUser:        o(admin),
		ListUsers:         o(admin),
		ImportRole:        o(admin),
		SyncStatus:        o(admin, operator, monitor),
		SyncUsers:         o(admin),
		MaskedObjects:     o(cluster),
		Zeroize:           o(admin),
		InitHSM:           o(admin),
		LoginHSM:          o(admin),
		AuditLog:          o(audit),
		InitRole:          o(so, po, co),
		ResetRole:         o(po, co),
		ShowRoles:         o(hsmRoles...),
		HSMPolicy:         o(so),
		PartitionPolicy:   o(po),
		CreateKeyring:     o(po),
		InitCluster:       o(owner),
		AddHSM:            o(owner),
		RemoveHSM:         o(owner),
		Reachability:      o(owner),
		SetClock:          o(owner),
		DumpState:         o(owner),
	}
	if len(Luna.Roles) != 16 {
		t.Fatalf("table has %d roles, test pins 16", len(Luna.Roles))
	}
	if len(want) != len(Luna.Ops) {
		t.Fatalf("table has %d operations, test pins %d", len(Luna.Ops), len(want))
	}
	for _, op := range Luna.Ops {
		row, ok := want[op]
		if !ok {
			t.Fatalf("operation %q not pinned by the test", op)
		}
		for i, role := range Luna.Roles {
			if got := Luna.Allowed(role, op); got != row[i] {
				t.Errorf("%s as %s: allowed=%v, want %v", op, role, got, row[i])
			}
		}
	}
}

// TestLunaCallerRules: the rules beyond the role's column — the original
// admin alone gives roles, an expired password allows only its change, a
// custom role runs the commands it holds and never an audit command.
func TestLunaCallerRules(t *testing.T) {
	cases := []struct {
		c    Caller
		op   Op
		want string // "" allowed, else a word of the refusal
	}{
		{Caller{User: "admin", Role: Admin}, AssignRole, ""},
		{Caller{User: "root2", Role: Admin}, AssignRole, "only the admin account"},
		{Caller{User: "admin", Role: Admin, Expired: true}, ListUsers, "expired"},
		{Caller{User: "admin", Role: Admin, Expired: true}, ChangeOwnPassword, ""},
		{Caller{User: "c", Role: "readers", Custom: []string{"user list"}}, ListUsers, ""},
		{Caller{User: "c", Role: "readers", Custom: []string{"user list"}}, ManageUsers, "may not"},
		{Caller{User: "c", Role: "readers", Custom: []string{"user list"}}, Login, ""},
		{Caller{User: "c", Role: "readers", Custom: []string{"audit init"}}, AuditLog, "may not"},
		{Caller{User: "c", Role: "readers", Custom: []string{"User List"}}, ListUsers, "may not"},
		{Caller{User: "c", Role: "readers"}, SyncStatus, "may not"},
		// Commands that share an operation give their own action only.
		{Caller{User: "c", Role: "adders", Custom: []string{"user add"}, Action: ActAdd}, ManageUsers, ""},
		{Caller{User: "c", Role: "adders", Custom: []string{"user add"}, Action: ActDelete}, ManageUsers, "may not"},
		{Caller{User: "c", Role: "adders", Custom: []string{"user add"}}, ManageUsers, "may not"},
		{Caller{User: "c", Role: "en", Custom: []string{"user enable"}, Action: ActDisable}, EnableUser, "may not"},
		{Caller{User: "c", Role: "en", Custom: []string{"user enable", "user disable"}, Action: ActDisable}, EnableUser, ""},
		// CloudHSM has no custom roles: an unknown role may do nothing.
	}
	for _, tc := range cases {
		err := Luna.CheckCaller(tc.c, tc.op)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v %s: %v", tc.c, tc.op, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v %s: got %v, want %q", tc.c, tc.op, err, tc.want)
		}
	}
	if CloudHSM.CheckCaller(Caller{Role: "readers", Custom: []string{"user list"}}, ListUsers) == nil {
		t.Error("CloudHSM let a role it does not have list users")
	}
}

func TestRoleFile(t *testing.T) {
	cases := []struct {
		file string
		want []string // commands, or the rejected lines' words
		err  string
	}{
		{"exit\nhelp\nuser list\n", []string{"exit", "help", "user list"}, ""},
		{"user list\n\n  hsm show  \nuser list", []string{"user list", "hsm show"}, ""},
		{"user list\nUser List\naudit init\nuser lst\n", nil, `line 2 "User List" (wrong case: the command is user list), line 3 "audit init" (a command of the audit role), line 4 "user lst" (unknown command)`},
		{"user list\r\n", nil, "UNIX format"},
		{"\n\n", nil, "no command"},
		{"user\x00list\n", nil, "control characters"},
		{"\xff\n", nil, "not UTF-8"},
	}
	for _, tc := range cases {
		got, err := Luna.ParseRoleFile([]byte(tc.file))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want %q", tc.file, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q: got %q, %v; want %q", tc.file, got, err, tc.want)
		}
	}
	if _, err := Luna.ParseRoleFile([]byte(strings.Repeat("help\n", MaxRoleFileLines+1))); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a role file longer than %d lines: %v", MaxRoleFileLines, err)
	}
	if _, err := CloudHSM.ParseRoleFile([]byte("user list\n")); err == nil {
		t.Error("CloudHSM imported a custom role")
	}
}

func TestLunaNamesAndPasswords(t *testing.T) {
	for _, ok := range []string{"james", "a", "J.Doe-2_x", strings.Repeat("a", 32)} {
		if _, err := LunaUsername(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".x", "-x", "9x", "a b", "a@b", strings.Repeat("a", 33), "sshd", "root", "é"} {
		if _, err := LunaUsername(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, ok := range []string{"Abcdefg1", "abcdefg1!", "ABCDEFG1!", "Pass word1"} {
		if err := LunaPassword(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"Abcdef1", "abcdefgh1", "ABCDEFGHI", "abcdefgh!", strings.Repeat("aA1", 86), "Abcdefg1\x1b", "Abcdefg1\xff"} {
		if err := LunaPassword(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := LunaRoleName("admin"); err == nil {
		t.Error("a predefined role's name accepted as a custom role")
	}
}

// FuzzParseRoleFile: whatever the file, the parser either refuses it or
// returns distinct, exactly-named commands of the shell, none of them the
// audit role's; a refusal names lines of the file.
func FuzzParseRoleFile(f *testing.F) {
	f.Add([]byte("exit\nhelp\nuser list\n"))
	f.Add([]byte("User List\naudit init\r\n"))
	f.Add([]byte("\n\n\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds, err := Luna.ParseRoleFile(data)
		var rf *RoleFileError
		if errors.As(err, &rf) {
			for _, r := range rf.Rejected {
				if r.Line < 1 || !utf8.ValidString(r.Command) || r.Command == "" {
					t.Fatalf("bad rejection %+v", r)
				}
			}
		}
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, c := range cmds {
			cmd, ok := Luna.Command(c)
			if !ok || cmd.Audit || seen[c] {
				t.Fatalf("accepted %q from %q", c, data)
			}
			seen[c] = true
		}
		if len(cmds) == 0 {
			t.Fatalf("accepted a file with no command: %q", data)
		}
	})
}

// Every profile's stored name reads back as that profile, and CloudHSM's
// is none, so its clusters' cluster.json keeps its bytes.
func TestStoredName(t *testing.T) {
	for _, tb := range Profiles() {
		back, err := ByName(tb.StoredName())
		if err != nil || back != tb {
			t.Errorf("%s: ByName(%q) = %v, %v", tb.Name, tb.StoredName(), back, err)
		}
	}
	if CloudHSM.StoredName() != "" || Luna.StoredName() != "luna" {
		t.Errorf("stored names %q and %q, want \"\" and \"luna\"", CloudHSM.StoredName(), Luna.StoredName())
	}
}
