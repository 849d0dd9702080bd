package state

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/fileio"
)

// Migrate converts a schema-version-1 state directory (one JSON file per
// HSM) to this version, under the lock. Each HSM's database is built
// beside its JSON file; cluster.json, rewritten last, is the commit point:
// a migration killed before it leaves a version-1 directory that Migrate
// converts again from the start, and one killed after it leaves only
// JSON files that nothing reads, which are removed.
func Migrate(dir string, lockWait time.Duration) (hsms int, err error) {
	s, err := Open(dir)
	if err != nil {
		return 0, err
	}
	unlock, err := s.Lock(lockWait, "hsm-sim migrate", nil)
	if err != nil {
		return 0, err
	}
	defer unlock()
	raw, err := readRegular(s.clusterPath())
	if err != nil {
		return 0, err
	}
	var probe struct {
		Schema *int `json:"schema"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil || probe.Schema == nil {
		return 0, corrupt(s.clusterPath(), "no schema version")
	}
	switch *probe.Schema {
	case Schema:
		return 0, s.removeV1Files()
	case 1:
	default:
		return 0, &SchemaError{Path: s.clusterPath(), Got: *probe.Schema}
	}
	// Version 1's cluster.json is version 2's without the clock.
	var cl Cluster
	if err := decodeStrict(s.clusterPath(), raw, &cl); err != nil {
		return 0, err
	}
	// A refusal part-way removes the databases this run made: the
	// directory stays the version-1 one it was.
	var made []string
	defer func() {
		if err != nil {
			for _, id := range made {
				_ = os.Remove(s.hsmPath(id))
			}
		}
	}()
	for _, info := range cl.HSMs {
		path := filepath.Join(s.Dir, "hsms", info.ID+".json")
		data, err := readRegular(path)
		if err != nil {
			return 0, err
		}
		var h HSM
		if err := decodeStrict(path, data, &h); err != nil {
			return 0, err
		}
		if h.Schema != 1 || h.ID != info.ID {
			return 0, fmt.Errorf("%s: not HSM %s at schema version 1", path, info.ID)
		}
		if err := h.Quorum.Check(); err != nil {
			return 0, fmt.Errorf("%s: %v", path, err)
		}
		seen := map[string]bool{}
		for _, u := range h.Users {
			if seen[u.Name] {
				return 0, fmt.Errorf("%s: user %q is listed twice; fix the file by hand first", path, u.Name)
			}
			seen[u.Name] = true
		}
		if h.Seq > 0 {
			h.Seq-- // CreateHSM's commit counts as the write it is
		}
		if err := s.CreateHSM(&h); err != nil {
			return 0, err
		}
		made = append(made, h.ID)
	}
	if err := s.SaveCluster(&cl); err != nil {
		return 0, err
	}
	return len(cl.HSMs), s.removeV1Files()
}

func (s *Store) removeV1Files() error {
	entries, err := os.ReadDir(filepath.Join(s.Dir, "hsms"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(s.Dir, "hsms", e.Name())); err != nil {
				return err
			}
		}
	}
	return syncDir(filepath.Join(s.Dir, "hsms"))
}

// maxStateFile bounds a JSON state file read (a version-1 HSM with
// 100,000 users is about 60 MB).
const maxStateFile = 256 << 20

func readRegular(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (a symlink or device is refused)", path)
	}
	data, err := fileio.ReadFile(path, maxStateFile)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, corrupt(path, "empty")
	}
	return data, nil
}
