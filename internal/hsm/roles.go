package hsm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// The roles a profile keeps above its users (docs/design.md, "The Luna 7
// profile"): an HSM's and its partitions', each one record per scope named
// policy.RecordName ("so@hsm", "co@par1"). Who initializes and resets
// whom, and what their lockouts do, is the table's (RoleSpec); these ops
// only apply it.

// HSMScope is the scope of the HSM's own roles.
const HSMScope = "hsm"

// InitHSM initializes each member's HSM with its SO password (LunaSH hsm
// init): the HSM must be zeroized (new, or hsm zeroize).
func (c *Client) InitHSM(t Targeting, auth Authenticator, pw string) (*Result, error) {
	return c.initRecord(t, auth, policy.InitHSM, policy.HSMSO, HSMScope, pw, func(h *state.HSMTx, _ Principal) error {
		if u, err := h.User(policy.RecordName(policy.HSMSO, HSMScope)); err != nil {
			return err
		} else if u != nil {
			return fmt.Errorf("the HSM of %s is initialized: zeroize it first (hsm zeroize)", h.ID())
		}
		return nil
	})
}

// InitAuditor initializes the Auditor role (LunaSH audit init), replacing
// one that exists.
func (c *Client) InitAuditor(t Targeting, auth Authenticator, pw string) (*Result, error) {
	return c.initRecord(t, auth, policy.AuditLog, policy.Auditor, HSMScope, pw, func(*state.HSMTx, Principal) error { return nil })
}

// InitRole initializes a role of a partition (LunaCM role init, partition
// init): by the role the table says initializes it, in the caller's own
// partition, or for the HSM's SO in the one named. Its password is valid
// for the first login only where the table says so.
func (c *Client) InitRole(t Targeting, auth Authenticator, role policy.Role, partition, pw string) (*Result, error) {
	spec, ok := c.Policy().Specs[role]
	if !ok || spec.Level != policy.LevelPartition {
		return nil, fmt.Errorf("%q is not a role of a partition", role)
	}
	// The scope is the claimed caller's partition, so the password is
	// hashed before the lock; the gate then proves the claim.
	claimed, own, isRole := policy.SplitRecord(claimedUser(auth))
	if isRole {
		// The order first, on the claim (the gate proves it, and checks
		// the order again with the role the HSM records).
		if err := c.Policy().CheckInit(claimed, role); err != nil {
			return nil, err
		}
	}
	scope := partition
	switch {
	case own != "" && own != HSMScope && partition != "" && partition != own:
		return nil, fmt.Errorf("a role of %s initializes roles of %s only", own, own)
	case own != "" && own != HSMScope:
		scope = own
	case partition == "":
		return nil, fmt.Errorf("name the partition to initialize (-label)")
	}
	if err := checkScope(c.Policy(), role, scope, "partition name"); err != nil {
		return nil, err
	}
	return c.initRecord(t, auth, policy.InitRole, role, scope, pw, func(h *state.HSMTx, p Principal) error {
		if err := c.Policy().CheckInit(p.Role, role); err != nil {
			return err
		}
		if _, s, _ := policy.SplitRecord(p.User); s != own {
			return fmt.Errorf("the session is not the one claimed")
		}
		if u, err := h.User(policy.RecordName(role, scope)); err != nil {
			return err
		} else if u != nil {
			return fmt.Errorf("the %s of %s is initialized already on %s (role resetpw resets its password)", role, scope, h.ID())
		}
		return nil
	})
}

// checkScope refuses a partition name or keyring label that cannot name
// a record of role r (the profile's rule for RecordName's scope), and the
// HSM's own scope: the one rule for every scope a command line gives.
func checkScope(t *policy.Table, r policy.Role, scope, what string) error {
	if _, err := t.Username(policy.RecordName(r, scope)); err != nil || scope == HSMScope {
		return fmt.Errorf("invalid %s %q", what, scope)
	}
	return nil
}

// claimedUser is the user an authenticator claims, before any HSM proves
// it ("" for none).
func claimedUser(auth Authenticator) string {
	switch a := auth.(type) {
	case *SessionFile:
		return a.Username
	case *PIN:
		return a.User
	case Fixed:
		return a.User
	}
	return ""
}

// initRecord makes the record of a role, after check.
func (c *Client) initRecord(t Targeting, auth Authenticator, perm policy.Op, role policy.Role, scope, pw string, check func(h *state.HSMTx, p Principal) error) (*Result, error) {
	if err := c.Policy().Passwords(pw); err != nil {
		return nil, err
	}
	spec := c.Policy().Spec(role)
	name := policy.RecordName(role, scope)
	var hash *state.Hash
	return c.run(op{name: "init-role", perm: perm, auth: auth, target: t, write: true,
		prepare: func() error { hash = hashPassword(c.Cluster, name, pw); return nil },
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			if err := check(h, p); err != nil {
				return err
			}
			h.Meta.NextUserID++
			u := &state.User{ID: h.Meta.NextUserID, Name: name, Role: string(role), Hash: hash, Lineage: tx.OpID, Expired: spec.FirstPasswordExpires}
			if old, err := h.User(name); err != nil {
				return err
			} else if old != nil {
				u.ID = old.ID
			}
			tx.touch(h, u, state.KindCreate)
			return h.PutUser(u)
		}})
}

// ResetRole sets a role's password without its current one (LunaCM role
// resetpw), as the table lets the caller: the CO's by the PO only while
// HSM policy 15 is on; the LCO's and CU's by the CO. It unlocks the role,
// and the new password is valid for the first login only.
func (c *Client) ResetRole(t Targeting, auth Authenticator, role policy.Role, pw string) (*Result, error) {
	if err := c.Policy().Passwords(pw); err != nil {
		return nil, err
	}
	spec := c.Policy().Spec(role)
	_, scope, _ := policy.SplitRecord(claimedUser(auth))
	name := policy.RecordName(role, scope)
	var hash *state.Hash
	return c.run(op{name: "reset-role", perm: policy.ResetRole, auth: auth, target: t, write: true,
		prepare: func() error { hash = hashPassword(c.Cluster, name, pw); return nil },
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			if err := c.Policy().CheckReset(p.Role, role, h.Meta.Policies); err != nil {
				return err
			}
			if _, s, _ := policy.SplitRecord(p.User); s != scope {
				return fmt.Errorf("the session is not the one claimed")
			}
			u, err := h.User(name)
			if err != nil {
				return err
			}
			if u == nil {
				return fmt.Errorf("the %s of %s is not initialized on %s", role, scope, h.ID())
			}
			u.Hash = hash
			u.Failures, u.Locked, u.Expired, u.FirstUsed = 0, false, spec.FirstPasswordExpires, false
			tx.touch(h, u, state.KindReset)
			return h.PutUser(u)
		}})
}

// ChangePolicy sets a policy value as the profile's PolicySpec says: the
// HSM's (scope the HSM) or a partition's (the caller's), within its
// range (a lower-only one up to its capability), by the role its
// operation allows; turning on one that erases a level erases it (Luna's
// HSM policy 15 erases every partition).
func (c *Client) ChangePolicy(t Targeting, auth Authenticator, name string, value int) (*Result, error) {
	spec, ok := c.Policy().Policies[name]
	if !ok {
		names := policyNames(c.Policy())
		return nil, fmt.Errorf("no policy %q (want %s)", name, strings.Join(names, " or "))
	}
	if value < spec.Min || value > spec.Max {
		return nil, fmt.Errorf("%s: want %d to %d", name, spec.Min, spec.Max)
	}
	return c.run(op{name: "change-policy", perm: spec.Set, auth: auth, target: t, write: true,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			key := name
			if spec.Level == policy.LevelPartition {
				_, scope, _ := policy.SplitRecord(p.User)
				key = policy.PolicyKey(name, scope)
			}
			old, set := h.Meta.Policies[key]
			if !set {
				old = spec.Default
			}
			if spec.EraseOnEnable != "" && old == 0 && value != 0 {
				if err := eraseAll(c.Policy(), h, spec.EraseOnEnable); err != nil {
					return err
				}
			}
			if h.Meta.Policies == nil {
				h.Meta.Policies = map[string]int{}
			}
			h.Meta.Policies[key] = value
			return nil
		}})
}

// eraseAll erases every scope of a level on h.
func eraseAll(t *policy.Table, h *state.HSMTx, level policy.Level) error {
	scopes := map[string]bool{}
	err := h.ForEachUser(func(u *state.User) error {
		if _, s, ok := policy.SplitRecord(u.Name); ok && t.Spec(policy.Role(u.Role)).Level == level {
			scopes[s] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for s := range scopes {
		if err := erase(t, h, level, s); err != nil {
			return err
		}
	}
	return nil
}

func policyNames(t *policy.Table) []string {
	var n []string
	for k := range t.Policies {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

// RoleView is one role of a partition or of the HSM, as role list and
// role show tell it, across the HSMs.
type RoleView struct {
	Role        string `json:"role"`
	Name        string `json:"name"`
	Scope       string `json:"scope"`
	Initialized string `json:"initialized"` // "yes", "no", or "inconsistent" across HSMs
	Status      string `json:"status"`      // "ok", "locked out", "expired" (first password not changed)
	Failures    int    `json:"failures"`    // the most failed logins counted on an HSM
}

// Roles shows the HSM's roles and those of the caller's partition (or of
// partition, for the HSM's roles).
func (c *Client) Roles(auth Authenticator, partition string) ([]RoleView, error) {
	var out []RoleView
	_, err := c.read(auth, policy.ShowRoles, func(cl *state.Cluster, hsms []*state.HSMTx) error {
		t := c.Policy()
		for _, r := range t.Roles {
			spec, ok := t.Specs[r]
			if !ok || spec.Level != policy.LevelHSM && spec.Level != policy.LevelPartition {
				continue
			}
			scope := HSMScope
			if spec.Level == policy.LevelPartition {
				if partition == "" {
					continue
				}
				if err := checkScope(t, r, partition, "partition name"); err != nil {
					return err
				}
				scope = partition
			}
			v := RoleView{Role: string(r), Name: spec.Desc, Scope: scope, Status: "ok"}
			present := 0
			for _, h := range hsms {
				u, err := h.User(policy.RecordName(r, scope))
				if err != nil {
					return &TroubleError{Err: err}
				}
				if u == nil {
					continue
				}
				present++
				v.Failures = max(v.Failures, u.Failures)
				switch {
				case isLocked(t, h, u):
					v.Status = "locked out"
				case u.Expired && v.Status == "ok":
					v.Status = "expired"
				}
			}
			switch present {
			case 0:
				v.Initialized, v.Status = "no", "-"
			case len(hsms):
				v.Initialized = "yes"
			default:
				v.Initialized = "inconsistent"
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// separated refuses, for a role the profile keeps apart from another
// (RoleSpec.SeparateFrom), a password that role's holder has: the
// cluster partition's PO may not hold a keyring role. The KDF ran before
// the lock (preseparated); a holder whose record changed since is
// checked again here.
func separated(t *policy.Table, h *state.HSMTx, name, pw string, cache pwCache) error {
	holders, err := separateHolders(t, h, name)
	if err != nil {
		return err
	}
	for _, u := range holders {
		ok, seen := cache[HashDigest(u.Hash)]
		if !seen {
			ok = verifyPassword(u.Hash, pw)
		}
		if ok {
			r, _, _ := policy.SplitRecord(name)
			other, scope, _ := policy.SplitRecord(u.Name)
			return fmt.Errorf("the %s is kept apart from the %s of %s, the cluster's security officer: choose a password that role does not hold", r, other, scope)
		}
	}
	return nil
}

// separateHolders are the records of the role that name's role is kept
// apart from (RoleSpec.SeparateFrom), in the partition that holds the
// cluster.
func separateHolders(t *policy.Table, h *state.HSMTx, name string) ([]*state.User, error) {
	r, _, ok := policy.SplitRecord(name)
	if !ok || t.Spec(r).SeparateFrom == "" {
		return nil, nil
	}
	var out []*state.User
	for k := range h.Meta.Policies {
		key, scope, scoped := policy.SplitRecord(k)
		if !scoped || string(key) != policy.ClusterPartition {
			continue
		}
		u, err := h.User(policy.RecordName(t.Spec(r).SeparateFrom, scope))
		if err != nil {
			return nil, err
		}
		if u != nil {
			out = append(out, u)
		}
	}
	return out, nil
}

// preseparated runs, before the lock, the KDF separated needs: pw
// against each distinct hash of the holders name's role is kept apart
// from, on every running HSM (docs/design.md, "The engine": the KDF
// never runs under the lock).
func (c *Client) preseparated(name, pw string) (pwCache, error) {
	cache := pwCache{}
	if r, _, ok := policy.SplitRecord(name); !ok || c.Policy().Spec(r).SeparateFrom == "" {
		return cache, nil // nothing kept apart: no HSM to read
	}
	for _, info := range c.Cluster.HSMs {
		if info.Status != state.Running {
			continue
		}
		var holders []*state.User
		err := c.Store.View(info.ID, func(h *state.HSMTx) error {
			var err error
			holders, err = separateHolders(c.Policy(), h, name)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, u := range holders {
			d := HashDigest(u.Hash)
			if _, done := cache[d]; !done {
				cache[d] = verifyPassword(u.Hash, pw)
			}
		}
	}
	return cache, nil
}

// sharePassword gives the roles that share u's password (RoleSpec.SharesPassword)
// the new one too.
func sharePassword(tx *Tx, t *policy.Table, h *state.HSMTx, u *state.User, hash *state.Hash) error {
	r, scope, ok := policy.SplitRecord(u.Name)
	if !ok {
		return nil
	}
	for _, o := range t.Spec(r).SharesPassword {
		p, err := h.User(policy.RecordName(o, scope))
		if err != nil {
			return err
		}
		if p == nil {
			continue
		}
		p.Hash, p.Failures, p.Locked, p.Expired, p.FirstUsed = hash, 0, false, u.Expired, false
		tx.touch(h, p, state.KindSelfPassword)
		if err := h.PutUser(p); err != nil {
			return err
		}
	}
	return nil
}

// CreateKeyring makes a keyring's roles (the profile's of the keyring
// level: Luna's KRSO and KRCO), holding one password, valid for their
// first login only where their spec says so (docs/design.md, "The Luna 7
// profile", Keyrings). Its
// caller is the PO of the partition that holds the cluster (the first
// keyring marks its partition so; another's PO is refused), and the
// password may not be its own: the keyring roles are kept apart from it.
func (c *Client) CreateKeyring(t Targeting, auth Authenticator, label, pw string) (*Result, error) {
	tb := c.Policy()
	if err := tb.Passwords(pw); err != nil {
		return nil, err
	}
	if err := checkScope(tb, policy.KRSO, label, "keyring label"); err != nil {
		return nil, err
	}
	var hash *state.Hash
	var sep pwCache
	return c.run(op{name: "create-keyring", perm: policy.CreateKeyring, auth: auth, target: t, write: true,
		prepare: func() error {
			hash = hashPassword(c.Cluster, policy.RecordName(policy.KRSO, label), pw)
			var err error
			sep, err = c.preseparated(policy.RecordName(policy.KRSO, label), pw)
			return err
		},
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			_, par, _ := policy.SplitRecord(p.User)
			for k := range h.Meta.Policies {
				if key, scope, ok := policy.SplitRecord(k); ok && string(key) == policy.ClusterPartition && scope != par {
					return fmt.Errorf("partition %s holds the cluster: its PO creates the keyrings", scope)
				}
			}
			if h.Meta.Policies == nil {
				h.Meta.Policies = map[string]int{}
			}
			h.Meta.Policies[policy.PolicyKey(policy.ClusterPartition, par)] = 1
			for _, r := range tb.Roles {
				if tb.Spec(r).Level != policy.LevelKeyring {
					continue
				}
				name := policy.RecordName(r, label)
				if u, err := h.User(name); err != nil {
					return err
				} else if u != nil {
					return fmt.Errorf("keyring %s exists on %s", label, h.ID())
				}
				if err := separated(tb, h, name, pw, sep); err != nil {
					return err
				}
				h.Meta.NextUserID++
				u := &state.User{ID: h.Meta.NextUserID, Name: name, Role: string(r), Hash: hash, Lineage: tx.OpID, Expired: tb.Spec(r).FirstPasswordExpires}
				tx.touch(h, u, state.KindCreate)
				if err := h.PutUser(u); err != nil {
					return err
				}
			}
			return nil
		}})
}
