package kms

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/hsm"
)

// KeyMetadata is a KMS key as DescribeKey and CreateKey return it, in the
// order the AWS CLI prints its fields.
type KeyMetadata struct {
	AWSAccountID          string   `json:"AWSAccountId"`
	KeyID                 string   `json:"KeyId"`
	Arn                   string   `json:"Arn"`
	CreationDate          string   `json:"CreationDate"`
	Enabled               bool     `json:"Enabled"`
	Description           string   `json:"Description"`
	KeyUsage              string   `json:"KeyUsage"`
	KeyState              string   `json:"KeyState"`
	DeletionDate          string   `json:"DeletionDate,omitempty"`
	Origin                string   `json:"Origin"`
	CustomKeyStoreID      string   `json:"CustomKeyStoreId"`
	CloudHsmClusterID     string   `json:"CloudHsmClusterId"`
	KeyManager            string   `json:"KeyManager"`
	CustomerMasterKeySpec string   `json:"CustomerMasterKeySpec"`
	KeySpec               string   `json:"KeySpec"`
	EncryptionAlgorithms  []string `json:"EncryptionAlgorithms"`
	MultiRegion           bool     `json:"MultiRegion"`
}

func (s *Service) metadata(d *db, k *Key) KeyMetadata {
	st := Disconnected
	if ks := d.store(k.StoreID); ks != nil {
		st = ks.State
	}
	m := KeyMetadata{AWSAccountID: s.Acct.ID, KeyID: k.ID, Arn: k.ARN, CreationDate: Timestamp(k.Created), Enabled: k.Enabled,
		Description: k.Description, KeyUsage: "ENCRYPT_DECRYPT", KeyState: KeyState(k.Enabled, k.DeletionAt != nil, st),
		Origin: "AWS_CLOUDHSM", CustomKeyStoreID: k.StoreID, CloudHsmClusterID: k.ClusterID, KeyManager: "CUSTOMER",
		CustomerMasterKeySpec: "SYMMETRIC_DEFAULT", KeySpec: "SYMMETRIC_DEFAULT", EncryptionAlgorithms: []string{"SYMMETRIC_DEFAULT"}}
	if k.DeletionAt != nil {
		m.DeletionDate = Timestamp(*k.DeletionAt)
		m.Enabled = false
	}
	return m
}

// CreateKeyInput is CreateKey's request, as far as a CloudHSM key store
// takes it.
type CreateKeyInput struct {
	StoreID, Origin, KeySpec, KeyUsage, Description string
	MultiRegion                                     bool
}

// CreateKey makes a KMS key whose material is a new AES-256 key in the
// cluster: persistent, not extractable, owned by kmsuser, labelled with
// the key's ARN, on every HSM KMS is logged in to.
func (s *Service) CreateKey(in CreateKeyInput) (KeyMetadata, error) {
	const op = "CreateKey"
	var m KeyMetadata
	switch {
	case in.StoreID == "" && in.Origin == "AWS_CLOUDHSM":
		return m, fail(ExcValidation, op, "Origin AWS_CLOUDHSM requires a CustomKeyStoreId")
	case in.StoreID == "":
		return m, fail(ExcUnsupported, op, "hsmkit's KMS makes keys in a CloudHSM key store only: pass --origin AWS_CLOUDHSM --custom-key-store-id")
	case in.Origin != "" && in.Origin != "AWS_CLOUDHSM":
		return m, fail(ExcUnsupported, op, "A key in a CloudHSM key store must have Origin AWS_CLOUDHSM, not %s", in.Origin)
	case in.KeySpec != "" && in.KeySpec != "SYMMETRIC_DEFAULT":
		return m, fail(ExcUnsupported, op, "KeySpec %s is not supported in a custom key store: only SYMMETRIC_DEFAULT", in.KeySpec)
	case in.KeyUsage != "" && in.KeyUsage != "ENCRYPT_DECRYPT":
		return m, fail(ExcUnsupported, op, "KeyUsage %s is not supported in a custom key store: only ENCRYPT_DECRYPT", in.KeyUsage)
	case in.MultiRegion:
		return m, fail(ExcUnsupported, op, "Multi-Region keys are not supported in a custom key store")
	case len(in.Description) > 8192:
		return m, fail(ExcValidation, op, "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192")
	}
	err := s.run(func(d *db) (bool, error) {
		ks := d.store(in.StoreID)
		if ks == nil {
			return false, fail(ExcNotFound, op, "Custom key store %s does not exist", in.StoreID)
		}
		if Allowed(ks.State, ReqCreateKey) == Refuse {
			return false, fail(ExcInvalidState, op, "The custom key store %s is %s; it must be CONNECTED to create KMS keys", ks.ID, ks.State)
		}
		cl, sf, err := s.session(ks)
		if err != nil {
			return false, fail(ExcInternal, op, "KMS cannot communicate with your CloudHSM cluster")
		}
		desc, err := cl.DescribeCluster()
		if err != nil {
			return false, fail(ExcInternal, op, "KMS cannot communicate with your CloudHSM cluster")
		}
		if _, azs := activeAZs(desc); azs < 2 {
			return false, fail(ExcClusterInvalidConfig, op, twoAZs)
		}
		// Before the key material is made: a key kms.json cannot record
		// would leave it in the cluster, owned by no KMS key.
		if !d.room(len(in.Description)) {
			return false, fail(ExcLimitExceeded, op, "The request was rejected because a quota was exceeded: this account's KMS state (kms.json) is full; schedule the deletion of keys no longer needed")
		}
		k := &Key{Description: in.Description, Created: cl.Now().UTC(), Enabled: true, StoreID: ks.ID, ClusterID: ks.ClusterID}
		if k.ID, k.ARN, err = s.freshKeyID(d, cl, sf); err != nil {
			return false, fail(ExcInternal, op, "%v", err)
		}
		made, _, err := cl.GenerateKey(hsm.Targeting{Only: sf.HSMs}, sf, hsm.KeySpec{Type: "aes", LengthBytes: 32, Label: k.ARN,
			Attrs: []string{"extractable=false", "encrypt=true", "decrypt=true"}})
		if err != nil && !errors.As(err, new(*hsm.PartialError)) || len(made) == 0 {
			return false, fail(ExcInternal, op, "KMS could not create the key material in the CloudHSM cluster: %v", err)
		}
		k.BackingRef = hsm.RefString(made[0].Key.Ref)
		d.Keys = append(d.Keys, k)
		m = s.metadata(d, k)
		return true, nil
	})
	return m, err
}

// freshKeyID is the next key id that no key has had: not in kms.json, not
// among the deleted, and not the label of key material in the cluster.
// KMS never reuses a key id; a kms.json restored from an older copy (or
// with its counter rewound) would otherwise hand out an id again, so that
// the old id's blobs met the new key and two keys in the cluster carried
// one ARN as their label (docs/design.md, "The KMS key store under attack").
func (s *Service) freshKeyID(d *db, cl *hsm.Client, sf *hsm.SessionFile) (id, arn string, err error) {
	for range 1000 {
		id = d.newKeyID()
		arn = fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", s.Acct.Region, s.Acct.ID, id)
		if d.keyIDUsed(id) {
			continue
		}
		found, _, err := cl.ListKeys(sf, hsm.KeyFilter{Attrs: []hsm.KeyAttr{{Name: "label", Value: arn}}})
		if err != nil {
			return "", "", fmt.Errorf("KMS cannot communicate with your CloudHSM cluster")
		}
		if len(found) == 0 {
			return id, arn, nil
		}
	}
	return "", "", fmt.Errorf("KMS found no unused key id")
}

// session is KMS's kmsuser session of a connected store.
func (s *Service) session(ks *KeyStore) (*hsm.Client, *hsm.SessionFile, error) {
	cl, err := s.openStore(ks)
	if err != nil {
		return nil, nil, err
	}
	sf, err := hsm.LoadSession(s.Acct.sessionPath(ks.ID))
	if err != nil {
		return nil, nil, err
	}
	if sf == nil {
		return nil, nil, errors.New("no kmsuser session")
	}
	return cl, sf, nil
}

// key finds a key by id or ARN.
func (s *Service) key(d *db, op, id string) (*Key, error) {
	if id == "" {
		return nil, fail(ExcValidation, op, "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	for _, k := range d.Keys {
		if k.ID == id || k.ARN == id {
			return k, nil
		}
	}
	if strings.HasPrefix(id, "alias/") || strings.Contains(id, ":alias/") {
		return nil, fail(ExcKeyNotFound, op, "Alias %s is not found.", id)
	}
	if strings.HasPrefix(id, "arn:") {
		return nil, fail(ExcKeyNotFound, op, "Key '%s' does not exist", id)
	}
	return nil, fail(ExcKeyNotFound, op, "Key 'arn:aws:kms:%s:%s:key/%s' does not exist", s.Acct.Region, s.Acct.ID, id)
}

// DescribeKey is a key's metadata.
func (s *Service) DescribeKey(id string) (KeyMetadata, error) {
	var m KeyMetadata
	err := s.run(func(d *db) (bool, error) {
		k, err := s.key(d, "DescribeKey", id)
		if err == nil {
			m = s.metadata(d, k)
		}
		return false, err
	})
	return m, err
}

// KeyListEntry is one key of ListKeys.
type KeyListEntry struct {
	KeyID  string `json:"KeyId"`
	KeyArn string `json:"KeyArn"`
}

// ListKeys lists the account's keys in the Region.
func (s *Service) ListKeys() ([]KeyListEntry, error) {
	out := []KeyListEntry{}
	err := s.run(func(d *db) (bool, error) {
		for _, k := range d.Keys {
			out = append(out, KeyListEntry{k.ID, k.ARN})
		}
		return false, nil
	})
	return out, err
}

// SetEnabled enables or disables a key. On an Unavailable key it succeeds
// and takes effect when the key is available again.
func (s *Service) SetEnabled(id string, on bool) error {
	op := "DisableKey"
	if on {
		op = "EnableKey"
	}
	return s.run(func(d *db) (bool, error) {
		k, err := s.key(d, op, id)
		if err != nil {
			return false, err
		}
		if k.DeletionAt != nil {
			return false, fail(ExcKMSInvalidState, op, "%s is pending deletion.", k.ARN)
		}
		k.Enabled = on
		return true, nil
	})
}

// Deletion scheduling, as ScheduleKeyDeletion returns it.
type ScheduledDeletion struct {
	KeyID               string `json:"KeyId"`
	DeletionDate        string `json:"DeletionDate"`
	KeyState            string `json:"KeyState"`
	PendingWindowInDays int    `json:"PendingWindowInDays"`
}

// ScheduleKeyDeletion schedules a key's deletion after 7 to 30 days; at
// the date, the next hsm-kms command deletes it and makes a best effort
// to delete its key material in the cluster.
func (s *Service) ScheduleKeyDeletion(id string, days int) (ScheduledDeletion, error) {
	const op = "ScheduleKeyDeletion"
	var out ScheduledDeletion
	if days == 0 {
		days = 30
	}
	if days < 7 || days > 30 {
		return out, fail(ExcValidation, op, "1 validation error detected: Value '%d' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30", days)
	}
	err := s.run(func(d *db) (bool, error) {
		k, err := s.key(d, op, id)
		if err != nil {
			return false, err
		}
		if k.DeletionAt != nil {
			return false, fail(ExcKMSInvalidState, op, "%s is pending deletion.", k.ARN)
		}
		at := s.clockOf(d.store(k.StoreID)).Add(time.Duration(days) * 24 * time.Hour)
		k.DeletionAt = &at
		out = ScheduledDeletion{KeyID: k.ARN, DeletionDate: Timestamp(at), KeyState: KeyPendingDeletion, PendingWindowInDays: days}
		return true, nil
	})
	return out, err
}

// CancelKeyDeletion cancels a scheduled deletion; the key is Disabled.
func (s *Service) CancelKeyDeletion(id string) (string, error) {
	const op = "CancelKeyDeletion"
	var arn string
	err := s.run(func(d *db) (bool, error) {
		k, err := s.key(d, op, id)
		if err != nil {
			return false, err
		}
		if k.DeletionAt == nil {
			return false, fail(ExcKMSInvalidState, op, "%s is not pending deletion.", k.ARN)
		}
		k.DeletionAt, k.Enabled, arn = nil, false, k.ARN
		return true, nil
	})
	return arn, err
}

// deleteKey ends a key whose deletion date passed: its metadata goes, and
// its key material too where KMS can still reach it as kmsuser.
func (s *Service) deleteKey(d *db, k *Key, now time.Time) {
	del := Deletion{KeyID: k.ID, At: now, BackingRef: k.BackingRef, Status: "FAILURE"}
	ks := d.store(k.StoreID)
	switch {
	case ks == nil || ks.State != Connected:
		del.Why = "the key store is not connected"
	default:
		cl, sf, err := s.session(ks)
		ref, rerr := hsm.ParseRef(k.BackingRef)
		switch {
		case err != nil:
			del.Why = err.Error()
		case rerr != nil:
			del.Why = rerr.Error()
		default:
			if _, err := cl.DeleteKey(hsm.Targeting{Only: sf.HSMs}, sf, hsm.KeyFilter{Ref: &ref}, nil); err != nil {
				del.Why = err.Error()
			} else {
				del.Status, del.Why = "SUCCESS", ""
			}
		}
	}
	d.Deleted = append(d.Deleted, del)
	if len(d.Deleted) > 1000 {
		d.Deleted = d.Deleted[len(d.Deleted)-1000:]
	}
	for i, o := range d.Keys {
		if o == k {
			d.Keys = append(d.Keys[:i], d.Keys[i+1:]...)
			break
		}
	}
}

// --- Cryptographic operations -------------------------------------------

// usable checks what every cryptographic operation needs: the key
// enabled, its store connected, and returns the session to use it with.
func (s *Service) usable(d *db, op string, k *Key) (*hsm.Client, *hsm.SessionFile, uint64, error) {
	ks := d.store(k.StoreID)
	switch {
	case k.DeletionAt != nil:
		return nil, nil, 0, fail(ExcKMSInvalidState, op, "%s is pending deletion.", k.ARN)
	case ks == nil || ks.State != Connected:
		return nil, nil, 0, fail(ExcKMSInvalidState, op, "%s is unavailable.", k.ARN)
	case !k.Enabled:
		return nil, nil, 0, fail("DisabledException", op, "%s is disabled.", k.ARN)
	}
	cannot := fail(ExcKMSInvalidState, op, "KMS cannot communicate with your CloudHSM cluster")
	cl, sf, err := s.session(ks)
	if err != nil {
		return nil, nil, 0, cannot
	}
	// KMS needs one active HSM for cryptography (docs/design.md, "The KMS
	// custom key store"), not the client SDK's two holders of the key.
	cl.DisableKeyAvailabilityCheck()
	ref, err := hsm.ParseRef(k.BackingRef)
	if err != nil {
		return nil, nil, 0, fail(ExcInternal, op, "%v", err)
	}
	return cl, sf, ref, nil
}

// failedUse names why the cluster refused to use k's backing key: gone
// from every HSM KMS reaches (the key is unavailable), or the cluster out
// of reach. Asked only after a failure, so a use is one engine call.
func failedUse(cl *hsm.Client, sf *hsm.SessionFile, ref uint64, op string, k *Key) error {
	found, _, err := cl.ListKeys(sf, hsm.KeyFilter{Ref: &ref})
	if err == nil && len(found) == 0 {
		return fail(ExcKMSInvalidState, op, "%s is unavailable.", k.ARN)
	}
	return fail(ExcKMSInvalidState, op, "KMS cannot communicate with your CloudHSM cluster")
}

func keyIDBytes(id string) [16]byte {
	var out [16]byte
	b, _ := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
	copy(out[:], b)
	return out
}

// encryptWith seals plain under k inside the cluster.
func (s *Service) encryptWith(d *db, op string, k *Key, plain []byte, ctx map[string]string) ([]byte, error) {
	if len(plain) == 0 || len(plain) > MaxPlain {
		return nil, fail(ExcValidation, op, "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and %d", MaxPlain)
	}
	if err := CheckContext(ctx); err != nil {
		return nil, fail(ExcValidation, op, "%v", err)
	}
	cl, sf, ref, err := s.usable(d, op, k)
	if err != nil {
		return nil, err
	}
	id := keyIDBytes(k.ID)
	ct, err := cl.Encrypt(sf, hsm.KeyFilter{Ref: &ref}, hsm.CipherSpec{Mech: "aes-gcm", AAD: AAD(id, ctx)}, plain)
	if err != nil {
		return nil, failedUse(cl, sf, ref, op, k)
	}
	return (&Blob{KeyID: id, IV: ct.IV, Data: ct.Data}).Bytes(), nil
}

// decryptBlob opens a blob; want, when set, is the key the caller names.
func (s *Service) decryptBlob(d *db, op string, blob []byte, ctx map[string]string, want string) (*Key, []byte, error) {
	bl, err := ParseBlob(blob)
	if err != nil {
		return nil, nil, fail(ExcInvalidCiphertext, op, "The ciphertext is invalid")
	}
	var k *Key
	for _, o := range d.Keys {
		if keyIDBytes(o.ID) == bl.KeyID {
			k = o
		}
	}
	if k == nil {
		return nil, nil, fail(ExcInvalidCiphertext, op, "The ciphertext refers to a KMS key that does not exist in this account and Region")
	}
	if want != "" {
		w, err := s.key(d, op, want)
		if err != nil {
			return nil, nil, err
		}
		if w != k {
			return nil, nil, fail(ExcIncorrectKey, op, "The key ID in the request does not identify a KMS key that can perform this operation.")
		}
	}
	cl, sf, ref, err := s.usable(d, op, k)
	if err != nil {
		return nil, nil, err
	}
	plain, err := cl.Decrypt(sf, hsm.KeyFilter{Ref: &ref}, hsm.CipherSpec{Mech: "aes-gcm", AAD: AAD(bl.KeyID, ctx)}, &hsm.Ciphertext{IV: bl.IV, Data: bl.Data})
	if err != nil {
		// The key there and the blob refused: the blob or its context.
		if found, _, lerr := cl.ListKeys(sf, hsm.KeyFilter{Ref: &ref}); lerr == nil && len(found) > 0 {
			return nil, nil, fail(ExcInvalidCiphertext, op, "The ciphertext or its encryption context is invalid")
		}
		return nil, nil, failedUse(cl, sf, ref, op, k)
	}
	return k, plain, nil
}

// Encrypted is Encrypt's response.
type Encrypted struct {
	CiphertextBlob      []byte `json:"CiphertextBlob"`
	KeyID               string `json:"KeyId"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
}

// Encrypt encrypts up to 4 KiB under a key.
func (s *Service) Encrypt(id string, plain []byte, ctx map[string]string, alg string) (Encrypted, error) {
	const op = "Encrypt"
	var out Encrypted
	if err := checkAlg(op, alg); err != nil {
		return out, err
	}
	err := s.run(func(d *db) (bool, error) {
		k, err := s.key(d, op, id)
		if err != nil {
			return false, err
		}
		blob, err := s.encryptWith(d, op, k, plain, ctx)
		out = Encrypted{blob, k.ARN, "SYMMETRIC_DEFAULT"}
		return false, err
	})
	return out, err
}

func checkAlg(op, alg string) error {
	if alg != "" && alg != "SYMMETRIC_DEFAULT" {
		return fail(ExcUnsupported, op, "EncryptionAlgorithm %s is not supported by a symmetric key in a custom key store", alg)
	}
	return nil
}

// Decrypted is Decrypt's response.
type Decrypted struct {
	KeyID               string `json:"KeyId"`
	Plaintext           []byte `json:"Plaintext"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
}

// Decrypt decrypts a blob; the key comes from the blob, and must be the
// one named when a key id is given.
func (s *Service) Decrypt(blob []byte, ctx map[string]string, keyID, alg string) (Decrypted, error) {
	const op = "Decrypt"
	var out Decrypted
	if err := checkAlg(op, alg); err != nil {
		return out, err
	}
	err := s.run(func(d *db) (bool, error) {
		k, plain, err := s.decryptBlob(d, op, blob, ctx, keyID)
		if err == nil {
			out = Decrypted{k.ARN, plain, "SYMMETRIC_DEFAULT"}
		}
		return false, err
	})
	return out, err
}

// DataKey is GenerateDataKey's response (Plaintext nil without plaintext).
type DataKey struct {
	CiphertextBlob []byte `json:"CiphertextBlob"`
	Plaintext      []byte `json:"Plaintext,omitempty"`
	KeyID          string `json:"KeyId"`
}

// GenerateDataKey makes a data key (AES_256, AES_128, or 1 to 1024 bytes)
// and returns it encrypted under the key, and in plaintext unless
// withoutPlaintext.
func (s *Service) GenerateDataKey(id, spec string, n int, ctx map[string]string, withoutPlaintext bool) (DataKey, error) {
	op := "GenerateDataKey"
	if withoutPlaintext {
		op = "GenerateDataKeyWithoutPlaintext"
	}
	var out DataKey
	switch {
	case spec != "" && n != 0:
		return out, fail(ExcValidation, op, "Specify either KeySpec or NumberOfBytes, not both")
	case spec == "AES_256":
		n = 32
	case spec == "AES_128":
		n = 16
	case spec != "":
		return out, fail(ExcValidation, op, "1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]", spec)
	case n == 0:
		return out, fail(ExcValidation, op, "Please specify either number of bytes or key spec.")
	case n < 1 || n > 1024:
		return out, fail(ExcValidation, op, "1 validation error detected: Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024", n)
	}
	err := s.run(func(d *db) (bool, error) {
		k, err := s.key(d, op, id)
		if err != nil {
			return false, err
		}
		plain := make([]byte, n)
		if _, err := rand.Read(plain); err != nil {
			return false, err
		}
		blob, err := s.encryptWith(d, op, k, plain, ctx)
		if err != nil {
			return false, err
		}
		out = DataKey{CiphertextBlob: blob, KeyID: k.ARN}
		if !withoutPlaintext {
			out.Plaintext = plain
		}
		return false, nil
	})
	return out, err
}

// ReEncrypted is ReEncrypt's response.
type ReEncrypted struct {
	CiphertextBlob                 []byte `json:"CiphertextBlob"`
	SourceKeyID                    string `json:"SourceKeyId"`
	KeyID                          string `json:"KeyId"`
	SourceEncryptionAlgorithm      string `json:"SourceEncryptionAlgorithm"`
	DestinationEncryptionAlgorithm string `json:"DestinationEncryptionAlgorithm"`
}

// ReEncrypt decrypts a blob and encrypts its plaintext under another key
// (or the same), inside KMS: the plaintext is never returned.
func (s *Service) ReEncrypt(blob []byte, srcCtx map[string]string, srcKey, dstKey string, dstCtx map[string]string) (ReEncrypted, error) {
	const op = "ReEncrypt"
	var out ReEncrypted
	err := s.run(func(d *db) (bool, error) {
		dst, err := s.key(d, op, dstKey)
		if err != nil {
			return false, err
		}
		src, plain, err := s.decryptBlob(d, op, blob, srcCtx, srcKey)
		if err != nil {
			return false, err
		}
		nb, err := s.encryptWith(d, op, dst, plain, dstCtx)
		if err != nil {
			return false, err
		}
		out = ReEncrypted{nb, src.ARN, dst.ARN, "SYMMETRIC_DEFAULT", "SYMMETRIC_DEFAULT"}
		return false, nil
	})
	return out, err
}
