package hsmkit_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stubGo stands in for the go command so scripts/fuzz.sh's verdicts can be
// checked without depending on when Go's fuzz coordinator races.
const stubGo = `#!/usr/bin/env bash
case "$1 $2" in
"list ./internal/...") echo example.com/p ;;
"list -f") echo "$STUB_DIR" ;;
"test -list") echo FuzzX; echo ok ;;
"test -run")
  case "$STUB_MODE" in
  pass) echo ok ;;
  deadline) printf -- '--- FAIL: FuzzX (3.2s)\n    context deadline exceeded\nFAIL\n'; exit 1 ;;
  crash)
    mkdir -p "$STUB_DIR/testdata/fuzz/FuzzX" && echo x >"$STUB_DIR/testdata/fuzz/FuzzX/0123"
    printf -- '--- FAIL: FuzzX (0.1s)\n    context deadline exceeded\n    Failing input written to testdata/fuzz/FuzzX/0123\nFAIL\n'; exit 1 ;;
  panic) printf -- '--- FAIL: FuzzX (0.1s)\n    panic: boom\nFAIL\n'; exit 1 ;;
  esac ;;
*) echo "stub go: unexpected $*" >&2; exit 2 ;;
esac
`

func TestFuzzScriptVerdicts(t *testing.T) {
	tests := []struct {
		mode, budget string
		wantOK       bool
		wantOut      string
	}{
		{"pass", "10s", true, "ok"},
		{"deadline", "10s", true, "golang/go#75804"},
		{"deadline", "30000x", false, "FuzzX failed"},
		{"crash", "10s", false, "FuzzX failed"},
		{"panic", "10s", false, "FuzzX failed"},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.budget, func(t *testing.T) {
			dir := t.TempDir()
			stub := filepath.Join(dir, "go")
			if err := os.WriteFile(stub, []byte(stubGo), 0o700); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", "scripts/fuzz.sh")
			cmd.Env = append(os.Environ(), "GO="+stub, "FUZZTIME="+tt.budget,
				"STUB_DIR="+dir, "STUB_MODE="+tt.mode)
			out, err := cmd.CombinedOutput()
			if ok := err == nil; ok != tt.wantOK {
				t.Fatalf("exit ok=%v, want %v; output:\n%s", ok, tt.wantOK, out)
			}
			if !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out)
			}
		})
	}
}
