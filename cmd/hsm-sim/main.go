// Command hsm-sim creates and runs a simulated CloudHSM cluster.
package main

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/hsmsim"
)

func main() { os.Exit(hsmsim.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
