// Command lunash is LunaSH, the appliance shell of a simulated Thales Luna 7 cluster.
package main

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/lunash"
)

func main() { os.Exit(lunash.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
