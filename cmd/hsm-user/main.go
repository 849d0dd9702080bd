// Command hsm-user manages the users of a CloudHSM cluster.
package main

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/hsmuser"
)

func main() { os.Exit(hsmuser.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
