package hsmkit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/rogpeppe/go-internal/testscript"
	bolt "go.etcd.io/bbolt"

	"github.com/hsmkit/hsmkit/testkit"
)

// The real commands, from the public testkit (the one list of them, which
// users' own testscript tests take too), so scenarios run them as separate
// processes exactly as users do.
func TestMain(m *testing.M) {
	testscript.Main(m, testkit.Commands())
}

// -update rewrites a scenario's golden file when cmp finds it differs;
// review the diff before committing it.
var updateScripts = flag.Bool("update", false, "rewrite the golden files cmp compares in testdata/scripts")

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/scripts",
		UpdateScripts:       *updateScripts,
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			// The time is the cluster's: scenarios pin it with hsm-sim
			// init --clock and move it with hsm-sim clock.
			e.Setenv("HSM_LOCK_TIMEOUT", "20s")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":       cmdExits,
			"statesum":    cmdStatesum,
			"samestate":   cmdSamestate,
			"holdlock":    cmdHoldlock,
			"releaselock": cmdReleaselock,
			"setmeta":     cmdSetmeta,
			"ishell":      cmdIshell,
			"fillusers":   cmdFillusers,
		},
	})
}

// cmdExits runs a command and checks its exact exit code:
//
//	exits 3 hsm-user list
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// stateManifest describes every entry under dir, without following
// symlinks: its path, type and mode, and a SHA-256 of its bytes (of its
// target for a symlink). The top-level .lock file's bytes are left out:
// every command that takes the lock writes its own pid there; nor is the
// lock's queue directory (.lockq), whose tickets every command moves.
func stateManifest(dir string) (map[string]string, error) {
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		// The lock's queue (.lockq) moves with every command, reads too:
		// it is the lock's, not the cluster's.
		if rel == ".lockq" {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular() && rel != ".lock":
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			desc += fmt.Sprintf(" %d bytes sha256:%x", len(data), sum[:8])
		}
		m[filepath.ToSlash(rel)] = desc
		return nil
	})
	return m, err
}

func manifestSum(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s\x00%s\n", k, m[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sums holds each script's recorded manifests, by script and name.
var sums sync.Map // map[*testscript.TestScript]map[string]map[string]string

// cmdStatesum records the state of DIR under NAME (and its digest in env
// STATESUM_NAME), for samestate to compare with:
//
//	statesum before st
func cmdStatesum(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: statesum NAME DIR")
	}
	m, err := stateManifest(ts.MkAbs(args[1]))
	ts.Check(err)
	v, _ := sums.LoadOrStore(ts, &sync.Map{})
	v.(*sync.Map).Store(args[0], m)
	ts.Setenv("STATESUM_"+args[0], manifestSum(m))
}

// cmdSamestate fails if DIR differs in any byte, mode or entry from what
// statesum NAME recorded (with !, fails if it is the same):
//
//	samestate before st
func cmdSamestate(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: samestate NAME DIR")
	}
	var before map[string]string
	if v, ok := sums.Load(ts); ok {
		if m, ok := v.(*sync.Map).Load(args[0]); ok {
			before = m.(map[string]string)
		}
	}
	if before == nil {
		ts.Fatalf("samestate: no statesum %s", args[0])
	}
	after, err := stateManifest(ts.MkAbs(args[1]))
	ts.Check(err)
	var diffs []string
	for k, b := range before {
		if a, ok := after[k]; !ok {
			diffs = append(diffs, "removed "+k)
		} else if a != b {
			diffs = append(diffs, fmt.Sprintf("changed %s: %s => %s", k, b, a))
		}
	}
	for k, a := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("added %s: %s", k, a))
		}
	}
	sort.Strings(diffs)
	switch {
	case neg && len(diffs) == 0:
		ts.Fatalf("%s is unchanged since statesum %s", args[1], args[0])
	case !neg && len(diffs) > 0:
		ts.Fatalf("%s changed since statesum %s:\n\t%s", args[1], args[0], strings.Join(diffs, "\n\t"))
	}
}

// cmdHoldlock takes the state's sidecar lock (DIR/.lock) as a live process
// would, writing "pid N (holdlock)" into it, until releaselock DIR or the
// end of the script:
//
//	holdlock st
func cmdHoldlock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: holdlock DIR")
	}
	path := filepath.Join(ts.MkAbs(args[0]), ".lock")
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	ts.Check(err)
	if !ok {
		ts.Fatalf("holdlock: %s is already locked", path)
	}
	ts.Check(os.WriteFile(path, []byte(fmt.Sprintf("pid %d (holdlock)\n", os.Getpid())), 0o600))
	v, _ := locks.LoadOrStore(ts, &sync.Map{})
	v.(*sync.Map).Store(path, fl)
	ts.Defer(func() { _ = fl.Unlock() })
}

// cmdReleaselock releases a lock holdlock took.
func cmdReleaselock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: releaselock DIR")
	}
	path := filepath.Join(ts.MkAbs(args[0]), ".lock")
	if v, ok := locks.Load(ts); ok {
		if fl, ok := v.(*sync.Map).LoadAndDelete(path); ok {
			ts.Check(fl.(*flock.Flock).Unlock())
			return
		}
	}
	ts.Fatalf("releaselock: %s is not held by holdlock", path)
}

var locks sync.Map // map[*testscript.TestScript]*sync.Map of path to *flock.Flock

// cmdSetmeta rewrites one field of an HSM database's meta record (bucket
// "meta", key "meta", a JSON object), as a corruption or a newer build
// would leave it. FIELD is a dotted path into the object (quorum.values.user);
// JSONVALUE replaces it, or adds it if it is absent (an unknown field):
//
//	setmeta st/hsms/hsm-i6dkruvdcbx.db schema 3
//	setmeta st/hsms/hsm-i6dkruvdcbx.db quorum.values.user 9
//
// The file's mode is left as it was.
func cmdSetmeta(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: setmeta DBFILE FIELD JSONVALUE")
	}
	path := ts.MkAbs(args[0])
	var value any
	dec := json.NewDecoder(strings.NewReader(args[2]))
	dec.UseNumber()
	if err := dec.Decode(&value); err != nil || dec.More() {
		ts.Fatalf("setmeta: %q is not one JSON value", args[2])
	}
	fi, err := os.Lstat(path)
	ts.Check(err)
	if !fi.Mode().IsRegular() {
		ts.Fatalf("setmeta: %s is not a regular file", path)
	}
	db, err := bolt.Open(path, fi.Mode().Perm(), &bolt.Options{Timeout: time.Second})
	ts.Check(err)
	defer db.Close()
	ts.Check(db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("meta"))
		if b == nil {
			return fmt.Errorf("setmeta: %s has no meta bucket", path)
		}
		raw := b.Get([]byte("meta"))
		if raw == nil {
			return fmt.Errorf("setmeta: %s has no meta record", path)
		}
		var meta map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&meta); err != nil {
			return fmt.Errorf("setmeta: %s: meta record: %v", path, err)
		}
		obj := meta
		keys := strings.Split(args[1], ".")
		for _, k := range keys[:len(keys)-1] {
			next, ok := obj[k].(map[string]any)
			if !ok {
				return fmt.Errorf("setmeta: %s: meta field %s is not an object", path, k)
			}
			obj = next
		}
		obj[keys[len(keys)-1]] = value
		data, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		return b.Put([]byte("meta"), data)
	}))
	ts.Check(db.Close())
	ts.Check(os.Chmod(path, fi.Mode().Perm()))
}
