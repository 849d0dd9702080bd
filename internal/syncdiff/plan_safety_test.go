package syncdiff

import (
	"strings"
	"testing"
)

// TestPlanWithholdsUnsafeValues: a step whose command would name a value
// the dialect cannot write safely is a comment, the value escaped.
func TestPlanWithholdsUnsafeValues(t *testing.T) {
	for _, tt := range []struct {
		id, user, dialect, want string
	}{
		{"x\ntouch pwned", "bob", "hsm-user", `# not written: the HSM id 'x\x0atouch pwned' holds a control or bidi character (shown escaped), so no hsm-user command can safely name it; make this repair by hand`},
		{"hsm-\u202eb", "bob", "hsm-user", `# not written: the HSM id 'hsm-\u202eb' holds a control or bidi character (shown escaped)`},
		{"--help", "bob", "hsm-user", `# not written: the HSM id '--help' starts with '-' and would read as an option`},
		{"", "bob", "hsm-user", `# not written: the HSM id '' is empty`},
		{"hsm-b", "bob;reboot", "hsm-user", "hsm-user create --server hsm-b --username 'bob;reboot' --role crypto-user --password-stdin\n"},
		{"hsm-b", "bob\x1b[2J", "hsm-user", `# not written: the username 'bob\x1b[2J' holds a control or bidi character`},
		{"hsm-b", "bob;reboot", "cmu", `# not written: the username 'bob;reboot' holds characters other than letters, digits, '_', '-', '.' and ':', so no cmu command can safely name it`},
		{"hsm-b", "bob smith", "cloudhsm-cli", `# not written: the username 'bob smith' holds characters other than`},
		{"x\ntouch pwned", "bob", "cmu", "\nserver 1\ncreateUser CU bob <PASSWORD-OF-bob>\nexit\n"},
	} {
		a := HSM{ID: "hsm-a", Server: 0, IP: "10.0.0.1", Reachable: true, Users: []User{{ID: 3, Name: tt.user, Role: RoleCryptoUser}}}
		b := HSM{ID: tt.id, Server: 1, IP: "10.0.0.2", Reachable: true, Users: []User{}}
		var out strings.Builder
		if err := WritePlan(&out, Diff(Snapshot{HSMs: []HSM{a, b}}).Plan(), tt.dialect); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), tt.want) {
			t.Errorf("%s plan for HSM %q, user %q lacks %q:\n%s", tt.dialect, tt.id, tt.user, tt.want, out.String())
		}
		if strings.Contains(out.String(), "not written") == strings.HasSuffix(tt.want, "\n") {
			t.Errorf("%s plan for HSM %q, user %q: withheld or not, wrongly:\n%s", tt.dialect, tt.id, tt.user, out.String())
		}
	}
}

// TestPlanConfigIPIsAToken: an IP that is not a plain token is never
// offered to configure-cli.
func TestPlanConfigIPIsAToken(t *testing.T) {
	a := HSM{ID: "hsm-a", Server: 0, IP: "10.0.0.1", Reachable: true, Users: []User{{ID: 3, Name: "bob", Role: RoleCryptoUser}}}
	b := HSM{ID: "hsm-b", Server: 1, IP: "10.0.0.2;reboot", Reachable: true, Users: []User{}}
	var out strings.Builder
	if err := WritePlan(&out, Diff(Snapshot{HSMs: []HSM{a, b}}).Plan(), "cloudhsm-cli"); err != nil {
		t.Fatal(err)
	}
	if want := "# config listing only hsm-b: sudo /opt/cloudhsm/bin/configure-cli -a <IP-OF-hsm-b>\n"; !strings.Contains(out.String(), want) {
		t.Errorf("plan lacks %q:\n%s", want, out.String())
	}
}
