package quorum

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/hsmkit/hsmkit/internal/keys"
	"github.com/hsmkit/hsmkit/internal/policy"
)

// FileVersion is the only token file version (cloudhsm-cli's).
const FileVersion = "2.0"

// SignatureSize is an RSA-2048 signature's size.
const SignatureSize = keys.Bits / 8

// TokenFile is a service token file:
// {"version":"2.0","approval_data":B64,"token":B64,"signatures":[…]}.
type TokenFile struct {
	Name         string // the file it was read from, for messages; not stored
	ApprovalData []byte
	Token        []byte // SHA-256(ApprovalData)
	Signatures   []Signature
}

// Signature is one approver's signature of Token.
type Signature struct {
	Username  string
	Signature []byte
}

type tokenFileJSON struct {
	Version      string          `json:"version"`
	ApprovalData string          `json:"approval_data"`
	Token        string          `json:"token"`
	Signatures   []signatureJSON `json:"signatures"`
}

type signatureJSON struct {
	Username  string `json:"username"`
	Signature string `json:"signature"`
}

// NewTokenFile makes an unsigned token file over records.
func NewTokenFile(records []Record) *TokenFile {
	ad := EncodeApprovalData(records)
	sum := sha256.Sum256(ad)
	return &TokenFile{ApprovalData: ad, Token: sum[:], Signatures: []Signature{}}
}

// ParseTokenFile reads a service token file strictly; errors name the file
// (name) and the field.
func ParseTokenFile(name string, data []byte) (*TokenFile, error) {
	fail := func(field string, err error) (*TokenFile, error) {
		return nil, &FieldError{File: name, Field: field, Err: err}
	}
	fields, err := object(data, "version", "approval_data", "token", "signatures")
	if err != nil {
		return fail("", err)
	}
	if err := checkVersion(fields["version"]); err != nil {
		return fail("version", err)
	}
	tf := &TokenFile{Name: name}
	if tf.ApprovalData, err = approvalData(fields["approval_data"]); err != nil {
		return fail("approval_data", err)
	}
	if tf.Token, err = b64(fields["token"]); err != nil {
		return fail("token", err)
	}
	if err := checkToken(tf.ApprovalData, tf.Token); err != nil {
		return fail("token", err)
	}
	sigs, err := array(fields["signatures"])
	if err != nil {
		return fail("signatures", err)
	}
	tf.Signatures = make([]Signature, 0, len(sigs))
	for i, raw := range sigs {
		field := fmt.Sprintf("signatures[%d]", i)
		sf, err := object(raw, "username", "signature")
		if err != nil {
			return fail(field, err)
		}
		u, err := str(sf["username"])
		if err == nil {
			u, err = policy.NormalizeUsername(u)
		}
		if err != nil {
			return fail(field+".username", err)
		}
		sig, err := b64(sf["signature"])
		if err == nil && len(sig) != SignatureSize {
			err = fmt.Errorf("%d bytes, want %d (an RSA-2048 signature)", len(sig), SignatureSize)
		}
		if err != nil {
			return fail(field+".signature", err)
		}
		tf.Signatures = append(tf.Signatures, Signature{Username: u, Signature: sig})
	}
	return tf, nil
}

func checkVersion(raw json.RawMessage) error {
	v, err := str(raw)
	if err != nil {
		return err
	}
	if v != FileVersion {
		return fmt.Errorf("%q is not supported (want %q)", v, FileVersion)
	}
	return nil
}

func approvalData(raw json.RawMessage) ([]byte, error) {
	ad, err := b64(raw)
	if err != nil {
		return nil, err
	}
	if len(ad) == 0 || len(ad)%RecordSize != 0 {
		return nil, fmt.Errorf("%d bytes, want a non-zero multiple of %d (one record per HSM)", len(ad), RecordSize)
	}
	return ad, nil
}

func checkToken(approvalData, token []byte) error {
	if len(token) != sha256.Size {
		return fmt.Errorf("%d bytes, want %d (SHA-256 of approval_data)", len(token), sha256.Size)
	}
	sum := sha256.Sum256(approvalData)
	if !bytes.Equal(token, sum[:]) {
		return errors.New("is not SHA-256(approval_data): the file was altered")
	}
	return nil
}

// Marshal encodes tf as cloudhsm-cli writes it.
func (tf *TokenFile) Marshal() []byte {
	j := tokenFileJSON{
		Version:      FileVersion,
		ApprovalData: base64.StdEncoding.EncodeToString(tf.ApprovalData),
		Token:        base64.StdEncoding.EncodeToString(tf.Token),
		Signatures:   []signatureJSON{},
	}
	for _, s := range tf.Signatures {
		j.Signatures = append(j.Signatures, signatureJSON{s.Username, base64.StdEncoding.EncodeToString(s.Signature)})
	}
	return marshal(j)
}

// Records decodes the token's approval_data.
func (tf *TokenFile) Records() ([]Record, error) { return DecodeApprovalData(tf.ApprovalData) }

// Sign adds username's signature of the token made with key. A user who
// signs again replaces their earlier signature rather than adding one.
func (tf *TokenFile) Sign(username string, key *rsa.PrivateKey) error {
	u, err := policy.NormalizeUsername(username)
	if err != nil {
		return err
	}
	if err := checkToken(tf.ApprovalData, tf.Token); err != nil {
		return fmt.Errorf("token %w", err)
	}
	sig, err := keys.Sign(key, tf.Token)
	if err != nil {
		return err
	}
	tf.Signatures = slices.DeleteFunc(tf.Signatures, func(s Signature) bool { return s.Username == u })
	tf.Signatures = append(tf.Signatures, Signature{Username: u, Signature: sig})
	return nil
}

// Errors from Approvers, for errors.Is.
var (
	ErrNoKey        = errors.New("no registered quorum key")
	ErrBadSignature = errors.New("signature does not verify")
)

// ApprovalError says whose signature could not be counted, and why (Err is
// ErrNoKey or ErrBadSignature).
type ApprovalError struct {
	File     string
	Username string
	Err      error
}

func (e *ApprovalError) Error() string {
	if errors.Is(e.Err, ErrNoKey) {
		return fmt.Sprintf("%s%s has no registered quorum key", prefix(e.File), e.Username)
	}
	return fmt.Sprintf("%ssignature by %s does not verify against %s's registered key (signed by another key, or over another token)",
		prefix(e.File), e.Username, e.Username)
}

func (e *ApprovalError) Unwrap() error { return e.Err }

// Approvers returns, in order of first signature, the distinct users whose
// signatures verify against their registered keys (keyed by lowercase
// username). Each approver counts once however often they signed. Any
// signature that cannot be checked or does not verify refuses the whole
// token: it is either tampering or a mistake the requester must see.
func Approvers(tf *TokenFile, registered map[string]*rsa.PublicKey) ([]string, error) {
	if err := checkToken(tf.ApprovalData, tf.Token); err != nil {
		return nil, fmt.Errorf("%stoken %w", prefix(tf.Name), err)
	}
	var approvers []string
	for _, s := range tf.Signatures {
		pub, ok := registered[s.Username]
		if !ok || pub == nil {
			return nil, &ApprovalError{File: tf.Name, Username: s.Username, Err: ErrNoKey}
		}
		if err := keys.Verify(pub, tf.Token, s.Signature); err != nil {
			return nil, &ApprovalError{File: tf.Name, Username: s.Username, Err: ErrBadSignature}
		}
		if !slices.Contains(approvers, s.Username) {
			approvers = append(approvers, s.Username)
		}
	}
	return approvers, nil
}

func prefix(name string) string {
	if name == "" {
		return ""
	}
	return name + ": "
}

// Merge unites the signatures of copies of one token that approvers signed
// in parallel, dropping exact duplicates. Copies of another token are
// refused, naming the file.
func Merge(files ...*TokenFile) (*TokenFile, error) {
	if len(files) == 0 {
		return nil, errors.New("nothing to merge")
	}
	first := files[0]
	out := &TokenFile{
		Name:         first.Name,
		ApprovalData: bytes.Clone(first.ApprovalData),
		Token:        bytes.Clone(first.Token),
		Signatures:   []Signature{},
	}
	for _, f := range files {
		if !bytes.Equal(f.ApprovalData, first.ApprovalData) || !bytes.Equal(f.Token, first.Token) {
			return nil, fmt.Errorf("%sis another token than %s (approval_data and token differ); only copies of one token can be merged",
				prefix(orUnnamed(f.Name)), orUnnamed(first.Name))
		}
		for _, s := range f.Signatures {
			if !slices.ContainsFunc(out.Signatures, func(o Signature) bool {
				return o.Username == s.Username && bytes.Equal(o.Signature, s.Signature)
			}) {
				out.Signatures = append(out.Signatures, Signature{s.Username, bytes.Clone(s.Signature)})
			}
		}
	}
	return out, nil
}

func orUnnamed(name string) string {
	if name == "" {
		return "(unnamed token)"
	}
	return name
}
