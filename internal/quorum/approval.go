// Package quorum holds the quorum token file formats (as cloudhsm-cli writes
// them), the approval_data records inside them, and M-of-N signature
// counting. It is pure: it never reads the HSM state.
package quorum

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hsmkit/hsmkit/internal/policy"
)

// Service is what a token approves. The numbers go into approval_data.
type Service uint16

// ServiceUser is 3, as CMU numbers user management (the seed-001 sample).
// ServiceQuorum and ServiceRegistration have no published number; 4 and 5
// are hsmkit's choice.
const (
	ServiceUser         Service = 3
	ServiceQuorum       Service = 4
	ServiceRegistration Service = 5
	// The crypto user's services, bound to one key: hsmkit's numbers.
	ServiceKeyManagement Service = 6
	ServiceKeyUsage      Service = 7
)

var serviceNames = map[Service]string{
	ServiceUser:          "user",
	ServiceQuorum:        "quorum",
	ServiceRegistration:  "registration",
	ServiceKeyManagement: "key-management",
	ServiceKeyUsage:      "key-usage",
}

func (s Service) String() string {
	if n, ok := serviceNames[s]; ok {
		return n
	}
	return fmt.Sprintf("service(%d)", uint16(s))
}

// Valid says whether s is a service hsmkit knows.
func (s Service) Valid() bool { _, ok := serviceNames[s]; return ok }

// ParseService maps a --service name to its Service.
func ParseService(name string) (Service, error) {
	for s, n := range serviceNames {
		if n == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown service %q (want user, quorum, registration, key-management or key-usage)", name)
}

// RecordSize is the size of one approval_data record; RecordVersion the only
// record version known.
const (
	RecordSize    = 80
	RecordVersion = 1
)

// Record is one HSM's part of a token's approval_data (docs/design.md, "Quorum").
type Record struct {
	Version  uint16 // 0 is written as RecordVersion
	Service  Service
	TokenID  uint32 // the token's id on that HSM
	Nonce    [16]byte
	Username string // who generated the token
	Created  time.Time
}

// Validate checks that r can be encoded.
func (r Record) Validate() error {
	if r.Version != 0 && r.Version != RecordVersion {
		return fmt.Errorf("record version %d (want %d)", r.Version, RecordVersion)
	}
	if !r.Service.Valid() {
		return fmt.Errorf("unknown service %d", uint16(r.Service))
	}
	u, err := policy.NormalizeUsername(r.Username)
	if err != nil {
		return err
	}
	if u != r.Username {
		return fmt.Errorf("username %q is not lowercase", r.Username)
	}
	if r.Created.Unix() < 0 {
		return fmt.Errorf("creation time %v is before 1970", r.Created)
	}
	return nil
}

// EncodeApprovalData lays records out as approval_data, one 80-byte
// big-endian record each. Records come from the HSM engine, which validated
// them; an invalid one is a programming error and panics.
func EncodeApprovalData(records []Record) []byte {
	out := make([]byte, 0, len(records)*RecordSize)
	for i, r := range records {
		if err := r.Validate(); err != nil {
			panic(fmt.Sprintf("quorum.EncodeApprovalData: record %d: %v", i, err))
		}
		var b [RecordSize]byte
		v := r.Version
		if v == 0 {
			v = RecordVersion
		}
		binary.BigEndian.PutUint16(b[0:], v)
		binary.BigEndian.PutUint16(b[2:], uint16(r.Service))
		binary.BigEndian.PutUint32(b[4:], r.TokenID)
		copy(b[16:32], r.Nonce[:])
		copy(b[32:64], r.Username)
		binary.BigEndian.PutUint64(b[64:], uint64(r.Created.Unix()))
		out = append(out, b[:]...)
	}
	return out
}

// DecodeApprovalData parses approval_data strictly: reserved bytes zero,
// version 1, a known service, a valid lowercase NUL-padded username.
func DecodeApprovalData(data []byte) ([]Record, error) {
	if len(data) == 0 || len(data)%RecordSize != 0 {
		return nil, fmt.Errorf("approval_data is %d bytes, want a non-zero multiple of %d", len(data), RecordSize)
	}
	var zero [8]byte
	records := make([]Record, 0, len(data)/RecordSize)
	for i := 0; i < len(data); i += RecordSize {
		b := data[i : i+RecordSize]
		n := i / RecordSize
		var r Record
		r.Version = binary.BigEndian.Uint16(b[0:])
		if r.Version != RecordVersion {
			return nil, fmt.Errorf("record %d: version %d (want %d)", n, r.Version, RecordVersion)
		}
		r.Service = Service(binary.BigEndian.Uint16(b[2:]))
		if !r.Service.Valid() {
			return nil, fmt.Errorf("record %d: unknown service %d", n, uint16(r.Service))
		}
		r.TokenID = binary.BigEndian.Uint32(b[4:])
		if !bytes.Equal(b[8:16], zero[:]) || !bytes.Equal(b[72:80], zero[:]) {
			return nil, fmt.Errorf("record %d: reserved bytes are not zero", n)
		}
		copy(r.Nonce[:], b[16:32])
		name, pad, _ := bytes.Cut(b[32:64], []byte{0})
		if bytes.ContainsFunc(pad, func(c rune) bool { return c != 0 }) {
			return nil, fmt.Errorf("record %d: username is not NUL-padded", n)
		}
		u, err := policy.NormalizeUsername(string(name))
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", n, err)
		}
		if u != string(name) {
			return nil, fmt.Errorf("record %d: username %q is not lowercase", n, name)
		}
		r.Username = u
		t := binary.BigEndian.Uint64(b[64:])
		if t > 1<<62 {
			return nil, fmt.Errorf("record %d: creation time %d is out of range", n, t)
		}
		r.Created = time.Unix(int64(t), 0).UTC()
		records = append(records, r)
	}
	return records, nil
}
