// Package state keeps a simulated cluster in a directory:
//
//	DIR/cluster.json      the cluster: id, KDF cost, clock, HSMs and their basic info
//	DIR/hsms/<id>.db      one bbolt database per HSM: users, sessions, tokens, policy
//	DIR/.lock             the sidecar lock every writer holds
//
// cluster.json is replaced atomically and durably (temp file, fsync,
// rename, fsync of the directory); an HSM's database commits each
// transaction atomically and durably (hsmdb.go). A crash at any instant
// leaves every HSM readable and valid. Files are 0600, directories 0700.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/statelock"
)

// Store is an open state directory.
type Store struct {
	Dir string
}

// ErrNoState is returned (wrapped) when the directory holds no cluster.
var ErrNoState = errors.New("no cluster state")

// LockedError says who holds the lock when the wait ran out.
type LockedError = statelock.LockedError

var hsmIDRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`) })

// Open checks that dir holds a cluster this build understands.
func Open(dir string) (*Store, error) {
	s := &Store{Dir: dir}
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (create it with hsm-sim init)", dir, ErrNoState)
		}
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets other users read the state; want 0700 (chmod 700 %s)", dir, fi.Mode().Perm(), dir)
	}
	return s, nil
}

// Create makes a new state directory; it refuses a non-empty one.
func Create(dir string) (*Store, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s already holds files; not overwriting an existing state", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "hsms"), 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	return &Store{Dir: dir}, nil
}

func (s *Store) clusterPath() string { return filepath.Join(s.Dir, "cluster.json") }

// Lock takes the state lock, first come first served, waiting at most
// wait; after a second of waiting, waiting (if set) is told whom it waits
// for (docs/design.md, "The lock"). The lock holder sweeps temp files that
// killed writers left.
func (s *Store) Lock(wait time.Duration, who string, waiting func(string)) (unlock func(), err error) {
	if waiting == nil {
		waiting = func(string) {}
	}
	unlock, err = statelock.Acquire(s.Dir, wait, who, time.Second, waiting)
	if err != nil {
		return nil, err
	}
	s.sweepTemp()
	return unlock, nil
}

// tempName is the name renameio gives a temp file ("." + the file's name
// + a random number), or an HSM database being created (CreateHSM).
var tempName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\.([a-z0-9.-]+\.json-?[0-9]+|[a-z0-9-]+\.db\.new)$`)
})

// sweepTemp removes temp files that a writer killed before its rename left
// behind. Only the lock holder writes, so none of them is in use; they hold
// stale hashes and should not linger.
func (s *Store) sweepTemp() {
	for _, dir := range []string{s.Dir, filepath.Join(s.Dir, "hsms")} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Type().IsRegular() && tempName().MatchString(e.Name()) {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// LoadCluster reads cluster.json.
func (s *Store) LoadCluster() (*Cluster, error) {
	var c Cluster
	if err := s.read(s.clusterPath(), &c); err != nil {
		return nil, err
	}
	if c.ID == "" || (len(c.HSMs) == 0) != (c.State == Deleted) {
		return nil, corrupt(s.clusterPath(), "no cluster id or HSMs")
	}
	if err := c.KDF.Check(); err != nil {
		return nil, corrupt(s.clusterPath(), "kdf: %v", err)
	}
	return &c, nil
}

// SaveCluster writes cluster.json atomically.
func (s *Store) SaveCluster(c *Cluster) error {
	c.Schema = Schema
	return s.write(s.clusterPath(), c)
}

// SchemaError is a state file written by another version of hsmkit.
type SchemaError struct {
	Path string
	Got  int
}

// ExitCode is the documented code for state problems.
func (e *SchemaError) ExitCode() int { return 3 }

func (e *SchemaError) Error() string {
	if e.Got > Schema {
		return fmt.Sprintf("%s: schema version %d is newer than this hsmkit understands (%d): upgrade hsmkit", e.Path, e.Got, Schema)
	}
	if e.Got == 1 {
		return fmt.Sprintf("%s: schema version 1 (one JSON file per HSM) is no longer read; convert the state directory with: hsm-sim migrate --state %s", e.Path, filepath.Dir(e.Path))
	}
	return fmt.Sprintf("%s: unknown schema version %d (this hsmkit understands %d)", e.Path, e.Got, Schema)
}

func (s *Store) read(path string, v any) error {
	if _, err := os.Lstat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) && path == s.clusterPath() {
			return fmt.Errorf("%s: %w (create it with hsm-sim init)", s.Dir, ErrNoState)
		}
		return err
	}
	data, err := readRegular(path)
	if err != nil {
		return err
	}
	return Decode(path, data, v)
}

// Decode reads a state file's bytes strictly: a schema version this build
// understands, no unknown fields, nothing after the object.
func Decode(path string, data []byte, v any) error {
	var probe struct {
		Schema *int `json:"schema"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return corrupt(path, "%v", err)
	}
	if probe.Schema == nil {
		return corrupt(path, "no schema version")
	}
	if *probe.Schema != Schema {
		return &SchemaError{Path: path, Got: *probe.Schema}
	}
	return decodeStrict(path, data, v)
}

func (s *Store) write(path string, v any) error {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	// The temp file goes beside the target, inside the 0700 state
	// directory, never in the system temp dir.
	return fileio.WriteFile(path, append(data, '\n'), 0o600)
}

// syncDir makes a rename durable: the directory entry is on disk too.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
