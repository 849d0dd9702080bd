package quorum

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/keys"
)

// The sample token of CloudHSM's quorum guide (docs/design.md, "Quorum"). Its two signatures are
// identical placeholders, so they only have to parse.
const (
	seedApprovalData = "AAEAAwAAABgAAAAAAAAAAJ9eFkfcP3mNzJAlfK+OWbNhZG1pbgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABj5vbeAAAAAAAAAAAAAQADAAAAFQAAAAAAAAAAW/v5Euk83amq1fij0zyvD2FkbWluAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAGPm9t4AAAAAAAAAAAABAAMAAAAUAAAAAAAAAABDw2XDwfK4hB8a15Xh1E0nYWRtaW4AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAY+b23gAAAAAAAAAA"
	seedToken        = "0l2LZkmAHZyAc1hPhyckOoVW33aGrgG77qmDHWQ3CJ8="
	seedSignature    = "O6qx7/mUaVkYYVr1PW7l8JJko+Kh3e8zBIqdk3tAiNy+1rW+OsDtvYujhEU4aOFVLcrUFmyB/CX9OQmgJLgx/pyK+ZPEH+GoJGqk9YZ7X1nOXwZRP9g7hKV+7XCtg9TuDFtHYWDpBfz2jWiu2fXfX4/jTs4f2xIfFPIDKcSP8fhxjQ63xEcCf1jzGha6rDQMu4xUWWdtDgfT7um7EJ9dXNoHqLB7cTzphaubNaEFbFPXQ1siGmYKmvETlqe/ssktwyruGFLpXs1n0tJOEglGhx2qbYTs+omKWZdORl5WIWEXW3IXw/Dg5vVObrNpvG0eZKO8nSMc27+cyPySc+ZbNw=="
)

// seedFile is the guide's signed example, spelled as the page shows it.
var seedFile = `{ "version": "2.0", "approval_data": "` + seedApprovalData + `", "token": "` + seedToken + `", "signatures": [ { "username": "admin2", "signature": "` + seedSignature + `" }, { "username": "admin3", "signature": "` + seedSignature + `" } ] }`

func TestSeedSample(t *testing.T) {
	tf, err := ParseTokenFile("admin.token", []byte(seedFile))
	if err != nil {
		t.Fatal(err)
	}
	ad, _ := base64.StdEncoding.DecodeString(seedApprovalData)
	sum := sha256.Sum256(ad)
	if !bytes.Equal(tf.Token, sum[:]) || base64.StdEncoding.EncodeToString(sum[:]) != seedToken {
		t.Fatal("token is not SHA-256(approval_data)")
	}
	if len(tf.Signatures) != 2 || tf.Signatures[0].Username != "admin2" || tf.Signatures[1].Username != "admin3" {
		t.Fatalf("signatures: %+v", tf.Signatures)
	}
	recs, err := tf.Records()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	for i, id := range []uint32{0x18, 0x15, 0x14} {
		r := recs[i]
		if r.Version != 1 || r.Service != ServiceUser || r.TokenID != id || r.Username != "admin" || r.Created.Unix() != 0x63e6f6de {
			t.Errorf("record %d = %+v", i, r)
		}
	}
	if got := EncodeApprovalData(recs); !bytes.Equal(got, ad) {
		t.Error("re-encoding the records does not give the sample's approval_data")
	}
	if recs[0].Created.Location() != time.UTC {
		t.Errorf("created %v, want UTC", recs[0].Created)
	}

	// Marshal writes the guide's fields, indented as cloudhsm-cli does, and
	// reads back the same.
	out := tf.Marshal()
	want := "{\n  \"version\": \"2.0\",\n  \"approval_data\": \"" + seedApprovalData + "\",\n  \"token\": \"" + seedToken + "\",\n  \"signatures\": [\n    {\n      \"username\": \"admin2\","
	if !strings.HasPrefix(string(out), want) || !strings.HasSuffix(string(out), "\n  ]\n}\n") {
		t.Errorf("Marshal:\n%s", out)
	}
	back, err := ParseTokenFile("again", out)
	if err != nil || !bytes.Equal(back.Marshal(), out) {
		t.Fatalf("round trip: %v", err)
	}
	// The unsigned sample has "signatures": [] and marshals it so.
	unsigned := NewTokenFile(recs)
	if !strings.Contains(string(unsigned.Marshal()), `"signatures": []`) || !bytes.Equal(unsigned.Token, sum[:]) {
		t.Errorf("NewTokenFile:\n%s", unsigned.Marshal())
	}
}

// file builds a token file from the seed with one field's raw JSON replaced.
func file(field, raw string) string {
	m := map[string]string{
		"version":       `"2.0"`,
		"approval_data": `"` + seedApprovalData + `"`,
		"token":         `"` + seedToken + `"`,
		"signatures":    `[{"username":"admin2","signature":"` + seedSignature + `"}]`,
	}
	m[field] = raw
	var parts []string
	for _, k := range []string{"version", "approval_data", "token", "signatures"} {
		if m[k] != "-" {
			parts = append(parts, fmt.Sprintf("%q: %s", k, m[k]))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func TestParseTokenFileRefusals(t *testing.T) {
	ad80 := base64.StdEncoding.EncodeToString(make([]byte, 80))
	ad79 := base64.StdEncoding.EncodeToString(make([]byte, 79))
	short := base64.StdEncoding.EncodeToString(make([]byte, 255))
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "admin.token: unexpected end of JSON"},
		{"not json", "hello", "admin.token: invalid character 'h' looking for beginning of value"},
		{"array", "[]", "admin.token: want a JSON object, got an array"},
		{"truncated", file("signatures", "[]")[:50], "admin.token: approval_data: unexpected end of JSON"},
		{"doubled", file("signatures", "[]") + file("signatures", "[]"), "admin.token: trailing data after the JSON object"},
		{"trailing", file("signatures", "[]") + " x", "admin.token: trailing data after the JSON object"},
		{"unknown field", strings.Replace(file("signatures", "[]"), "{", `{"extra": 1, `, 1), `admin.token: unknown field "extra"`},
		{"key case", strings.Replace(file("signatures", "[]"), `"token"`, `"Token"`, 1), `admin.token: unknown field "Token"`},
		{"duplicate key", strings.Replace(file("signatures", "[]"), "{", `{"version": "2.0", `, 1), `admin.token: field "version" appears twice`},
		{"missing", file("token", "-"), `admin.token: missing field "token"`},
		{"version", file("version", `"1.0"`), `admin.token: version: "1.0" is not supported (want "2.0")`},
		{"version number", file("version", `2.0`), `admin.token: version: want a JSON string`},
		{"approval base64", file("approval_data", `"AAE!"`), "admin.token: approval_data: illegal base64 data at input byte 3"},
		{"approval unpadded", file("approval_data", `"AAE"`), "admin.token: approval_data: illegal base64 data at input byte"},
		{"approval 79", file("approval_data", `"`+ad79+`"`), "admin.token: approval_data: 79 bytes, want a non-zero multiple of 80"},
		{"approval empty", file("approval_data", `""`), "admin.token: approval_data: 0 bytes"},
		{"token other", file("approval_data", `"`+ad80+`"`), "admin.token: token: is not SHA-256(approval_data): the file was altered"},
		{"token short", file("token", `"AAAA"`), "admin.token: token: 3 bytes, want 32"},
		{"token bad", file("token", `"0l2L_kmA"`), "admin.token: token: illegal base64 data at input byte 4"},
		{"signatures null", file("signatures", `null`), "admin.token: signatures: want a JSON array"},
		{"signatures object", file("signatures", `{}`), "admin.token: signatures: want a JSON array"},
		{"signature extra", file("signatures", `[{"username":"a","signature":"","x":1}]`), `admin.token: signatures[0]: unknown field "x"`},
		{"signature missing", file("signatures", `[{"username":"a"}]`), `admin.token: signatures[0]: missing field "signature"`},
		{"username bad", file("signatures", `[{"username":"ad-min","signature":"`+seedSignature+`"}]`), `admin.token: signatures[0].username: invalid username "ad-min": 1 to 31 characters, letters, digits and _ only`},
		{"username long", file("signatures", `[{"username":"`+strings.Repeat("a", 32)+`","signature":"`+seedSignature+`"}]`), `signatures[0].username: invalid username "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": 1 to 31 characters, letters, digits and _ only`},
		{"username empty", file("signatures", `[{"username":"","signature":"`+seedSignature+`"}]`), `signatures[0].username: invalid username ""`},
		{"username number", file("signatures", `[{"username":7,"signature":"`+seedSignature+`"}]`), `signatures[0].username: want a JSON string`},
		{"signature base64", file("signatures", `[{"username":"admin2","signature":"`+seedSignature+`"},{"username":"admin3","signature":"AAAA!AAA"}]`), "admin.token: signatures[1].signature: illegal base64 data at input byte 4"},
		{"signature short", file("signatures", `[{"username":"admin2","signature":"`+short+`"}]`), "admin.token: signatures[0].signature: 255 bytes, want 256 (an RSA-2048 signature)"},
		{"signature empty", file("signatures", `[{"username":"admin2","signature":""}]`), "admin.token: signatures[0].signature: 0 bytes, want 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTokenFile("admin.token", []byte(tc.data))
			if err == nil {
				t.Fatalf("parsed %s", tc.data)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %s\nwant it to contain\n  %s", err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != "admin.token" {
				t.Errorf("not a FieldError naming the file: %#v", err)
			}
		})
	}
}

func TestParseTokenFileLowercasesUsernames(t *testing.T) {
	tf, err := ParseTokenFile("x", []byte(file("signatures", `[{"username":"Admin_2","signature":"`+seedSignature+`"}]`)))
	if err != nil {
		t.Fatal(err)
	}
	if tf.Signatures[0].Username != "admin_2" {
		t.Errorf("username %q", tf.Signatures[0].Username)
	}
}

func TestApprovalDataRoundTripAndRefusals(t *testing.T) {
	recs := []Record{
		{Service: ServiceQuorum, TokenID: 1, Nonce: [16]byte{1, 2, 3}, Username: "a", Created: time.Unix(1, 0)},
		{Version: 1, Service: ServiceRegistration, TokenID: 0xffffffff, Username: strings.Repeat("z", 31), Created: time.Unix(1795000000, 0)},
	}
	ad := EncodeApprovalData(recs)
	if len(ad) != 160 {
		t.Fatalf("len %d", len(ad))
	}
	back, err := DecodeApprovalData(ad)
	if err != nil {
		t.Fatal(err)
	}
	if back[0].Version != 1 || back[0].Service != ServiceQuorum || back[0].Nonce != recs[0].Nonce || back[1].Username != recs[1].Username || back[1].TokenID != 0xffffffff || !back[1].Created.Equal(recs[1].Created) {
		t.Errorf("round trip: %+v", back)
	}

	good := EncodeApprovalData(recs[:1])
	mutate := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "0 bytes, want a non-zero multiple of 80"},
		{"81", append(bytes.Clone(good), 0), "81 bytes"},
		{"version", mutate(func(b []byte) { b[1] = 2 }), "record 0: version 2 (want 1)"},
		{"service", mutate(func(b []byte) { b[3] = 9 }), "record 0: unknown service 9"},
		{"zero 8", mutate(func(b []byte) { b[9] = 1 }), "record 0: reserved bytes are not zero"},
		{"zero 72", mutate(func(b []byte) { b[79] = 1 }), "record 0: reserved bytes are not zero"},
		{"padding", mutate(func(b []byte) { b[40] = 'x' }), "record 0: username is not NUL-padded"},
		{"no name", mutate(func(b []byte) { b[32] = 0 }), `record 0: invalid username ""`},
		{"bad char", mutate(func(b []byte) { b[32] = '-' }), `record 0: invalid username "-"`},
		{"upper", mutate(func(b []byte) { b[32] = 'A' }), `record 0: username "A" is not lowercase`},
		{"32 chars", mutate(func(b []byte) { copy(b[32:64], strings.Repeat("a", 32)) }), `invalid username "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"`},
		{"time", mutate(func(b []byte) { b[64] = 0x80 }), "record 0: creation time"},
	} {
		if _, err := DecodeApprovalData(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestEncodeApprovalDataPanicsOnInvalidRecord(t *testing.T) {
	for _, r := range []Record{
		{Service: ServiceUser, Username: "Admin"},
		{Service: 9, Username: "a"},
		{Version: 2, Service: ServiceUser, Username: "a"},
		{Service: ServiceUser, Username: "a", Created: time.Unix(-1, 0)},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic for %+v", r)
				}
			}()
			EncodeApprovalData([]Record{r})
		}()
	}
}

func TestServices(t *testing.T) {
	for s, name := range map[Service]string{ServiceUser: "user", ServiceQuorum: "quorum", ServiceRegistration: "registration"} {
		if s.String() != name {
			t.Errorf("%d.String() = %q", s, s.String())
		}
		got, err := ParseService(name)
		if err != nil || got != s {
			t.Errorf("ParseService(%q) = %v, %v", name, got, err)
		}
	}
	if uint16(ServiceUser) != 3 || uint16(ServiceQuorum) != 4 || uint16(ServiceRegistration) != 5 {
		t.Error("service numbers changed: they are in every token file written")
	}
	if _, err := ParseService("cluster"); err == nil {
		t.Error("ParseService accepted cluster")
	}
	if Service(9).String() != "service(9)" {
		t.Error(Service(9).String())
	}
}

// Test keys are made once; RSA-2048 generation is slow.
var (
	testKeysOnce sync.Once
	testKeys     []*rsa.PrivateKey
)

func key(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	testKeysOnce.Do(func() {
		for range 9 {
			k, err := keys.GenerateKey()
			if err != nil {
				panic(err)
			}
			testKeys = append(testKeys, k)
		}
	})
	return testKeys[i]
}

func sampleToken(t testing.TB, tokenID uint32) *TokenFile {
	t.Helper()
	var recs []Record
	for i := range 3 {
		recs = append(recs, Record{Service: ServiceUser, TokenID: tokenID + uint32(i), Nonce: [16]byte{byte(i)}, Username: "admin", Created: time.Unix(1795000000, 0)})
	}
	tf := NewTokenFile(recs)
	tf.Name = "admin.token"
	return tf
}

func sign(t testing.TB, tf *TokenFile, user string, k int) {
	t.Helper()
	if err := tf.Sign(user, key(t, k)); err != nil {
		t.Fatal(err)
	}
}

func TestApprovers(t *testing.T) {
	registered := map[string]*rsa.PublicKey{
		"admin":  &key(t, 0).PublicKey,
		"admin2": &key(t, 1).PublicKey,
		"admin3": &key(t, 2).PublicKey,
	}
	other := sampleToken(t, 100)
	sign(t, other, "admin3", 2)

	for _, tc := range []struct {
		name    string
		build   func(tf *TokenFile)
		want    []string
		wantErr string
		wantIs  error
	}{
		{name: "none", build: func(tf *TokenFile) {}, want: nil},
		{name: "two", build: func(tf *TokenFile) { sign(t, tf, "admin2", 1); sign(t, tf, "admin", 0) }, want: []string{"admin2", "admin"}},
		{name: "same user twice counts once", build: func(tf *TokenFile) {
			sign(t, tf, "admin2", 1)
			tf.Signatures = append(tf.Signatures, tf.Signatures[0])
			sign(t, tf, "admin3", 2)
		}, want: []string{"admin2", "admin3"}},
		{name: "re-sign replaces", build: func(tf *TokenFile) {
			sign(t, tf, "admin2", 1)
			sign(t, tf, "ADMIN2", 1)
			if len(tf.Signatures) != 1 {
				t.Errorf("re-signing added a signature: %d", len(tf.Signatures))
			}
		}, want: []string{"admin2"}},
		{name: "unregistered", build: func(tf *TokenFile) { sign(t, tf, "admin2", 1); sign(t, tf, "admin9", 3) },
			wantErr: "admin.token: admin9 has no registered quorum key", wantIs: ErrNoKey},
		{name: "another key", build: func(tf *TokenFile) { sign(t, tf, "admin3", 1) },
			wantErr: "admin.token: signature by admin3 does not verify against admin3's registered key (signed by another key, or over another token)", wantIs: ErrBadSignature},
		{name: "another token", build: func(tf *TokenFile) { tf.Signatures = append(tf.Signatures, other.Signatures[0]) },
			wantErr: "signature by admin3 does not verify against admin3's registered key", wantIs: ErrBadSignature},
		{name: "tampered approval_data", build: func(tf *TokenFile) {
			sign(t, tf, "admin2", 1)
			tf.ApprovalData[5] ^= 1
			sum := sha256.Sum256(tf.ApprovalData)
			tf.Token = sum[:]
		}, wantErr: "signature by admin2 does not verify", wantIs: ErrBadSignature},
		{name: "token not hash", build: func(tf *TokenFile) { sign(t, tf, "admin2", 1); tf.ApprovalData[5] ^= 1 },
			wantErr: "admin.token: token is not SHA-256(approval_data)"},
		{name: "tampered signature", build: func(tf *TokenFile) { sign(t, tf, "admin2", 1); tf.Signatures[0].Signature[7] ^= 1 },
			wantErr: "signature by admin2 does not verify", wantIs: ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tf := sampleToken(t, 1)
			tc.build(tf)
			got, err := Approvers(tf, registered)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("error is not %v", tc.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("approvers %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	a, b, c := sampleToken(t, 1), sampleToken(t, 1), sampleToken(t, 1)
	a.Name, b.Name, c.Name = "a.token", "b.token", "c.token"
	sign(t, a, "admin2", 1)
	sign(t, b, "admin3", 2)
	sign(t, b, "admin2", 1) // the same signature as in a
	m, err := Merge(a, b, c)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, s := range m.Signatures {
		users = append(users, s.Username)
	}
	if !slices.Equal(users, []string{"admin2", "admin3"}) {
		t.Errorf("merged signatures by %v", users)
	}
	got, err := Approvers(m, map[string]*rsa.PublicKey{"admin2": &key(t, 1).PublicKey, "admin3": &key(t, 2).PublicKey})
	if err != nil || len(got) != 2 {
		t.Errorf("approvers %v, %v", got, err)
	}
	// The merged file owns its bytes.
	m.Signatures[0].Signature[0] ^= 1
	if _, err := Approvers(a, map[string]*rsa.PublicKey{"admin2": &key(t, 1).PublicKey}); err != nil {
		t.Error("Merge shares signature bytes with its inputs")
	}

	d := sampleToken(t, 50)
	d.Name = "d.token"
	if _, err := Merge(a, d); err == nil || !strings.Contains(err.Error(), "d.token: is another token than a.token") {
		t.Errorf("merging another token: %v", err)
	}
	if _, err := Merge(); err == nil {
		t.Error("merged nothing")
	}
}

func TestRegistrationFile(t *testing.T) {
	recs := []Record{
		{Service: ServiceRegistration, TokenID: 7, Username: "admin2", Created: time.Unix(1795000000, 0)},
		{Service: ServiceRegistration, TokenID: 9, Username: "admin2", Created: time.Unix(1795000000, 0)},
	}
	rf := NewRegistrationFile(recs)
	out := rf.Marshal()
	if !strings.HasPrefix(string(out), "{\n  \"version\": \"2.0\",\n  \"tokens\": [\n    {\n      \"approval_data\": \"") || !strings.Contains(string(out), `"signed": ""`) {
		t.Errorf("Marshal:\n%s", out)
	}
	if !IsRegistrationFile(out) || IsRegistrationFile([]byte(seedFile)) {
		t.Error("IsRegistrationFile")
	}
	parsed, err := ParseRegistrationFile("reg.token", out)
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Verify(&key(t, 1).PublicKey); err == nil || !strings.Contains(err.Error(), "reg.token: tokens[0] is not signed") {
		t.Errorf("verify unsigned: %v", err)
	}
	if err := parsed.Sign(key(t, 1)); err != nil {
		t.Fatal(err)
	}
	signed := reparseSignedByKey1(t, parsed)
	for i, tok := range signed.Tokens {
		sum := sha256.Sum256(tok.ApprovalData)
		if !bytes.Equal(tok.Unsigned, sum[:]) {
			t.Errorf("tokens[%d]: unsigned is not SHA-256(approval_data)", i)
		}
	}
	back, err := signed.Records()
	if err != nil || len(back) != 2 || back[1].TokenID != 9 {
		t.Errorf("Records: %v %v", back, err)
	}

	good := `{"approval_data":"` + base64.StdEncoding.EncodeToString(rf.Tokens[0].ApprovalData) + `","unsigned":"` + base64.StdEncoding.EncodeToString(rf.Tokens[0].Unsigned) + `","signed":""}`
	for _, tc := range []struct{ data, want string }{
		{`{"version":"2.0","tokens":[]}`, "reg.token: tokens: empty"},
		{`{"version":"2.0","tokens":null}`, "reg.token: tokens: want a JSON array"},
		{`{"version":"2.0"}`, `reg.token: missing field "tokens"`},
		{`{"version":"3.0","tokens":[` + good + `]}`, `reg.token: version: "3.0" is not supported`},
		{`{"version":"2.0","tokens":[` + good + `,` + strings.Replace(good, `"signed":""`, `"signed":"AA=A"`, 1) + `]}`, "reg.token: tokens[1].signed: illegal base64 data at input byte 2"},
		{`{"version":"2.0","tokens":[` + strings.Replace(good, `"signed":""`, `"signed":"AAAA"`, 1) + `]}`, "reg.token: tokens[0].signed: 3 bytes, want 256"},
		{`{"version":"2.0","tokens":[` + strings.Replace(good, `"unsigned":"`, `"unsigned":"AAAA`, 1) + `]}`, "reg.token: tokens[0].unsigned: "},
		{`{"version":"2.0","tokens":[` + strings.Replace(good, `"approval_data":"`, `"approval_data":"AAAA`, 1) + `]}`, "reg.token: tokens[0].approval_data: 83 bytes"},
		{`{"version":"2.0","tokens":[` + strings.Replace(good, `"signed":""`, `"signed":"","x":""`, 1) + `]}`, `reg.token: tokens[0]: unknown field "x"`},
		{`{"version":"2.0","tokens":[` + good + `]} {}`, "reg.token: trailing data"},
	} {
		if _, err := ParseRegistrationFile("reg.token", []byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n  error %v\n  want %q", tc.data, err, tc.want)
		}
	}
}

func BenchmarkVerify8of8(b *testing.B) {
	tf := sampleToken(b, 1)
	registered := map[string]*rsa.PublicKey{}
	for i := range 8 {
		u := fmt.Sprintf("admin%d", i)
		sign(b, tf, u, i)
		registered[u] = &key(b, i).PublicKey
	}
	data := tf.Marshal()
	b.ResetTimer()
	for b.Loop() {
		parsed, err := ParseTokenFile("admin.token", data)
		if err != nil {
			b.Fatal(err)
		}
		got, err := Approvers(parsed, registered)
		if err != nil || len(got) != 8 {
			b.Fatal(got, err)
		}
	}
}

func FuzzParseTokenFile(f *testing.F) {
	f.Add([]byte(seedFile))
	f.Add([]byte(file("signatures", "[]")))
	f.Add([]byte(file("signatures", `[{"username":"Admin","signature":"AAAA!AAA"}]`)))
	f.Add([]byte(`{"version":"2.0","version":"2.0"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := ParseTokenFile("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		out := tf.Marshal()
		again, err := ParseTokenFile("g", out)
		if err != nil {
			t.Fatalf("cannot reparse what Marshal wrote: %v\n%s", err, out)
		}
		if !bytes.Equal(again.Marshal(), out) {
			t.Fatal("Marshal is not stable")
		}
	})
}

func FuzzDecodeApprovalData(f *testing.F) {
	ad, _ := base64.StdEncoding.DecodeString(seedApprovalData)
	f.Add(ad)
	f.Add(ad[:80])
	f.Add(make([]byte, 80))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := DecodeApprovalData(data)
		if err != nil {
			return
		}
		if got := EncodeApprovalData(recs); !bytes.Equal(got, data) {
			t.Fatalf("decode/encode is not the identity:\n%x\n%x", data, got)
		}
	})
}

func FuzzParseRegistrationFile(f *testing.F) {
	ad, _ := base64.StdEncoding.DecodeString(seedApprovalData)
	sum := sha256.Sum256(ad[:80])
	f.Add([]byte(`{"version":"2.0","tokens":[{"approval_data":"` + base64.StdEncoding.EncodeToString(ad[:80]) + `","unsigned":"` + base64.StdEncoding.EncodeToString(sum[:]) + `","signed":""}]}`))
	f.Add([]byte(`{"version":"2.0","tokens":[]}`))
	f.Add([]byte(mfaSample))
	f.Add([]byte(`{"version":"2.0","tokens":[{"unsigned":"` + base64.StdEncoding.EncodeToString(sum[:]) + `","signed":""},{"approval_data":"","unsigned":"","signed":""}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rf, err := ParseRegistrationFile("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		out := rf.Marshal()
		again, err := ParseRegistrationFile("g", out)
		if err != nil || !bytes.Equal(again.Marshal(), out) {
			t.Fatalf("round trip: %v\n%s", err, out)
		}
		for _, tok := range rf.Tokens {
			if (tok.ApprovalData == nil) != rf.MFA() || again.MFA() != rf.MFA() {
				t.Fatal("a file of mixed forms was accepted, or Marshal changed its form")
			}
		}
	})
}

// mfaSample is CloudHSM's documented MFA token file (docs/design.md, "MFA"):
// no approval_data, one unsigned/signed pair per HSM.
const mfaSample = `{
  "version": "2.0",
  "tokens": [
    {
      "unsigned": "1jqwxb9bJOUUQLiNb7mxXS1uBJsEXh0B9nj05BqnPsE=",
      "signed": "eiw3fZeCKIY50C4zPeg9Rt90M1Qlq3WlJh6Yw7xXm4nF6e9ETLE39+9M+rUqDWMRZjaBfaMbg5d9yDkz5p13U7ch2tlF9LoYabsWutkT014KRq/rcYMvFsU9n/Ey/TK0PVaxLN42X+pebV4juwMhN4mK4CzdFAJgM+UGBOj4yB9recpOBB9K8QFSpJZALSEdDgUc/mS1eDq3rU0int6+4NKuLQjpR+LSEIWRZ6g6+MND2vXGskxHjadCQ09L7Tz8VcWjKDbxJcBiGKvkqyozl9zrGo8fA3WHBmwiAgS61Merx77ZGY4PFR37+j/YMSC14prCN15DtMRv2xA1SGSb4w=="
    },
    {
      "unsigned": "LMMFc34ASPnvNPFzBbMbr9FProS/Zu2P8zF/xzk5hVQ=",
      "signed": ""
    }
  ]
}`

func TestMFAFile(t *testing.T) {
	rf, err := ParseRegistrationFile("mfa.json", []byte(mfaSample))
	if err != nil {
		t.Fatal(err)
	}
	if !rf.MFA() || len(rf.Tokens) != 2 || rf.Tokens[0].ApprovalData != nil || len(rf.Tokens[0].Signed) != SignatureSize || rf.Tokens[1].Signed != nil {
		t.Fatalf("parsed %+v", rf)
	}
	if _, err := rf.Records(); err == nil {
		t.Error("an MFA file has no records")
	}
	if got := string(rf.Marshal()); got != mfaSample+"\n" && got != mfaSample {
		t.Errorf("Marshal is not the documented form:\n%s", got)
	}
	// Signed and verified like a registration file.
	fresh := NewMFAFile([][]byte{rf.Tokens[0].Unsigned, rf.Tokens[1].Unsigned})
	if err := fresh.Sign(key(t, 1)); err != nil {
		t.Fatal(err)
	}
	reparseSignedByKey1(t, fresh)

	ad, _ := base64.StdEncoding.DecodeString(seedApprovalData)
	sum := sha256.Sum256(ad[:80])
	reg := `{"approval_data":"` + base64.StdEncoding.EncodeToString(ad[:80]) + `","unsigned":"` + base64.StdEncoding.EncodeToString(sum[:]) + `","signed":""}`
	mfa := `{"unsigned":"` + base64.StdEncoding.EncodeToString(sum[:]) + `","signed":""}`
	for _, tc := range []struct{ data, want string }{
		{`{"version":"2.0","tokens":[` + mfa + `,` + reg + `]}`, `mfa.json: tokens[1]: unknown field "approval_data"`},
		{`{"version":"2.0","tokens":[` + reg + `,` + mfa + `]}`, `mfa.json: tokens[1]: missing field "approval_data"`},
		{`{"version":"2.0","tokens":[{"unsigned":"AAAA","signed":""}]}`, "mfa.json: tokens[0].unsigned: 3 bytes, want 32"},
		{`{"version":"2.0","tokens":[{"unsigned":"` + base64.StdEncoding.EncodeToString(sum[:]) + `"}]}`, `mfa.json: tokens[0]: missing field "signed"`},
		{`{"version":"2.0","tokens":[{"unsigned":"` + base64.StdEncoding.EncodeToString(sum[:]) + `","signed":"AAAA"}]}`, "mfa.json: tokens[0].signed: 3 bytes, want 256"},
	} {
		if _, err := ParseRegistrationFile("mfa.json", []byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n  error %v\n  want %q", tc.data, err, tc.want)
		}
	}
}

// reparseSignedByKey1 reads back a file signed with key 1: it verifies
// against key 1 and no other, and each signature is openssl pkeyutl
// -pkeyopt digest:sha256's of its entry's unsigned bytes.
func reparseSignedByKey1(t *testing.T, rf *RegistrationFile) *RegistrationFile {
	t.Helper()
	back, err := ParseRegistrationFile(rf.Name, rf.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(&key(t, 1).PublicKey); err != nil {
		t.Error(err)
	}
	if err := back.Verify(&key(t, 2).PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Errorf("verify with another key: %v", err)
	}
	for i, tok := range back.Tokens {
		if want, _ := keys.Sign(key(t, 1), tok.Unsigned); !bytes.Equal(tok.Signed, want) {
			t.Errorf("tokens[%d]: signed is not the signature of unsigned", i)
		}
	}
	return back
}
