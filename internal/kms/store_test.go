package kms

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmkit/hsmkit/internal/hsm"
)

// TestParseDBRefuses: kms.json values KMS builds paths and lookups from
// are checked on load (docs/design.md, "The KMS custom key store", where
// the state lives).
func TestParseDBRefuses(t *testing.T) {
	const store = `{"id": "cks-956cbdbc1f85b69d1", "state": "DISCONNECTED"}`
	const key = `{"id": "d17b92a8-a72f-49ac-aec6-be306b7dec42"}`
	for _, c := range []struct{ in, want string }{
		{`{"schema": 1, "key_stores": [` + store + `], "keys": [` + key + `]}`, ""},
		{`{"schema": 1, "key_stores": [{"id": "../../x", "state": "FAILED"}]}`, `key_stores[0].id "../../x" is not a key store id`},
		{`{"schema": 1, "key_stores": [{"id": "cks-956cbdbc1f85b69d/", "state": "FAILED"}]}`, `is not a key store id`},
		{`{"schema": 1, "key_stores": [{"id": "cks-956CBDBC1F85B69D1", "state": "FAILED"}]}`, `is not a key store id`},
		{`{"schema": 1, "key_stores": [{"id": "cks-\u001b[2J4567890123", "state": "FAILED"}]}`, `"cks-\x1b[2J4567890123"`},
		{`{"schema": 1, "key_stores": [null]}`, `key_stores[0] is null`},
		{`{"schema": 1, "key_stores": [` + store + `, ` + store + `]}`, `key store cks-956cbdbc1f85b69d1 is listed twice`},
		{`{"schema": 1, "key_stores": [{"id": "cks-956cbdbc1f85b69d1", "state": "HALF"}]}`, `state "HALF" is not a connection state`},
		{`{"schema": 1, "keys": [{"id": "../x"}]}`, `keys[0].id "../x" is not a key id`},
		{`{"schema": 1, "keys": [{"id": "d17b92a8-a72f-49ac-aec6-be306b7dec4g"}]}`, `is not a key id`},
		{`{"schema": 1, "keys": [` + key + `, ` + key + `]}`, `listed twice`},
		{`{"schema": 1, "keys": [null]}`, `keys[0] is null`},
		{`{"schema": 1, "key_stores": {"id": 1}}`, `not a KMS state file: json`},
		{`{"schema": 2}`, `schema 2`},
	} {
		_, err := parseDB("kms.json", []byte(c.in))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.in, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "kms.json: ")):
			t.Errorf("%s: got %v, want %q", c.in, err, c.want)
		}
	}
}

// FuzzParseDB: a KMS state file, however crafted, loads or is refused
// with an error naming it; a loaded one names no path outside the
// sessions directory.
func FuzzParseDB(f *testing.F) {
	f.Add([]byte(`{"schema": 1, "key_stores": [{"id": "cks-956cbdbc1f85b69d1", "state": "CONNECTED"}], "keys": [{"id": "d17b92a8-a72f-49ac-aec6-be306b7dec42"}]}`))
	f.Add([]byte(`{"schema": 1, "key_stores": [{"id": "../../x", "state": "FAILED"}]}`))
	f.Add([]byte(`{"schema": 1, "orphan_sessions": [{"config": "c", "session_file": "/etc/passwd"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := parseDB("kms.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "kms.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		a := Account{Root: "/r", ID: "111122223333", Region: "us-east-1"}
		for _, ks := range d.KeyStores {
			if p := a.sessionPath(ks.ID); !strings.HasPrefix(p, "/r/111122223333/us-east-1/sessions/cks-") || strings.Contains(p, "..") {
				t.Fatalf("store id %q makes session path %s", ks.ID, p)
			}
		}
	})
}

// TestNewIDsNotReused: a rewound counter does not repeat a store id, nor
// a key id a key has or had.
func TestNewIDsNotReused(t *testing.T) {
	d := &db{Seed: "1"}
	first := d.newStoreID()
	d.KeyStores = []*KeyStore{{ID: first}}
	d.Next = 0
	if again := d.newStoreID(); again == first {
		t.Errorf("store id %s handed out twice", first)
	}
	d.Next = 0
	k := d.newKeyID()
	d.Next = 0
	if !d.keyIDUsed(k) {
		d.Deleted = []Deletion{{KeyID: k}}
	}
	if !d.keyIDUsed(k) {
		t.Errorf("deleted key id %s not counted as used", k)
	}
}

// TestKMSStateFull: kms.json never grows past what the next command can
// read. A create-key that would not fit is LimitExceededException before
// any key material is made, and kms.json is unchanged; the keys in it
// still work, and a deletion (which shrinks it) is still possible.
func TestKMSStateFull(t *testing.T) {
	s, cl, k := connected(t)
	path := filepath.Join(s.Acct.dir(), dbName)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func(m int64) { maxDB = m }(maxDB)
	maxDB = int64(len(before)) + 4096 + 100
	_, err = s.CreateKey(CreateKeyInput{StoreID: k.CustomKeyStoreID, Description: strings.Repeat("d", 200)})
	var e *Error
	if !errors.As(err, &e) || e.Code != ExcLimitExceeded {
		t.Fatalf("create-key in a full account: %v, want %s", err, ExcLimitExceeded)
	}
	after, err := os.ReadFile(path)
	if err != nil || string(after) != string(before) {
		t.Fatalf("kms.json changed (%v)", err)
	}
	d, err := s.Acct.load()
	if err != nil {
		t.Fatal(err)
	}
	_, sf, err := s.session(d.store(k.CustomKeyStoreID))
	if err != nil {
		t.Fatal(err)
	}
	if keys, _, err := cl.ListKeys(sf, hsm.KeyFilter{}); err != nil || len(keys) != 1 {
		t.Errorf("%d keys in the cluster (%v), want the one KMS key's", len(keys), err)
	}
	if _, err := s.Encrypt(k.KeyID, []byte("x"), nil, ""); err != nil {
		t.Errorf("encrypt in a full account: %v", err)
	}
	// A save that would not fit is refused, the file kept.
	maxDB = int64(len(before)) + 10
	if _, err := s.ScheduleKeyDeletion(k.KeyID, 7); err == nil || !strings.Contains(err.Error(), "would be larger than") {
		t.Errorf("save over the bound: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("kms.json changed by a refused save")
	}
}
