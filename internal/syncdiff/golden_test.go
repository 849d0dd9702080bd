package syncdiff

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -update rewrites it)\n--- got\n%s", path, got)
	}
}

func TestGoldenPlans(t *testing.T) {
	p := Diff(story()).Plan()
	for _, d := range Dialects() {
		t.Run(d, func(t *testing.T) {
			var b bytes.Buffer
			if err := WritePlan(&b, p, d); err != nil {
				t.Fatal(err)
			}
			golden(t, "plan-"+d+".golden", b.Bytes())
		})
	}
}

// TestGoldenSeed003 is the documented repair (docs/design.md, "The repair story") from a CMU capture: newest_user is
// missing on server 1.
func TestGoldenSeed003(t *testing.T) {
	f, err := os.Open("testdata/listusers-3servers.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ImportCMUListUsers("listusers-3servers.txt", f)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range Dialects() {
		var b bytes.Buffer
		if err := WritePlan(&b, Diff(s).Plan(), d); err != nil {
			t.Fatal(err)
		}
		golden(t, "seed003-"+d+".golden", b.Bytes())
	}
}

func TestGoldenReportJSON(t *testing.T) {
	b, err := json.MarshalIndent(Diff(story()).JSON(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json.golden", append(b, '\n'))

	// Programs read it back with the documented names.
	var back struct {
		InSync      bool `json:"in-sync"`
		StaleConfig struct {
			Missing []string `json:"missing"`
		} `json:"stale-config"`
		Users []struct {
			Username  string `json:"username"`
			Authority struct {
				Decision string `json:"decision"`
			} `json:"authority"`
		} `json:"users"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.InSync || len(back.StaleConfig.Missing) != 1 || back.Users[len(back.Users)-1].Username != "newest_user" ||
		back.Users[len(back.Users)-1].Authority.Decision != "create" {
		t.Errorf("round trip: %+v", back)
	}
}

func TestReportJSONInSync(t *testing.T) {
	s := cluster(hsm("hsm-a", 0))
	s.ConfigHSMs = nil
	b, err := json.Marshal(Diff(s).JSON())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster-id":"cluster-test","in-sync":true,"users-in-sync":true,"hsms":[{"id":"hsm-a","server":0,"ip":"10.0.0.1","reachable":true}],"stale-config":null,"unreachable":[],"users":[],"notes":[],"quorum-policy":null}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}
