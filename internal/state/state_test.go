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
		{`{"schema":2,"id":"cluster-a","created":"2026-11-22T10:00:00Z","kdf":{"time":1,"memory_kib":64,"threads":1},"salt":null,"azs":[],"hsms":[]}`, ""},
		{`{"schema":3,"id":"cluster-a"}`, "schema version 3 is newer than this hsmkit understands"},
		{`{"schema":1,"id":"cluster-a"}`, "hsm-sim migrate --state"},
		{`{"schema":0}`, "unknown schema version 0"},
		{`{"id":"cluster-a"}`, "no schema version"},
		{`{"schema":2,"id":"cluster-a","extra":1}`, `unknown field "extra"`},
		{`{"schema":2,"id":"cluster-a"}{"schema":2}`, "corrupt state"},
		{`{"schema":2,"id":"hs`, "corrupt state"},
		{``, "corrupt state"},
	} {
		var c Cluster
		err := Decode("f.json", []byte(tc.in), &c)
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
	h := &HSM{ID: "hsm-a", Users: []User{{ID: 1, Name: "admin"}}, Quorum: DefaultQuorum()}
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
	fi, _ := os.Stat(filepath.Join(dir, "hsms", "hsm-a.db"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %o", fi.Mode().Perm())
	}
	// A symlinked HSM file is refused, not followed.
	os.Rename(filepath.Join(dir, "hsms", "hsm-a.db"), filepath.Join(dir, "elsewhere.db"))
	os.Symlink(filepath.Join(dir, "elsewhere.db"), filepath.Join(dir, "hsms", "hsm-a.db"))
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

func FuzzDecodeCluster(f *testing.F) {
	f.Add([]byte(`{"schema":2,"id":"cluster-a","hsms":[{"id":"hsm-a","status":"running"}]}`))
	f.Add([]byte(`{"schema":2}{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Cluster
		if err := Decode("c.json", data, &c); err == nil && c.Schema != Schema {
			t.Fatalf("accepted schema %d", c.Schema)
		}
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
