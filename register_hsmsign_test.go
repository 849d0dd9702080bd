package hsmkit_test

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/hsmsign"
)

func init() {
	register("hsm-sign", func(args []string) int { return hsmsign.Main(args, os.Stdin, os.Stdout, os.Stderr) })
}
