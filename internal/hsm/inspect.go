package hsm

import (
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// UserRecord is one HSM's record of a user as the simulator's AWS account
// sees it: what hsm-kms doctor reads before a connect (docs/design.md,
// "The KMS custom key store", the doctor). Whoever holds the state
// directory can read the records anyway; the account sees no more.
type UserRecord struct {
	HSM       string
	Reachable bool
	Present   bool
	Role      string
	Failures  int
	Locked    bool
	MFA       bool
	Kind      string // the last change's kind (state.Kind…)
	// PasswordOK says whether the password given matches (nil: none given,
	// or no record). Checking it counts no failure: it is not a login.
	PasswordOK *bool
	Sessions   []string // the ids of the user's sessions there
}

// InspectUser reads every HSM's record of user, as the AWS account.
func (c *Client) InspectUser(user, pw string) ([]UserRecord, error) {
	return c.inspectUser(Account{}, user, pw)
}

func (c *Client) inspectUser(auth Authenticator, user, pw string) ([]UserRecord, error) {
	var out []UserRecord
	hashes := map[int]*state.Hash{} // out's index → the record's hash, checked after the lock
	_, err := c.run(op{name: "inspect-user", scope: scopeCluster, perm: policy.InspectUser, auth: auth,
		whole: func(tx *Tx, _ Principal) error {
			for _, info := range tx.Cluster.HSMs {
				r := UserRecord{HSM: info.ID, Reachable: info.Status == state.Running}
				if r.Reachable {
					err := tx.View(info.ID, func(h *state.HSMTx) error {
						u, err := h.User(user)
						if err != nil || u == nil {
							return err
						}
						r.Present, r.Role, r.Failures, r.Locked, r.MFA, r.Kind = true, u.Role, u.Failures, isLocked(tx.c.Policy(), h, u), u.MFA != nil, u.Kind
						if pw != "" && u.Hash != nil {
							hashes[len(out)] = u.Hash
						}
						ss, err := h.Sessions()
						if err != nil {
							return err
						}
						for _, s := range ss {
							if s.User == user {
								r.Sessions = append(r.Sessions, s.ID)
							}
						}
						return nil
					})
					if err != nil {
						return err
					}
				}
				out = append(out, r)
			}
			return nil
		}})
	if err != nil {
		return out, err
	}
	// The KDF runs after the lock is released, as every password check
	// does (docs/design.md, "The engine": preverify), once per distinct
	// hash.
	checked := map[string]bool{}
	for i, h := range hashes {
		d := HashDigest(h)
		ok, seen := checked[d]
		if !seen {
			ok = verifyPassword(h, pw)
			checked[d] = ok
		}
		out[i].PasswordOK = &ok
	}
	return out, nil
}
