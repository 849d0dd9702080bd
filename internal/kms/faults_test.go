package kms

import (
	"strings"
	"testing"

	"github.com/hsmkit/hsmkit/internal/hsm"
)

// Every fault switch hsm-sim offers has an effect on a connect, and the
// code-causing ones each cause a different ConnectionErrorCode, so a new
// switch cannot be added without saying what it does.
func TestFaultEffect(t *testing.T) {
	want := map[string]string{
		hsm.FaultNetwork:       "a connect fails with " + CodeNetwork,
		hsm.FaultSubnet:        "a connect fails with " + CodeSubnetNotFound,
		hsm.FaultFreeAddresses: "a connect fails with " + CodeFreeAddresses,
		hsm.FaultInternal:      "a connect fails with " + CodeInternal,
		hsm.FaultHoldConnect:   "a connect stays CONNECTING until the switch is cleared",
	}
	if len(want) != len(hsm.FaultNames) {
		t.Fatalf("hsm.FaultNames has %d switches, this table %d: %v", len(hsm.FaultNames), len(want), hsm.FaultNames)
	}
	codes := map[string]string{}
	for _, f := range hsm.FaultNames {
		got := FaultEffect(f)
		if got != want[f] {
			t.Errorf("FaultEffect(%q) = %q, want %q", f, got, want[f])
		}
		if code, ok := strings.CutPrefix(got, "a connect fails with "); ok {
			if other, dup := codes[code]; dup {
				t.Errorf("%s and %s both cause %s", other, f, code)
			}
			codes[code] = f
		}
	}
	for _, f := range []string{"", "dns-errors", "NETWORK-ERRORS"} {
		if got := FaultEffect(f); got != "" {
			t.Errorf("FaultEffect(%q) = %q, want nothing for an unknown switch", f, got)
		}
	}
}
