// Command hsm-kms is AWS KMS's side of a custom key store on the
// simulated cluster, in aws kms's subcommands, flags and JSON.
package main

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/hsmkms"
)

func main() { os.Exit(hsmkms.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
