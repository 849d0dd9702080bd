package safetext

import (
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"hsm-a", "hsm-a"},
		{"server 1", "server 1"},
		{`C:\path`, `C:\path`},
		{"héllo wörld ✓", "héllo wörld ✓"},
		{"x\ntouch pwned", `x\x0atouch pwned`},
		{"a\r\nb", `a\x0d\x0ab`},
		{"tab\there", `tab\x09here`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"\x1b]0;title\x07", `\x1b]0;title\x07`},
		{"nul\x00", `nul\x00`},
		{"del\x7f", `del\x7f`},
		{"c1\u0085\u009b", `c1\u0085\u009b`},
		{"stray\x85byte", `stray\x85byte`},
		{"evil\u202egnp.exe", `evil\u202egnp.exe`},
		{"\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069", `\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069`},
		{"\u200e\u200f\u061c\u2028\u2029", `\u200e\u200f\u061c\u2028\u2029`},
		{"\xff\xfe", `\xff\xfe`},
		{"\xe2\x80", `\xe2\x80`}, // a truncated U+202E
	}
	for _, tt := range tests {
		got := Escape(tt.in)
		if got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if Safe(tt.in) != (tt.in == tt.want) {
			t.Errorf("Safe(%q) = %v", tt.in, Safe(tt.in))
		}
		if !Safe(got) || Escape(got) != got {
			t.Errorf("Escape(%q) = %q is not safe and stable", tt.in, got)
		}
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("x\ntouch pwned")
	f.Add("\x1b[2J\u202e\xff")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q is not UTF-8", s, e)
		}
		for _, r := range e {
			if UnsafeRune(r) {
				t.Fatalf("Escape(%q) = %q holds %U", s, e, r)
			}
		}
		if Escape(e) != e || !Safe(e) {
			t.Fatalf("Escape is not stable on %q", e)
		}
		if Safe(s) != (e == s) {
			t.Fatalf("Safe(%q) = %v but Escape gives %q", s, Safe(s), e)
		}
	})
}
