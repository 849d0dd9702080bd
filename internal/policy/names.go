package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxUsername is the longest username, in bytes (all ASCII).
const MaxUsername = 31

// NormalizeUsername checks a username (1 to 31 ASCII letters, digits or _)
// and returns it lowercased: usernames are case-insensitive. The check is
// on bytes before lowercasing, so a Unicode letter that lowercases to
// ASCII (the Kelvin sign K, U+212A, becomes k) is refused rather than
// turned into another user's name.
func NormalizeUsername(s string) (string, error) {
	if !validUsername(s) {
		return "", fmt.Errorf("invalid username %q: 1 to 31 characters, letters, digits and _ only", shorten(s))
	}
	return strings.ToLower(s), nil
}

func validUsername(s string) bool {
	if len(s) == 0 || len(s) > MaxUsername {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// shorten keeps an error message readable when the name is a pasted file.
func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Password length bounds, in characters (runes).
const (
	MinPassword = 7
	MaxPassword = 32
)

// CheckPassword enforces the password rules; the message never echoes the
// password.
func CheckPassword(pw string) error {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPassword || n > MaxPassword:
		return errors.New("invalid password: 7 to 32 characters")
	case strings.ContainsRune(pw, ':'):
		// Single-command login (HSM_PIN) splits user:password at the first ':'.
		return errors.New("invalid password: ':' is not allowed (single-command login uses user:password)")
	}
	return nil
}
