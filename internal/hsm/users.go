package hsm

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// DefaultPrecoPassword is the unactivated admin's password before activation.
const DefaultPrecoPassword = "password"

// Activate sets the unactivated admin's password on every HSM: it becomes
// the admin (cluster activation). The unactivated admin acts with its
// default credentials, so no login is needed.
func (c *Client) Activate(t Targeting, pw string) (*Result, error) {
	if err := CheckPassword(pw); err != nil {
		return nil, err
	}
	if pw == DefaultPrecoPassword {
		return nil, errors.New("invalid password: choose a password other than the default")
	}
	var hash *state.Hash
	return c.mutate(t, Fixed{User: "admin", Role: policy.Unactivated}, "activate", func(tx *Tx, h *state.HSM) error {
		u := findUser(h, "admin")
		if u == nil || policy.Role(u.Role) != policy.Unactivated {
			return errors.New("the cluster is already activated (no unactivated admin on it)")
		}
		if _, err := tx.act(h, policy.ChangeOwnPassword); err != nil {
			return err
		}
		if hash == nil {
			hash = hashPassword(tx.Cluster, "admin", pw)
		}
		u.Hash, u.Role, u.Failures = hash, string(policy.Admin), 0
		tx.touch(h, u)
		return nil
	})
}

// Login verifies the password on each HSM and opens a session there.
func (c *Client) Login(t Targeting, sessionPath, user string, role policy.Role, pw string) (*SessionFile, *Result, error) {
	user, err := NormalizeUsername(user)
	if err != nil {
		return nil, nil, err
	}
	if old, err := LoadSession(sessionPath); err != nil {
		return nil, nil, err
	} else if old != nil {
		return nil, nil, fmt.Errorf("already logged in as %s (%s): hsm-user logout first", old.Username, sessionPath)
	}
	sf := &SessionFile{Cluster: c.Cluster.ID, Username: user, Path: sessionPath}
	var opened []string
	res, err := c.mutate(t, Nobody{}, "login", func(tx *Tx, h *state.HSM) error {
		actual, err := tx.checkLogin(h, user, role, pw)
		if err != nil {
			return err
		}
		if sf.ID == "" {
			// Unique on the first HSM: a seeded stream repeats an id when
			// a killed login left the write count where it was.
			for sf.ID == "" || sessionOpen(h, sf.ID) {
				sf.ID = tx.Rand.ID("session-")
			}
			sf.Secret, sf.Created = tx.Rand.Secret(32), tx.Now
		} else if sessionOpen(h, sf.ID) {
			return fmt.Errorf("session id %s is already open on %s: log in again", sf.ID, h.ID)
		}
		sf.Role = string(actual)
		sum := sha256.Sum256(sf.Secret)
		h.Sessions = append(h.Sessions, state.Session{ID: sf.ID, SecretHash: sum[:], User: user, Role: sf.Role, Created: tx.Now})
		opened = append(opened, h.ID)
		return nil
	}, func(tx *Tx) error {
		// The session file first: a login stopped after some HSM writes
		// must still leave the client a way to end those sessions.
		if len(opened) == 0 {
			return nil
		}
		sf.HSMs = opened
		return sf.Save()
	})
	if sf.HSMs == nil {
		return nil, res, err
	}
	return sf, res, err
}

// Logout ends the session on the HSMs it reached (and its quorum tokens
// with it). The session file then lists only the HSMs it could not reach,
// so a later logout ends it there too (a session left on an HSM would pin
// its user: a logged-in user cannot be deleted); once none is left, or
// only HSMs that left the cluster, the file is removed. Open says which
// HSMs still hold the session.
func (c *Client) Logout(sf *SessionFile) (res *Result, open []string, err error) {
	res, err = c.mutate(Targeting{Only: sf.HSMs}, sf, "logout", func(tx *Tx, h *state.HSM) error {
		// Only the session this file's secret proves: an id alone ends
		// nobody else's session.
		n := len(h.Sessions)
		h.Sessions = slices.DeleteFunc(h.Sessions, func(s state.Session) bool { return sf.owns(s) })
		if len(h.Sessions) < n {
			h.Tokens = slices.DeleteFunc(h.Tokens, func(t state.Token) bool { return t.Session == sf.ID })
		}
		return nil
	})
	var partial *PartialError
	if err != nil && !errors.As(err, &partial) {
		return res, nil, err // nothing ended: keep the session file
	}
	if partial != nil {
		for _, o := range res.Outcomes {
			if o.Status != "ok" && !errors.Is(o.Err, ErrGone) {
				open = append(open, o.HSM)
			}
		}
	}
	if len(open) > 0 {
		sf.HSMs = open
		if saveErr := sf.Save(); saveErr != nil {
			return res, open, saveErr
		}
		return res, open, err
	}
	if rmErr := removeFile(sf.Path); rmErr != nil {
		return res, nil, rmErr
	}
	return res, nil, nil
}

// UserView is one user as cloudhsm-cli's user list shows it.
type UserView struct {
	Username string     `json:"username"`
	Role     string     `json:"role"`
	Locked   string     `json:"locked"`
	MFA      []Strategy `json:"mfa"`
	Quorum   []Strategy `json:"quorum"`
	Coverage string     `json:"cluster-coverage"`
}

// Strategy is an MFA or quorum registration.
type Strategy struct {
	Strategy string `json:"strategy"`
	Status   string `json:"status"`
}

// ListUsers merges the user tables of every reachable HSM, as cloudhsm-cli's
// user list does: locked is "true", "false" or "inconsistent" across HSMs,
// cluster-coverage "full" or "inconsistent".
func (c *Client) ListUsers(auth Authenticator) ([]UserView, []string, error) {
	var out []UserView
	warnings, err := c.read(func(cl *state.Cluster, hsms []*state.HSM) error {
		if err := c.Policy().Check(policy.Unauthenticated, policy.ListUsers); err != nil {
			return err
		}
		type agg struct {
			first          state.User
			order, present int
			locked         int
		}
		// One entry per username and role: a user that is an admin on one
		// HSM and a crypto user on another is two entries, each with
		// inconsistent coverage, rather than one that looks whole.
		type entry struct{ name, role string }
		byEntry := map[entry]*agg{}
		n := 0
		for _, h := range hsms {
			for _, u := range h.Users {
				k := entry{u.Name, u.Role}
				a := byEntry[k]
				if a == nil {
					a = &agg{first: u, order: n}
					n++
					byEntry[k] = a
				}
				a.present++
				if locked(&u) {
					a.locked++
				}
			}
		}
		entries := make([]entry, 0, len(byEntry))
		for k := range byEntry {
			entries = append(entries, k)
		}
		// Creation order, with the internal user last as cloudhsm-cli shows it.
		sort.Slice(entries, func(i, j int) bool {
			a, b := byEntry[entries[i]], byEntry[entries[j]]
			ai, bi := a.first.Role == string(policy.Appliance), b.first.Role == string(policy.Appliance)
			if ai != bi {
				return bi
			}
			if a.first.ID != b.first.ID {
				return a.first.ID < b.first.ID
			}
			return a.order < b.order
		})
		for _, k := range entries {
			a := byEntry[k]
			v := UserView{Username: k.name, Role: a.first.Role, Locked: "false", MFA: []Strategy{}, Quorum: []Strategy{}, Coverage: "full"}
			switch {
			case a.locked == a.present:
				v.Locked = "true"
			case a.locked > 0:
				v.Locked = "inconsistent"
			}
			if a.present != len(cl.HSMs) {
				v.Coverage = "inconsistent"
			}
			if a.first.QuorumKey != nil {
				v.Quorum = append(v.Quorum, Strategy{Strategy: "token-sign", Status: "enabled"})
			}
			if a.first.MFA != nil {
				v.MFA = append(v.MFA, Strategy{Strategy: "token-sign", Status: "enabled"})
			}
			out = append(out, v)
		}
		return nil
	})
	return out, warnings, err
}

// CreateUser adds a user on every target HSM.
func (c *Client) CreateUser(t Targeting, auth Authenticator, user string, role policy.Role, pw string, approval *Approval) (*Result, error) {
	user, err := NormalizeUsername(user)
	if err != nil {
		return nil, err
	}
	if err := CheckPassword(pw); err != nil {
		return nil, err
	}
	var hash *state.Hash
	return c.mutate(t, auth, "create", func(tx *Tx, h *state.HSM) error {
		p, err := tx.act(h, policy.ManageUsers)
		if err != nil {
			return err
		}
		if err := tx.requireQuorum(h, p, ServiceUser, approval); err != nil {
			return err
		}
		if findUser(h, user) != nil {
			return fmt.Errorf("user %s already exists", user)
		}
		if hash == nil {
			hash = hashPassword(tx.Cluster, user, pw)
		}
		h.NextUserID++
		u := state.User{ID: h.NextUserID, Name: user, Role: string(role), Hash: hash}
		tx.touch(h, &u)
		h.Users = append(h.Users, u)
		h.Deleted = slices.DeleteFunc(h.Deleted, func(d state.Tombstone) bool { return d.Name == user })
		return nil
	})
}

// DeleteUser removes a user on every target HSM, leaving a tombstone.
func (c *Client) DeleteUser(t Targeting, auth Authenticator, user string, role policy.Role, approval *Approval) (*Result, error) {
	user, err := NormalizeUsername(user)
	if err != nil {
		return nil, err
	}
	return c.mutate(t, auth, "delete", func(tx *Tx, h *state.HSM) error {
		p, err := tx.act(h, policy.ManageUsers)
		if err != nil {
			return err
		}
		if err := tx.requireQuorum(h, p, ServiceUser, approval); err != nil {
			return err
		}
		u := findUser(h, user)
		switch {
		case u == nil:
			return fmt.Errorf("no user %s", user)
		case policy.Role(u.Role) == policy.Appliance:
			return fmt.Errorf("%s is an internal user and cannot be deleted", user)
		case policy.Role(u.Role) != role:
			return fmt.Errorf("user %s is a %s, not a %s", user, u.Role, role)
		case u.Role == string(policy.Admin) && countRole(h, policy.Admin) == 1:
			return fmt.Errorf("%s is the last admin; create another admin first", user)
		case loggedIn(h, user):
			return fmt.Errorf("user %s is logged in; it must log out before it can be deleted", user)
		}
		h.Deleted = slices.DeleteFunc(h.Deleted, func(d state.Tombstone) bool { return d.Name == user })
		h.Deleted = append(h.Deleted, state.Tombstone{Name: user, Role: u.Role, Changed: tx.Now, Seq: h.Seq + 1, Op: tx.OpID, DeletedOp: u.Op})
		h.Users = slices.DeleteFunc(h.Users, func(x state.User) bool { return x.Name == user })
		// h is this operation's copy: a refusal here writes nothing.
		if err := approversKept(h); err != nil {
			return fmt.Errorf("deleting %s %w", user, err)
		}
		return nil
	})
}

// ChangePassword sets a user's password: one's own, or, as an admin,
// anyone's (which also unlocks the account).
func (c *Client) ChangePassword(t Targeting, auth Authenticator, user string, role policy.Role, pw string, approval *Approval) (*Result, error) {
	user, err := NormalizeUsername(user)
	if err != nil {
		return nil, err
	}
	if err := CheckPassword(pw); err != nil {
		return nil, err
	}
	var hash *state.Hash
	return c.mutate(t, auth, "change-password", func(tx *Tx, h *state.HSM) error {
		p, err := tx.auth.On(tx, h)
		if err != nil {
			return err
		}
		self := p.User == user && p.Role != policy.Unauthenticated
		if self {
			err = tx.c.Policy().Check(p.Role, policy.ChangeOwnPassword)
		} else {
			err = tx.c.Policy().Check(p.Role, policy.ChangeAnyPassword)
		}
		if err != nil {
			return err
		}
		u := findUser(h, user)
		switch {
		case u == nil:
			return fmt.Errorf("no user %s", user)
		case policy.Role(u.Role) == policy.Appliance && !self:
			return fmt.Errorf("%s is an internal user; its password is not yours to change", user)
		case policy.Role(u.Role) != role && !(self && policy.Role(u.Role) == policy.Unactivated && role == policy.Admin):
			return fmt.Errorf("user %s is a %s, not a %s", user, u.Role, role)
		case !self && loggedIn(h, user):
			return fmt.Errorf("user %s is logged in; it must log out before an admin changes its password", user)
		}
		if !self {
			if err := tx.requireQuorum(h, p, ServiceUser, approval); err != nil {
				return err
			}
		}
		if hash == nil {
			hash = hashPassword(tx.Cluster, user, pw)
		}
		u.Hash, u.Failures = hash, 0
		if policy.Role(u.Role) == policy.Unactivated {
			u.Role = string(policy.Admin) // activation
		}
		tx.touch(h, u)
		return nil
	})
}

// canApprove says whether u may sign quorum approvals: an admin with a
// registered quorum key.
func canApprove(u state.User) bool {
	return u.QuorumKey != nil && policy.Role(u.Role) == policy.Admin
}

func keyHolders(h *state.HSM) int {
	n := 0
	for _, u := range h.Users {
		if canApprove(u) {
			n++
		}
	}
	return n
}

// approversKept refuses a state in which some service's quorum value is
// above the admins who could approve it: nobody could ever approve that
// service again, and with the quorum service itself the cluster's policy
// is locked for good.
func approversKept(h *state.HSM) error {
	holders := keyHolders(h)
	for _, svc := range []string{ServiceUser, ServiceQuorum} {
		if v := h.Quorum.Values[svc]; v > 1 && holders < v {
			return fmt.Errorf("would leave %d admin(s) with a registered quorum key, fewer than the %s service's quorum value %d: nobody could approve it again; lower it first (hsm-quorum set-value --service %s --value N)",
				holders, svc, v, svc)
		}
	}
	return nil
}

func countRole(h *state.HSM, r policy.Role) int {
	n := 0
	for _, u := range h.Users {
		if policy.Role(u.Role) == r {
			n++
		}
	}
	return n
}
