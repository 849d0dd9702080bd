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
	y, n := true, false
	// admin, operator, monitor, audit, none, cluster, unauthenticated, owner
	want := map[Op][8]bool{
		ClusterInfo:       {y, y, y, y, n, n, y, y},
		Login:             {y, y, y, y, n, n, n, n},
		Logout:            {y, y, y, y, y, n, y, n},
		ChangeOwnPassword: {y, y, y, y, n, n, n, n},
		ChangeAnyPassword: {y, n, n, n, n, n, n, n},
		ManageUsers:       {y, n, n, n, n, n, n, n},
		AssignRole:        {y, n, n, n, n, n, n, n},
		EnableUser:        {y, n, n, n, n, n, n, n},
		ListUsers:         {y, n, n, n, n, n, n, n},
		ImportRole:        {y, n, n, n, n, n, n, n},
		SyncStatus:        {y, y, y, n, n, n, n, n},
		SyncUsers:         {y, n, n, n, n, n, n, n},
		MaskedObjects:     {n, n, n, n, n, y, n, n},
		Zeroize:           {y, n, n, n, n, n, n, n},
		InitCluster:       {n, n, n, n, n, n, n, y},
		AddHSM:            {n, n, n, n, n, n, n, y},
		RemoveHSM:         {n, n, n, n, n, n, n, y},
		Reachability:      {n, n, n, n, n, n, n, y},
		SetClock:          {n, n, n, n, n, n, n, y},
		DumpState:         {n, n, n, n, n, n, n, y},
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
	for _, bad := range []string{"Abcdef1", "abcdefgh1", "ABCDEFGHI", "abcdefgh!", strings.Repeat("aA1", 86)} {
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
