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
// default credentials, so no login is needed. Activation is all or
// nothing: every HSM of the cluster, reachable and listed, or none; an
// HSM left holding the unactivated admin would let anyone who knows the
// default password become an admin there.
func (c *Client) Activate(t Targeting, pw string) (*Result, error) {
	if t.AllowPartial || t.Server != "" {
		return nil, errors.New("activation is all or nothing: it acts on every HSM of the cluster, so --allow-partial and --server are refused (an HSM left unactivated would let anyone with the default password become an admin there)")
	}
	if err := policy.CheckPassword(pw); err != nil {
		return nil, err
	}
	if pw == DefaultPrecoPassword {
		return nil, errors.New("invalid password: choose a password other than the default")
	}
	var hash *state.Hash
	return c.run(op{name: "activate", perm: policy.ChangeOwnPassword, auth: unactivatedAdmin{}, target: t, write: true,
		locked: func(tx *Tx) error {
			if err := requireInitialized(tx, "activation"); err != nil {
				return err
			}
			return notActivated(tx)
		},
		prepare: func() error { hash = hashPassword(c.Cluster, "admin", pw); return nil },
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			u, err := h.User("admin")
			if err != nil {
				return err
			}
			u.Hash, u.Role, u.Failures = hash, string(policy.Admin), 0
			tx.touch(h, u, state.KindActivate)
			markActive(tx)
			return h.PutUser(u)
		}})
}

// notActivated refuses an activation, in whatever form, once any HSM of
// the cluster is activated: an HSM that still holds the unactivated admin
// (an activation that missed it, under an older hsmkit) is repaired from
// the activated HSMs by hsm-sync apply, never activated by whoever knows
// the default password.
func notActivated(tx *Tx) error {
	for _, info := range tx.Cluster.HSMs {
		if info.Status != state.Running {
			continue
		}
		var admins int
		err := tx.View(info.ID, func(h *state.HSMTx) error {
			var err error
			admins, err = countRole(h, policy.Admin)
			return err
		})
		if err != nil {
			return err
		}
		if admins > 0 {
			return &AlreadyActivatedError{HSM: info.ID}
		}
	}
	return nil
}

// AlreadyActivatedError refuses an activation of a cluster that has admins.
type AlreadyActivatedError struct{ HSM string }

func (e *AlreadyActivatedError) Error() string {
	return fmt.Sprintf("the cluster is already activated (%s has admins); an HSM that still holds the unactivated admin is repaired from the others, not activated", e.HSM)
}

// Hint says how an HSM left unactivated is put right.
func (e *AlreadyActivatedError) Hint() string {
	return "hsm-sync diff shows it; an admin's hsm-sync apply copies the admins to it"
}

// unactivatedAdmin is the caller of an activation: the unactivated admin
// with its default password, on an HSM that still holds it.
type unactivatedAdmin struct{}

func (unactivatedAdmin) On(tx *Tx, h *state.HSMTx) (Principal, error) {
	u, err := h.User("admin")
	if err != nil {
		return Principal{}, err
	}
	if u == nil || policy.Role(u.Role) != policy.Unactivated {
		return Principal{}, &AlreadyActivatedError{HSM: h.ID()}
	}
	return Principal{User: "admin"}, nil
}

// Login verifies the password on each HSM and opens a session there. The
// "already logged in" check and the session file's write happen under the
// lock, so logins racing on one session file leave exactly one session.
// A user with MFA logs in with BeginMFALogin and LoginMFA instead.
func (c *Client) Login(t Targeting, sessionPath, user string, role policy.Role, pw string) (*SessionFile, *Result, error) {
	return c.login(t, sessionPath, user, role, pw, nil, LoginOptions{})
}

// LoginOptions are what a login asks beyond a person's password.
type LoginOptions struct {
	// Exclusive refuses the login on an HSM where the user already has a
	// session: the key store's connect must be kmsuser's only login
	// (docs/design.md, "The KMS custom key store").
	Exclusive bool
	// Via proves, on each HSM before the password, the login a role's
	// profile wants first (RoleSpec.Via: Luna's HSM SO logs in only after
	// an appliance login whose role may do so).
	Via Authenticator
}

// LoginWith is Login with the options.
func (c *Client) LoginWith(t Targeting, sessionPath, user string, role policy.Role, pw string, o LoginOptions) (*SessionFile, *Result, error) {
	return c.login(t, sessionPath, user, role, pw, nil, o)
}

// LoginVia is a login to a role whose profile wants another login first.
func (c *Client) LoginVia(t Targeting, sessionPath, user string, pw string, via Authenticator) (*SessionFile, *Result, error) {
	return c.login(t, sessionPath, user, "", pw, nil, LoginOptions{Via: via})
}

// LoggedInError refuses an exclusive login: the user has a session there.
type LoggedInError struct{ User, HSM string }

func (e *LoggedInError) Error() string {
	return fmt.Sprintf("%s is already logged in on %s", e.User, e.HSM)
}

func (c *Client) login(t Targeting, sessionPath, user string, role policy.Role, pw string, mfa *mfaLogin, o LoginOptions) (*SessionFile, *Result, error) {
	user, err := c.Policy().Username(user)
	if err != nil {
		return nil, nil, err
	}
	sf := &SessionFile{Cluster: c.Cluster.ID, Username: user, Path: sessionPath}
	var opened []string
	res, err := c.run(op{name: "login", perm: policy.Login, auth: &PIN{User: user, Password: pw, Role: role, mfa: mfa, Via: o.Via}, target: t, write: true,
		locked: func(tx *Tx) error {
			// Under the lock, so racing logins on one file cannot both
			// pass; before the password, so this costs no failure.
			if sessionPath == "" {
				return nil // kept in memory: its process checks
			}
			if old, err := LoadSession(sessionPath); err != nil {
				return &TroubleError{Err: err}
			} else if old != nil {
				return fmt.Errorf("already logged in as %s (%s): hsm-user logout first", old.Username, sessionPath)
			}
			return nil
		},
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			if o.Exclusive {
				if in, err := loggedIn(h, user); err != nil {
					return err
				} else if in {
					return &LoggedInError{User: user, HSM: h.ID()}
				}
			}
			if sf.ID == "" {
				sf.Secret, sf.Created = tx.Rand.Secret(32), tx.Now
			}
			ss, err := h.Sessions()
			if err != nil {
				return err
			}
			if err := firstLogin(h, user); err != nil {
				return err
			}
			for sf.ID == "" || slices.ContainsFunc(ss, func(s state.Session) bool { return s.ID == sf.ID }) {
				if len(opened) > 0 {
					return fmt.Errorf("session id %s is already open on %s: log in again", sf.ID, h.ID())
				}
				// Unique on the first HSM: a seeded stream repeats an id
				// when a killed login left the write count where it was.
				sf.ID = tx.Rand.ID("session-")
			}
			sf.Role = string(p.Role)
			sum := sha256.Sum256(sf.Secret)
			opened = append(opened, h.ID())
			return h.PutSession(&state.Session{ID: sf.ID, SecretHash: sum[:], User: user, Role: sf.Role, Created: tx.Now})
		},
		beforeCommit: func(tx *Tx) error {
			// The session file first: a login stopped after some HSM writes
			// must still leave the client a way to end those sessions.
			if len(opened) == 0 {
				return nil
			}
			sf.HSMs = opened
			return sf.Save()
		}})
	if sf.HSMs == nil {
		return nil, res, err
	}
	return sf, res, err
}

// NoSessionError is a logout that found its session on no HSM: its
// session ended already (a logout or login killed part-way), or the file
// is not the one that logged in.
type NoSessionError struct{ Path string }

func (e *NoSessionError) Error() string {
	return fmt.Sprintf("the session in %s is open on none of the HSMs it names (it ended already, or the file is not the one that logged in); nothing was logged out", e.Path)
}

// Hint says how to be rid of the file.
func (e *NoSessionError) Hint() string {
	return "the file opens nothing: remove it (rm " + e.Path + ") to log in again"
}

// Logout ends the session on the HSMs it reached (and its quorum tokens
// with it). The session file then lists only the HSMs it could not reach,
// so a later logout ends it there too (a session left on an HSM would pin
// its user: a logged-in user cannot be deleted); once none is left, or
// only HSMs that left the cluster, the file is removed. Open says which
// HSMs still hold the session. A logout that ends nothing anywhere is an
// error and keeps the file.
func (c *Client) Logout(sf *SessionFile) (res *Result, open []string, err error) {
	ended := 0
	res, err = c.run(op{name: "logout", perm: policy.Logout, auth: Nobody{}, target: Targeting{Only: sf.HSMs}, write: true,
		each: func(tx *Tx, h *state.HSMTx, _ Principal) error {
			if sf.Cluster != tx.Cluster.ID {
				return fmt.Errorf("the session %s belongs to cluster %s, not %s", sf.Path, sf.Cluster, tx.Cluster.ID)
			}
			ss, err := h.Sessions()
			if err != nil {
				return err
			}
			// Only the session this file's secret proves: an id alone ends
			// nobody else's session.
			for _, s := range ss {
				if !sf.owns(s) {
					continue
				}
				ended++
				if err := h.DeleteSession(s.ID); err != nil {
					return err
				}
				if err := endSessionKeys(h, s.ID); err != nil {
					return err
				}
				toks, err := h.Tokens()
				if err != nil {
					return err
				}
				for _, t := range toks {
					if t.Session == sf.ID {
						if err := h.DeleteToken(t.ID); err != nil {
							return err
						}
					}
				}
			}
			return nil
		},
		beforeCommit: func(tx *Tx) error {
			// Every HSM the file names was reached and none held it.
			if ended == 0 && len(tx.targets) == len(sf.HSMs) {
				return &NoSessionError{Path: sf.Path}
			}
			return nil
		}})
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
	if sf.Path == "" {
		return res, nil, nil
	}
	if rmErr := removeFile(sf.Path); rmErr != nil {
		return res, nil, rmErr
	}
	return res, nil, nil
}

// UserRef is the answer of a command about one user, as cloudhsm-cli
// prints it: {"username": …, "role": …}.
type UserRef struct {
	Username string `json:"username"`
	Role     string `json:"role"`
}

// UserView is one user as cloudhsm-cli's user list shows it.
type UserView struct {
	Username string     `json:"username"`
	Role     string     `json:"role"`
	Locked   string     `json:"locked"`
	MFA      []Strategy `json:"mfa"`
	Quorum   []Strategy `json:"quorum"`
	Coverage string     `json:"cluster-coverage"`
	// Disabled is "true", "inconsistent" across HSMs, or absent: only a
	// profile with optional users (Luna's) disables any.
	Disabled string `json:"disabled,omitempty"`
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
	out := []UserView{}
	warnings, err := c.read(auth, policy.ListUsers, func(cl *state.Cluster, hsms []*state.HSMTx) error {
		type agg struct {
			first          state.User
			order, present int
			locked         int
			disabled       int
			roles, mfa, qk map[string]bool
		}
		// One entry per username, as cloudhsm-cli shows it: a property the
		// HSMs disagree on (role, MFA, quorum key) reads "inconsistent"
		// (docs/design.md, "cloudhsm-cli").
		byName := map[string]*agg{}
		n := 0
		fp := func(k *state.PublicKey) string {
			if k == nil {
				return ""
			}
			return "k:" + k.Fingerprint
		}
		for _, h := range hsms {
			err := h.ForEachUser(func(u *state.User) error {
				a := byName[u.Name]
				if a == nil {
					a = &agg{first: *u, order: n, roles: map[string]bool{}, mfa: map[string]bool{}, qk: map[string]bool{}}
					n++
					byName[u.Name] = a
				}
				a.present++
				if isLocked(c.Policy(), h, u) {
					a.locked++
				}
				if u.Disabled {
					a.disabled++
				}
				a.roles[u.Role], a.mfa[fp(u.MFA)], a.qk[fp(u.QuorumKey)] = true, true, true
				return nil
			})
			if err != nil {
				return &TroubleError{Err: err}
			}
		}
		names := make([]string, 0, len(byName))
		for k := range byName {
			names = append(names, k)
		}
		// Creation order, with the internal user last as cloudhsm-cli shows it.
		sort.Slice(names, func(i, j int) bool {
			a, b := byName[names[i]], byName[names[j]]
			ai, bi := a.first.Role == string(policy.Appliance), b.first.Role == string(policy.Appliance)
			if ai != bi {
				return bi
			}
			if a.first.ID != b.first.ID {
				return a.first.ID < b.first.ID
			}
			return a.order < b.order
		})
		strategy := func(seen map[string]bool) []Strategy {
			switch {
			case len(seen) > 1:
				return []Strategy{{Strategy: StrategyTokenSign, Status: "inconsistent"}}
			case seen[""]:
				return []Strategy{}
			}
			return []Strategy{{Strategy: StrategyTokenSign, Status: "enabled"}}
		}
		for _, k := range names {
			a := byName[k]
			v := UserView{Username: k, Role: a.first.Role, Locked: "false", MFA: strategy(a.mfa), Quorum: strategy(a.qk), Coverage: "full"}
			if len(a.roles) > 1 {
				v.Role = "inconsistent"
			}
			switch {
			case a.locked == a.present:
				v.Locked = "true"
			case a.locked > 0:
				v.Locked = "inconsistent"
			}
			switch {
			case a.disabled == a.present:
				v.Disabled = "true"
			case a.disabled > 0:
				v.Disabled = "inconsistent"
			}
			if a.present != len(cl.HSMs) {
				v.Coverage = "inconsistent"
			}
			out = append(out, v)
		}
		return nil
	})
	return out, warnings, err
}

// ExistsError is a create of a user an HSM already holds.
type ExistsError struct{ User string }

func (e *ExistsError) Error() string { return fmt.Sprintf("user %s already exists", e.User) }

// CreateUser adds a user on every target HSM.
func (c *Client) CreateUser(t Targeting, auth Authenticator, user string, role policy.Role, pw string, approval *Approval) (*Result, error) {
	user, err := c.Policy().Username(user)
	if err != nil {
		return nil, err
	}
	if err := notRoleRecord(user); err != nil {
		return nil, err
	}
	if err := c.Policy().CanAssign(role); err != nil {
		return nil, err
	}
	if err := c.Policy().Passwords(pw); err != nil {
		return nil, err
	}
	var hash *state.Hash
	return c.run(op{name: "create", perm: policy.ManageUsers, action: policy.ActAdd, auth: auth, target: t, write: true,
		quorum: userService, approval: approval,
		prepare: func() error { hash = hashPassword(c.Cluster, user, pw); return nil },
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			if u, err := h.User(user); err != nil {
				return err
			} else if u != nil {
				return &ExistsError{User: user}
			}
			if max := c.Policy().Limits.UsersPerCluster; max > 0 {
				if n, err := h.CountUsers(); err != nil {
					return err
				} else if n >= max {
					return fmt.Errorf("the cluster already holds %d users, the most it can; delete one first", max)
				}
			}
			h.Meta.NextUserID++
			// A profile may make a password set by another valid for the
			// first login only.
			u := &state.User{ID: h.Meta.NextUserID, Name: user, Role: string(role), Hash: hash, Lineage: tx.OpID, Expired: c.Policy().ResetExpires}
			tx.touch(h, u, state.KindCreate)
			if err := h.PutUser(u); err != nil {
				return err
			}
			return h.DeleteTombstone(user)
		}})
}

// notRoleRecord refuses, to an operation on another user, the record of a
// role of the HSM, a partition or a keyring (policy.RecordName): those
// change only through the role operations (InitRole, ResetRole, the
// role's own password change), so the appliance's admin is not the HSM's
// SO nor a partition's PO (docs/design.md, "The Luna 7 profile").
func notRoleRecord(user string) error {
	if r, scope, ok := policy.SplitRecord(user); ok {
		return fmt.Errorf("%s is the %s role of %s, not a user: only its own role operations change it (role init, role resetpw, role changepw)", user, r, scope)
	}
	return nil
}

// DeleteUser removes a user on every target HSM, leaving a tombstone.
func (c *Client) DeleteUser(t Targeting, auth Authenticator, user string, role policy.Role, approval *Approval) (*Result, error) {
	user, err := c.Policy().Username(user)
	if err != nil {
		return nil, err
	}
	if err := notRoleRecord(user); err != nil {
		return nil, err
	}
	return c.run(op{name: "delete", perm: policy.ManageUsers, action: policy.ActDelete, auth: auth, target: t, write: true,
		quorum: userService, approval: approval,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			u, err := h.User(user)
			if err != nil {
				return err
			}
			admins, err := countRole(h, policy.Admin)
			if err != nil {
				return err
			}
			in, err := loggedIn(h, user)
			if err != nil {
				return err
			}
			switch {
			case u == nil:
				return fmt.Errorf("no user %s", user)
			case policy.Role(u.Role) == policy.Appliance:
				return fmt.Errorf("%s is an internal user and cannot be deleted", user)
			case c.Policy().Undeletable(user):
				return fmt.Errorf("%s is a predefined user and cannot be deleted", user)
			case role != "" && policy.Role(u.Role) != role:
				return fmt.Errorf("user %s is a %s, not a %s", user, u.Role, role)
			case u.Role == string(policy.Admin) && admins == 1:
				return fmt.Errorf("%s is the last admin; create another admin first", user)
			case in:
				return fmt.Errorf("user %s is logged in; it must log out before it can be deleted", user)
			}
			// A user that owns keys cannot be deleted (docs/design.md, "Keys").
			if err := releaseKeys(tx, h, user); err != nil {
				return err
			}
			if err := h.PutTombstone(&state.Tombstone{Name: user, Role: u.Role, Changed: tx.Now, Seq: h.Meta.Seq + 1, Op: tx.OpID, DeletedOp: u.Op,
				Lineage: u.Lineage, Approvals: tx.approvalsOn(h)}); err != nil {
				return err
			}
			if err := h.DeleteUser(user); err != nil {
				return err
			}
			// This transaction is rolled back on a refusal: nothing is written.
			if err := approversKept(h); err != nil {
				return fmt.Errorf("deleting %s %w", user, err)
			}
			return nil
		}})
}

// ChangePassword sets a user's password: one's own, or, as an admin,
// anyone's (which also unlocks the account). The user's MFA and quorum
// keys are kept (ChangePasswordWith deregisters them).
func (c *Client) ChangePassword(t Targeting, auth Authenticator, user string, role policy.Role, pw string, approval *Approval) (*Result, error) {
	return c.ChangePasswordWith(t, auth, user, role, pw, approval, PasswordOptions{})
}

// PasswordOptions are cloudhsm-cli's change-password flags beyond the
// password.
type PasswordOptions struct {
	DeregisterMFA    bool // --deregister-mfa: remove the user's MFA key, if present
	DeregisterQuorum bool // --deregister-quorum: remove the user's quorum key, if present
	// KeyStoreRotation records the change as the KMS key store's rotation
	// of kmsuser's password at connect (state.KindKMSRotate), so that
	// hsm-sync can say why an HSM missed it. Only for one's own password.
	KeyStoreRotation bool
}

// ChangePasswordWith is ChangePassword with the options. Deregistering a
// key needs the change-MFA permission (one's own, or as an admin
// anyone's), and removing a quorum key is refused when it would leave a
// quorum value without enough approvers.
func (c *Client) ChangePasswordWith(t Targeting, auth Authenticator, user string, role policy.Role, pw string, approval *Approval, opts PasswordOptions) (*Result, error) {
	user, err := c.Policy().Username(user)
	if err != nil {
		return nil, err
	}
	if err := c.Policy().Passwords(pw); err != nil {
		return nil, err
	}
	var hash *state.Hash
	var sep pwCache     // preseparated: the KDF of the separation check, before the lock
	var activated error // set when some HSM already has admins
	return c.run(op{name: "change-password", auth: auth, target: t, write: true,
		// The unactivated admin changing its own password is activation,
		// refused once the cluster is activated somewhere (notActivated).
		locked: func(tx *Tx) error {
			if activated = notActivated(tx); activated == nil {
				activated = requireInitialized(tx, "activation")
			}
			return nil
		},
		permFor: func(p Principal) policy.Op {
			if opts.DeregisterMFA || opts.DeregisterQuorum {
				return mfaPerm(user)(p) // within the password's rows
			}
			if isSelf(p, user) {
				return policy.ChangeOwnPassword
			}
			return policy.ChangeAnyPassword
		},
		quorum: userServiceUnlessSelf(user), approval: approval,
		prepare: func() error {
			hash = hashPassword(c.Cluster, user, pw)
			var err error
			sep, err = c.preseparated(user, pw)
			return err
		},
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			u, err := h.User(user)
			if err != nil {
				return err
			}
			if u == nil {
				return fmt.Errorf("no user %s", user)
			}
			in, err := loggedIn(h, user)
			if err != nil {
				return err
			}
			if !isSelf(p, user) {
				if err := notRoleRecord(user); err != nil {
					return err
				}
			}
			switch {
			case policy.Role(u.Role) == policy.Appliance && !isSelf(p, user):
				return fmt.Errorf("%s is an internal user; its password is not yours to change", user)
			case role != "" && policy.Role(u.Role) != role && !(isSelf(p, user) && policy.Role(u.Role) == policy.Unactivated && role == policy.Admin):
				return fmt.Errorf("user %s is a %s, not a %s", user, u.Role, role)
			case !isSelf(p, user) && in:
				return fmt.Errorf("user %s is logged in; it must log out before an admin changes its password", user)
			}
			// A role kept apart from another may not take its holder's
			// password; roles that share a password change together
			// (docs/design.md, "The Luna 7 profile"). CloudHSM has neither.
			if err := separated(c.Policy(), h, u.Name, pw, sep); err != nil {
				return err
			}
			u.Hash, u.Failures, u.Locked, u.FirstUsed = hash, 0, false, false
			// A profile may make a password set by another valid for the
			// first login only (Luna's user password USER).
			u.Expired = !isSelf(p, user) && c.Policy().ResetExpires
			if err := sharePassword(tx, c.Policy(), h, u, hash); err != nil {
				return err
			}
			kind := state.KindReset
			switch {
			case isSelf(p, user) && opts.KeyStoreRotation:
				kind = state.KindKMSRotate
			case isSelf(p, user):
				kind = state.KindSelfPassword
			case opts.KeyStoreRotation:
				return fmt.Errorf("a key store rotates only its own user's password, not %s's", user)
			}
			if opts.DeregisterMFA && u.MFA != nil {
				// Recorded as an MFA change: a repair reads it as the
				// evidence that the key was removed (docs/design.md, "MFA").
				u.MFA, kind = nil, state.KindMFA
				if isSelf(p, user) {
					kind = state.KindSelfMFA
				}
			}
			if opts.DeregisterQuorum {
				u.QuorumKey = nil
			}
			if policy.Role(u.Role) == policy.Unactivated {
				if activated != nil {
					return activated
				}
				u.Role, kind = string(policy.Admin), state.KindActivate
				markActive(tx)
			}
			tx.touch(h, u, kind)
			if err := h.PutUser(u); err != nil {
				return err
			}
			if opts.DeregisterQuorum {
				// Rolled back on a refusal: nothing is written.
				if err := approversKept(h); err != nil {
					return fmt.Errorf("removing %s's quorum key %w", user, err)
				}
			}
			return nil
		}})
}

// userService is the quorum the user service's operations need on h.
func userService(h *state.HSMTx, _ Principal) (string, int, uint64) {
	return ServiceUser, h.Meta.Quorum.Values[ServiceUser], 0
}

// userServiceUnlessSelf is the quorum of a change to user's password or
// keys: none for one's own, as for one's own password; the user
// service's for an admin changing another's.
func userServiceUnlessSelf(user string) func(*state.HSMTx, Principal) (string, int, uint64) {
	return func(h *state.HSMTx, p Principal) (string, int, uint64) {
		if isSelf(p, user) {
			return ServiceUser, 0, 0
		}
		return userService(h, p)
	}
}

// canApprove says whether u may sign quorum approvals: an admin with a
// registered quorum key.
func canApprove(u *state.User) bool {
	return u.QuorumKey != nil && policy.Role(u.Role) == policy.Admin
}

func keyHolders(h *state.HSMTx) (int, error) {
	n := 0
	err := h.UsersWithRole(string(policy.Admin), func(u *state.User) error {
		if canApprove(u) {
			n++
		}
		return nil
	})
	return n, err
}

// approversKept refuses a state in which some service's quorum value is
// above the admins who could approve it: nobody could ever approve that
// service again, and with the quorum service itself the cluster's policy
// is locked for good.
func approversKept(h *state.HSMTx) error {
	holders, err := keyHolders(h)
	if err != nil {
		return err
	}
	for _, svc := range []string{ServiceUser, ServiceQuorum} {
		if v := h.Meta.Quorum.Values[svc]; v > 1 && holders < v {
			return fmt.Errorf("would leave %d admin(s) with a registered quorum key, fewer than the %s service's quorum value %d: nobody could approve it again; lower it first (hsm-quorum set-value --service %s --value N)",
				holders, svc, v, svc)
		}
	}
	return nil
}

func countRole(h *state.HSMTx, r policy.Role) (int, error) {
	n := 0
	err := h.UsersWithRole(string(r), func(*state.User) error { n++; return nil })
	return n, err
}
