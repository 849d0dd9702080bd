package hsmkit_test

import (
	"fmt"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
)

// cmdFillusers creates crypto users fill0001, fill0002, … through the
// engine, in-process, as the admin named, until every HSM holds N users:
// a cluster at CloudHSM's limits without a thousand processes.
//
//	fillusers cluster.yaml admin 1024
func cmdFillusers(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: fillusers CONFIG ADMIN N")
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	c, err := hsm.Open(ts.MkAbs(args[0]), hsm.Options{})
	ts.Check(err)
	users, _, err := c.ListUsers(hsm.Nobody{})
	ts.Check(err)
	for i := len(users) + 1; i <= n; i++ {
		name := fmt.Sprintf("fill%04d", i)
		if _, err := c.CreateUser(hsm.Targeting{}, hsm.Fixed{User: args[1]}, name, policy.CryptoUser, "Fill-pass1", nil); err != nil {
			ts.Fatalf("fillusers: creating %s: %v", name, err)
		}
	}
}
