// Package scripts shows how a module of your own tests its automation
// around hsmkit with testscript: the commands run in-process from
// hsmkit's testkit, with no install step, and scripts call them with exec
// as your shell scripts and cron jobs do.
package scripts

import (
	"testing"

	"github.com/hsmkit/hsmkit/testkit"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, testkit.Commands())
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata", RequireExplicitExec: true})
}
