package quorum

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hsmkit/hsmkit/internal/keys"
)

// RegistrationFile is a registration or MFA token file, one entry per HSM.
// A registration file is
// {"version":"2.0","tokens":[{"approval_data":B64,"unsigned":B64,"signed":B64}]}:
// CloudHSM does not document what "unsigned" is; hsmkit makes it
// SHA-256(approval_data), 32 bytes, so it is signed exactly like a service
// token. An MFA file (token-sign MFA: registering an MFA key, logging in)
// is the form CloudHSM documents, {"version":"2.0","tokens":[{"unsigned":B64,"signed":B64}]}:
// its entries carry no approval_data (ApprovalData is nil), and "unsigned"
// is a 32-byte digest only the HSM that issued it can match
// (docs/design.md, "MFA"). A file is all of one form.
type RegistrationFile struct {
	Name   string // the file it was read from, for messages; not stored
	Tokens []RegistrationToken
}

// RegistrationToken is one HSM's entry. Signed is nil until signed.
type RegistrationToken struct {
	ApprovalData []byte
	Unsigned     []byte
	Signed       []byte
}

type registrationFileJSON struct {
	Version string                  `json:"version"`
	Tokens  []registrationTokenJSON `json:"tokens"`
}

type registrationTokenJSON struct {
	ApprovalData *string `json:"approval_data,omitempty"` // nil in an MFA file
	Unsigned     string  `json:"unsigned"`
	Signed       string  `json:"signed"`
}

// NewMFAFile makes an unsigned MFA file, one entry per digest (per HSM).
func NewMFAFile(unsigned [][]byte) *RegistrationFile {
	rf := &RegistrationFile{}
	for _, u := range unsigned {
		rf.Tokens = append(rf.Tokens, RegistrationToken{Unsigned: u})
	}
	return rf
}

// MFA says whether rf is an MFA file (its entries carry no approval_data).
func (rf *RegistrationFile) MFA() bool {
	return len(rf.Tokens) > 0 && rf.Tokens[0].ApprovalData == nil
}

// NewRegistrationFile makes an unsigned registration file, one entry per
// record (per HSM).
func NewRegistrationFile(records []Record) *RegistrationFile {
	rf := &RegistrationFile{}
	for _, r := range records {
		ad := EncodeApprovalData([]Record{r})
		sum := sha256.Sum256(ad)
		rf.Tokens = append(rf.Tokens, RegistrationToken{ApprovalData: ad, Unsigned: sum[:]})
	}
	return rf
}

// IsRegistrationFile says whether data looks like a registration file (its
// object has "tokens") rather than a service token file, so a tool can pick
// the parser whose errors will make sense.
func IsRegistrationFile(data []byte) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(data, &probe) != nil {
		return false
	}
	_, ok := probe["tokens"]
	return ok
}

// ParseRegistrationFile reads a registration file strictly; errors name the
// file and the field.
func ParseRegistrationFile(name string, data []byte) (*RegistrationFile, error) {
	fail := func(field string, err error) (*RegistrationFile, error) {
		return nil, &FieldError{File: name, Field: field, Err: err}
	}
	fields, err := object(data, "version", "tokens")
	if err != nil {
		return fail("", err)
	}
	if err := checkVersion(fields["version"]); err != nil {
		return fail("version", err)
	}
	elems, err := array(fields["tokens"])
	if err == nil && len(elems) == 0 {
		err = errors.New("empty: want one entry per HSM")
	}
	if err != nil {
		return fail("tokens", err)
	}
	rf := &RegistrationFile{Name: name}
	// The first entry's fields say the file's form; every entry must have it.
	form := []string{"approval_data", "unsigned", "signed"}
	var probe map[string]json.RawMessage
	if json.Unmarshal(elems[0], &probe) == nil && probe != nil && probe["approval_data"] == nil {
		form = form[1:]
	}
	for i, raw := range elems {
		field := fmt.Sprintf("tokens[%d]", i)
		tf, err := object(raw, form...)
		if err != nil {
			return fail(field, err)
		}
		var t RegistrationToken
		if len(form) == 3 {
			if t.ApprovalData, err = approvalData(tf["approval_data"]); err != nil {
				return fail(field+".approval_data", err)
			}
		}
		if t.Unsigned, err = b64(tf["unsigned"]); err != nil {
			return fail(field+".unsigned", err)
		}
		if err := checkEntry(t); err != nil {
			return fail(field+".unsigned", err)
		}
		if t.Signed, err = b64(tf["signed"]); err != nil {
			return fail(field+".signed", err)
		}
		switch len(t.Signed) {
		case 0:
			t.Signed = nil
		case SignatureSize:
		default:
			return fail(field+".signed", fmt.Errorf("%d bytes, want %d (an RSA-2048 signature) or empty", len(t.Signed), SignatureSize))
		}
		rf.Tokens = append(rf.Tokens, t)
	}
	return rf, nil
}

// checkEntry checks an entry's unsigned digest: SHA-256 of its
// approval_data, or, in an MFA file, 32 bytes the HSM matches.
func checkEntry(t RegistrationToken) error {
	if t.ApprovalData == nil {
		if len(t.Unsigned) != sha256.Size {
			return fmt.Errorf("%d bytes, want %d (a SHA-256 digest)", len(t.Unsigned), sha256.Size)
		}
		return nil
	}
	return checkToken(t.ApprovalData, t.Unsigned)
}

// Marshal encodes rf as cloudhsm-cli writes it.
func (rf *RegistrationFile) Marshal() []byte {
	enc := base64.StdEncoding.EncodeToString
	mfa := rf.MFA()
	j := registrationFileJSON{Version: FileVersion, Tokens: []registrationTokenJSON{}}
	for _, t := range rf.Tokens {
		var ad *string
		if !mfa {
			s := enc(t.ApprovalData)
			ad = &s
		}
		j.Tokens = append(j.Tokens, registrationTokenJSON{ad, enc(t.Unsigned), enc(t.Signed)})
	}
	return marshal(j)
}

// Sign fills every entry's Signed with key's signature of its Unsigned.
func (rf *RegistrationFile) Sign(key *rsa.PrivateKey) error {
	signed := make([][]byte, len(rf.Tokens))
	for i, t := range rf.Tokens {
		if err := checkEntry(t); err != nil {
			return fmt.Errorf("tokens[%d].unsigned %w", i, err)
		}
		sig, err := keys.Sign(key, t.Unsigned)
		if err != nil {
			return err
		}
		signed[i] = sig
	}
	for i := range rf.Tokens {
		rf.Tokens[i].Signed = signed[i]
	}
	return nil
}

// Verify checks that every entry is signed, by pub's private key. It is how
// an HSM accepts a key registration: the signature proves possession.
func (rf *RegistrationFile) Verify(pub *rsa.PublicKey) error {
	if len(rf.Tokens) == 0 {
		return fmt.Errorf("%sno tokens", prefix(rf.Name))
	}
	for i, t := range rf.Tokens {
		if err := checkEntry(t); err != nil {
			return fmt.Errorf("%stokens[%d].unsigned %w", prefix(rf.Name), i, err)
		}
		if len(t.Signed) == 0 {
			return fmt.Errorf("%stokens[%d] is not signed", prefix(rf.Name), i)
		}
		if err := keys.Verify(pub, t.Unsigned, t.Signed); err != nil {
			return fmt.Errorf("%stokens[%d]: %w: the signature was not made with this public key's private key", prefix(rf.Name), i, ErrBadSignature)
		}
	}
	return nil
}

// Records decodes every entry's approval_data, in order.
func (rf *RegistrationFile) Records() ([]Record, error) {
	if rf.MFA() {
		return nil, fmt.Errorf("%sis an MFA token file: its entries carry no approval_data", prefix(rf.Name))
	}
	var all []Record
	for i, t := range rf.Tokens {
		rs, err := DecodeApprovalData(t.ApprovalData)
		if err != nil {
			return nil, fmt.Errorf("tokens[%d].approval_data: %w", i, err)
		}
		all = append(all, rs...)
	}
	return all, nil
}
