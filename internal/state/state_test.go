package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"schema":1,"id":"hsm-a","seq":1,"next_user_id":0,"next_token_id":0,"users":[],"deleted":[],"sessions":[],"tokens":[],"quorum":{"values":{},"generated_timeout":600,"approved_timeout":600}}`, ""},
		{`{"schema":2,"id":"hsm-a"}`, "schema version 2 is newer than this hsmkit understands"},
		{`{"schema":0}`, "unknown schema version 0"},
		{`{"id":"hsm-a"}`, "no schema version"},
		{`{"schema":1,"id":"hsm-a","extra":1}`, `unknown field "extra"`},
		{`{"schema":1,"id":"hsm-a"}{"schema":1}`, "corrupt state"},
		{`{"schema":1,"id":"hs`, "corrupt state"},
		{``, "corrupt state"},
	} {
		var h HSM
		err := Decode("f.json", []byte(tc.in), &h)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestSaveLoadModesAndSymlink(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "st")
	s, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &HSM{ID: "hsm-a", Users: []User{{ID: 1, Name: "admin"}}}
	if err := s.SaveHSM(h); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir); err == nil {
		t.Fatal("Create reused a non-empty state")
	}
	got, err := s.LoadHSM("hsm-a")
	if err != nil || got.Seq != 1 || got.Users[0].Name != "admin" {
		t.Fatalf("%+v %v", got, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "hsms", "hsm-a.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %o", fi.Mode().Perm())
	}
	// A symlinked HSM file is refused, not followed.
	os.Rename(filepath.Join(dir, "hsms", "hsm-a.json"), filepath.Join(dir, "elsewhere.json"))
	os.Symlink(filepath.Join(dir, "elsewhere.json"), filepath.Join(dir, "hsms", "hsm-a.json"))
	if _, err := s.LoadHSM("hsm-a"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("symlink: %v", err)
	}
	if _, err := s.LoadHSM("../elsewhere"); err == nil {
		t.Fatal("a path in an HSM id was accepted")
	}
}

func TestLockBoundedWait(t *testing.T) {
	s, err := Create(filepath.Join(t.TempDir(), "st"))
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(time.Second, "holder", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Lock(50*time.Millisecond, "waiter", nil)
	var le *LockedError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "state is locked by pid") || !strings.Contains(err.Error(), "(holder)") {
		t.Fatalf("err = %v", err)
	}
	unlock()
	unlock2, err := s.Lock(50*time.Millisecond, "waiter", nil)
	if err != nil {
		t.Fatal("lock not released:", err)
	}
	unlock2()
}

func FuzzDecodeHSM(f *testing.F) {
	f.Add([]byte(`{"schema":1,"id":"hsm-a","users":[{"id":1,"name":"admin","role":"admin","hash":null,"failures":0,"changed":"2026-11-22T10:00:00Z","seq":1,"op":"x"}]}`))
	f.Add([]byte(`{"schema":1}{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h HSM
		if err := Decode("f.json", data, &h); err == nil && h.Schema != Schema {
			t.Fatalf("accepted schema %d", h.Schema)
		}
		var c Cluster
		_ = Decode("c.json", data, &c)
	})
}

func TestLockSweepsStaleTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "st")
	s, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "hsms", ".hsm-a.json5577006791947779410")
	keep := filepath.Join(dir, "hsms", "notes.txt")
	os.WriteFile(stale, []byte("{}"), 0o600)
	os.WriteFile(keep, []byte("x"), 0o600)
	unlock, err := s.Lock(time.Second, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if _, err := os.Stat(stale); err == nil {
		t.Error("a stale temp file survived the lock holder's sweep")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Error("the sweep removed a file that is not a temp file")
	}
}
