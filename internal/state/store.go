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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"

	"github.com/hsmkit/hsmkit/internal/fileio"
)

// Store is an open state directory.
type Store struct {
	Dir string
}

// ErrNoState is returned (wrapped) when the directory holds no cluster.
var ErrNoState = errors.New("no cluster state")

// LockedError says who holds the lock when the wait ran out.
type LockedError struct {
	Path   string
	Holder string
	Waited time.Duration
}

func (e *LockedError) Error() string {
	h := e.Holder
	if h == "" {
		h = "another process"
	}
	return fmt.Sprintf("state is locked by %s (waited %s for %s)", h, e.Waited, e.Path)
}

var hsmIDRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

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

// Lock takes the sidecar lock, waiting at most wait. The lock file is never
// renamed over, so the lock stays on one inode; the holder writes who it is
// into it for the error others see.
func (s *Store) Lock(wait time.Duration, who string, waiting func(string)) (unlock func(), err error) {
	path := filepath.Join(s.Dir, ".lock")
	// A symlinked (or otherwise irregular) lock file is refused, not
	// followed: the holder truncates and writes it.
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (a symlink or device is refused); remove it", path)
	}
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW), flock.SetPermissions(0o600))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ok, err := fl.TryLockContext(ctx, 5*time.Millisecond)
	if !ok {
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		return nil, &LockedError{Path: path, Holder: lockHolder(path), Waited: wait}
	}
	if f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600); err == nil {
		fmt.Fprintf(f, "pid %d (%s)\n", os.Getpid(), who)
		f.Close()
	}
	s.sweepTemp()
	return func() { _ = fl.Unlock() }, nil
}

// tempName is the name renameio gives a temp file ("." + the file's name
// + a random number), or an HSM database being created (CreateHSM).
var tempName = regexp.MustCompile(`^\.([a-z0-9.-]+\.json-?[0-9]+|[a-z0-9-]+\.db\.new)$`)

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
			if e.Type().IsRegular() && tempName.MatchString(e.Name()) {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// lockHolder is the first line of the lock file, "pid N (command)", read
// with a bound: the file is anyone's to scribble on.
func lockHolder(path string) string {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := io.ReadFull(f, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	return strings.ToValidUTF8(strings.TrimSpace(line), "?")
}

// LoadCluster reads cluster.json.
func (s *Store) LoadCluster() (*Cluster, error) {
	var c Cluster
	if err := s.read(s.clusterPath(), &c); err != nil {
		return nil, err
	}
	if c.ID == "" || len(c.HSMs) == 0 {
		return nil, fmt.Errorf("%s: no cluster id or HSMs", s.clusterPath())
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
		return fmt.Errorf("%s: corrupt state: %v", path, err)
	}
	if probe.Schema == nil {
		return fmt.Errorf("%s: corrupt state: no schema version", path)
	}
	if *probe.Schema != Schema {
		return &SchemaError{Path: path, Got: *probe.Schema}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: corrupt state: %v", path, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: corrupt state: data after the JSON object", path)
	}
	return nil
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
