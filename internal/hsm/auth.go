package hsm

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// MaxFailures locks an account: five wrong passwords, counted per HSM.
const MaxFailures = 5

// locked reports whether u has reached the lockout.
func locked(u *state.User) bool { return u.Failures >= MaxFailures }

// Principal is who acts on one HSM.
type Principal struct {
	User    string
	Role    policy.Role
	Session string // "" for a one-shot login
}

// Authenticator says who acts on an HSM: a session, a one-shot login
// (HSM_PIN), or nobody.
type Authenticator interface {
	On(tx *Tx, h *state.HSM) (Principal, error)
}

// Nobody is the unauthenticated caller.
type Nobody struct{}

func (Nobody) On(*Tx, *state.HSM) (Principal, error) {
	return Principal{Role: policy.Unauthenticated}, nil
}

// Fixed is a principal already established, for tests of the permission
// table and for the appliance user.
type Fixed Principal

func (f Fixed) On(*Tx, *state.HSM) (Principal, error) { return Principal(f), nil }

// SessionFile is the client side of a login (mode 0600). The HSMs keep
// only a hash of its secret.
type SessionFile struct {
	Cluster  string    `json:"cluster"`
	ID       string    `json:"id"`
	Secret   []byte    `json:"secret"`
	Username string    `json:"username"`
	Role     string    `json:"role"`
	HSMs     []string  `json:"hsms"`
	Created  time.Time `json:"created"`

	Path string `json:"-"`
}

// LoadSession reads a session file; a missing file is (nil, nil).
func LoadSession(path string) (*SessionFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s SessionFile
	if err := json.Unmarshal(data, &s); err != nil || s.ID == "" {
		return nil, fmt.Errorf("%s: not a session file (remove it and log in again)", path)
	}
	s.Path = path
	return &s, nil
}

// Save writes the session file with mode 0600.
func (s *SessionFile) Save() error {
	data, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return err
	}
	return renameio.WriteFile(s.Path, append(data, '\n'), 0o600, renameio.WithTempDir(filepath.Dir(s.Path)))
}

func (s *SessionFile) On(tx *Tx, h *state.HSM) (Principal, error) {
	if s.Cluster != tx.Cluster.ID {
		return Principal{}, fmt.Errorf("the session %s belongs to cluster %s, not %s: log in again", s.Path, s.Cluster, tx.Cluster.ID)
	}
	for _, hs := range h.Sessions {
		if s.owns(hs) {
			return Principal{User: hs.User, Role: policy.Role(hs.Role), Session: hs.ID}, nil
		}
	}
	return Principal{}, fmt.Errorf("not logged in on %s (the session ended or never reached it): hsm-user login", h.ID)
}

// owns says whether hs is this file's session: the same id and the hash
// of this file's secret.
func (s *SessionFile) owns(hs state.Session) bool {
	sum := sha256.Sum256(s.Secret)
	return hs.ID == s.ID && subtle.ConstantTimeCompare(hs.SecretHash, sum[:]) == 1
}

func sessionOpen(h *state.HSM, id string) bool {
	return slices.ContainsFunc(h.Sessions, func(s state.Session) bool { return s.ID == id })
}

// PIN is a one-shot login for one command (HSM_PIN=user:password, HSM_ROLE).
type PIN struct {
	User     string
	Password string
	Role     policy.Role
}

// ParsePIN reads HSM_PIN and HSM_ROLE.
func ParsePIN(pin, role string) (*PIN, error) {
	name, password, ok := strings.Cut(pin, ":")
	if !ok {
		return nil, errors.New("HSM_PIN: want username:password")
	}
	user, err := NormalizeUsername(name)
	if err != nil {
		return nil, fmt.Errorf("HSM_PIN: %v", err)
	}
	if role == "" {
		return nil, errors.New("HSM_PIN needs HSM_ROLE=admin or crypto-user")
	}
	r, err := policy.ParseRole(role)
	if err != nil {
		return nil, fmt.Errorf("HSM_ROLE: %v", err)
	}
	return &PIN{User: user, Password: password, Role: r}, nil
}

func (p *PIN) On(tx *Tx, h *state.HSM) (Principal, error) {
	role, err := tx.checkLogin(h, p.User, p.Role, p.Password)
	if err != nil {
		return Principal{}, err
	}
	return Principal{User: p.User, Role: role}, nil
}

// checkLogin verifies a password on one HSM, counting failures toward
// lockout (the caller keeps the HSM's changes on failure).
func (tx *Tx) checkLogin(h *state.HSM, user string, role policy.Role, pw string) (policy.Role, error) {
	u := findUser(h, user)
	if u == nil {
		return "", fmt.Errorf("login failed: no user %s", user)
	}
	actual := policy.Role(u.Role)
	switch {
	case actual == policy.Appliance:
		return "", fmt.Errorf("login failed: %s is an internal user", user)
	case role != actual && !(role == policy.Admin && actual == policy.Unactivated):
		return "", fmt.Errorf("login failed: %s is not a %s (its role is %s)", user, role, actual)
	case locked(u):
		return "", fmt.Errorf("user %s is locked after %d failed logins; an admin must reset its password (hsm-user change-password --username %s --role %s)", user, MaxFailures, user, actual)
	}
	key := HashDigest(u.Hash)
	ok, seen := tx.pwCache[key]
	if !seen {
		ok = verifyPassword(u.Hash, pw)
		tx.pwCache[key] = ok
	}
	if !ok {
		u.Failures++
		if locked(u) {
			return "", keepErr{fmt.Errorf("login failed: wrong password for %s; the account is now locked after %d failed logins", user, MaxFailures)}
		}
		return "", keepErr{fmt.Errorf("login failed: wrong password for %s (%d failed; it locks at %d)", user, u.Failures, MaxFailures)}
	}
	if u.Failures != 0 {
		u.Failures = 0
	}
	return actual, nil
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
