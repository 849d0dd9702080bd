// Package commands is the one list of hsmkit's commands: the tests, the
// public testkit and the man pages (make man) all take them from here, so
// a new command is one line below (and its cmd/<name>/main.go).
package commands

import (
	"sort"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cmd/cloudhsmcli"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmkey"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmkms"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmquorum"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmsign"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmsim"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmsync"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmuser"
	"github.com/hsmkit/hsmkit/internal/cmd/lunacm"
	"github.com/hsmkit/hsmkit/internal/cmd/lunash"
)

// All maps each binary's name (cmd/<name>) to its Main.
var All = map[string]cli.MainFunc{
	"cloudhsm-cli": cloudhsmcli.Main,
	"hsm-key":      hsmkey.Main,
	"hsm-kms":      hsmkms.Main,
	"hsm-quorum":   hsmquorum.Main,
	"hsm-sign":     hsmsign.Main,
	"hsm-sim":      hsmsim.Main,
	"hsm-sync":     hsmsync.Main,
	"hsm-user":     hsmuser.Main,
	"lunacm":       lunacm.Main,
	"lunash":       lunash.Main,
}

// Names are the commands' names, sorted.
func Names() []string {
	names := make([]string, 0, len(All))
	for n := range All {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
