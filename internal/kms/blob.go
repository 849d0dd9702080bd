package kms

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The ciphertext blob hsmkit's KMS returns (docs/design.md, "The KMS
// custom key store", the ciphertext blob). AWS's is opaque and
// undocumented; this one carries what decrypt needs to find the key:
//
//	"HKB1" | key id (16 bytes, the KMS key's UUID) | IV (12) | AES-256-GCM ciphertext and tag (≥ 16)
//
// The GCM additional data binds the header and the encryption context,
// so a blob decrypts only under the context it was made with.
const (
	blobMagic   = "HKB1"
	blobHeader  = len(blobMagic) + 16
	blobIV      = 12
	blobTag     = 16
	MaxBlob     = 6144 // KMS's CiphertextBlob limit
	MaxPlain    = 4096 // KMS's Plaintext limit
	maxContext  = 64   // pairs in an encryption context
	maxCtxBytes = 8192
)

// Blob is a parsed ciphertext blob.
type Blob struct {
	KeyID [16]byte
	IV    []byte
	Data  []byte // ciphertext with the GCM tag
}

// ErrBlob is every malformed blob: KMS's InvalidCiphertextException.
var ErrBlob = errors.New("the ciphertext is not a ciphertext blob of this key store's keys")

// ParseBlob reads a ciphertext blob, refusing anything malformed.
func ParseBlob(b []byte) (*Blob, error) {
	if len(b) > MaxBlob || len(b) < blobHeader+blobIV+blobTag || string(b[:len(blobMagic)]) != blobMagic {
		return nil, ErrBlob
	}
	var bl Blob
	copy(bl.KeyID[:], b[len(blobMagic):blobHeader])
	bl.IV = slices.Clone(b[blobHeader : blobHeader+blobIV])
	bl.Data = slices.Clone(b[blobHeader+blobIV:])
	return &bl, nil
}

// Bytes encodes the blob.
func (bl *Blob) Bytes() []byte {
	out := make([]byte, 0, blobHeader+len(bl.IV)+len(bl.Data))
	out = append(out, blobMagic...)
	out = append(out, bl.KeyID[:]...)
	out = append(out, bl.IV...)
	return append(out, bl.Data...)
}

// AAD is the additional data GCM authenticates for a blob of this key
// under this encryption context: the header, then each pair in key order,
// length-prefixed, so no two contexts encode alike.
func AAD(keyID [16]byte, ctx map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString(blobMagic)
	b.Write(keyID[:])
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, s := range []string{k, ctx[k]} {
			b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
			b.WriteString(s)
		}
	}
	return b.Bytes()
}

// CheckContext refuses an encryption context KMS would refuse.
func CheckContext(ctx map[string]string) error {
	if len(ctx) > maxContext {
		return fmt.Errorf("the encryption context has %d pairs; at most %d", len(ctx), maxContext)
	}
	n := 0
	for k, v := range ctx {
		if k == "" {
			return errors.New("an encryption context key is empty")
		}
		n += len(k) + len(v)
	}
	if n > maxCtxBytes {
		return fmt.Errorf("the encryption context is %d bytes; at most %d", n, maxCtxBytes)
	}
	return nil
}
