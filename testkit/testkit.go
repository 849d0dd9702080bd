// Package testkit runs hsmkit's commands inside a Go test binary, for
// testscript (github.com/rogpeppe/go-internal/testscript): scripts call
// hsm-sim, hsm-user, hsm-quorum, hsm-sign and hsm-sync with exec, as a
// user's shell would, with no install step and with coverage.
//
//	func TestMain(m *testing.M) {
//		os.Exit(testscript.RunMain(m, testkit.Commands()))
//	}
//
//	func TestScripts(t *testing.T) {
//		testscript.Run(t, testscript.Params{Dir: "testdata"})
//	}
package testkit

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/commands"
)

// Commands returns every hsmkit command by its binary's name, each a
// function that runs it with the process's arguments and standard streams
// and returns its exit code: the map testscript.RunMain takes.
func Commands() map[string]func() int {
	m := make(map[string]func() int, len(commands.All))
	for name, main := range commands.All {
		m[name] = func() int { return main(os.Args, os.Stdin, os.Stdout, os.Stderr) }
	}
	return m
}
