// Package testkit runs hsmkit's commands inside a Go test binary, for
// testscript (github.com/rogpeppe/go-internal/testscript): scripts call
// hsm-sim, hsm-user, hsm-quorum, hsm-sign, hsm-sync, hsm-key and
// cloudhsm-cli with exec, as a user's shell would, with no install step and
// with coverage.
//
//	func TestMain(m *testing.M) {
//		testscript.Main(m, testkit.Commands())
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
// and exits with its exit code: the map testscript.Main takes. (Not
// testscript.RunMain's func() int: that API is deprecated.)
func Commands() map[string]func() {
	m := make(map[string]func(), len(commands.All))
	for name, main := range commands.All {
		m[name] = func() { os.Exit(main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
	}
	return m
}
