package hsm

import (
	"fmt"
	"slices"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// The operations of a profile's appliance users beyond CloudHSM's
// (docs/design.md, "The Luna 7 profile"): giving a user a role, enabling
// and disabling it, importing a custom role. Each is one op of the table
// through Client.run; which profile has them is the table's to say.

// AssignRole gives an appliance user a role: one of the profile's
// appliance roles or a custom role the HSMs hold (LunaSH user role add).
// The users that come with the cluster keep theirs.
func (c *Client) AssignRole(t Targeting, auth Authenticator, user, role string) (*Result, error) {
	user, err := c.Policy().Username(user)
	if err != nil {
		return nil, err
	}
	return c.run(op{name: "assign-role", perm: policy.AssignRole, auth: auth, target: t, write: true,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			u, err := applianceUser(c.Policy(), h, user)
			if err != nil {
				return err
			}
			if c.Policy().Undeletable(user) || slices.ContainsFunc(c.Policy().Initial, func(iu policy.InitialUser) bool { return iu.Name == user }) {
				return fmt.Errorf("%s is a predefined user: its role cannot be modified", user)
			}
			if err := assignable(c.Policy(), h, role); err != nil {
				return err
			}
			u.Role = role
			tx.touch(h, u, state.KindCreate)
			return h.PutUser(u)
		}})
}

// assignable refuses a role an appliance user may not be given.
func assignable(t *policy.Table, h *state.HSMTx, role string) error {
	r := policy.Role(role)
	if t.IsRole(r) {
		if t.Spec(r).Level == policy.LevelAppliance && !slices.Contains(t.Assignable, r) {
			return nil
		}
		return fmt.Errorf("role %q cannot be given to an appliance user", role)
	}
	if slices.ContainsFunc(h.Meta.Roles, func(cr state.CustomRole) bool { return cr.Name == role }) {
		return nil
	}
	return fmt.Errorf("no role %q on %s (user role import makes a custom role)", role, h.ID())
}

// applianceUser is a user of the appliance level, or an error.
func applianceUser(t *policy.Table, h *state.HSMTx, name string) (*state.User, error) {
	u, err := h.User(name)
	if err != nil {
		return nil, err
	}
	if u == nil || t.Spec(policy.Role(u.Role)).Level != policy.LevelAppliance && t.IsRole(policy.Role(u.Role)) {
		return nil, fmt.Errorf("no appliance user %s", name)
	}
	return u, nil
}

// SetUserEnabled enables or disables an appliance user (LunaSH user
// enable, user disable). A disabled user may not log in, and a session it
// holds grants what a locked one's does: nothing that needs a login.
func (c *Client) SetUserEnabled(t Targeting, auth Authenticator, user string, enabled bool) (*Result, error) {
	user, err := c.Policy().Username(user)
	if err != nil {
		return nil, err
	}
	action := policy.ActDisable
	if enabled {
		action = policy.ActEnable
	}
	return c.run(op{name: "enable-user", perm: policy.EnableUser, action: action, auth: auth, target: t, write: true,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			u, err := applianceUser(c.Policy(), h, user)
			if err != nil {
				return err
			}
			if !enabled && isSelf(p, user) {
				return fmt.Errorf("%s cannot disable itself", user)
			}
			u.Disabled = !enabled
			tx.touch(h, u, state.KindReset)
			return h.PutUser(u)
		}})
}

// ImportRole makes a custom role from a role file (LunaSH user role
// import): the commands it names and nothing else, refused whole, naming
// every rejected command, when a line is unknown, in the wrong case, or
// one of the audit role's. The role is data on every HSM the op reaches,
// which the gate consults (tx.resolve).
func (c *Client) ImportRole(t Targeting, auth Authenticator, name string, file []byte) (*Result, error) {
	if c.Policy().RoleNames == nil {
		return nil, fmt.Errorf("the %s profile has no custom roles", c.Policy().Name)
	}
	if err := c.Policy().RoleNames(name); err != nil {
		return nil, err
	}
	cmds, err := c.Policy().ParseRoleFile(file)
	if err != nil {
		return nil, err
	}
	return c.run(op{name: "import-role", perm: policy.ImportRole, auth: auth, target: t, write: true,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			if slices.ContainsFunc(h.Meta.Roles, func(cr state.CustomRole) bool { return cr.Name == name }) {
				return fmt.Errorf("role %q already exists on %s", name, h.ID())
			}
			h.Meta.Roles = append(h.Meta.Roles, state.CustomRole{Name: name, Commands: cmds, Changed: tx.Now, Op: tx.OpID})
			return nil
		}})
}
