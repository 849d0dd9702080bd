package hsm

import (
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	"github.com/hsmkit/hsmkit/internal/config"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
	"github.com/hsmkit/hsmkit/internal/syncdiff"
)

// policyOf maps an HSM's quorum policy to the drift model.
func policyOf(h *state.HSMTx) syncdiff.Policy {
	q := h.Meta.Quorum
	return syncdiff.Policy{User: q.Values[ServiceUser], Quorum: q.Values[ServiceQuorum],
		Generated: q.Generated, Approved: q.Approved}
}

// syncUser maps one stored user to the drift model.
func syncUser(t *policy.Table, h *state.HSMTx, u *state.User) syncdiff.User {
	su := syncdiff.User{ID: u.ID, Name: u.Name, Role: u.Role, PasswordHash: HashDigest(u.Hash),
		Locked: isLocked(t, h, u), Failures: u.Failures, Changed: u.Changed, Seq: u.Seq, Op: u.Op,
		Lineage: u.Lineage, Kind: u.Kind, Approvals: u.Approvals}
	if u.QuorumKey != nil {
		su.QuorumKey = u.QuorumKey.Fingerprint
	}
	var status []string
	for _, f := range []struct {
		on   bool
		name string
	}{{u.Disabled, "disabled"}, {u.Expired, "expired"}, {u.Locked, "locked-with"}, {u.FirstUsed, "first-used"}} {
		if f.on {
			status = append(status, f.name)
		}
	}
	su.Status = strings.Join(status, ",")
	if u.MFA != nil {
		su.MFA = u.MFA.Fingerprint
	}
	return su
}

func syncTombstone(d *state.Tombstone) syncdiff.Tombstone {
	return syncdiff.Tombstone{Name: d.Name, Role: d.Role, Changed: d.Changed, Seq: d.Seq, Op: d.Op, DeletedOp: d.DeletedOp,
		Lineage: d.Lineage, Approvals: d.Approvals}
}

// snapshot builds the drift model of every HSM of the cluster (not only
// those the config lists) without holding every user in memory. A first
// pass reads, one HSM at a time, the part of each user record that must
// match everywhere (state.SharedPart) and keeps a 64-bit digest of it per
// user and HSM; only users whose digests differ, or who are missing
// somewhere, are then read in full. Users in sync never reach the model:
// the report lists only users that differ. docs/design.md, "Sync at
// scale", has the figures.
func (c *Client) snapshot(tx *Tx) (syncdiff.Snapshot, error) {
	// Users, then the token keys (keysync.go), read the same two-pass way.
	s, err := c.snapshotUsers(tx)
	if err != nil {
		return s, err
	}
	return s, c.snapshotKeys(tx, &s)
}

func (c *Client) snapshotUsers(tx *Tx) (syncdiff.Snapshot, error) {
	cl := tx.Cluster
	s := syncdiff.Snapshot{ClusterID: cl.ID, ConfigHSMs: []string{}}
	for _, h := range c.Config.HSMs {
		s.ConfigHSMs = append(s.ConfigHSMs, h.ID)
	}
	n := len(cl.HSMs)
	seed := maphash.MakeSeed()
	rows := map[string]int{}
	var names []string
	var digests []uint64 // row*n + hsm; 0: absent
	// Every HSM lists its users in name order, and the first reachable
	// one's names are the first rows, in that order: later HSMs are matched
	// to them by walking along (usually the same names), and only a name
	// off that walk is looked up in the map.
	sorted := -1
	for hi, info := range cl.HSMs {
		v := syncdiff.HSM{ID: info.ID, Server: hi, IP: info.IP, Reachable: info.Status == state.Running}
		if v.Reachable {
			next := 0
			err := tx.View(info.ID, func(h *state.HSMTx) error {
				p := policyOf(h)
				v.Policy = &p
				for _, st := range h.Meta.History {
					v.History = append(v.History, syncdiff.PolicyStamp{At: st.At, Seq: st.Seq, User: st.User, Quorum: st.Quorum})
				}
				return h.ForEachShared(func(name, shared []byte) error {
					for next < sorted && names[next] < string(name) {
						next++
					}
					var row int
					if next < sorted && names[next] == string(name) {
						row = next
						next++
					} else if r, ok := rows[string(name)]; ok {
						row = r
					} else {
						row = len(names)
						rows[string(name)] = row
						names = append(names, string(name))
						digests = append(digests, make([]uint64, n)...)
					}
					digests[row*n+hi] = maphash.Bytes(seed, shared) | 1
					return nil
				})
			})
			if sorted < 0 {
				sorted = len(names)
			}
			if err != nil {
				return s, err
			}
			v.Users, v.Deleted = []syncdiff.User{}, []syncdiff.Tombstone{}
		}
		s.HSMs = append(s.HSMs, v)
	}
	var drift []string
	for row, name := range names {
		var ref uint64
		for hi := range n {
			if !s.HSMs[hi].Reachable {
				continue
			}
			d := digests[row*n+hi]
			if d == 0 || (ref != 0 && d != ref) {
				drift = append(drift, name)
				break
			}
			ref = d
		}
	}
	if len(drift) == 0 {
		return s, nil
	}
	for hi := range s.HSMs {
		v := &s.HSMs[hi]
		if !v.Reachable {
			continue
		}
		err := tx.View(v.ID, func(h *state.HSMTx) error {
			for _, name := range drift {
				u, err := h.User(name)
				if err != nil {
					return err
				}
				if u != nil {
					v.Users = append(v.Users, syncUser(tx.c.Policy(), h, u))
					continue
				}
				d, err := h.Tombstone(name)
				if err != nil {
					return err
				}
				if d != nil {
					v.Deleted = append(v.Deleted, syncTombstone(d))
				}
			}
			return nil
		})
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// SyncStatus compares the user tables of every HSM (get sync status: any
// logged-in role).
func (c *Client) SyncStatus(auth Authenticator) (syncdiff.Report, error) {
	var r syncdiff.Report
	_, err := c.run(op{name: "sync-status", scope: scopeCluster, perm: policy.SyncStatus, auth: auth,
		whole: func(tx *Tx, _ Principal) error {
			s, err := c.snapshot(tx)
			if err != nil {
				return err
			}
			r = syncdiff.Diff(s)
			return nil
		}})
	return r, err
}

// UndecidedError refuses a repair whose plan has users it cannot decide.
type UndecidedError struct{ Users []string }

func (e *UndecidedError) Error() string {
	return fmt.Sprintf("the plan leaves %s undecided; nothing was changed", strings.Join(e.Users, ", "))
}

// Hint names the way out.
func (e *UndecidedError) Hint() string {
	return "decide by hand (hsm-sync plan explains why), or pass --skip USER for each to repair the rest"
}

func hasUnlockedAdmin(t *policy.Table, h *state.HSMTx) (bool, error) {
	found := false
	err := h.UsersWithRole(string(policy.Admin), func(u *state.User) error {
		found = found || !isLocked(t, h, u)
		return nil
	})
	return found, err
}

// skipKeepsWeakRecord refuses to raise the quorum policy of a weak HSM
// (user or quorum service value below the strictest) while a skipped user
// keeps a record there that differs from the chosen one (or one a delete
// would remove): once the policy is repaired that record would count, and a
// change that skipped the approvals would spread on the next run.
func skipKeepsWeakRecord(r syncdiff.Report, p syncdiff.Plan, skip []string) error {
	if p.Policy == nil {
		return nil
	}
	for i, id := range p.Policy.HSMs {
		if !p.Policy.Has[i].Below(p.Policy.Want) {
			continue
		}
		for _, ud := range r.Users {
			differs := slices.ContainsFunc(ud.Differences, func(d syncdiff.Difference) bool { return d.HSM == id }) ||
				ud.Authority.Decision == syncdiff.DecisionDelete && slices.ContainsFunc(ud.Cells, func(c syncdiff.Cell) bool { return c.HSM == id && c.State == syncdiff.StatePresent })
			if slices.Contains(skip, ud.Name) && differs {
				return fmt.Errorf("--skip %s keeps its record on %s, which enforces a weaker quorum policy (%s; the strictest is %s); repairing that policy would make the record count; nothing was changed: repair %s too, or by hand first",
					ud.Name, id, p.Policy.Has[i], p.Policy.Want, ud.Name)
			}
		}
	}
	return nil
}

// guarded is what apply's guards compare with, taken on each HSM before
// the repair touches it.
type guarded struct{ runnerAdmin, runnerUnlocked, unlockedAdmin bool }

func takeGuard(t *policy.Table, h *state.HSMTx, runner string) (guarded, error) {
	u, err := h.User(runner)
	if err != nil {
		return guarded{}, err
	}
	ua, err := hasUnlockedAdmin(t, h)
	return guarded{
		runnerAdmin:    u != nil && policy.Role(u.Role) == policy.Admin,
		runnerUnlocked: u != nil && !isLocked(t, h, u),
		unlockedAdmin:  ua,
	}, err
}

// Repair diffs, plans and applies under one lock, so what it repairs is
// what it saw. An admin authorizes; each record is then copied as a masked
// object (hash included, so no password is needed) by the appliance user,
// which is what may insert masked objects on the destination. Each HSM is
// committed atomically; the same call again changes nothing.
func (c *Client) Repair(auth Authenticator, skip []string) (syncdiff.Report, syncdiff.Plan, *Result, error) {
	return c.RepairApproved(auth, skip, nil)
}

// RepairApproved is Repair with an approval for the repair itself: a
// user-service quorum token of the runner's session, covering every
// reachable HSM, with as many approvals as the strictest user quorum value
// in force. With it the repair may grant what the never-escalate rule
// otherwise refuses (docs/design.md, "Repairs"); it is spent before the
// repair writes anything, whatever the repair then does.
func (c *Client) RepairApproved(auth Authenticator, skip []string, approval *Approval) (syncdiff.Report, syncdiff.Plan, *Result, error) {
	var (
		report syncdiff.Report
		plan   syncdiff.Plan
	)
	res, err := c.run(op{name: "repair", scope: scopeCluster, perm: policy.SyncUsers, auth: auth, write: true,
		whole: func(tx *Tx, runner Principal) error {
			cp := c.Policy().Copier
			if err := tx.check(Principal{User: cp.User, Role: cp.Role}, policy.MaskedObjects); err != nil {
				return err
			}
			if approval != nil {
				if err := c.spendRepairApproval(tx, runner, approval); err != nil {
					return err
				}
			}
			s, err := c.snapshot(tx)
			if err != nil {
				return err
			}
			s.Approved = approval != nil
			report = syncdiff.Diff(s)
			plan = report.Plan()
			var undecided []string
			for _, sk := range plan.Skipped {
				if sk.Decision == syncdiff.DecisionUndecidable && !slices.Contains(skip, sk.User) {
					undecided = append(undecided, sk.User)
				}
			}
			if len(undecided) > 0 {
				return &UndecidedError{Users: undecided}
			}
			if err := skipKeepsWeakRecord(report, plan, skip); err != nil {
				return err
			}
			before := map[string]guarded{}
			open := func(id string) (*state.HSMTx, error) {
				h, err := tx.HSM(id)
				if err != nil {
					return nil, err
				}
				if _, ok := before[id]; !ok {
					if before[id], err = takeGuard(tx.c.Policy(), h, runner.User); err != nil {
						return nil, err
					}
				}
				return h, nil
			}
			// The newest deletion record of each user, from the report.
			tombs := map[string]*syncdiff.Tombstone{}
			for _, ud := range report.Users {
				for _, cell := range ud.Cells {
					if t := cell.Tombstone; t != nil && (tombs[ud.Name] == nil || t.Changed.After(tombs[ud.Name].Changed)) {
						tombs[ud.Name] = t
					}
				}
			}
			for _, a := range plan.Actions {
				if slices.Contains(skip, a.User) {
					continue
				}
				if c.hsmInfo(tx.Cluster, a.Dst.ID) == nil {
					return fmt.Errorf("plan targets %s, which is not reachable", a.Dst.ID)
				}
				switch a.Kind {
				case syncdiff.ActionCopy:
					src, err := tx.Read(a.Src.ID)
					if err != nil {
						return err
					}
					rec, err := src.User(a.User)
					if err != nil {
						return err
					}
					if rec == nil {
						return fmt.Errorf("%s no longer holds %s", a.Src.ID, a.User)
					}
					dst, err := open(a.Dst.ID)
					if err != nil {
						return err
					}
					// CMU user ids stay unique on each HSM.
					if other := dst.UserIDTaken(rec.ID); other != "" && other != rec.Name {
						dst.Meta.NextUserID++
						rec.ID = dst.Meta.NextUserID
					} else if rec.ID > dst.Meta.NextUserID {
						dst.Meta.NextUserID = rec.ID
					}
					// A record's seq is the write counter of the HSM that
					// holds it, when it was written there: the repair rule
					// orders it against that HSM's policy history
					// (docs/design.md, "Repairs"), so a copy takes the
					// destination's, not the source's.
					rec.Seq = dst.Meta.Seq + 1
					if err := dst.PutUser(rec); err != nil {
						return err
					}
					if err := dst.DeleteTombstone(a.User); err != nil {
						return err
					}
				case syncdiff.ActionDelete:
					dst, err := open(a.Dst.ID)
					if err != nil {
						return err
					}
					if in, err := loggedIn(dst, a.User); err != nil {
						return err
					} else if in {
						return fmt.Errorf("%s is logged in on %s, so it cannot be deleted there; nothing was changed (it must log out, or pass --skip %s)", a.User, dst.ID(), a.User)
					}
					if err := dst.DeleteUser(a.User); err != nil {
						return err
					}
					if t := tombs[a.User]; t != nil {
						err = dst.PutTombstone(&state.Tombstone{Name: t.Name, Role: t.Role, Changed: t.Changed, Seq: t.Seq, Op: t.Op, DeletedOp: t.DeletedOp,
							Lineage: t.Lineage, Approvals: t.Approvals})
					} else {
						err = dst.DeleteTombstone(a.User)
					}
					if err != nil {
						return err
					}
				}
			}
			if err := repairKeys(tx, plan, open); err != nil {
				return err
			}
			if d := plan.Policy; d != nil {
				for _, id := range d.HSMs {
					h, err := open(id)
					if err != nil {
						return err
					}
					h.Meta.Quorum.Values = map[string]int{ServiceUser: d.Want.User, ServiceQuorum: d.Want.Quorum}
					h.Meta.Quorum.Generated, h.Meta.Quorum.Approved = d.Want.Generated, d.Want.Approved
					h.Meta.History = state.Stamp(h.Meta.History, tx.Now, h.Meta.Seq+1, h.Meta.Quorum)
				}
			}
			// What any user command must keep, a repair must keep too: it
			// copies the records hsm-sync diff chose, which may lack the admins.
			const hint = "nothing was changed; keep them with --skip USER, or repair by hand (hsm-sync plan)"
			for _, info := range tx.Cluster.HSMs {
				b, changed := before[info.ID]
				if !changed {
					continue
				}
				h, _ := tx.HSM(info.ID)
				admins, err := countRole(h, policy.Admin)
				if err != nil {
					return err
				}
				if admins == 0 {
					return fmt.Errorf("the repair would leave %s without an admin; %s", info.ID, hint)
				}
				u, err := h.User(runner.User)
				if err != nil {
					return err
				}
				if b.runnerAdmin && (u == nil || policy.Role(u.Role) != policy.Admin) {
					return fmt.Errorf("the repair would delete or demote %s, the admin running it, on %s; %s", runner.User, info.ID, hint)
				}
				// The strictest lock state spreads; it must not lock out the
				// admins who could unlock it.
				if b.runnerUnlocked && u != nil && isLocked(tx.c.Policy(), h, u) {
					return fmt.Errorf("the repair would lock %s, the admin running it, on %s (locked elsewhere); %s, or run it as another admin, or reset %s's password first", runner.User, info.ID, hint, runner.User)
				}
				ua, err := hasUnlockedAdmin(tx.c.Policy(), h)
				if err != nil {
					return err
				}
				if b.unlockedAdmin && !ua {
					return fmt.Errorf("the repair would leave %s without an unlocked admin; %s", info.ID, hint)
				}
				if err := approversKept(h); err != nil {
					return fmt.Errorf("on %s the repair %w; %s", info.ID, err, hint)
				}
			}
			return nil
		}})
	if res == nil {
		res = &Result{}
	}
	return report, plan, res, err
}

// spendRepairApproval accepts the repair's own approval on every
// reachable HSM, then spends it everywhere, each HSM committed at once.
func (c *Client) spendRepairApproval(tx *Tx, runner Principal, a *Approval) error {
	var hsms []*state.HSMTx
	defer func() {
		for _, h := range hsms {
			h.Rollback() // a no-op for those committed
		}
	}()
	need := 2 // an approval means at least two people
	for _, info := range tx.Cluster.HSMs {
		if info.Status != state.Running {
			continue
		}
		h, err := c.Store.Begin(info.ID, true)
		if err != nil {
			return &TroubleError{Err: err}
		}
		hsms = append(hsms, h)
		tx.targets = append(tx.targets, info.ID)
		need = max(need, h.Meta.Quorum.Values[ServiceUser])
	}
	for _, h := range hsms {
		ok, err := tx.requireQuorum(h, runner, ServiceUser, need, a, 0)
		if err == nil && !ok {
			err = &QuorumError{Why: "the approval was not accepted on " + h.ID()}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", h.ID(), err)
		}
	}
	digest, err := a.digest()
	if err != nil {
		return err
	}
	for _, h := range hsms {
		if err := spendToken(h, digest, tx.Now); err != nil {
			return err
		}
		if err := h.Commit(); err != nil {
			return &TroubleError{Err: err}
		}
	}
	return nil
}

// ConfigDrift compares the client config with the cluster: HSMs it lacks
// and HSMs it lists that the cluster has not.
func (c *Client) ConfigDrift() (missing, unknown []string, err error) {
	_, err = c.run(op{name: "config-check", scope: scopeCluster, perm: policy.ClusterInfo, auth: Nobody{}, whole: func(tx *Tx, _ Principal) error {
		cl := tx.Cluster
		for _, h := range cl.HSMs {
			if !c.Config.Lists(h.ID) {
				missing = append(missing, h.ID)
			}
		}
		for _, h := range c.Config.HSMs {
			if c.hsmInfo(cl, h.ID) == nil {
				unknown = append(unknown, h.ID)
			}
		}
		return nil
	}})
	return missing, unknown, err
}

// RefreshConfig rewrites the client config's HSM list from the cluster
// (configure -a / -m in CloudHSM), keeping the rest of the file.
func (c *Client) RefreshConfig() (missing, unknown []string, err error) {
	missing, unknown, err = c.ConfigDrift()
	if err != nil || (len(missing) == 0 && len(unknown) == 0) {
		return missing, unknown, err
	}
	hsms := make([]config.HSM, 0, len(c.Cluster.HSMs))
	for _, h := range c.Cluster.HSMs {
		hsms = append(hsms, config.HSM{ID: h.ID, IP: h.IP})
	}
	return missing, unknown, c.Config.SetHSMs(hsms)
}
