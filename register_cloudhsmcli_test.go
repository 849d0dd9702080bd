package hsmkit_test

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/cloudhsmcli"
)

func init() {
	register("cloudhsm-cli", func(args []string) int { return cloudhsmcli.Main(args, os.Stdin, os.Stdout, os.Stderr) })
}
