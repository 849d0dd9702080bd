package hsmkit_test

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/hsmkey"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmquorum"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmsim"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmsync"
	"github.com/hsmkit/hsmkit/internal/cmd/hsmuser"
)

func init() {
	register("hsm-sim", func(args []string) int { return hsmsim.Main(args, os.Stdin, os.Stdout, os.Stderr) })
	register("hsm-quorum", func(args []string) int { return hsmquorum.Main(args, os.Stdin, os.Stdout, os.Stderr) })
	register("hsm-sync", func(args []string) int { return hsmsync.Main(args, os.Stdin, os.Stdout, os.Stderr) })
	register("hsm-key", func(args []string) int { return hsmkey.Main(args, os.Stdin, os.Stdout, os.Stderr) })
	register("hsm-user", func(args []string) int { return hsmuser.Main(args, os.Stdin, os.Stdout, os.Stderr) })
}
