// Package safetext makes text that came from outside hsmkit (capture
// files and their names, HSM ids, usernames, arguments, file contents
// quoted in errors) safe to print on a terminal or into a script.
//
// Escape is the one place that decides what is unsafe and how it is shown;
// internal/cli (tables, errors, warnings, JSON) and internal/syncdiff
// (reports, repair plans) both use it.
package safetext

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// UnsafeRune reports whether r is never printed raw: a C0 control (tab,
// newline and carriage return included), DEL, a C1 control, or a
// character that reorders or breaks the text around it: the bidi
// embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the
// bidi marks (U+200E, U+200F, U+061C) and the line and paragraph
// separators (U+2028, U+2029).
func UnsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x200e, r == 0x200f, r == 0x061c, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// Safe reports whether Escape would return s unchanged: s is valid UTF-8
// without an unsafe rune.
func Safe(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 || UnsafeRune(r) {
			return false
		}
		i += n
	}
	return true
}

// Escape returns s with every unsafe rune written visibly: one below
// U+0080 as \xNN (a newline is \x0a), any other as \uNNNN (a C1 control
// is \u0085, a bidi override \u202e), and each byte that is not valid
// UTF-8 as \xNN (\x85 is a stray byte, told apart from \u0085). The
// result holds no unsafe rune, so it is one line; safe text, backslashes
// included, is returned as is, and Escape(Escape(s)) == Escape(s).
func Escape(s string) string {
	if Safe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(hex(`\x`, uint32(s[i]), 2))
		case r < 0x80 && UnsafeRune(r):
			b.WriteString(hex(`\x`, uint32(r), 2))
		case UnsafeRune(r):
			b.WriteString(hex(`\u`, uint32(r), 4))
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func hex(prefix string, v uint32, width int) string {
	h := strconv.FormatUint(uint64(v), 16)
	return prefix + strings.Repeat("0", width-len(h)) + h
}
