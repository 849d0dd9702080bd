// Command hsm-quorum manages quorum tokens and policy of a CloudHSM cluster.
package main

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/hsmquorum"
)

func main() { os.Exit(hsmquorum.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
