package hsmsign

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden are the packages hsm-sign must not link: it is the approver's
// offline tool, run on a machine that holds a private key and never the
// cluster's state, so the engine, the store, the client config and the
// sync planner have no business in its binary (and a bug in them none in
// its attack surface).
var forbidden = []string{
	"github.com/hsmkit/hsmkit/internal/hsm",
	"github.com/hsmkit/hsmkit/internal/state",
	"github.com/hsmkit/hsmkit/internal/config",
	"github.com/hsmkit/hsmkit/internal/syncdiff",
}

// TestDeps fails if hsm-sign links a forbidden package, as
// go-containerregistry's depcheck does for its small binaries.
func TestDeps(t *testing.T) {
	for _, pkg := range []string{"github.com/hsmkit/hsmkit/cmd/hsm-sign", "github.com/hsmkit/hsmkit/internal/cmd/hsmsign"} {
		deps := goListDeps(t, pkg)
		if len(deps) < 3 {
			t.Fatalf("go list -deps %s: only %v; the check would pass vacuously", pkg, deps)
		}
		for _, d := range deps {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s links %s (see go list -deps %s; internal/cli must stay free of the engine: cluster plumbing goes in internal/cli/clustercli)", pkg, d, pkg)
				}
			}
		}
	}
}

func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	// The go command that runs the tests is on PATH (make test, .ci/run).
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, ee.Stderr)
		}
		t.Fatalf("cannot run go: %v", err)
	}
	return strings.Fields(string(out))
}
