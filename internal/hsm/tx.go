package hsm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// The one transaction path (docs/design.md, "The engine"). Every state
// change — a user or quorum operation, a simulator command, a repair —
// and every read is an op handed to Client.run, which:
//
//  1. does the slow work that needs no lock (password hashing and
//     verification, op.prepare and the authenticator's own);
//  2. takes the state lock and reads the cluster as it is now;
//  3. opens a transaction on each HSM the op acts on;
//  4. on each, resolves the caller from that HSM's current records and
//     asks the permission table about op.perm: the gate, which no op can
//     skip because ops never see an HSM before it has passed;
//  5. runs the op (each, then whole), then commits every HSM it changed,
//     each atomically and durably, and the cluster record if it changed.
//
// Nothing else writes state.

// scope says what an op acts on.
type scope int

const (
	scopeTargets scope = iota // the HSMs the client config and Targeting pick
	scopeCluster              // the cluster as a whole (simulator, sync, reads)
)

type op struct {
	name  string // what it is, for the seeded random stream
	scope scope
	perm  policy.Op
	// permFor picks the permission when it depends on who acts (one's own
	// password or another's).
	permFor func(p Principal) policy.Op
	// action is which of perm's actions the op runs (policy.Command.Action):
	// a custom role given one command of a shared operation gets that one.
	action string
	auth   Authenticator
	target Targeting
	write  bool

	// prepare runs before the lock is taken: the KDF belongs here.
	prepare func() error
	// locked runs first under the lock, before any HSM is looked at:
	// checks of the client's own files that must not race.
	locked func(tx *Tx) error
	// quorum says, for a caller on an HSM, which quorum service's token
	// the op needs and how many approvals (need <= 1: none); approval is
	// the token file offered. The quorum phase runs after the gate and
	// before each (see quorumPhase).
	quorum   func(h *state.HSMTx, p Principal) (service string, need int, key uint64)
	approval *Approval
	// each runs on every target HSM, after the gate let the caller in.
	each func(tx *Tx, h *state.HSMTx, p Principal) error
	// whole runs once, after each, with the caller the gate let in.
	whole func(tx *Tx, p Principal) error
	// beforeCommit runs once every HSM said yes, before anything is
	// committed (files outside the state that must exist first).
	beforeCommit func(tx *Tx) error
	// afterCommit runs once everything is committed (removing what the
	// committed cluster record no longer names).
	afterCommit func(tx *Tx) error
}

// Tx is one operation in progress: the lock is held, the cluster read.
type Tx struct {
	c       *Client
	Cluster *state.Cluster
	Now     time.Time
	Rand    *Rand
	OpID    string
	auth    Authenticator
	targets []string // the HSMs a scopeTargets op acts on

	open         map[string]*state.HSMTx // HSM transactions, committed at the end
	order        []string                // in the order they were opened
	kept         map[string]*state.HSMTx // read-only transactions kept open (Tx.Read)
	clusterDirty bool
	pw           pwCache
	approvals    map[string]int // per HSM: how many approved the operation's quorum token
}

// HSM opens (once) a write transaction on an HSM for a scopeCluster op;
// it is committed with the op.
func (tx *Tx) HSM(id string) (*state.HSMTx, error) {
	if h := tx.open[id]; h != nil {
		return h, nil
	}
	// Our own read-only transaction would hold the flock a write needs.
	if h := tx.kept[id]; h != nil {
		h.Rollback()
		delete(tx.kept, id)
	}
	h, err := tx.c.Store.Begin(id, true)
	if err != nil {
		return nil, &TroubleError{Err: err}
	}
	tx.open[id] = h
	tx.order = append(tx.order, id)
	return h, nil
}

// View reads one HSM in a transaction of its own, closed when fn returns:
// a scan of many HSMs holds one at a time.
func (tx *Tx) View(id string, fn func(h *state.HSMTx) error) error {
	if h := tx.open[id]; h != nil {
		return fn(h)
	}
	if h := tx.kept[id]; h != nil {
		return fn(h)
	}
	h, err := tx.c.Store.Begin(id, false)
	if err != nil {
		return &TroubleError{Err: err}
	}
	defer h.Rollback()
	return fn(h)
}

// Read is an HSM to read from many times in one operation (a repair's
// sources): the operation's write transaction if it has one, else a
// read-only one opened once and kept until the operation ends.
func (tx *Tx) Read(id string) (*state.HSMTx, error) {
	if h := tx.open[id]; h != nil {
		return h, nil
	}
	if h := tx.kept[id]; h != nil {
		return h, nil
	}
	h, err := tx.c.Store.Begin(id, false)
	if err != nil {
		return nil, &TroubleError{Err: err}
	}
	if tx.kept == nil {
		tx.kept = map[string]*state.HSMTx{}
	}
	tx.kept[id] = h
	return h, nil
}

// ClusterChanged marks the cluster record for writing at commit.
func (tx *Tx) ClusterChanged() { tx.clusterDirty = true }

func (tx *Tx) rollback() {
	for _, id := range tx.order {
		tx.open[id].Rollback()
	}
	for _, h := range tx.kept {
		h.Rollback()
	}
}

// gate resolves who acts on h and asks the permission table.
func (tx *Tx) gate(h *state.HSMTx, o *op) (Principal, error) {
	p, err := tx.resolve(h)
	if err != nil {
		return p, err
	}
	return p, tx.checkAction(p, o.permOf(p), o.action)
}

func (o *op) permOf(p Principal) policy.Op {
	if o.permFor != nil {
		return o.permFor(p)
	}
	return o.perm
}

// resolve asks the authenticator who acts, then takes the role and lock
// state from h's current record of that user, never from what a session
// remembered: a user deleted, demoted or locked since it logged in keeps
// nothing it no longer has.
func (tx *Tx) resolve(h *state.HSMTx) (Principal, error) { return tx.resolveAuth(h, tx.auth) }

// resolveAuth is resolve for a given authenticator.
func (tx *Tx) resolveAuth(h *state.HSMTx, auth Authenticator) (Principal, error) {
	p, err := auth.On(tx, h)
	if err != nil || p.User == "" {
		return p, err
	}
	u, err := h.User(p.User)
	if err != nil {
		return Principal{}, &TroubleError{Err: err}
	}
	if u == nil {
		return Principal{}, fmt.Errorf("user %s no longer exists on %s: its session grants nothing there (hsm-user logout)", p.User, h.ID())
	}
	t := tx.c.Policy()
	// A disabled user is refused as a locked one is: it may do only what
	// needs no login.
	p.Role, p.Locked, p.Expired = policy.Role(u.Role), isLocked(t, h, u) || u.Disabled, u.Expired
	if !t.IsRole(p.Role) {
		// A custom role's commands are data of the HSM's records.
		for _, r := range h.Meta.Roles {
			if r.Name == u.Role {
				p.Custom = r.Commands
			}
		}
	}
	return p, nil
}

// check asks the permission table; a locked user may do only what needs
// no login at all.
func (tx *Tx) check(p Principal, perm policy.Op) error { return tx.checkAction(p, perm, "") }

// checkAction is check for one of perm's actions (op.action).
func (tx *Tx) checkAction(p Principal, perm policy.Op, action string) error {
	t := tx.c.Policy()
	if p.Locked && !t.Allowed(policy.Unauthenticated, perm) {
		spec := t.Spec(p.Role)
		return &LockedError{User: p.User, Role: p.Role, Threshold: t.LockThreshold(p.Role, p.User, nil), ResetBy: spec.ResetBy, Unlock: spec.Unlock}
	}
	return t.CheckCaller(policy.Caller{User: p.User, Role: p.Role, Custom: p.Custom, Expired: p.Expired, Action: action}, perm)
}

// lockedError is the refusal of a locked user's login on h.
func (tx *Tx) lockedError(h *state.HSMTx, u *state.User) error {
	t := tx.c.Policy()
	th := t.LockThreshold(policy.Role(u.Role), u.Name, h.Meta.Policies)
	spec := t.Spec(policy.Role(u.Role))
	return &LockedError{User: u.Name, Role: policy.Role(u.Role), Threshold: th, With: u.Locked && u.Failures < th, ResetBy: spec.ResetBy, Unlock: spec.Unlock}
}

// LockedError refuses a locked user everything a login is needed for.
type LockedError struct {
	User      string
	Role      policy.Role
	Threshold int         // the failed logins that lock its role
	With      bool        // locked with another role's lockout, not its own failures
	ResetBy   policy.Role // the role that resets it, where the profile names one
	Unlock    string      // how it is made usable again, where no role resets it
}

func (e *LockedError) Error() string {
	if e.Unlock != "" {
		return fmt.Sprintf("user %s is locked after %d failed logins; %s", e.User, e.Threshold, e.Unlock)
	}
	if e.ResetBy == "" && !e.With {
		return fmt.Sprintf("user %s is locked after %d failed logins; an admin must reset its password (hsm-user change-password --username %s --role %s)", e.User, e.Threshold, e.User, e.Role)
	}
	why := fmt.Sprintf("after %d failed logins", e.Threshold)
	if e.With {
		why = "with another role's lockout"
	}
	if e.ResetBy == "" {
		return fmt.Sprintf("user %s is locked %s", e.User, why)
	}
	return fmt.Sprintf("user %s is locked %s; the %s must reset its password (role resetpw -name %s)", e.User, why, e.ResetBy, e.Role)
}

// run is the one transaction path.
func (c *Client) run(o op) (*Result, error) {
	if o.prepare != nil {
		if err := o.prepare(); err != nil {
			return nil, err
		}
	}
	var pw pwCache
	if pre, ok := o.auth.(preverifier); ok {
		var err error
		if pw, err = pre.preverify(c); err != nil {
			return nil, err
		}
	}
	cl, unlock, err := c.lockCluster()
	if err != nil {
		return nil, err
	}
	defer unlock()
	tx := &Tx{c: c, Cluster: cl, Now: c.now(), auth: o.auth, open: map[string]*state.HSMTx{}, pw: pw}
	defer tx.rollback()
	if o.locked != nil {
		if err := o.locked(tx); err != nil {
			return nil, err
		}
	}
	if o.scope == scopeCluster {
		if err := tx.initRand(o.name); err != nil {
			return nil, err
		}
		return c.runCluster(tx, &o)
	}
	return c.runTargets(tx, &o)
}

// runCluster runs an op on the cluster as a whole. The caller is resolved
// on the first reachable HSM that knows it.
func (c *Client) runCluster(tx *Tx, o *op) (*Result, error) {
	ps, err := c.resolveOnCluster(tx, o)
	_, isPIN := o.auth.(*PIN)
	if err != nil && !isPIN && !isTrouble(err) && tx.c.Policy().Allowed(policy.Unauthenticated, o.permOf(Principal{})) {
		// What needs no login is not refused for a session that no
		// longer holds (a failed one-shot login still is).
		ps, err = []Principal{Nobody{}.principal()}, nil
	}
	if err != nil {
		return nil, err
	}
	for _, q := range ps {
		if err := tx.checkAction(q, o.permOf(q), o.action); err != nil {
			return nil, err
		}
	}
	p := ps[0]
	if err := o.whole(tx, p); err != nil {
		return nil, err
	}
	if o.beforeCommit != nil {
		if err := o.beforeCommit(tx); err != nil {
			return nil, err
		}
	}
	res := &Result{}
	for _, id := range tx.order {
		if !o.write {
			tx.open[id].Rollback()
			continue
		}
		oc := Outcome{HSM: id, Status: "ok"}
		if err := tx.open[id].Commit(); err != nil {
			oc = Outcome{HSM: id, Status: "failed", Err: err}
		}
		res.Outcomes = append(res.Outcomes, oc)
	}
	if tx.clusterDirty && !res.Partial() {
		if err := c.Store.SaveCluster(tx.Cluster); err != nil {
			return res, &TroubleError{Err: err}
		}
		if o.afterCommit != nil {
			if err := o.afterCommit(tx); err != nil {
				return nil, err
			}
		}
	}
	if res.Partial() {
		return res, &PartialError{Result: res}
	}
	return res, nil
}

// resolveOnCluster finds who acts for a cluster-wide op. Principals that
// need no HSM (nobody, the AWS account) are taken as they are. A login is
// resolved on every reachable HSM that knows it, and the least privilege
// found wins: a caller locked on one HSM is locked for an op that spans
// them all, and one whose role differs between HSMs must be allowed in
// every role it holds (runCluster checks each). A failed one-shot login
// counts on every reachable HSM, as hsm-user's logins do (counting it on
// one alone would make the very lock drift hsm-sync reports), and is
// committed at once, whatever becomes of the op.
func (c *Client) resolveOnCluster(tx *Tx, o *op) ([]Principal, error) {
	if fp, ok := o.auth.(fixedPrincipal); ok {
		return []Principal{fp.principal()}, nil
	}
	_, isPIN := o.auth.(*PIN)
	var found []Principal
	var firstErr, loginErr error
	for _, info := range tx.Cluster.HSMs {
		if info.Status != state.Running {
			continue
		}
		h, err := c.Store.Begin(info.ID, isPIN)
		if err != nil {
			return nil, &TroubleError{Err: err}
		}
		p, err := tx.resolve(h)
		var keep keepErr
		if errors.As(err, &keep) {
			if cerr := h.Commit(); cerr != nil {
				return nil, cerr
			}
			if loginErr == nil {
				loginErr = keep.error
			}
			continue
		}
		h.Rollback()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		found = append(found, p)
	}
	switch {
	case loginErr != nil:
		return nil, loginErr
	case len(found) > 0:
		return found, nil
	case firstErr == nil:
		return nil, trouble("hsm-sim start ID", "no reachable HSM in cluster %s", tx.Cluster.ID)
	}
	return nil, firstErr
}

// runTargets runs an op on each target HSM. Unless partial, it commits
// nothing when the op fails on any HSM (but keeps what the op asked to
// keep, such as login failure counts).
func (c *Client) runTargets(tx *Tx, o *op) (*Result, error) {
	targets, skipped, err := c.planTargets(tx.Cluster, o.target)
	if err != nil {
		return nil, err
	}
	tx.targets = targets
	hsms := make([]*state.HSMTx, len(targets))
	for i, id := range targets {
		if hsms[i], err = tx.HSM(id); err != nil {
			return nil, err
		}
	}
	// After the targets are open, so their write counters are read from
	// the transactions already there rather than by opening them twice.
	if err := tx.initRand(o.name); err != nil {
		return nil, err
	}
	errs := make([]error, len(hsms))
	ps := make([]Principal, len(hsms))
	for i, h := range hsms {
		ps[i], errs[i] = tx.gate(h, o)
	}
	if o.quorum != nil {
		if hsms, err = tx.quorumPhase(o, hsms, ps, errs); err != nil {
			return nil, err
		}
	}
	failed := false
	for i, h := range hsms {
		if errs[i] == nil {
			errs[i] = o.each(tx, h, ps[i])
		}
		if errs[i] != nil {
			failed = true
		}
	}
	// A corrupt or unreadable HSM is a state problem (exit 3) whatever
	// the others said, not a refusal; nothing is written.
	for _, e := range errs {
		if isTrouble(e) {
			return nil, e
		}
	}
	if (!failed || o.target.AllowPartial) && o.beforeCommit != nil {
		if err := o.beforeCommit(tx); err != nil {
			return nil, err
		}
	}
	res := &Result{}
	for i, h := range hsms {
		var keep keepErr
		write := errs[i] == nil && (!failed || o.target.AllowPartial)
		if errs[i] != nil && errors.As(errs[i], &keep) {
			write = true
		}
		if write && o.write {
			if err := h.Commit(); err != nil && errs[i] == nil {
				errs[i] = err
			}
		}
		oc := Outcome{HSM: h.ID(), Status: "ok"}
		if errs[i] != nil {
			oc = Outcome{HSM: h.ID(), Status: "failed", Err: errs[i]}
		} else if !write {
			oc = Outcome{HSM: h.ID(), Status: "not written", Err: errors.New("another HSM refused")}
		}
		res.Outcomes = append(res.Outcomes, oc)
	}
	res.Outcomes = append(res.Outcomes, skipped...)
	// The cluster record an op changed (activation's state) is written
	// after its HSMs, only when every one was: a kill in between leaves
	// what clusterState reads from the HSMs themselves.
	if tx.clusterDirty && !failed && !res.Partial() {
		if err := c.Store.SaveCluster(tx.Cluster); err != nil {
			return res, &TroubleError{Err: err}
		}
	}
	if failed && !o.target.AllowPartial {
		return res, combine(targets, errs)
	}
	if res.Partial() {
		return res, &PartialError{Result: res}
	}
	return res, nil
}

// quorumPhase checks the offered approval on every HSM the caller passed
// the gate on. A token is spent on every target HSM that holds it as soon
// as it is accepted on any of them, whatever the operation then does on
// each: the spend is committed here, before the operation writes anything,
// so neither a refusal on another HSM nor the requester killing its own
// command leaves the token fresh anywhere to approve a second operation
// (docs/design.md, "Quorum"). The HSMs' transactions are then begun anew
// for the operation itself.
func (tx *Tx) quorumPhase(o *op, hsms []*state.HSMTx, ps []Principal, errs []error) ([]*state.HSMTx, error) {
	accepted := false
	for i, h := range hsms {
		if errs[i] != nil {
			continue
		}
		svc, need, key := o.quorum(h, ps[i])
		if need <= 1 && o.approval == nil {
			continue
		}
		ok, err := tx.requireQuorum(h, ps[i], svc, need, o.approval, key)
		if err != nil {
			errs[i] = err
			continue
		}
		accepted = accepted || ok
	}
	if !accepted {
		return hsms, nil
	}
	digest, err := o.approval.digest()
	if err != nil {
		return nil, err
	}
	for i, h := range hsms {
		if err := spendToken(h, digest, tx.Now); err != nil {
			return nil, err
		}
		if err := h.Commit(); err != nil {
			return nil, &TroubleError{Err: err}
		}
		delete(tx.open, h.ID())
		if hsms[i], err = tx.HSM(h.ID()); err != nil {
			return nil, err
		}
	}
	return hsms, nil
}

// initRand makes the operation's random stream and its id. A seeded
// cluster keys it by the seed and the cluster's write count, which every
// HSM's commit moves on, so the same commands give the same ids.
func (tx *Tx) initRand(purpose string) error {
	cl := tx.Cluster
	var counter uint64
	if cl.Seed != nil {
		for _, info := range cl.HSMs {
			err := tx.View(info.ID, func(h *state.HSMTx) error {
				counter += h.Meta.Seq
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	tx.Rand = newRand(cl.Seed, counter, purpose)
	tx.OpID = tx.Rand.ID("op-")
	return nil
}

// lockCluster takes the state lock and reads the cluster as it is now.
func (c *Client) lockCluster() (*state.Cluster, func(), error) {
	unlock, err := c.Store.Lock(c.opts.LockWait, c.opts.Who, c.opts.Waiting)
	if err != nil {
		return nil, nil, &TroubleError{Err: err, Fix: "retry when the other command is done; HSM_LOCK_TIMEOUT sets the wait"}
	}
	cl, err := c.Store.LoadCluster()
	if err == nil {
		err = checkClock(c.Store.Dir, cl)
	}
	if err != nil {
		unlock()
		return nil, nil, &TroubleError{Err: err}
	}
	c.Cluster = cl
	return cl, unlock, nil
}

// isTrouble says whether err is a config or state problem rather than a
// refusal: the engine's own, or a corrupt or foreign state file.
func isTrouble(err error) bool {
	var t *TroubleError
	var c *state.CorruptError
	var s *state.SchemaError
	return errors.As(err, &t) || errors.As(err, &c) || errors.As(err, &s)
}

// keepErr marks an error after which the HSM's changes must still be
// written: a failed login counts toward lockout.
type keepErr struct{ error }

func (e keepErr) Unwrap() error { return e.error }

// combine reports per-HSM errors: one message when every HSM said the same.
func combine(ids []string, errs []error) error {
	var first error
	same := true
	for _, e := range errs {
		if e == nil {
			same = false
			continue
		}
		if first == nil {
			first = e
		} else if e.Error() != first.Error() {
			same = false
		}
	}
	if same {
		var keep keepErr
		if errors.As(first, &keep) {
			return keep.error
		}
		return first
	}
	var parts []string
	someOK := false
	for i, e := range errs {
		if e != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", ids[i], e))
		} else {
			someOK = true
		}
	}
	if !someOK {
		return errors.New(strings.Join(parts, "; "))
	}
	return &DriftError{Msg: strings.Join(parts, "; ")}
}

// DriftError is a refusal that differs between HSMs: the cluster is out of sync.
type DriftError struct{ Msg string }

func (e *DriftError) Error() string {
	return "refused on some HSMs, so nothing was changed: " + e.Msg
}

// Hint points at the repair.
func (e *DriftError) Hint() string {
	return "the HSMs disagree: hsm-sync diff shows the drift; --allow-partial acts where it can"
}

// reachable lists the running HSMs of the cluster, with warnings for those
// a read cannot show and for a stale client config.
func (c *Client) reachable(cl *state.Cluster) (ids, warnings []string, err error) {
	for _, info := range cl.HSMs {
		if info.Status != state.Running {
			warnings = append(warnings, fmt.Sprintf("HSM %s is unreachable; not shown", info.ID))
			continue
		}
		ids = append(ids, info.ID)
		if !c.Config.Lists(info.ID) {
			warnings = append(warnings, fmt.Sprintf("the client config %s does not list HSM %s (hsm-sync config --refresh)", c.Config.Path, info.ID))
		}
	}
	for _, ch := range c.Config.HSMs {
		if c.hsmInfo(cl, ch.ID) == nil {
			warnings = append(warnings, fmt.Sprintf("the client config %s lists HSM %s, which cluster %s does not have", c.Config.Path, ch.ID, cl.ID))
		}
	}
	if len(ids) == 0 {
		return nil, warnings, trouble("hsm-sim start ID", "no reachable HSM in cluster %s", cl.ID)
	}
	return ids, warnings, nil
}

func loggedIn(h *state.HSMTx, name string) (bool, error) {
	ss, err := h.Sessions()
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ss, func(s state.Session) bool { return s.User == name }), nil
}

// touch records a user management change on the record, and its
// provenance: what kind of change, and how many approved it (the caller
// alone counts one when no quorum token was needed).
func (tx *Tx) touch(h *state.HSMTx, u *state.User, kind string) {
	u.Changed = tx.Now
	u.Seq = h.Meta.Seq + 1
	u.Op = tx.OpID
	u.Kind = kind
	u.Approvals = tx.approvalsOn(h)
}

// approvalsOn is how many approved the operation on h: its quorum
// token's approvers, or 1, the caller alone.
func (tx *Tx) approvalsOn(h *state.HSMTx) int {
	return max(1, tx.approvals[h.ID()])
}

// read runs fn on every reachable HSM of the cluster under the lock, so
// what it shows is one moment of the cluster.
func (c *Client) read(auth Authenticator, perm policy.Op, fn func(cl *state.Cluster, hsms []*state.HSMTx) error) (warnings []string, err error) {
	_, err = c.run(op{name: "read", scope: scopeCluster, perm: perm, auth: auth,
		whole: func(tx *Tx, _ Principal) error {
			ids, w, err := c.reachable(tx.Cluster)
			warnings = w
			if err != nil {
				return err
			}
			hsms := make([]*state.HSMTx, 0, len(ids))
			defer func() {
				for _, h := range hsms {
					h.Rollback()
				}
			}()
			for _, id := range ids {
				h, err := c.Store.Begin(id, false)
				if err != nil {
					return &TroubleError{Err: err}
				}
				hsms = append(hsms, h)
			}
			return fn(tx.Cluster, hsms)
		}})
	return warnings, err
}
