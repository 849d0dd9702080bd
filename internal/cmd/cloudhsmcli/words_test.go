package cloudhsmcli

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
		err  string
	}{
		{"user list", []string{"user", "list"}, ""},
		{"  user   list  ", []string{"user", "list"}, ""},
		{"\tlogin\t--username admin", []string{"login", "--username", "admin"}, ""},
		{"", nil, ""},
		{"login --password 'a b$c'", []string{"login", "--password", "a b$c"}, ""},
		{`login --password "a \"b\" \\ \n"`, []string{"login", "--password", `a "b" \ \n`}, ""},
		{`x a\ b`, []string{"x", "a b"}, ""},
		{`x '' ""`, []string{"x", "", ""}, ""},
		{`x 'a'"b"c`, []string{"x", "abc"}, ""},
		{"x 'open", nil, "unterminated single quote"},
		{`x "open`, nil, "unterminated double quote"},
		{`x \`, nil, "a backslash ends the line"},
	} {
		got, err := splitWords(tc.line)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("splitWords(%q) error = %v, want %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
}

// FuzzSplitWords: any line either splits or is refused, never panics, and
// a line of plain words splits into exactly those words.
func FuzzSplitWords(f *testing.F) {
	f.Add("user create --username alice --role crypto-user")
	f.Add(`login --password "p\"w" 'x y'`)
	f.Add("x 'open")
	f.Fuzz(func(t *testing.T, line string) {
		words, err := splitWords(line)
		if err != nil {
			return
		}
		if !strings.ContainsAny(line, `'"\`) {
			want := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
			if !slices.Equal(words, want) && !(len(words) == 0 && len(want) == 0) {
				t.Fatalf("splitWords(%q) = %q, want %q", line, words, want)
			}
		}
	})
}
