package cloudhsmv2

import (
	"strings"
	"testing"
	"time"
)

const docExample = `{
    "Clusters": [
        {
            "SubnetMapping": {"us-west-2a": "subnet-a6b10bd1"},
            "CreateTimestamp": 1507133412.351,
            "ClusterId": "cluster-1a23b4cdefg",
            "SecurityGroup": "sg-865af2fb",
            "HsmType": "hsm1.medium",
            "VpcId": "vpc-1a2b3c4d",
            "BackupPolicy": "DEFAULT",
            "Certificates": {"ClusterCertificate": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"},
            "Hsms": [
                {"AvailabilityZone": "us-west-2a", "EniIp": "10.0.1.11", "ClusterId": "cluster-1a23b4cdefg",
                 "EniId": "eni-ea8647e1", "StateMessage": "HSM created.", "SubnetId": "subnet-a6b10bd1",
                 "HsmId": "hsm-abcdefghijk", "State": "ACTIVE"}
            ],
            "State": "ACTIVE",
            "TagList": [{"Key": "k", "Value": "v"}]
        }
    ]
}`

func TestParse(t *testing.T) {
	out, err := Parse("capture.json", []byte(docExample))
	if err != nil {
		t.Fatal(err)
	}
	c := out.Clusters[0]
	if c.ClusterId != "cluster-1a23b4cdefg" || c.State != "ACTIVE" || len(c.Hsms) != 1 || c.Hsms[0].EniIp != "10.0.1.11" ||
		!c.CreateTimestamp.Equal(time.UnixMilli(1507133412351)) {
		t.Fatalf("%+v", c)
	}
	for _, tc := range []struct{ in, want string }{
		{`{}`, `capture.json: no "Clusters" list`},
		{`{"Clusters": [{"State": "ACTIVE"}]}`, "capture.json: Clusters[0]: no ClusterId"},
		{`{"Clusters": [{"ClusterId": "c", "Hsms": [{"State": 1}]}]}`, "capture.json: not a describe-clusters output"},
		{`{"Clusters": [{"ClusterId": "c", "Hsms": [{}]}]}`, "capture.json: Clusters[0].Hsms[0]: no HsmId"},
		{`{"Clusters": []} {}`, "data after the JSON object"},
		{`{"Clusters": [{"ClusterId": "c", "CreateTimestamp": "yesterday"}]}`, "timestamp"},
		{strings.Repeat(" ", MaxOutput+1), "larger than"},
	} {
		if _, err := Parse("capture.json", []byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40q: got %v, want %q", tc.in, err, tc.want)
		}
	}
	iso := `{"Clusters": [{"ClusterId": "c", "CreateTimestamp": "2017-10-04T15:10:12.351000+00:00"}]}`
	if out, err := Parse("v2.json", []byte(iso)); err != nil || out.Clusters[0].CreateTimestamp.UnixMilli() != 1507129812351 {
		t.Fatalf("CLI v2 timestamp: %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	ts := Timestamp{time.Date(2026, 11, 22, 10, 0, 0, 5e6, time.UTC)}
	o := &DescribeClustersOutput{Clusters: []Cluster{{ClusterId: "cluster-x", State: "ACTIVE", CreateTimestamp: &ts, Hsms: []Hsm{}}}}
	b, err := o.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"CreateTimestamp": 1795341600.005,`) {
		t.Fatalf("%s", b)
	}
	back, err := Parse("x", b)
	if err != nil || !back.Clusters[0].CreateTimestamp.Equal(ts.Time) {
		t.Fatalf("%v", err)
	}
	if a, b := SimulatedID("sg-", "cluster-x"), SimulatedID("sg-", "cluster-x"); a != b || a == SimulatedID("sg-", "cluster-y") || !strings.HasPrefix(SimulatedID("sg-", "a"), "sg-") || len(SimulatedID("vpc-", "a")) != 12 {
		t.Fatal(SimulatedID("sg-", "a"))
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(docExample))
	f.Add([]byte(`{"Clusters": null}`))
	f.Add([]byte(`{"Clusters": [{"ClusterId": "c", "CreateTimestamp": 1e300}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Parse("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		b, err := out.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse("f", b); err != nil {
			t.Fatalf("a parsed output does not read back: %v\n%s", err, b)
		}
	})
}
