package syncdiff

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The plan fuzz targets check that a plan is a script with exactly the
// planned commands, whatever the captures hold: each dialect's output is
// parsed back (a strict POSIX shell tokenizer for hsm-user, a whitespace
// tokenizer for the line-based CMU and cloudhsm-cli shells) and compared
// with the commands the plan's actions call for. A step may be withheld
// (its commands left out) only when one of its outside strings is not
// safe for the dialect, by the tests' own rule below. Every line must be
// free of terminal controls, and comment lines start with '#'.

// fixedCapture is a second HSM to combine with the fuzzed capture, so
// plans have steps in both directions.
const fixedCapture = `{"error_code":0,"data":{"users":[
{"username":"admin","role":"admin","locked":"false","mfa":[],"quorum":[],"cluster-coverage":"full"},
{"username":"alice","role":"crypto-user","locked":"true","mfa":[],"quorum":[],"cluster-coverage":"full"},
{"username":"carol","role":"crypto-user","locked":"false","mfa":[],"quorum":[],"cluster-coverage":"full"},
{"username":"dave","role":"admin","locked":"false","mfa":[],"quorum":[],"cluster-coverage":"full"}]}}`

const seedCapture = `{"error_code":0,"data":{"users":[
{"username":"admin","role":"admin","locked":"false","mfa":[],"quorum":[],"cluster-coverage":"full"},
{"username":"alice","role":"crypto-user","locked":"false","mfa":[],"quorum":[],"cluster-coverage":"full"},
{"username":"bob","role":"crypto-user","locked":"false","mfa":[],"quorum":[],"cluster-coverage":"inconsistent"},
{"username":"dave","role":"crypto-user","locked":"false","mfa":[],"quorum":[],"cluster-coverage":"full"},
{"username":"erin","role":"crypto-user","locked":"false","mfa":[],"quorum":[],"cluster-coverage":"full"}]}}`

func FuzzPlanCapture(f *testing.F) {
	f.Add([]byte(seedCapture), "hsm-a.json")
	f.Add([]byte(seedCapture), "captures/server 1.json")
	f.Add([]byte(strings.ReplaceAll(seedCapture, `"inconsistent"`, `"full"`)), "hsm-a.json")
	f.Add([]byte("Users on server 0(10.0.0.1):\nNumber of users found:2\n\nUser Id User Type User Name MofnPubKey LoginFailureCnt 2FA\n"+
		"1 PCO admin YES 0 NO\n2 CU carol NO 0 NO\n"), "listusers.txt")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		s, err := Import(name, data)
		if err != nil {
			return
		}
		fixed, err := Import("hsm-fixed.json", []byte(fixedCapture))
		if err != nil {
			t.Fatal(err)
		}
		snaps := []Snapshot{s}
		if both, err := Combine(s, fixed); err == nil {
			snaps = append(snaps, both)
		}
		for _, snap := range snaps {
			checkPlanScripts(t, Diff(snap).Plan())
		}
	})
}

// FuzzPlanSnapshot renders plans from snapshots no importer vetted: HSM
// ids, IPs and usernames are arbitrary strings.
func FuzzPlanSnapshot(f *testing.F) {
	f.Add("hsm-a", "server 1", "10.0.0.2", "bob", uint8(0))
	f.Add("hsm-a", "x\ntouch pwned", "", "bob", uint8(1))
	f.Add("--help", "hsm-b", "10.0.0.2; rm -rf /", "bob", uint8(2))
	f.Add("hsm-\x1b]0;t\x07a", "hsm-\u202eb", "::1", "bo b", uint8(3))
	f.Add("0", "\u2028", "", "0", uint8(3)) // CI found the line separator
	f.Fuzz(func(t *testing.T, idA, idB, ip, user string, shape uint8) {
		if idA == idB {
			return
		}
		a := HSM{ID: idA, Server: 0, IP: "10.0.0.1", Reachable: true, Users: []User{{ID: 1, Name: "admin", Role: RoleAdmin}}}
		b := HSM{ID: idB, Server: 1, IP: ip, Reachable: true, Users: []User{{ID: 1, Name: "admin", Role: RoleAdmin}}}
		t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		u := User{ID: 7, Name: user, Role: RoleCryptoUser, Changed: t0}
		switch shape % 4 {
		case 0: // missing on b
			a.Users = append(a.Users, u)
		case 1: // missing on a
			b.Users = append(b.Users, u)
		case 2: // a role difference, the tie broken by time
			a.Users = append(a.Users, u)
			v := u
			v.Role, v.Changed = RoleAdmin, t0.Add(time.Hour)
			b.Users = append(b.Users, v)
		case 3: // a password difference, and a quorum key
			u.PasswordHash, u.Changed = "h1", t0.Add(time.Hour)
			a.Users = append(a.Users, u)
			v := u
			v.PasswordHash, v.QuorumKey, v.Changed = "h2", "k", t0
			b.Users = append(b.Users, v)
			a.Users[0].PasswordHash, b.Users[0].PasswordHash = "a", "a"
		}
		checkPlanScripts(t, Diff(Snapshot{ClusterID: "cluster-" + idA, HSMs: []HSM{a, b}, ConfigHSMs: []string{idA, ip}}).Plan())
	})
}

// checkPlanScripts renders p in every dialect and parses each script back.
func checkPlanScripts(t *testing.T, p Plan) {
	t.Helper()
	for _, d := range Dialects() {
		var b strings.Builder
		if err := WritePlan(&b, p, d); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		script := b.String()
		got, err := parseScript(d, script)
		if err != nil {
			t.Fatalf("%s: %v\n%s", d, err, script)
		}
		if err := matchPlanned(d, p, got); err != nil {
			t.Fatalf("%s: %v\n%s", d, err, script)
		}
	}
}

// terminalSafe is the tests' rule for text that may reach a terminal: valid
// UTF-8 with no C0 control but tab, no DEL, no C1 control, no bidi control
// or mark, and no line or paragraph separator (a terminal or editor breaks
// the line there, so a comment could end and a command begin).
func terminalSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r < 0x20 && r != '\t', r == 0x7f, r >= 0x80 && r <= 0x9f,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069,
			r == 0x200e, r == 0x200f, r == 0x061c, r == 0x2028, r == 0x2029:
			return false
		}
	}
	return true
}

// parseScript returns the commands of a script, each as its words.
func parseScript(dialect, script string) ([][]string, error) {
	if !strings.HasSuffix(script, "\n") {
		return nil, errors.New("the script does not end with a newline")
	}
	var cmds [][]string
	for i, line := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
		if !terminalSafe(line) || strings.Contains(line, "\t") {
			return nil, fmt.Errorf("line %d holds a control character: %q", i+1, line)
		}
		if line == "" || line[0] == '#' {
			continue
		}
		var words []string
		var err error
		if dialect == "hsm-user" {
			words, err = shellWords(line)
		} else {
			words, err = plainWords(line)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %v: %q", i+1, err, line)
		}
		cmds = append(cmds, words)
	}
	return cmds, nil
}

// shellWords splits a line as a POSIX shell would, refusing anything that
// is not a plain command with words: an unquoted operator, expansion,
// glob or comment, or a quote left open (the command would go on on the
// next line).
func shellWords(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	in := false
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == ' ':
			if in {
				words, in = append(words, w.String()), false
				w.Reset()
			}
			i++
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			w.WriteString(line[i+1 : i+1+j])
			in, i = true, i+j+2
		case c == '\\':
			if i+1 == len(line) {
				return nil, errors.New("a backslash ends the line")
			}
			w.WriteByte(line[i+1])
			in, i = true, i+2
		case c >= 0x80 || strings.IndexByte("|&;<>()$`\"*?[]#~={}!%^", c) >= 0:
			return nil, fmt.Errorf("unquoted %q", c)
		default:
			w.WriteByte(c)
			in, i = true, i+1
		}
	}
	if in {
		words = append(words, w.String())
	}
	if len(words) == 0 {
		return nil, errors.New("a line of blanks")
	}
	return words, nil
}

// plainWords splits a line of the line-based shells: words between single
// spaces, each a safe token or a <PLACEHOLDER> of one.
func plainWords(line string) ([]string, error) {
	words := strings.Split(line, " ")
	for _, w := range words {
		if t := strings.TrimSuffix(strings.TrimPrefix(w, "<"), ">"); t == "" || !safeChars(t) {
			return nil, fmt.Errorf("unsafe word %q", w)
		}
	}
	return words, nil
}

// safeToken is the tests' rule for an outside string in a command of the
// line-based dialects: safe characters, and not a flag.
func safeToken(s string) bool { return s != "" && s[0] != '-' && safeChars(s) }

func safeChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// shellArgSafe is the tests' rule for an argument of the hsm-user dialect:
// anything single quotes can hold on one line that is not a flag.
func shellArgSafe(s string) bool {
	return s != "" && s[0] != '-' && terminalSafe(s) && !strings.Contains(s, "\t")
}

// matchPlanned compares the commands of a script with the actions of p.
func matchPlanned(dialect string, p Plan, got [][]string) error {
	var want [][]string
	for i, a := range p.Actions {
		cmds, outside := plannedCommands(dialect, a)
		safe := true
		for _, s := range outside {
			if dialect == "hsm-user" && !shellArgSafe(s) || dialect != "hsm-user" && !safeToken(s) {
				safe = false
			}
		}
		if !safe {
			// Withheld: none of its commands may appear, and the rest must.
			rest, err := skipPrefix(got, len(want), cmds)
			if err != nil {
				return fmt.Errorf("step %d (%q): %v", i+1, outside, err)
			}
			got = rest
			continue
		}
		want = append(want, cmds...)
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		return fmt.Errorf("the script's commands differ from the plan's\n got  %q\n want %q", got, want)
	}
	return nil
}

// skipPrefix checks that cmds do not appear at position at of got.
func skipPrefix(got [][]string, at int, cmds [][]string) ([][]string, error) {
	if len(cmds) > 0 && at+len(cmds) <= len(got) && slices.EqualFunc(got[at:at+len(cmds)], cmds, slices.Equal) {
		return nil, errors.New("a withheld step's commands are in the script")
	}
	return got, nil
}

// plannedCommands is what one action calls for in a dialect, and the
// outside strings its commands carry.
func plannedCommands(dialect string, a Action) (cmds [][]string, outside []string) {
	typ := func(role string) string {
		if role == RoleAdmin {
			return "CO"
		}
		return "CU"
	}
	pw := "<PASSWORD-OF-" + a.User + ">"
	switch dialect {
	case "hsm-user":
		if recordOnly(a) {
			return nil, nil
		}
		srv := []string{"--server", a.Dst.ID, "--username", a.User, "--role"}
		del := func(role string) []string { return append(append([]string{"hsm-user", "delete"}, srv...), role) }
		mk := func(verb string) []string {
			return append(append(append([]string{"hsm-user", verb}, srv...), a.Role), "--password-stdin")
		}
		outside = []string{a.Dst.ID, a.User}
		switch {
		case a.Kind == ActionDelete:
			return [][]string{del(a.Role)}, outside
		case a.DstRole == "":
			return [][]string{mk("create")}, outside
		case a.DstRole != a.Role:
			return [][]string{del(a.DstRole), mk("create")}, outside
		}
		return [][]string{mk("change-password")}, outside
	case "cmu":
		n := strconv.Itoa(a.Dst.Server)
		if recordOnly(a) {
			id := strconv.Itoa(a.SrcUserID)
			if a.SrcUserID == 0 {
				id = "<USER-ID-OF-" + a.User + "-ON-SERVER-" + strconv.Itoa(a.Src.Server) + ">"
			}
			return [][]string{{"server", strconv.Itoa(a.Src.Server)}, {"syncUser", id, n}, {"exit"}}, []string{a.User}
		}
		cmds = [][]string{{"server", n}}
		switch {
		case a.Kind == ActionDelete:
			cmds = append(cmds, []string{"deleteUser", typ(a.Role), a.User})
		case a.DstRole == "":
			cmds = append(cmds, []string{"createUser", typ(a.Role), a.User, pw})
		case a.DstRole != a.Role:
			cmds = append(cmds, []string{"deleteUser", typ(a.DstRole), a.User}, []string{"createUser", typ(a.Role), a.User, pw})
		default:
			cmds = append(cmds, []string{"changePswd", typ(a.Role), a.User, pw})
		}
		return append(cmds, []string{"exit"}), []string{a.User}
	}
	if recordOnly(a) {
		return nil, nil
	}
	cli := func(verb, role string, withPW bool) []string {
		c := []string{"cloudhsm-cli", "user", verb, "--username", a.User, "--role", role}
		if withPW {
			c = append(c, "--password", pw)
		}
		return c
	}
	outside = []string{a.User}
	switch {
	case a.Kind == ActionDelete:
		return [][]string{cli("delete", a.Role, false)}, outside
	case a.DstRole == "":
		return [][]string{cli("create", a.Role, true)}, outside
	case a.DstRole != a.Role:
		return [][]string{cli("delete", a.DstRole, false), cli("create", a.Role, true)}, outside
	}
	return [][]string{cli("change-password", a.Role, true)}, outside
}
