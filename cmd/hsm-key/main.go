// Command hsm-key manages and uses the keys of a CloudHSM cluster.
package main

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/hsmkey"
)

func main() { os.Exit(hsmkey.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
