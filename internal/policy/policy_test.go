package policy

import "testing"

// TestSeedTable pins every cell of CloudHSM's table (docs/design.md) (plus the unactivated
// admin's column) so that a change to the data is a deliberate one.
func TestSeedTable(t *testing.T) {
	y, n := true, false
	// admin, crypto-user, appliance, unactivated-admin, unauthenticated,
	// and the AWS account that owns the cluster (hsm-sim's caller)
	want := map[Op][6]bool{
		ClusterInfo:       {y, y, y, y, y, y},
		Zeroize:           {y, y, y, y, y, y},
		ChangeOwnPassword: {y, y, y, y, n, n},
		ChangeAnyPassword: {y, n, n, n, n, n},
		ManageUsers:       {y, n, n, n, n, n},
		SyncStatus:        {y, y, y, y, n, n},
		MaskedObjects:     {y, y, y, n, n, n},
		KeyManagement:     {n, y, n, n, n, n},
		EncryptDecrypt:    {n, y, n, n, n, n},
		SignVerify:        {n, y, n, n, n, n},
		DigestHMAC:        {n, y, n, n, n, n},
		ListUsers:         {y, y, y, y, y, n},
		QuorumToken:       {y, n, n, n, n, n},
		QuorumPolicyRead:  {y, y, y, y, y, n},
		QuorumPolicyWrite: {y, n, n, n, n, n},
		RegisterQuorumKey: {y, y, n, n, n, n},
		ChangeOwnMFA:      {y, y, n, n, n, n},
		ChangeAnyMFA:      {y, n, n, n, n, n},
		SyncUsers:         {y, n, n, n, n, n},
		ListKeys:          {y, y, n, n, n, n},
		SetTrusted:        {y, n, n, n, n, n},
		Login:             {y, y, n, y, n, n},
		Logout:            {y, y, y, y, y, n},
		InitCluster:       {n, n, n, n, n, y},
		AddHSM:            {n, n, n, n, n, y},
		RemoveHSM:         {n, n, n, n, n, y},
		Reachability:      {n, n, n, n, n, y},
		SetClock:          {n, n, n, n, n, y},
		DumpState:         {n, n, n, n, n, y},
		SetFault:          {n, n, n, n, n, y},
		InspectUser:       {n, n, n, n, n, y},
		InitializeCluster: {n, n, n, n, n, y},
		BackupCluster:     {n, n, n, n, n, y},
		DeleteCluster:     {n, n, n, n, n, y},
	}
	if len(want) != len(CloudHSM.Ops) {
		t.Fatalf("table has %d operations, test pins %d", len(CloudHSM.Ops), len(want))
	}
	for _, op := range CloudHSM.Ops {
		row, ok := want[op]
		if !ok {
			t.Fatalf("operation %q not pinned by the test", op)
		}
		for i, role := range CloudHSM.Roles {
			got := CloudHSM.Allowed(role, op)
			if got != row[i] {
				t.Errorf("%s as %s: allowed=%v, want %v", op, role, got, row[i])
			}
			err := CloudHSM.Check(role, op)
			if (err == nil) != row[i] {
				t.Errorf("%s as %s: Check=%v, want allowed=%v", op, role, err, row[i])
			}
		}
	}
	if CloudHSM.Allowed(Admin, Op("no such operation")) {
		t.Error("an unknown operation must be refused")
	}
}

func TestCanAssign(t *testing.T) {
	for _, r := range []Role{Admin, CryptoUser} {
		if err := CloudHSM.CanAssign(r); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	for _, r := range []Role{Appliance, Unactivated, Unauthenticated, Account, "root", ""} {
		if err := CloudHSM.CanAssign(r); err == nil {
			t.Errorf("%q: a user could be created with it", r)
		}
	}
}

func TestParseRole(t *testing.T) {
	for in, want := range map[string]Role{"admin": Admin, "CO": Admin, "crypto-user": CryptoUser, "CU": CryptoUser} {
		got, err := ParseRole(in)
		if err != nil || got != want {
			t.Errorf("ParseRole(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "Admin", "root", "unactivated-admin", "internal(APPLIANCE_USER)"} {
		if _, err := ParseRole(bad); err == nil {
			t.Errorf("ParseRole(%q) accepted", bad)
		}
	}
}

// TestKeyRights pins every cell of the key table.
func TestKeyRights(t *testing.T) {
	y, n := true, false
	// owner, shared user, other crypto user; then the same on a public key
	want := map[KeyAction][6]bool{
		KeySee:          {y, y, n, y, y, y},
		KeyUse:          {y, y, n, y, y, y},
		KeyShare:        {y, n, n, n, n, n},
		KeyUnshare:      {y, n, n, n, n, n},
		KeyDelete:       {y, n, n, y, n, n},
		KeyWrap:         {y, n, n, y, n, n},
		KeySetAttribute: {y, n, n, y, n, n},
	}
	if len(want) != len(KeyRights) {
		t.Fatalf("key table has %d rows, test pins %d", len(KeyRights), len(want))
	}
	rels := []KeyRelation{KeyOwner, KeyShared, KeyOther}
	for action, row := range want {
		for i := range 6 {
			err := CheckKey(action, rels[i%3], i >= 3, "0x1")
			if (err == nil) != row[i] {
				t.Errorf("%s as %s (public=%v): %v, want allowed=%v", action, rels[i%3], i >= 3, err, row[i])
			}
		}
	}
	if CheckKey("fly", KeyOwner, false, "0x1") == nil {
		t.Error("an unknown key action must be refused")
	}
}
