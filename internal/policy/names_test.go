package policy

import (
	"strings"
	"testing"
)

func TestNormalizeUsername(t *testing.T) {
	long := strings.Repeat("a", 45)
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "admin", want: "admin"},
		{in: "Carol_2", want: "carol_2"},
		{in: "ADMIN", want: "admin"},
		{in: "_", want: "_"},
		{in: strings.Repeat("a", 31), want: strings.Repeat("a", 31)},
		{in: strings.Repeat("a", 32), err: `invalid username "` + strings.Repeat("a", 32) + `": 1 to 31 characters, letters, digits and _ only`},
		{in: "", err: `invalid username "": 1 to 31 characters, letters, digits and _ only`},
		// The Kelvin sign lowercases to ASCII k: refused, not admin's twin.
		{in: "\u212Aevin", err: "invalid username \"\u212Aevin\""},
		{in: "adm\u212An", err: `invalid username`},
		{in: "ÄBC", err: `invalid username "ÄBC"`},
		{in: "bad-name", err: `invalid username "bad-name": 1 to 31 characters, letters, digits and _ only`},
		{in: "../x", err: `invalid username "../x"`},
		{in: "a b", err: `invalid username "a b"`},
		{in: "a\x00b", err: `invalid username "a\x00b"`},
		{in: "a\xffb", err: `invalid username "a\xffb"`},
		{in: long, err: `invalid username "` + long[:40] + `…": 1 to 31`},
	} {
		got, err := NormalizeUsername(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NormalizeUsername(%q) = %q, %v; want error containing %s", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeUsername(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	const length = "invalid password: 7 to 32 characters"
	for _, tc := range []struct {
		pw, err string
	}{
		{"Admin-pass1", ""},
		{"12345678", ""},
		{"1234567", ""}, // CloudHSM's quota: 7 to 32
		{"123456", length},
		{"", length},
		{strings.Repeat("x", 32), ""},
		{strings.Repeat("x", 33), length},
		// Runes, not bytes: 8 two-byte letters are 8 characters; 32 are still fine.
		{strings.Repeat("é", 8), ""},
		{strings.Repeat("é", 32), ""},
		{strings.Repeat("é", 33), length},
		{"é234567", ""},
		{"é23456", length},
		{"user:password", "invalid password: ':' is not allowed (single-command login uses user:password)"},
	} {
		err := CheckPassword(tc.pw)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("CheckPassword(%q) = %v; want nil", tc.pw, err)
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("CheckPassword(%q) = %v; want %q", tc.pw, err, tc.err)
		}
	}
}

// TestPasswordNeverEchoed: the message must not carry the password.
func TestPasswordNeverEchoed(t *testing.T) {
	for _, pw := range []string{"short", "has:colon-inside", strings.Repeat("s3cret", 10)} {
		if err := CheckPassword(pw); err == nil || strings.Contains(err.Error(), pw) {
			t.Errorf("CheckPassword(%q) = %v", pw, err)
		}
	}
}
