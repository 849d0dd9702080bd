package keyview

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/state"
)

func TestListPages(t *testing.T) {
	keys := make([]hsm.KeyInfo, 5)
	for i := range keys {
		keys[i].Key = state.Key{Ref: uint64(i + 1), Label: strconv.Itoa(i)}
	}
	p, _ := ParsePage(2, "4")
	b, err := json.Marshal(List(keys, false, p))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"matched_keys":[{"key-reference":"0x0000000000000005","attributes":{"label":"4"}}],"total_key_count":5,"returned_key_count":1}`
	if string(b) != want {
		t.Fatalf("%s", b)
	}
}

// FuzzParsePage: an accepted --starting-token reads back as given.
func FuzzParsePage(f *testing.F) {
	f.Add(10, "2")
	f.Add(-1, "01")
	f.Fuzz(func(t *testing.T, n int, tok string) {
		p, err := ParsePage(n, tok)
		if err != nil {
			return
		}
		if p.MaxItems < 1 || p.Start < 0 || (tok != "" && strconv.Itoa(p.Start) != tok) {
			t.Fatalf("accepted %d %q as %+v", n, tok, p)
		}
		_ = List(nil, true, p)
	})
}
