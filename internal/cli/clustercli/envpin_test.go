package clustercli

import (
	"testing"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
)

func TestEnvPIN(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want *hsm.PIN
		err  string
	}{
		{"none", nil, nil, ""},
		{"hsmkit's", map[string]string{"HSM_PIN": "Admin:pw:x", "HSM_ROLE": "admin"}, &hsm.PIN{User: "admin", Password: "pw:x", Role: policy.Admin}, ""},
		{"cloudhsm-cli's", map[string]string{"CLOUDHSM_PIN": "bob:secret", "CLOUDHSM_ROLE": "crypto-user"}, &hsm.PIN{User: "bob", Password: "secret", Role: policy.CryptoUser}, ""},
		{"both, the same", map[string]string{"HSM_PIN": "bob:s", "HSM_ROLE": "crypto-user", "CLOUDHSM_PIN": "bob:s", "CLOUDHSM_ROLE": "crypto-user"}, &hsm.PIN{User: "bob", Password: "s", Role: policy.CryptoUser}, ""},
		{"both, different", map[string]string{"HSM_PIN": "bob:s", "HSM_ROLE": "crypto-user", "CLOUDHSM_PIN": "admin:s", "CLOUDHSM_ROLE": "admin"}, nil,
			"HSM_PIN and CLOUDHSM_PIN (or their roles) name different logins: set one"},
		{"no role", map[string]string{"CLOUDHSM_PIN": "bob:s"}, nil, "CLOUDHSM_PIN needs CLOUDHSM_ROLE=admin or crypto-user"},
		{"no colon, never echoed", map[string]string{"CLOUDHSM_PIN": "hunter2", "CLOUDHSM_ROLE": "admin"}, nil, "CLOUDHSM_PIN: want username:password"},
		{"bad role", map[string]string{"CLOUDHSM_PIN": "bob:s", "CLOUDHSM_ROLE": "root"}, nil, "CLOUDHSM_ROLE: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := cli.Env{Getenv: func(k string) string { return tc.env[k] }}
			got, err := EnvPIN(env)
			if tc.err != "" {
				if err == nil || len(err.Error()) < len(tc.err) || err.Error()[:len(tc.err)] != tc.err || cli.ExitCode(err) != cli.ExitUsage {
					t.Fatalf("EnvPIN = %v, %v; want error %q (usage)", got, err, tc.err)
				}
				return
			}
			if err != nil || (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Fatalf("EnvPIN = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
