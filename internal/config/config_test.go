package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `# comment
cluster: cluster-abc
state: state
hsms:
  - id: hsm-a
    ip: 10.0.0.1
  - id: hsm-b
`

func TestParseGood(t *testing.T) {
	c, err := Parse("c.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != "cluster-abc" || len(c.HSMs) != 2 || c.HSMs[0].IP != "10.0.0.1" || !c.Lists("hsm-b") {
		t.Fatalf("got %+v", c)
	}
	if c.StateDir() != "state" {
		t.Errorf("StateDir = %q", c.StateDir())
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "c.yaml: empty file"},
		{"unknown key", "cluster: cluster-a\nstate: s\nhsms: [{id: hsm-a}]\nextra: 1\n", `c.yaml:4: unknown key "extra"`},
		{"unknown hsm key", "cluster: cluster-a\nstate: s\nhsms:\n  - id: hsm-a\n    port: 1\n", `c.yaml:5: hsms[0]: unknown key "port"`},
		{"two docs", "cluster: cluster-a\nstate: s\nhsms: [{id: hsm-a}]\n---\ncluster: cluster-b\n", "c.yaml:4: a second YAML document"},
		{"syntax", "cluster: [\n", "c.yaml:"},
		{"missing state", "cluster: cluster-a\nhsms: [{id: hsm-a}]\n", `missing key "state"`},
		{"empty hsms", "cluster: cluster-a\nstate: s\nhsms: []\n", "hsms: the list is empty"},
		{"dup hsm", "cluster: cluster-a\nstate: s\nhsms: [{id: hsm-a}, {id: hsm-a}]\n", "listed twice"},
		{"bad ip", "cluster: cluster-a\nstate: s\nhsms: [{id: hsm-a, ip: 10.0.0}]\n", `c.yaml:3: hsms[0].ip: "10.0.0" is not an IP address`},
		{"bad id", "cluster: cluster-a\nstate: s\nhsms: [{id: ../x}]\n", "is not an HSM id"},
		{"not mapping", "- a\n", "want a mapping"},
		{"dup key", "cluster: cluster-a\ncluster: cluster-b\n", `c.yaml:2: key "cluster" given twice`},
		{"null state", "cluster: cluster-a\nstate:\nhsms: [{id: hsm-a}]\n", "state: want a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestCreateAndRefreshKeepsComments(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := Create(p, &Config{Cluster: "cluster-a", State: "st", HSMs: []HSM{{ID: "hsm-a"}}}); err != nil {
		t.Fatal(err)
	}
	if err := Create(p, &Config{}); err == nil {
		t.Fatal("Create overwrote an existing file")
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetHSMs([]HSM{{ID: "hsm-a"}, {ID: "hsm-b", IP: "10.0.1.1"}}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	c2, err := Parse(p, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(c2.HSMs) != 2 || !strings.Contains(string(data), "# hsmkit client config") {
		t.Fatalf("refresh lost something:\n%s", data)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("cluster: x\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err == nil && (c.Cluster == "" || len(c.HSMs) == 0) {
			t.Fatalf("accepted an incomplete config: %+v", c)
		}
	})
}

func TestRefreshKeepsEntryComments(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	src := "# top\ncluster: cluster-a # the cluster\nstate: st\nhsms:\n  # primary\n  - id: hsm-a\n    ip: 10.0.0.1 # az a\n  - id: hsm-gone\n"
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetHSMs([]HSM{{ID: "hsm-a", IP: "10.0.0.1"}, {ID: "hsm-new", IP: "10.0.2.1"}}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	for _, want := range []string{"# top", "# the cluster", "# primary", "# az a", "hsm-new"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("lost %q:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "hsm-gone") {
		t.Errorf("kept a removed HSM:\n%s", data)
	}
}
