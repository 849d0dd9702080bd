// Command lunacm is LunaCM, the client tool of a simulated Thales Luna 7 cluster's HSM and partition roles.
package main

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/lunacm"
)

func main() { os.Exit(lunacm.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
