package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Each HSM is one bbolt database, hsms/<id>.db: a transaction commits what
// it changed and nothing else, atomically and durably (bbolt writes the
// dirty pages, fdatasyncs, then flips the meta page). docs/design.md, "The
// store", says why this and not SQLite or a file per object.
//
// Buckets:
//
//	meta      "meta" → Meta (JSON): schema, id, seq, next ids, quorum policy
//	users     name → user record (codec.go)
//	roles     role NUL name → "" (finds the admins without reading every user)
//	ids       big-endian user id → name (keeps CMU user ids unique)
//	deleted   name → Tombstone (JSON)
//	sessions  id → Session (JSON)
//	tokens    big-endian token id → Token (JSON)
var (
	bMeta     = []byte("meta")
	bUsers    = []byte("users")
	bRoles    = []byte("roles")
	bIDs      = []byte("ids")
	bDeleted  = []byte("deleted")
	bSessions = []byte("sessions")
	bTokens   = []byte("tokens")
	allBkts   = [][]byte{bMeta, bUsers, bRoles, bIDs, bDeleted, bSessions, bTokens}
	kMeta     = []byte("meta")
)

// Meta is an HSM's own record: its identity, write counter and policy.
type Meta struct {
	Schema      int    `json:"schema"`
	ID          string `json:"id"`
	Seq         uint64 `json:"seq"` // bumped by every commit
	NextUserID  int    `json:"next_user_id"`
	NextTokenID uint32 `json:"next_token_id"`
	// NextKey is the last key reference this HSM gave or saw.
	NextKey uint64 `json:"next_key,omitempty"`
	Quorum  Quorum `json:"quorum"`
	// History is the quorum values this HSM enforced, and since when.
	History []PolicyStamp `json:"history,omitempty"`
	// Roles are the custom roles of a profile that has them (Luna's
	// appliance roles): data the gate consults (docs/design.md, "The
	// Luna 7 profile").
	Roles []CustomRole `json:"roles,omitempty"`
	// Policies are a profile's adjustable policy values (Luna's partition
	// policy 20), by name; absent means the profile's default.
	Policies map[string]int `json:"policies,omitempty"`
}

// CorruptError is a state file hsmkit cannot have written: a config or
// state problem (exit 3), whichever command meets it.
type CorruptError struct {
	Path string
	Why  string
}

func (e *CorruptError) Error() string { return e.Path + ": corrupt state: " + e.Why }

// ExitCode is the documented code for state problems.
func (e *CorruptError) ExitCode() int { return 3 }

func corrupt(path, format string, a ...any) error {
	return &CorruptError{Path: path, Why: fmt.Sprintf(format, a...)}
}

// HSMTx is one transaction on one HSM's database.
type HSMTx struct {
	Meta Meta // changes are written at Commit

	path string
	db   *bolt.DB
	tx   *bolt.Tx
	done bool
}

// ID is the HSM's id.
func (t *HSMTx) ID() string { return t.Meta.ID }

func (s *Store) hsmPath(id string) string { return filepath.Join(s.Dir, "hsms", id+".db") }

// openDB opens an existing HSM database. Only a regular file is opened
// (never through a symlink), and a write fixes a mode someone loosened.
func (s *Store) openDB(id string, write bool) (*bolt.DB, string, error) {
	if !hsmIDRe().MatchString(id) {
		return nil, "", fmt.Errorf("%q is not an HSM id", id)
	}
	path := s.hsmPath(id)
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, path, fmt.Errorf("%s: HSM %s has no database (the state is incomplete)", path, id)
		}
		return nil, path, err
	}
	if !fi.Mode().IsRegular() {
		return nil, path, fmt.Errorf("%s: not a regular file (a symlink or device is refused)", path)
	}
	if write && fi.Mode().Perm() != 0o600 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, path, err
		}
	}
	db, err := openBolt(path, !write)
	if err != nil {
		return nil, path, err
	}
	return db, path, nil
}

func openBolt(path string, readOnly bool) (db *bolt.DB, err error) {
	// bbolt panics on some corruptions, and reads through a memory map
	// where a corrupt page can make it fault: a state file is outside
	// input, so both become an error naming the file.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, corrupt(path, "%v", r)
		}
	}()
	// bbolt would initialise an empty file as a new database.
	if fi, err := os.Lstat(path); err == nil && fi.Size() == 0 {
		return nil, corrupt(path, "empty file")
	}
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  5 * time.Second, // only a process outside hsmkit's lock can hold it
		ReadOnly: readOnly,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return os.OpenFile(name, flag|syscall.O_NOFOLLOW, perm)
		},
	})
	if err != nil {
		return nil, corrupt(path, "%v", err)
	}
	return db, nil
}

// Begin starts a transaction on one HSM. The caller holds the state lock
// (Store.Lock) and ends the transaction with Commit or Rollback.
func (s *Store) Begin(id string, write bool) (*HSMTx, error) {
	db, path, err := s.openDB(id, write)
	if err != nil {
		return nil, err
	}
	t := &HSMTx{path: path, db: db}
	if err := t.guard(func() error {
		var err error
		if t.tx, err = db.Begin(write); err != nil {
			return err
		}
		return t.loadMeta(id)
	}); err != nil {
		t.Rollback()
		return nil, err
	}
	return t, nil
}

// guard turns a bbolt panic or memory fault on a corrupt page into an
// error (see openBolt).
func (t *HSMTx) guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corrupt(t.path, "%v", r)
		}
	}()
	return fn()
}

func (t *HSMTx) loadMeta(id string) error {
	for _, b := range allBkts {
		if t.tx.Bucket(b) == nil {
			return corrupt(t.path, "no %s bucket", b)
		}
	}
	raw := t.tx.Bucket(bMeta).Get(kMeta)
	var probe struct {
		Schema *int `json:"schema"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil || probe.Schema == nil {
		return corrupt(t.path, "no schema version")
	}
	if *probe.Schema != Schema {
		return &SchemaError{Path: t.path, Got: *probe.Schema}
	}
	if err := decodeStrict(t.path, raw, &t.Meta); err != nil {
		return err
	}
	if t.Meta.ID != id {
		return corrupt(t.path, "holds HSM %s, not %q", shown(t.Meta.ID), id)
	}
	if err := t.Meta.Quorum.Check(); err != nil {
		return corrupt(t.path, "%v", err)
	}
	return nil
}

// Commit bumps the HSM's write counter, writes its meta and commits: all
// of this transaction's changes reach the disk, or none do.
func (t *HSMTx) Commit() error {
	if t.done {
		return errors.New("transaction already ended")
	}
	err := t.guard(func() error {
		t.Meta.Seq++
		t.Meta.Schema = Schema
		if err := t.putJSON(bMeta, kMeta, &t.Meta); err != nil {
			return err
		}
		return t.tx.Commit()
	})
	t.done = true
	if cerr := t.db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", t.path, err)
	}
	return nil
}

// Rollback ends the transaction without writing anything.
func (t *HSMTx) Rollback() {
	if t.done {
		return
	}
	t.done = true
	_ = t.guard(func() error {
		if t.tx != nil {
			return t.tx.Rollback()
		}
		return nil
	})
	_ = t.db.Close()
}

func (t *HSMTx) putJSON(bkt, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bkt).Put(key, data)
}

// decodeStrict reads a JSON record: no unknown fields, nothing after it.
func decodeStrict(path string, data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return corrupt(path, "%v", err)
	}
	if dec.More() {
		return corrupt(path, "data after a record")
	}
	return nil
}

func roleKey(role, name string) []byte { return []byte(role + "\x00" + name) }

func idKey(id int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(id)) }

// UserIDTaken names the user holding a CMU user id, or "".
func (t *HSMTx) UserIDTaken(id int) string {
	var name string
	_ = t.guard(func() error { name = string(t.tx.Bucket(bIDs).Get(idKey(id))); return nil })
	return name
}

// User returns a user's record, or nil.
func (t *HSMTx) User(name string) (*User, error) {
	var u *User
	err := t.guard(func() error {
		raw := t.tx.Bucket(bUsers).Get([]byte(name))
		if raw == nil {
			return nil
		}
		var err error
		u, err = DecodeUser(name, raw)
		if err != nil {
			return corrupt(t.path, "%v", err)
		}
		return nil
	})
	return u, err
}

// PutUser writes a user's record and keeps the role index.
func (t *HSMTx) PutUser(u *User) error {
	if u.Name == "" {
		return errors.New("a user record needs a name")
	}
	return t.guard(func() error {
		old, err := t.User(u.Name)
		if err != nil {
			return err
		}
		if old != nil && old.Role != u.Role {
			if err := t.tx.Bucket(bRoles).Delete(roleKey(old.Role, u.Name)); err != nil {
				return err
			}
		}
		if old != nil && old.ID != u.ID {
			if err := t.tx.Bucket(bIDs).Delete(idKey(old.ID)); err != nil {
				return err
			}
		}
		if other := t.tx.Bucket(bIDs).Get(idKey(u.ID)); other != nil && string(other) != u.Name {
			return fmt.Errorf("user id %d is %q's; %q cannot take it", u.ID, other, u.Name)
		}
		if err := t.tx.Bucket(bIDs).Put(idKey(u.ID), []byte(u.Name)); err != nil {
			return err
		}
		if err := t.tx.Bucket(bRoles).Put(roleKey(u.Role, u.Name), nil); err != nil {
			return err
		}
		return t.tx.Bucket(bUsers).Put([]byte(u.Name), EncodeUser(u))
	})
}

// DeleteUser removes a user's record (no tombstone: see PutTombstone).
func (t *HSMTx) DeleteUser(name string) error {
	return t.guard(func() error {
		old, err := t.User(name)
		if err != nil || old == nil {
			return err
		}
		if err := t.tx.Bucket(bRoles).Delete(roleKey(old.Role, name)); err != nil {
			return err
		}
		if err := t.tx.Bucket(bIDs).Delete(idKey(old.ID)); err != nil {
			return err
		}
		return t.tx.Bucket(bUsers).Delete([]byte(name))
	})
}

// forEach walks a bucket's records, at most as many as the file could
// hold: a damaged page that claims millions of elements ends the walk
// with an error instead of running for minutes over the map.
func (t *HSMTx) forEach(bkt []byte, fn func(k, v []byte) error) error {
	limit := t.tx.Size()/16 + 1 // a record takes at least a 16-byte element header
	n := int64(0)
	return t.tx.Bucket(bkt).ForEach(func(k, v []byte) error {
		if n++; n > limit {
			return corrupt(t.path, "the %s bucket lists more records than the file can hold", bkt)
		}
		if len(k) > maxKey {
			return corrupt(t.path, "a key of %d bytes in the %s bucket", len(k), bkt)
		}
		return fn(k, v)
	})
}

// maxKey bounds a record's key: names, ids and indexes are short, and a
// damaged page can make a "key" megabytes long.
const maxKey = 256

// ForEachUser calls fn for every user, in name order.
func (t *HSMTx) ForEachUser(fn func(*User) error) error {
	return t.guard(func() error {
		return t.forEach(bUsers, func(k, v []byte) error {
			u, err := DecodeUser(string(k), v)
			if err != nil {
				return corrupt(t.path, "%v", err)
			}
			return fn(u)
		})
	})
}

// ForEachShared calls fn with each user's name and the part of its record
// that must match on every HSM (EncodeUser), without decoding it, in name
// order. Both byte slices are valid only during the call: a scan of
// 100,000 users allocates nothing per user.
func (t *HSMTx) ForEachShared(fn func(name, shared []byte) error) error {
	return t.guard(func() error {
		return t.forEach(bUsers, func(k, v []byte) error {
			sh, err := SharedPart(v)
			if err != nil {
				return corrupt(t.path, "user %s: %v", shown(string(k)), err)
			}
			return fn(k, sh)
		})
	})
}

// CountUsers is the number of users.
func (t *HSMTx) CountUsers() (int, error) {
	n := 0
	err := t.guard(func() error {
		return t.forEach(bUsers, func(_, _ []byte) error { n++; return nil })
	})
	return n, err
}

// UsersWithRole calls fn for every user with role, through the index.
func (t *HSMTx) UsersWithRole(role string, fn func(*User) error) error {
	return t.guard(func() error {
		c := t.tx.Bucket(bRoles).Cursor()
		prefix := roleKey(role, "")
		limit := t.tx.Size()/16 + 1
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if limit--; limit < 0 || len(k) > maxKey {
				return corrupt(t.path, "the role index is damaged")
			}
			name := string(k[len(prefix):])
			u, err := t.User(name)
			if err != nil {
				return err
			}
			if u == nil || u.Role != role {
				return corrupt(t.path, "the role index names %s, which is not a %s", shown(name), role)
			}
			if err := fn(u); err != nil {
				return err
			}
		}
		return nil
	})
}

// Tombstone returns the record of a user's deletion on this HSM, or nil.
func (t *HSMTx) Tombstone(name string) (*Tombstone, error) {
	var d *Tombstone
	err := t.guard(func() error {
		raw := t.tx.Bucket(bDeleted).Get([]byte(name))
		if raw == nil {
			return nil
		}
		d = new(Tombstone)
		return decodeStrict(t.path, raw, d)
	})
	return d, err
}

// PutTombstone records a user's deletion (one per name: the newest).
func (t *HSMTx) PutTombstone(d *Tombstone) error {
	return t.guard(func() error { return t.putJSON(bDeleted, []byte(d.Name), d) })
}

// DeleteTombstone forgets a deletion (the user exists again).
func (t *HSMTx) DeleteTombstone(name string) error {
	return t.guard(func() error { return t.tx.Bucket(bDeleted).Delete([]byte(name)) })
}

// Tombstones lists every deletion record, in name order.
func (t *HSMTx) Tombstones() ([]Tombstone, error) { return listJSON[Tombstone](t, bDeleted) }

// listJSON decodes every record of a bucket of JSON records, in key order.
func listJSON[T any](t *HSMTx, bkt []byte) ([]T, error) {
	out := []T{}
	err := t.guard(func() error {
		return t.forEach(bkt, func(k, v []byte) error {
			var rec T
			if err := decodeStrict(t.path, v, &rec); err != nil {
				return err
			}
			out = append(out, rec)
			return nil
		})
	})
	return out, err
}

// Sessions lists the open sessions, in id order.
func (t *HSMTx) Sessions() ([]Session, error) { return listJSON[Session](t, bSessions) }

// PutSession opens (or rewrites) a session.
func (t *HSMTx) PutSession(s *Session) error {
	return t.guard(func() error { return t.putJSON(bSessions, []byte(s.ID), s) })
}

// DeleteSession ends a session.
func (t *HSMTx) DeleteSession(id string) error {
	return t.guard(func() error { return t.tx.Bucket(bSessions).Delete([]byte(id)) })
}

func tokenKey(id uint32) []byte { return binary.BigEndian.AppendUint32(nil, id) }

// Tokens lists the quorum tokens, in id order.
func (t *HSMTx) Tokens() ([]Token, error) { return listJSON[Token](t, bTokens) }

// PutToken writes a token.
func (t *HSMTx) PutToken(tok *Token) error {
	return t.guard(func() error { return t.putJSON(bTokens, tokenKey(tok.ID), tok) })
}

// DeleteToken removes a token.
func (t *HSMTx) DeleteToken(id uint32) error {
	return t.guard(func() error { return t.tx.Bucket(bTokens).Delete(tokenKey(id)) })
}

// Replace makes the HSM hold exactly h's users, deletion records, sessions,
// tokens and policy (a clone, a zeroize, a test fixture), in this one
// transaction.
func (t *HSMTx) Replace(h *HSM) error {
	return t.guard(func() error {
		for _, b := range allBkts[1:] {
			if err := t.tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := t.tx.CreateBucket(b); err != nil {
				return err
			}
		}
		t.Meta = Meta{ID: t.Meta.ID, Seq: max(t.Meta.Seq, h.Seq), NextUserID: h.NextUserID, NextTokenID: h.NextTokenID, NextKey: h.NextKey, Quorum: h.Quorum.Clone(),
			History: append([]PolicyStamp(nil), h.History...), Roles: cloneRoles(h.Roles), Policies: clonePolicies(h.Policies)}
		if err := t.dropKeyBuckets(); err != nil {
			return err
		}
		for i := range h.Keys {
			if err := t.PutKey(&h.Keys[i]); err != nil {
				return err
			}
		}
		for i := range h.KeyDeleted {
			d := h.KeyDeleted[i]
			if err := t.DeleteKey(d.Ref, &d); err != nil {
				return err
			}
		}
		for i := range h.Users {
			if err := t.PutUser(&h.Users[i]); err != nil {
				return err
			}
		}
		for i := range h.Deleted {
			if err := t.PutTombstone(&h.Deleted[i]); err != nil {
				return err
			}
		}
		for i := range h.Sessions {
			if err := t.PutSession(&h.Sessions[i]); err != nil {
				return err
			}
		}
		for i := range h.Tokens {
			if err := t.PutToken(&h.Tokens[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Snapshot reads the whole HSM into memory: for dumps, clones and tests,
// never for an ordinary operation.
func (t *HSMTx) Snapshot() (*HSM, error) {
	h := &HSM{Schema: Schema, ID: t.Meta.ID, Seq: t.Meta.Seq, NextUserID: t.Meta.NextUserID, NextTokenID: t.Meta.NextTokenID, NextKey: t.Meta.NextKey, Quorum: t.Meta.Quorum.Clone(), Users: []User{},
		History: append([]PolicyStamp(nil), t.Meta.History...), Roles: cloneRoles(t.Meta.Roles), Policies: clonePolicies(t.Meta.Policies)}
	if err := t.ForEachUser(func(u *User) error { h.Users = append(h.Users, *u); return nil }); err != nil {
		return nil, err
	}
	sort.SliceStable(h.Users, func(i, j int) bool { return h.Users[i].ID < h.Users[j].ID })
	var err error
	if h.Deleted, err = t.Tombstones(); err != nil {
		return nil, err
	}
	if h.Sessions, err = t.Sessions(); err != nil {
		return nil, err
	}
	if h.Tokens, err = t.Tokens(); err != nil {
		return nil, err
	}
	if err := t.ForEachKey(func(k *Key) error { h.Keys = append(h.Keys, *k); return nil }); err != nil {
		return nil, err
	}
	if h.KeyDeleted, err = t.KeyTombstones(); err != nil {
		return nil, err
	}
	if len(h.KeyDeleted) == 0 {
		h.KeyDeleted = nil
	}
	return h, nil
}

// CreateHSM writes a new HSM database holding h, all or nothing: it is
// built under a temporary name, synced, then renamed into place. The
// caller makes sure no HSM of the cluster has that id; a file of that name
// that no cluster record names (an add-hsm killed before its commit) is
// replaced.
func (s *Store) CreateHSM(h *HSM) error {
	if !hsmIDRe().MatchString(h.ID) {
		return fmt.Errorf("%q is not an HSM id", h.ID)
	}
	path := s.hsmPath(h.ID)
	tmp := filepath.Join(filepath.Dir(path), "."+h.ID+".db.new")
	_ = os.Remove(tmp) // a creation killed earlier
	db, err := openBolt(tmp, false)
	if err != nil {
		return err
	}
	t := &HSMTx{path: tmp, db: db, Meta: Meta{ID: h.ID}}
	err = t.guard(func() error {
		var err error
		if t.tx, err = db.Begin(true); err != nil {
			return err
		}
		for _, b := range allBkts {
			if _, err := t.tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return t.Replace(h)
	})
	if err != nil {
		t.Rollback()
		_ = os.Remove(tmp)
		return err
	}
	t.Meta.Seq = h.Seq // Commit bumps it, as every write does
	if err := t.Commit(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// View runs fn in a read-only transaction on one HSM.
func (s *Store) View(id string, fn func(*HSMTx) error) error {
	t, err := s.Begin(id, false)
	if err != nil {
		return err
	}
	defer t.Rollback()
	return fn(t)
}

// LoadHSM reads one whole HSM (dumps and tests).
func (s *Store) LoadHSM(id string) (*HSM, error) {
	var h *HSM
	err := s.View(id, func(t *HSMTx) error {
		var err error
		h, err = t.Snapshot()
		return err
	})
	return h, err
}

// SaveHSM replaces one whole HSM in one transaction (tests and fixtures);
// it creates the HSM's database if there is none.
func (s *Store) SaveHSM(h *HSM) error {
	if _, err := os.Lstat(s.hsmPath(h.ID)); errors.Is(err, fs.ErrNotExist) {
		if err := s.CreateHSM(h); err != nil {
			return err
		}
		h.Seq++
		return nil
	}
	t, err := s.Begin(h.ID, true)
	if err != nil {
		return err
	}
	if err := t.Replace(h); err != nil {
		t.Rollback()
		return err
	}
	t.Meta.Seq = h.Seq
	if err := t.Commit(); err != nil {
		return err
	}
	h.Seq = t.Meta.Seq
	return nil
}

// RemoveHSM deletes an HSM's database durably.
func (s *Store) RemoveHSM(id string) error {
	if err := os.Remove(s.hsmPath(id)); err != nil {
		return err
	}
	return syncDir(filepath.Dir(s.hsmPath(id)))
}
