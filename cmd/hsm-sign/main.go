// Command hsm-sign signs quorum tokens offline; see internal/cmd/hsmsign.
package main

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/hsmsign"
)

func main() { os.Exit(hsmsign.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
