// Command hsm-sync finds, explains and repairs user drift in a cluster.
package main

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/hsmsync"
)

func main() { os.Exit(hsmsync.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
