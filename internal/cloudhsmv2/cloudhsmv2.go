// Package cloudhsmv2 is the JSON that `aws cloudhsmv2 describe-clusters`
// prints: hsm-sim describe-clusters writes it for the simulated cluster,
// and readers of captured output (hsm-kms doctor --from) parse it with
// the same types (docs/design.md, "Cluster certificates and backups").
package cloudhsmv2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/cli/awscli"
)

// DescribeClustersOutput is describe-clusters' whole output.
type DescribeClustersOutput struct {
	Clusters  []Cluster `json:"Clusters"`
	NextToken string    `json:"NextToken,omitempty"`
}

// Cluster is one cluster, with the field names of the AWS API.
type Cluster struct {
	BackupPolicy    string            `json:"BackupPolicy,omitempty"`
	Certificates    Certificates      `json:"Certificates"`
	ClusterId       string            `json:"ClusterId"`
	CreateTimestamp *Timestamp        `json:"CreateTimestamp,omitempty"`
	HsmType         string            `json:"HsmType,omitempty"`
	Hsms            []Hsm             `json:"Hsms"`
	PreCoPassword   string            `json:"PreCoPassword,omitempty"`
	SecurityGroup   string            `json:"SecurityGroup,omitempty"`
	SourceBackupId  string            `json:"SourceBackupId,omitempty"`
	State           string            `json:"State"`
	StateMessage    string            `json:"StateMessage,omitempty"`
	SubnetMapping   map[string]string `json:"SubnetMapping,omitempty"`
	VpcId           string            `json:"VpcId,omitempty"`
}

// Certificates are the cluster's certificates, PEM.
type Certificates struct {
	AwsHardwareCertificate          string `json:"AwsHardwareCertificate,omitempty"`
	ClusterCertificate              string `json:"ClusterCertificate,omitempty"`
	ClusterCsr                      string `json:"ClusterCsr,omitempty"`
	HsmCertificate                  string `json:"HsmCertificate,omitempty"`
	ManufacturerHardwareCertificate string `json:"ManufacturerHardwareCertificate,omitempty"`
}

// Hsm is one HSM of a cluster.
type Hsm struct {
	AvailabilityZone string `json:"AvailabilityZone"`
	ClusterId        string `json:"ClusterId"`
	EniId            string `json:"EniId,omitempty"`
	EniIp            string `json:"EniIp,omitempty"`
	HsmId            string `json:"HsmId"`
	State            string `json:"State"`
	StateMessage     string `json:"StateMessage,omitempty"`
	SubnetId         string `json:"SubnetId,omitempty"`
}

// HSM states of the AWS API. The cluster's states are the state
// package's (state.Active, …), which records them under the API's names.
const (
	HsmActive   = "ACTIVE"
	HsmDegraded = "DEGRADED"
)

// Timestamp is a time as the AWS CLI prints it: seconds since the epoch
// with milliseconds (CLI v1, the documented examples), or an ISO 8601
// string (CLI v2's default); it is written the first way.
type Timestamp struct{ time.Time }

// MarshalJSON writes seconds.milliseconds.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	ms := max(t.UnixMilli(), 0) // Parse reads no time before the epoch
	return fmt.Appendf(nil, "%d.%03d", ms/1000, ms%1000), nil
}

// UnmarshalJSON reads either form.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || at.Unix() < 0 || at.Unix() > 1e11 {
			return fmt.Errorf("timestamp %q: want ISO 8601 or seconds since the epoch", s)
		}
		t.Time = at
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < 0 || f > 1e11 {
		return fmt.Errorf("timestamp %.40s: want seconds since the epoch", b)
	}
	t.Time = time.UnixMilli(int64(f*1000 + 0.5)).UTC()
	return nil
}

// MaxOutput bounds a describe-clusters capture read.
const MaxOutput = 4 << 20

// Parse reads a describe-clusters capture; name is what errors call it.
// Fields this package does not know are ignored (AWS adds some), but a
// known one of the wrong type, a missing Clusters list, a cluster without
// its id or an HSM without its id is refused.
func Parse(name string, data []byte) (*DescribeClustersOutput, error) {
	if len(data) > MaxOutput {
		return nil, fmt.Errorf("%s: larger than %d bytes; not a describe-clusters output", name, MaxOutput)
	}
	var raw struct {
		Clusters *[]Cluster `json:"Clusters"`
		DescribeClustersOutput
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: not a describe-clusters output: %v", name, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: not a describe-clusters output: data after the JSON object", name)
	}
	if raw.Clusters == nil {
		return nil, fmt.Errorf("%s: no \"Clusters\" list; want the output of aws cloudhsmv2 describe-clusters", name)
	}
	out := &DescribeClustersOutput{Clusters: *raw.Clusters, NextToken: raw.NextToken}
	for i, c := range out.Clusters {
		if c.ClusterId == "" {
			return nil, fmt.Errorf("%s: Clusters[%d]: no ClusterId", name, i)
		}
		for j, h := range c.Hsms {
			if h.HsmId == "" {
				return nil, fmt.Errorf("%s: Clusters[%d].Hsms[%d]: no HsmId", name, i, j)
			}
		}
	}
	return out, nil
}

// Marshal writes the output as the AWS CLI does: 4-space indents, a
// final newline, no HTML escaping.
func (o *DescribeClustersOutput) Marshal() ([]byte, error) {
	b, err := awscli.JSON(o)
	return append(b, '\n'), err
}

// SimulatedID is a stable AWS-shaped id (subnet-, sg-, vpc-, eni- and 8
// hex digits) for a simulated resource named by key: the same key gives
// the same id every time, so outputs are reproducible.
func SimulatedID(prefix, key string) string {
	sum := sha256.Sum256([]byte(prefix + "\x00" + key))
	return strings.TrimSuffix(prefix, "-") + "-" + hex.EncodeToString(sum[:4])
}
