package kms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/safetext"
	"github.com/hsmkit/hsmkit/internal/statelock"
)

// The KMS side's state (docs/design.md, "The KMS custom key store",
// where the state lives): one directory per account and Region under
// the KMS state root,
//
//	<root>/<account>/<region>/kms.json      key stores and keys (0600)
//	<root>/<account>/<region>/root.key      the key that seals kmsuser's password (0600)
//	<root>/<account>/<region>/sessions/     KMS's kmsuser sessions while connected, and
//	                                        those left open on an HSM unreachable at logout
//
// Every command takes the directory's lock, then (if it needs it) the
// cluster's: always in that order.

// KeyStore is one custom key store.
type KeyStore struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	ClusterID string    `json:"cluster_id"`
	Config    string    `json:"config"` // absolute path of the client config that reaches the cluster
	Anchor    string    `json:"trust_anchor"`
	CertFP    string    `json:"cluster_certificate_sha256"`
	Password  []byte    `json:"password_sealed"`
	Pending   []byte    `json:"pending_password_sealed,omitempty"` // a rotation not yet known to have landed
	State     string    `json:"state"`
	ErrorCode string    `json:"error_code,omitempty"`
	Created   time.Time `json:"created"`
	HSMs      []string  `json:"hsms,omitempty"` // where KMS is logged in while connected
}

// Key is one KMS key in a custom key store.
type Key struct {
	ID          string     `json:"id"`
	ARN         string     `json:"arn"`
	Description string     `json:"description"`
	Created     time.Time  `json:"created"`
	Enabled     bool       `json:"enabled"`
	DeletionAt  *time.Time `json:"deletion_date,omitempty"`
	StoreID     string     `json:"custom_key_store_id"`
	ClusterID   string     `json:"cluster_id"`
	BackingRef  string     `json:"backing_key"` // the AES key's reference in the cluster, 0x…
}

type db struct {
	Schema    int         `json:"schema"`
	Seed      string      `json:"seed"` // hex; ids are derived from it and a counter
	Next      uint64      `json:"next"`
	KeyStores []*KeyStore `json:"key_stores"`
	Keys      []*Key      `json:"keys"`
	// Orphans are KMS's sessions left open on HSMs that were unreachable
	// when their store was deleted or moved to another cluster
	// (Service.orphanLeftovers): ended once reachable.
	Orphans []Orphan `json:"orphan_sessions,omitempty"`
	// Deleted records the backing keys KMS deleted, or failed to, as
	// CloudTrail's DeleteKey event does (backingKeysDeletionStatus).
	Deleted []Deletion `json:"deleted,omitempty"`
}

// Orphan is a session file and the client config that reaches its cluster.
type Orphan struct {
	Config  string `json:"config"`
	Session string `json:"session_file"`
}

// Deletion is the end of a KMS key: whether its backing key went too.
type Deletion struct {
	KeyID      string    `json:"key_id"`
	At         time.Time `json:"at"`
	BackingRef string    `json:"backing_key"`
	Status     string    `json:"status"` // SUCCESS or FAILURE
	Why        string    `json:"why,omitempty"`
}

const (
	dbName      = "kms.json"
	rootKeyName = "root.key"
	schema      = 1
)

// maxDB bounds kms.json, read and written alike (a var for tests).
var maxDB int64 = 64 << 20

// Account is where one account's KMS in one Region keeps its state.
type Account struct {
	Root   string // the KMS state root
	ID     string // the AWS account id
	Region string
	Seed   string // when set (HSM_KMS_SEED), ids are reproducible
}

func (a Account) dir() string { return filepath.Join(a.Root, a.ID, a.Region) }

func (a Account) check() error {
	if len(a.ID) != 12 || strings.Trim(a.ID, "0123456789") != "" {
		return fmt.Errorf("account id %q: want 12 digits", a.ID)
	}
	if !validWord(a.Region) {
		return fmt.Errorf("region %q: want a Region name such as us-east-1", a.Region)
	}
	return nil
}

func validWord(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// locked runs fn with the account's state under its lock, and writes the
// state back when fn changed it (returned true). The state is written
// even when fn fails, if it says so: a failed connect is a FAILED store.
func (a Account) locked(wait time.Duration, fn func(d *db) (changed bool, err error)) error {
	if err := a.check(); err != nil {
		return err
	}
	dir := a.dir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// As a cluster's state: a directory others can read is refused, not
	// used (it holds the sealed password and the key that opens it).
	if fi, err := os.Stat(dir); err != nil {
		return err
	} else if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is mode %04o: KMS's state must be private to its owner (chmod 700 %s)", dir, fi.Mode().Perm(), dir)
	}
	unlock, err := statelock.Acquire(dir, wait, "hsm-kms", time.Second, func(string) {})
	if err != nil {
		return err
	}
	defer unlock()
	d, err := a.load()
	if err != nil {
		return err
	}
	changed, ferr := fn(d)
	if changed {
		if err := a.save(d); err != nil {
			return err
		}
	}
	return ferr
}

func (a Account) load() (*db, error) {
	path := filepath.Join(a.dir(), dbName)
	data, err := fileio.ReadFile(path, maxDB)
	if errors.Is(err, fs.ErrNotExist) {
		seed := a.Seed
		if seed == "" {
			b := make([]byte, 16)
			_, _ = rand.Read(b)
			seed = hex.EncodeToString(b)
		}
		return &db{Schema: schema, Seed: seed}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseDB(path, data)
}

// parseDB reads a KMS state file and checks what KMS builds paths and
// lookups from: a store's id names its session files, so an id such as
// "../../x" would make KMS log in, rename and remove files outside its
// directory (docs/design.md, "The KMS custom key store", where the state
// lives). kms.json does not choose what KMS touches.
func parseDB(path string, data []byte) (*db, error) {
	var d db
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: not a KMS state file: %v", path, err)
	}
	if d.Schema != schema {
		return nil, fmt.Errorf("%s: schema %d, this build reads %d", path, d.Schema, schema)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: not a KMS state file: %s", path, fmt.Sprintf(format, a...))
	}
	stores := map[string]bool{}
	for i, ks := range d.KeyStores {
		switch {
		case ks == nil:
			return nil, bad("key_stores[%d] is null", i)
		case !validStoreID(ks.ID):
			return nil, bad("key_stores[%d].id %s is not a key store id (cks- and 17 hex digits)", i, quote(ks.ID))
		case stores[ks.ID]:
			return nil, bad("key store %s is listed twice", ks.ID)
		case !slices.Contains(states, ks.State):
			return nil, bad("key store %s: state %s is not a connection state", ks.ID, quote(ks.State))
		}
		stores[ks.ID] = true
	}
	keys := map[string]bool{}
	for i, k := range d.Keys {
		switch {
		case k == nil:
			return nil, bad("keys[%d] is null", i)
		case !validKeyID(k.ID):
			return nil, bad("keys[%d].id %s is not a key id (a UUID)", i, quote(k.ID))
		case keys[k.ID]:
			return nil, bad("key %s is listed twice", k.ID)
		}
		keys[k.ID] = true
	}
	return &d, nil
}

// states are the connection states a stored key store may be in.
var states = []string{Disconnected, Connecting, Connected, Failed, Disconnecting}

// validStoreID says whether s is shaped as the custom key store ids KMS
// makes: "cks-" and 17 lower-case hex digits.
func validStoreID(s string) bool {
	return len(s) == 21 && strings.HasPrefix(s, "cks-") && isHex(s[4:])
}

// validKeyID says whether s is a KMS key id: a UUID in lower-case hex.
func validKeyID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for _, i := range []int{8, 13, 18, 23} {
		if s[i] != '-' {
			return false
		}
	}
	return isHex(strings.ReplaceAll(s, "-", ""))
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// quote is a value from kms.json as an error shows it: quoted, escaped,
// clipped.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return `"` + safetext.Escape(s) + `"`
}

func (a Account) save(d *db) error {
	data, err := d.encode()
	if err != nil {
		return err
	}
	// Never a file the next command could not read: it would refuse
	// every command, the deletions that would shrink it included.
	if int64(len(data)) > maxDB {
		return fmt.Errorf("%s would be larger than %s: the change is not saved", filepath.Join(a.dir(), dbName), fileio.Size(maxDB))
	}
	return fileio.WriteFile(filepath.Join(a.dir(), dbName), data, 0o600)
}

func (d *db) encode() ([]byte, error) {
	data, err := json.MarshalIndent(d, "", " ")
	return append(data, '\n'), err
}

// room says whether kms.json can take n more bytes and a key's record.
func (d *db) room(n int) bool {
	data, err := d.encode()
	return err == nil && int64(len(data)+n+4096) <= maxDB
}

// id derives the next id from the seed and the counter: ids are not
// secrets, and a seeded account's are reproducible.
func (d *db) id(kind string) [32]byte {
	d.Next++
	return sha256.Sum256(binary.BigEndian.AppendUint64([]byte(d.Seed+"/"+kind+"/"), d.Next))
}

// newStoreID is the next store id no store has (a rewound counter in a
// crafted or restored kms.json would repeat one).
func (d *db) newStoreID() string {
	for {
		h := d.id("cks")
		if id := "cks-" + hex.EncodeToString(h[:])[:17]; d.store(id) == nil {
			return id
		}
	}
}

// keyIDUsed says whether a key has, or had, the id.
func (d *db) keyIDUsed(id string) bool {
	return slices.ContainsFunc(d.Keys, func(k *Key) bool { return k.ID == id }) ||
		slices.ContainsFunc(d.Deleted, func(x Deletion) bool { return x.KeyID == id })
}

func (d *db) newKeyID() string {
	h := d.id("key")
	u := h[:16]
	u[6] = u[6]&0x0f | 0x40 // version 4, as KMS's key ids look
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u)
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

func (d *db) store(id string) *KeyStore {
	for _, ks := range d.KeyStores {
		if ks.ID == id {
			return ks
		}
	}
	return nil
}

// rootKey is the account's sealing key, made on first use: by a seal
// (create, only when sealing a password the caller gives). An unseal
// never makes one: a root key lost or left behind when kms.json was
// copied would be replaced by one that opens nothing, silently, and every
// connect would fail with INTERNAL_ERROR, whose documented fix (retry)
// cannot help (docs/design.md, "The KMS key store under attack").
func (a Account) rootKey(create bool) ([]byte, error) {
	path := filepath.Join(a.dir(), rootKeyName)
	k, err := fileio.ReadFile(path, 64)
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil, fmt.Errorf("%s is missing: the key store passwords sealed in %s cannot be opened without it; put it back, or give each key store its password again (update-custom-key-store --key-store-password)",
			path, dbName)
	}
	if errors.Is(err, fs.ErrNotExist) {
		k = make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		if err := fileio.WriteNew(path, k, 0o600); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err == nil && len(k) != 32 {
		err = fmt.Errorf("%s: not a 32-byte key", path)
	}
	return k, err
}

// seal encrypts kmsuser's password for the store (AES-256-GCM, the store
// id as additional data): KMS "encrypts and stores the password".
func (a Account) seal(storeID, pw string) ([]byte, error) {
	g, err := a.gcm(true)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, []byte(pw), []byte(storeID)), nil
}

func (a Account) unseal(storeID string, b []byte) (string, error) {
	g, err := a.gcm(false)
	if err != nil {
		return "", err
	}
	if len(b) < g.NonceSize() {
		return "", errors.New("the sealed key store password is damaged")
	}
	pw, err := g.Open(nil, b[:g.NonceSize()], b[g.NonceSize():], []byte(storeID))
	if err != nil {
		return "", errors.New("the sealed key store password does not open with this account's root key")
	}
	return string(pw), nil
}

func (a Account) gcm(create bool) (cipher.AEAD, error) {
	k, err := a.rootKey(create)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func (a Account) sessionPath(storeID string) string {
	return filepath.Join(a.dir(), "sessions", storeID+".json")
}

// leftoverPath keeps a session KMS could not end on every HSM (see
// Service.logout), one file per session.
func (a Account) leftoverPath(storeID, sessionID string) string {
	return filepath.Join(a.dir(), "sessions", storeID+".left-"+sessionID+".json")
}

// leftovers are a store's sessions still open on some HSM, oldest first.
func (a Account) leftovers(storeID string) []string {
	return a.allLeftovers()[storeID]
}

// allLeftovers are every store's leftover sessions, by store id, from one
// read of the sessions directory (every command looks at them).
func (a Account) allLeftovers() map[string][]string {
	m, _ := filepath.Glob(filepath.Join(a.dir(), "sessions", "*.left-*.json"))
	out := map[string][]string{}
	for _, path := range m {
		id, _, _ := strings.Cut(filepath.Base(path), ".left-")
		out[id] = append(out[id], path)
	}
	return out
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
