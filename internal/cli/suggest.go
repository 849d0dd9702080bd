package cli

import (
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// suggest picks the names closest to a mistyped word: those at the least
// edit distance (insertions, deletions, substitutions and swaps of two
// neighbours), when that distance is small for the word's length, else
// the names it is the start of. Nothing is suggested for a word that
// resembles no name: a wild guess is worse than the list of commands.
func suggest(typed string, names []string) []string {
	typed = strings.ToLower(typed)
	limit := max(1, len(typed)/3)
	best, bestD := []string(nil), limit+1
	for _, n := range names {
		d := editDistance(typed, n)
		switch {
		case d < bestD:
			best, bestD = []string{n}, d
		case d == bestD:
			best = append(best, n)
		}
	}
	if best == nil && len(typed) >= 2 {
		for _, n := range names {
			if strings.HasPrefix(n, typed) {
				best = append(best, n)
			}
		}
	}
	if len(best) > 3 {
		return nil // too many to help
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b
// (Levenshtein with adjacent transpositions), by bytes: command and flag
// names are ASCII.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// didYouMean is "; did you mean "a"?" (or "a" or "b"), or "" when nothing is close.
func didYouMean(prefix string, found []string) string {
	if len(found) == 0 {
		return ""
	}
	q := make([]string, len(found))
	for i, f := range found {
		q[i] = fmt.Sprintf("%q", prefix+f)
	}
	return "; did you mean " + strings.Join(q, " or ") + "?"
}

// commandNames are the names and aliases of the visible commands.
func commandNames(cmds []*ucli.Command) []string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Names()...)
		}
	}
	return names
}

// unknownCommand is the usage error for a word that names no command
// under path ("" at the top, "change-quorum" below it).
func unknownCommand(path, typed string, cmds []*ucli.Command) error {
	prefix := ""
	if path != "" {
		prefix = path + " "
	}
	names := commandNames(cmds)
	e := &Error{Code: ExitUsage, Err: fmt.Errorf("unknown command %q%s", prefix+typed, didYouMean(prefix, suggest(typed, names)))}
	if len(suggest(typed, names)) == 0 {
		e.Hint = "commands: " + strings.Join(names, ", ")
	}
	return e
}

// flagHint suggests a flag for urfave's "flag provided but not defined: -x".
func flagHint(err error, flags []ucli.Flag) string {
	const undefined = "flag provided but not defined: "
	msg := err.Error()
	if !strings.HasPrefix(msg, undefined) {
		return ""
	}
	typed := strings.TrimLeft(strings.TrimPrefix(msg, undefined), "-")
	var names []string
	for _, f := range flags {
		if v, ok := f.(ucli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		names = append(names, f.Names()...)
	}
	found := suggest(typed, names)
	if len(found) == 0 {
		return ""
	}
	for i, f := range found {
		if len(f) == 1 {
			found[i] = "-" + f
		} else {
			found[i] = "--" + f
		}
	}
	return "did you mean " + strings.Join(found, " or ") + "?"
}
