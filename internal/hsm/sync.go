package hsm

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hsmkit/hsmkit/internal/config"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
	"github.com/hsmkit/hsmkit/internal/syncdiff"
)

// policyOf maps an HSM's quorum policy to the drift model.
func policyOf(h *state.HSM) syncdiff.Policy {
	return syncdiff.Policy{User: h.Quorum.Values[ServiceUser], Quorum: h.Quorum.Values[ServiceQuorum],
		Generated: h.Quorum.Generated, Approved: h.Quorum.Approved}
}

// syncView maps an HSM's users to the drift model.
func syncView(server int, info state.HSMInfo, h *state.HSM) syncdiff.HSM {
	v := syncdiff.HSM{ID: info.ID, Server: server, IP: info.IP, Reachable: h != nil}
	if h == nil {
		return v
	}
	v.Users = make([]syncdiff.User, 0, len(h.Users))
	for _, u := range h.Users {
		su := syncdiff.User{ID: u.ID, Name: u.Name, Role: u.Role, PasswordHash: HashDigest(u.Hash),
			Locked: locked(&u), Failures: u.Failures, Changed: u.Changed, Seq: u.Seq, Op: u.Op}
		if u.QuorumKey != nil {
			su.QuorumKey = u.QuorumKey.Fingerprint
		}
		if u.MFA != nil {
			su.MFA = u.MFA.Fingerprint
		}
		v.Users = append(v.Users, su)
	}
	p := policyOf(h)
	v.Policy = &p
	v.Deleted = make([]syncdiff.Tombstone, 0, len(h.Deleted))
	for _, d := range h.Deleted {
		v.Deleted = append(v.Deleted, syncdiff.Tombstone{Name: d.Name, Role: d.Role, Changed: d.Changed, Seq: d.Seq, Op: d.Op, DeletedOp: d.DeletedOp})
	}
	return v
}

// snapshot reads every HSM of the cluster (not only those the config lists).
func (c *Client) snapshot(cl *state.Cluster) (syncdiff.Snapshot, map[string]*state.HSM, error) {
	s := syncdiff.Snapshot{ClusterID: cl.ID, ConfigHSMs: []string{}}
	for _, h := range c.Config.HSMs {
		s.ConfigHSMs = append(s.ConfigHSMs, h.ID)
	}
	loaded := map[string]*state.HSM{}
	for i, info := range cl.HSMs {
		var h *state.HSM
		if info.Status == state.Running {
			var err error
			if h, err = c.Store.LoadHSM(info.ID); err != nil {
				return s, nil, &TroubleError{Err: err}
			}
			loaded[info.ID] = h
		}
		s.HSMs = append(s.HSMs, syncView(i, info, h))
	}
	return s, loaded, nil
}

// authorize checks who acts against the first reachable HSM where the
// caller is known. A failed one-shot login is tried, and counted, on every
// reachable HSM, as hsm-user's logins are: counting it on one HSM alone
// would make the very lock drift that diff reports.
func (c *Client) authorize(cl *state.Cluster, loaded map[string]*state.HSM, auth Authenticator, op policy.Op) (Principal, error) {
	tx := &Tx{c: c, Cluster: cl, Now: c.Now(), pwCache: map[string]bool{}}
	var firstErr, loginErr error
	for _, info := range cl.HSMs {
		h := loaded[info.ID]
		if h == nil {
			continue
		}
		p, err := auth.On(tx, h)
		var keep keepErr
		if errors.As(err, &keep) {
			if serr := c.Store.SaveHSM(h); serr != nil {
				return p, serr
			}
			if loginErr == nil {
				loginErr = keep.error
			}
			continue
		}
		if loginErr != nil {
			continue
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return p, c.Policy().Check(p.Role, op)
	}
	if loginErr != nil {
		return Principal{}, loginErr
	}
	if firstErr == nil {
		firstErr = errors.New("no reachable HSM")
	}
	return Principal{}, firstErr
}

// SyncStatus compares the user tables of every HSM (get sync status: any
// logged-in role).
func (c *Client) SyncStatus(auth Authenticator) (syncdiff.Report, error) {
	var r syncdiff.Report
	err := c.simulate(func(cl *state.Cluster) error {
		s, loaded, err := c.snapshot(cl)
		if err != nil {
			return err
		}
		if _, err := c.authorize(cl, loaded, auth, policy.SyncStatus); err != nil {
			return err
		}
		r = syncdiff.Diff(s)
		return nil
	})
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

func hasUnlockedAdmin(h *state.HSM) bool {
	return slices.ContainsFunc(h.Users, func(u state.User) bool { return policy.Role(u.Role) == policy.Admin && !locked(&u) })
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

// Repair diffs, plans and applies under one lock, so what it repairs is
// what it saw. An admin authorizes; each record is then copied as a masked
// object (hash included, so no password is needed) by the appliance user,
// which is what may insert masked objects on the destination. Each HSM is
// written atomically; the same call again changes nothing.
func (c *Client) Repair(auth Authenticator, skip []string) (syncdiff.Report, syncdiff.Plan, *Result, error) {
	var (
		report syncdiff.Report
		plan   syncdiff.Plan
		res    = &Result{}
	)
	err := c.simulate(func(cl *state.Cluster) error {
		s, loaded, err := c.snapshot(cl)
		if err != nil {
			return err
		}
		runner, err := c.authorize(cl, loaded, auth, policy.SyncUsers)
		if err != nil {
			return err
		}
		if err := c.Policy().Check(policy.Appliance, policy.MaskedObjects); err != nil {
			return err
		}
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
		changed := map[string]bool{}
		// What the guards below compare with, taken before any action.
		type guarded struct{ runnerAdmin, runnerUnlocked, unlockedAdmin bool }
		before := map[string]guarded{}
		for id, h := range loaded {
			u := findUser(h, runner.User)
			before[id] = guarded{
				runnerAdmin:    u != nil && policy.Role(u.Role) == policy.Admin,
				runnerUnlocked: u != nil && !locked(u),
				unlockedAdmin:  hasUnlockedAdmin(h),
			}
		}
		for _, a := range plan.Actions {
			if slices.Contains(skip, a.User) {
				continue
			}
			dst := loaded[a.Dst.ID]
			if dst == nil {
				return fmt.Errorf("plan targets %s, which is not reachable", a.Dst.ID)
			}
			switch a.Kind {
			case syncdiff.ActionCopy:
				src := loaded[a.Src.ID]
				u := findUser(src, a.User)
				if u == nil {
					return fmt.Errorf("%s no longer holds %s", a.Src.ID, a.User)
				}
				rec := *u
				dst.Users = slices.DeleteFunc(dst.Users, func(x state.User) bool { return x.Name == a.User })
				if slices.ContainsFunc(dst.Users, func(x state.User) bool { return x.ID == rec.ID }) {
					dst.NextUserID++
					rec.ID = dst.NextUserID
				} else if rec.ID > dst.NextUserID {
					dst.NextUserID = rec.ID
				}
				dst.Users = append(dst.Users, rec)
				slices.SortStableFunc(dst.Users, func(a, b state.User) int { return a.ID - b.ID })
				dst.Deleted = slices.DeleteFunc(dst.Deleted, func(d state.Tombstone) bool { return d.Name == a.User })
			case syncdiff.ActionDelete:
				if loggedIn(dst, a.User) {
					return fmt.Errorf("%s is logged in on %s, so it cannot be deleted there; nothing was changed (it must log out, or pass --skip %s)", a.User, dst.ID, a.User)
				}
				var tomb *state.Tombstone
				for _, h := range loaded {
					for i := range h.Deleted {
						if h.Deleted[i].Name == a.User && (tomb == nil || h.Deleted[i].Changed.After(tomb.Changed)) {
							tomb = &h.Deleted[i]
						}
					}
				}
				dst.Users = slices.DeleteFunc(dst.Users, func(x state.User) bool { return x.Name == a.User })
				dst.Deleted = slices.DeleteFunc(dst.Deleted, func(d state.Tombstone) bool { return d.Name == a.User })
				if tomb != nil {
					dst.Deleted = append(dst.Deleted, *tomb)
				}
			}
			changed[dst.ID] = true
		}
		if d := plan.Policy; d != nil {
			for _, id := range d.HSMs {
				h := loaded[id]
				h.Quorum.Values = map[string]int{ServiceUser: d.Want.User, ServiceQuorum: d.Want.Quorum}
				h.Quorum.Generated, h.Quorum.Approved = d.Want.Generated, d.Want.Approved
				changed[id] = true
			}
		}
		// What any user command must keep, a repair must keep too: it
		// copies the records hsm-sync diff chose, which may lack the admins.
		const hint = "nothing was changed; keep them with --skip USER, or repair by hand (hsm-sync plan)"
		for _, info := range cl.HSMs {
			h := loaded[info.ID]
			if !changed[info.ID] {
				continue
			}
			if countRole(h, policy.Admin) == 0 {
				return fmt.Errorf("the repair would leave %s without an admin; %s", info.ID, hint)
			}
			u := findUser(h, runner.User)
			if before[info.ID].runnerAdmin && (u == nil || policy.Role(u.Role) != policy.Admin) {
				return fmt.Errorf("the repair would delete or demote %s, the admin running it, on %s; %s", runner.User, info.ID, hint)
			}
			// The strictest lock state spreads; it must not lock out the
			// admins who could unlock it.
			if before[info.ID].runnerUnlocked && u != nil && locked(u) {
				return fmt.Errorf("the repair would lock %s, the admin running it, on %s (locked elsewhere); %s, or run it as another admin, or reset %s's password first", runner.User, info.ID, hint, runner.User)
			}
			if before[info.ID].unlockedAdmin && !hasUnlockedAdmin(h) {
				return fmt.Errorf("the repair would leave %s without an unlocked admin; %s", info.ID, hint)
			}
			if err := approversKept(h); err != nil {
				return fmt.Errorf("on %s the repair %w; %s", info.ID, err, hint)
			}
		}
		for _, info := range cl.HSMs {
			if !changed[info.ID] {
				continue
			}
			o := Outcome{HSM: info.ID, Status: "ok"}
			if err := c.Store.SaveHSM(loaded[info.ID]); err != nil {
				o = Outcome{HSM: info.ID, Status: "failed", Err: err}
			}
			res.Outcomes = append(res.Outcomes, o)
		}
		if res.Partial() {
			return &PartialError{Result: res}
		}
		return nil
	})
	return report, plan, res, err
}

// ConfigDrift compares the client config with the cluster: HSMs it lacks
// and HSMs it lists that the cluster has not.
func (c *Client) ConfigDrift() (missing, unknown []string, err error) {
	err = c.simulate(func(cl *state.Cluster) error {
		if err := c.Policy().Check(policy.Unauthenticated, policy.ClusterInfo); err != nil {
			return err
		}
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
	})
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
