// Command cloudhsm-cli is AWS CloudHSM's cloudhsm-cli on the simulated
// cluster: operators' scripts run against it unchanged.
package main

import (
	"os"

	"github.com/hsmkit/hsmkit/internal/cmd/cloudhsmcli"
)

func main() { os.Exit(cloudhsmcli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
