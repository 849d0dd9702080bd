package kms

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hsmkit/hsmkit/internal/hsm"
)

// TestAllowed pins the state machine (docs/design.md, "The KMS custom key
// store"), every request in every state.
func TestAllowed(t *testing.T) {
	states := []string{Disconnected, Connecting, Connected, Failed, Disconnecting, "BOGUS"}
	want := map[Request][]Verdict{
		//                  DISCONNECTED CONNECTING CONNECTED FAILED  DISCONNECTING BOGUS
		ReqConnect:        {Proceed, NoOp, NoOp, Refuse, Refuse, Refuse},
		ReqDisconnect:     {Refuse, Proceed, Proceed, Proceed, Refuse, Refuse},
		ReqUpdateName:     {Proceed, Refuse, Proceed, Refuse, Refuse, Refuse},
		ReqUpdateSettings: {Proceed, Refuse, Refuse, Refuse, Refuse, Refuse},
		ReqDelete:         {Proceed, Refuse, Refuse, Refuse, Refuse, Refuse},
		ReqCreateKey:      {Refuse, Refuse, Proceed, Refuse, Refuse, Refuse},
	}
	for r, row := range want {
		for i, st := range states {
			if got := Allowed(st, r); got != row[i] {
				t.Errorf("request %d in %s: %d, want %d", r, st, got, row[i])
			}
		}
	}
}

func TestKeyState(t *testing.T) {
	for _, c := range []struct {
		enabled, pending bool
		store, want      string
	}{
		{true, false, Connected, KeyEnabled},
		{false, false, Connected, KeyDisabled},
		{true, true, Connected, KeyPendingDeletion},
		{true, false, Disconnected, KeyUnavailable},
		{false, false, Disconnected, KeyUnavailable},
		{true, true, Disconnected, KeyPendingDeletion},
		{true, false, Failed, KeyUnavailable},
		{true, false, Connecting, KeyUnavailable},
	} {
		if got := KeyState(c.enabled, c.pending, c.store); got != c.want {
			t.Errorf("enabled=%v pending=%v store=%s: %s, want %s", c.enabled, c.pending, c.store, got, c.want)
		}
	}
}

// TestLoginCode: the engine's login refusals, as KMS names them; the most
// telling cause wins when HSMs refuse differently.
func TestLoginCode(t *testing.T) {
	wrap := func(e error) error { return fmt.Errorf("hsm-x: %w", e) }
	for _, c := range []struct {
		errs []error
		want string
	}{
		{[]error{&hsm.NoUserError{User: "kmsuser"}}, CodeUserNotFound},
		{[]error{wrap(&hsm.WrongPasswordError{User: "kmsuser"})}, CodeInvalidCredentials},
		{[]error{&hsm.MFARequiredError{User: "kmsuser"}}, CodeInvalidCredentials},
		{[]error{&hsm.LockedError{User: "kmsuser"}}, CodeUserLockedOut},
		{[]error{&hsm.LoggedInError{User: "kmsuser"}}, CodeUserLoggedIn},
		{[]error{&hsm.WrongPasswordError{}, &hsm.LockedError{}}, CodeUserLockedOut},
		{[]error{nil, errors.New("unreachable")}, CodeNetwork},
	} {
		if got := loginCode(c.errs); got != c.want {
			t.Errorf("%v: %s, want %s", c.errs, got, c.want)
		}
	}
}

func FuzzDoctorCaptures(f *testing.F) {
	f.Add([]byte(`{"Clusters":[{"ClusterId":"cluster-a","State":"ACTIVE","Hsms":[{"HsmId":"hsm-a","AvailabilityZone":"z1","State":"ACTIVE"}],"Certificates":{}}]}`),
		[]byte(`{"error_code":0,"data":{"users":[{"username":"kmsuser","role":"crypto-user","locked":"true","mfa":[],"quorum":[],"cluster-coverage":"full"}]}}`))
	f.Add([]byte("{}"), []byte("garbage"))
	f.Fuzz(func(t *testing.T, clusters, users []byte) {
		d, err := DoctorCaptures("", []Capture{{"clusters.json", clusters}, {"users.json", users}})
		if err != nil {
			return
		}
		for _, x := range d.Findings {
			if x.Status != StatusOK && x.Status != StatusWarn && x.Status != StatusFail && x.Status != StatusSkip {
				t.Fatalf("finding with status %q", x.Status)
			}
		}
	})
}
