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
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// MaxFailures locks a CloudHSM account: five wrong passwords, counted per
// HSM. It is CloudHSM's lockout threshold (policy.CloudHSM's data), named
// here for its tests and messages.
var MaxFailures = policy.CloudHSM.DefaultLockout.Threshold

// isLocked reports whether u has reached its role's lockout in the
// profile t (with h's policy values), or was locked with another role.
func isLocked(t *policy.Table, h *state.HSMTx, u *state.User) bool {
	var pol map[string]int
	if h != nil {
		pol = h.Meta.Policies
	}
	th := t.LockThreshold(policy.Role(u.Role), u.Name, pol)
	return u.Locked || th > 0 && u.Failures >= th
}

// Principal is who acts on one HSM. The gate (tx.resolve) fills Role,
// Locked, Expired and a custom role's commands from that HSM's record of
// User.
type Principal struct {
	User    string
	Role    policy.Role
	Session string // "" for a one-shot login
	Locked  bool
	Expired bool     // its password must be changed first
	Custom  []string // the commands of its custom role, on that HSM
}

// Authenticator says who claims to act on an HSM: a session, a one-shot
// login (HSM_PIN), or nobody. It proves the claim; the gate decides what
// the claim is worth.
type Authenticator interface {
	On(tx *Tx, h *state.HSMTx) (Principal, error)
}

// fixedPrincipal is an authenticator that needs no HSM to say who acts.
type fixedPrincipal interface{ principal() Principal }

// Nobody is the unauthenticated caller.
type Nobody struct{}

func (Nobody) On(*Tx, *state.HSMTx) (Principal, error) { return Nobody{}.principal(), nil }
func (Nobody) principal() Principal                    { return Principal{Role: policy.Unauthenticated} }

// Account is the AWS account that owns the cluster: hsm-sim's caller. It
// creates, removes, stops and starts HSMs and holds no HSM user.
type Account struct{}

func (Account) On(*Tx, *state.HSMTx) (Principal, error) { return Account{}.principal(), nil }
func (Account) principal() Principal                    { return Principal{Role: policy.Account} }

// Fixed claims a user without proof: for in-process tests of the
// permission table only. The gate still takes the role from the record.
type Fixed Principal

func (f Fixed) On(*Tx, *state.HSMTx) (Principal, error) { return Principal(f), nil }

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

// maxSessionFile bounds a session file read: it is a few hundred bytes.
const maxSessionFile = 64 << 10

// LoadSession reads a session file; a missing file is (nil, nil).
func LoadSession(path string) (*SessionFile, error) {
	data, err := fileio.ReadFile(path, maxSessionFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var tooLarge *fileio.TooLargeError
	if errors.Is(err, fileio.ErrNotRegular) || errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("%s: not a session file (remove it and log in again)", path)
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

// Save writes the session file with mode 0600. A session without a path
// lives in its process's memory (cloudhsm-cli's login) and is not saved.
func (s *SessionFile) Save() error {
	if s.Path == "" {
		return nil
	}
	data, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return err
	}
	return fileio.WriteFile(s.Path, append(data, '\n'), 0o600)
}

func (s *SessionFile) On(tx *Tx, h *state.HSMTx) (Principal, error) {
	if s.Cluster != tx.Cluster.ID {
		return Principal{}, fmt.Errorf("the session %s belongs to cluster %s, not %s: log in again", s.Path, s.Cluster, tx.Cluster.ID)
	}
	ss, err := h.Sessions()
	if err != nil {
		return Principal{}, &TroubleError{Err: err}
	}
	for _, hs := range ss {
		if s.owns(hs) {
			return Principal{User: hs.User, Session: hs.ID}, nil
		}
	}
	return Principal{}, fmt.Errorf("not logged in on %s (the session ended or never reached it): hsm-user login", h.ID())
}

// owns says whether hs is this file's session: the same id and the hash
// of this file's secret.
func (s *SessionFile) owns(hs state.Session) bool {
	sum := sha256.Sum256(s.Secret)
	return hs.ID == s.ID && subtle.ConstantTimeCompare(hs.SecretHash, sum[:]) == 1
}

// PIN is a one-shot login for one command (HSM_PIN=user:password, HSM_ROLE).
type PIN struct {
	User     string
	Password string
	Role     policy.Role
	// mfa is the second factor a login carries (LoginMFA, BeginMFALogin);
	// nil for HSM_PIN, so a user with MFA never logs in one-shot.
	mfa *mfaLogin
	// Via is the login a role's profile wants first (RoleSpec.Via).
	Via Authenticator
}

// ParsePIN reads HSM_PIN and HSM_ROLE. No part of a malformed PIN is
// echoed: it may be a password.
func ParsePIN(pin, role string) (*PIN, error) { return ParsePINVars("HSM_PIN", "HSM_ROLE", pin, role) }

// ParsePINVars reads a single-command login from the variables named
// (HSM_PIN and HSM_ROLE, or cloudhsm-cli's CLOUDHSM_PIN and CLOUDHSM_ROLE),
// naming them in its errors.
func ParsePINVars(pinVar, roleVar, pin, role string) (*PIN, error) {
	name, password, ok := strings.Cut(pin, ":")
	if !ok {
		return nil, fmt.Errorf("%s: want username:password", pinVar)
	}
	user, err := policy.NormalizeUsername(name)
	if err != nil {
		return nil, fmt.Errorf("%s: the username before ':' is not a valid username (1 to 31 letters, digits and _)", pinVar)
	}
	if role == "" {
		return nil, fmt.Errorf("%s needs %s=admin or crypto-user", pinVar, roleVar)
	}
	r, err := policy.ParseRole(role)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", roleVar, err)
	}
	return &PIN{User: user, Password: password, Role: r}, nil
}

func (p *PIN) On(tx *Tx, h *state.HSMTx) (Principal, error) {
	if err := tx.checkVia(h, p.User, p.Via); err != nil {
		return Principal{}, err
	}
	if _, err := tx.checkLogin(h, p.User, p.Role, p.Password); err != nil {
		return Principal{}, err
	}
	if err := tx.checkMFA(h, p.User, p.mfa); err != nil {
		return Principal{}, err
	}
	return Principal{User: p.User}, nil
}

func (p *PIN) preverify(c *Client) (pwCache, error) { return c.preverify(p.User, p.Password) }

// preverifier is an authenticator whose password can be checked before
// the lock is taken.
type preverifier interface {
	preverify(c *Client) (pwCache, error)
}

// pwCache holds the results of password checks made outside the lock,
// by the digest of the hash record checked: under the lock a record with
// the same digest needs no second KDF run, and one that changed meanwhile
// is checked again there.
type pwCache map[string]bool

// preverify runs the KDF for user's password against each distinct hash
// record the cluster's HSMs hold, without the lock: argon2id at the
// default cost takes tens of milliseconds and a lock held through it
// serialises every client (docs/design.md, "Concurrency").
func (c *Client) preverify(user, pw string) (pwCache, error) {
	cache := pwCache{}
	for _, info := range c.Cluster.HSMs {
		if info.Status != state.Running {
			continue
		}
		var hash *state.Hash
		err := c.Store.View(info.ID, func(h *state.HSMTx) error {
			u, err := h.User(user)
			if u != nil {
				hash = u.Hash
			}
			return err
		})
		if err != nil || hash == nil {
			continue // the locked pass says what is wrong
		}
		if d := HashDigest(hash); !cacheHas(cache, d) {
			cache[d] = verifyPassword(hash, pw)
		}
	}
	return cache, nil
}

func cacheHas(c pwCache, d string) bool { _, ok := c[d]; return ok }

// checkLogin verifies a password on one HSM, counting failures toward
// lockout (the caller keeps the HSM's changes on failure).
func (tx *Tx) checkLogin(h *state.HSMTx, user string, role policy.Role, pw string) (policy.Role, error) {
	u, err := h.User(user)
	if err != nil {
		return "", &TroubleError{Err: err}
	}
	if u == nil {
		return "", &NoUserError{User: user}
	}
	t := tx.c.Policy()
	actual := policy.Role(u.Role)
	switch {
	case actual == policy.Appliance:
		return "", fmt.Errorf("login failed: %s is an internal user", user)
	case role != "" && role != actual && !(role == policy.Admin && actual == policy.Unactivated):
		return "", fmt.Errorf("login failed: %s is not a %s (its role is %s)", user, role, actual)
	case u.Disabled:
		return "", fmt.Errorf("login failed: %s is disabled", user)
	case u.Expired && u.FirstUsed:
		return "", fmt.Errorf("login failed: the first password of %s was valid for its first login only, which did not change it; it must be set again", user)
	case isLocked(t, h, u):
		return "", tx.lockedError(h, u)
	}
	key := HashDigest(u.Hash)
	ok, seen := tx.pw[key]
	if !seen {
		ok = verifyPassword(u.Hash, pw)
		if tx.pw == nil {
			tx.pw = pwCache{}
		}
		tx.pw[key] = ok
	}
	if !ok {
		u.Failures++
		if err := h.PutUser(u); err != nil {
			return "", err
		}
		th := t.LockThreshold(actual, user, h.Meta.Policies)
		wrong := &WrongPasswordError{User: user, Failures: u.Failures, Threshold: th}
		if th > 0 && u.Failures >= th {
			what, err := tx.lockout(h, u)
			if err != nil {
				return "", err
			}
			wrong.Locked, wrong.Outcome = true, what
		}
		return "", keepErr{wrong}
	}
	if u.Failures != 0 {
		u.Failures = 0
		if err := h.PutUser(u); err != nil {
			return "", err
		}
	}
	return actual, nil
}

// NoUserError is a login as a user the HSM does not hold.
type NoUserError struct{ User string }

func (e *NoUserError) Error() string { return "login failed: no user " + e.User }

// WrongPasswordError is a login with a wrong password; the failure was
// counted. Threshold is the role's lockout threshold (0: none), and when
// it was reached, Locked is set and Outcome says what the profile's
// lockout did (the account locked, a partition or HSM zeroized).
type WrongPasswordError struct {
	User      string
	Failures  int
	Threshold int
	Locked    bool
	Outcome   string
}

func (e *WrongPasswordError) Error() string {
	switch {
	case e.Threshold == 0:
		return "login failed: wrong password for " + e.User
	case e.Locked:
		return fmt.Sprintf("login failed: wrong password for %s; %s after %d failed logins", e.User, e.Outcome, e.Threshold)
	}
	return fmt.Sprintf("login failed: wrong password for %s (%d failed; it locks at %d)", e.User, e.Failures, e.Threshold)
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// lockout applies what the profile says a role's lockout does, in the
// role's scope (docs/design.md, "The Luna 7 profile"): lock the roles
// that go with it, or erase a level. CloudHSM's locks the account alone.
func (tx *Tx) lockout(h *state.HSMTx, u *state.User) (string, error) {
	t := tx.c.Policy()
	l := t.Spec(policy.Role(u.Role)).Lockout
	_, scope, _ := policy.SplitRecord(u.Name)
	if l.Zeroize != "" {
		if err := erase(t, h, l.Zeroize, scope); err != nil {
			return "", err
		}
		if l.Zeroize == policy.LevelHSM {
			return fmt.Sprintf("the HSM %s is zeroized", h.ID()), nil
		}
		return fmt.Sprintf("the %s %s of %s is zeroized", l.Zeroize, scope, h.ID()), nil
	}
	locked := []string{u.Name}
	for _, r := range l.Also {
		o, err := h.User(policy.RecordName(r, scope))
		if err != nil {
			return "", err
		}
		if o == nil {
			continue
		}
		o.Locked = true
		if err := h.PutUser(o); err != nil {
			return "", err
		}
		locked = append(locked, o.Name)
	}
	if len(locked) == 1 {
		return "the account is now locked", nil
	}
	return "now locked: " + strings.Join(locked, ", "), nil
}

// checkVia asks, before a password is tried, for the login the profile
// wants before a role's (RoleSpec.Via): the caller it proves, resolved from
// h's records, must be allowed that operation. A wrong password is not
// counted against a role nobody could have tried yet.
func (tx *Tx) checkVia(h *state.HSMTx, user string, via Authenticator) error {
	r, _, ok := policy.SplitRecord(user)
	if !ok {
		return nil
	}
	need := tx.c.Policy().Spec(r).Via
	if need == "" {
		return nil
	}
	if via == nil {
		return &policy.Denied{Role: r, Op: need, Why: fmt.Sprintf("the %s role logs in only after an appliance login allowed to", r)}
	}
	vp, err := tx.resolveAuth(h, via)
	if err != nil {
		return err
	}
	return tx.check(vp, need)
}

// erase removes a level's role records: the HSM's (and so every
// partition's with it), or one partition's (scope), and the policy values
// kept for them.
func erase(t *policy.Table, h *state.HSMTx, level policy.Level, scope string) error {
	var gone []string
	err := h.ForEachUser(func(o *state.User) error {
		_, s, ok := policy.SplitRecord(o.Name)
		lv := t.Spec(policy.Role(o.Role)).Level
		if ok && (level == policy.LevelHSM && (lv == policy.LevelHSM || lv == policy.LevelPartition) || lv == level && s == scope) {
			gone = append(gone, o.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range gone {
		if err := h.DeleteUser(name); err != nil {
			return err
		}
	}
	for k := range h.Meta.Policies {
		_, s, scoped := policy.SplitRecord(k)
		if level == policy.LevelHSM || scoped && s == scope {
			delete(h.Meta.Policies, k)
		}
	}
	return nil
}

// firstLogin marks a session opened with an expired first password: that
// password is valid for this one login only (docs/design.md, "The Luna 7
// profile"). A one-shot login is not a session and marks nothing.
func firstLogin(h *state.HSMTx, user string) error {
	u, err := h.User(user)
	if err != nil || u == nil || !u.Expired {
		return err
	}
	u.FirstUsed = true
	return h.PutUser(u)
}
