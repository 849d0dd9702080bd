// Package hsm is the HSM engine: the simulated cluster's users, sessions,
// lockout and tokens, one method per operation. Every operation asks the
// permission table (package policy) before it acts, and every write of an
// HSM is atomic (package state).
package hsm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/config"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// Options configure a Client.
type Options struct {
	Now      func() time.Time // overrides the cluster's clock, for in-process tests only
	LockWait time.Duration
	Who      string // shown to others waiting for the lock
	Policy   *policy.Table
}

// Client is one client's view of a cluster: its config and the state.
type Client struct {
	Config  *config.Config
	Store   *state.Store
	Cluster *state.Cluster
	opts    Options
}

// TroubleError is a config or state problem (exit 3), as opposed to a
// refused operation.
type TroubleError struct {
	Err error
	Fix string
}

func (e *TroubleError) Error() string { return e.Err.Error() }
func (e *TroubleError) Unwrap() error { return e.Err }

// ExitCode is the documented code for config and state problems.
func (e *TroubleError) ExitCode() int { return 3 }

// Hint says how to fix it.
func (e *TroubleError) Hint() string { return e.Fix }

func trouble(hint string, format string, a ...any) error {
	return &TroubleError{Err: fmt.Errorf(format, a...), Fix: hint}
}

// Open loads the client config and the state it points to.
func Open(configPath string, opts Options) (*Client, error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, &TroubleError{Err: err}
	}
	return OpenConfig(cfg, opts)
}

// OpenConfig opens the state of an already loaded config.
func OpenConfig(cfg *config.Config, opts Options) (*Client, error) {
	if opts.LockWait == 0 {
		opts.LockWait = 10 * time.Second
	}
	if opts.Policy == nil {
		opts.Policy = policy.CloudHSM
	}
	st, err := state.Open(cfg.StateDir())
	if err != nil {
		return nil, &TroubleError{Err: fmt.Errorf("%s: state %s: %w", cfg.Path, cfg.StateDir(), err)}
	}
	cl, err := st.LoadCluster()
	if err == nil {
		err = checkClock(cfg.StateDir(), cl) // the client's clock is cl.Clock (Client.now)
	}
	if err != nil {
		return nil, &TroubleError{Err: err}
	}
	if cl.ID != cfg.Cluster {
		return nil, trouble("fix the cluster or state key of "+cfg.Path,
			"%s: names cluster %s but the state at %s holds cluster %s", cfg.Path, cfg.Cluster, cfg.StateDir(), cl.ID)
	}
	return &Client{Config: cfg, Store: st, Cluster: cl, opts: opts}, nil
}

// Now is the simulated time: the cluster's clock.
func (c *Client) Now() time.Time { return c.now() }

// Policy is the permission table in force.
func (c *Client) Policy() *policy.Table { return c.opts.Policy }

// Targeting says which HSMs a mutating command acts on.
type Targeting struct {
	AllowPartial bool   // act on the reachable listed HSMs even if others are missed
	Server       string // act on this one HSM only (seed 003's server mode)
	// Only acts on these HSMs where reachable, without the config check
	// (logout: end the session wherever it was opened).
	Only []string
}

// Outcome is what happened on one HSM.
type Outcome struct {
	HSM    string
	Status string // "ok", "failed", "skipped"
	Err    error
}

// ErrGone is the outcome on an HSM that left the cluster (remove-hsm)
// after a session reached it: there is nothing left to act on.
var ErrGone = errors.New("no longer in the cluster")

// Result is the per-HSM report of a mutating command.
type Result struct {
	Outcomes []Outcome
}

// Partial says whether some HSM was skipped or failed.
func (r *Result) Partial() bool {
	for _, o := range r.Outcomes {
		if o.Status != "ok" {
			return true
		}
	}
	return false
}

// OK lists the HSMs where the operation succeeded.
func (r *Result) OK() []string {
	var ids []string
	for _, o := range r.Outcomes {
		if o.Status == "ok" {
			ids = append(ids, o.HSM)
		}
	}
	return ids
}

// PartialError is returned with a Result when --allow-partial let an
// operation reach only some HSMs.
type PartialError struct{ Result *Result }

func (e *PartialError) Error() string {
	var parts []string
	for _, o := range e.Result.Outcomes {
		if o.Status != "ok" {
			parts = append(parts, fmt.Sprintf("%s %s: %v", o.HSM, o.Status, o.Err))
		}
	}
	return fmt.Sprintf("done on %d of %d HSMs; %s", len(e.Result.OK()), len(e.Result.Outcomes), strings.Join(parts, "; "))
}

func (c *Client) hsmInfo(cl *state.Cluster, id string) *state.HSMInfo {
	for i := range cl.HSMs {
		if cl.HSMs[i].ID == id {
			return &cl.HSMs[i]
		}
	}
	return nil
}

// planTargets checks the config against the cluster and picks the HSMs to
// act on; skipped are the HSMs missed and why.
func (c *Client) planTargets(cl *state.Cluster, t Targeting) (targets []string, skipped []Outcome, err error) {
	if t.Only != nil {
		for _, id := range t.Only {
			h := c.hsmInfo(cl, id)
			switch {
			case h == nil:
				skipped = append(skipped, Outcome{HSM: id, Status: "skipped", Err: ErrGone})
			case h.Status != state.Running:
				skipped = append(skipped, Outcome{HSM: id, Status: "skipped", Err: errors.New("unreachable")})
			default:
				targets = append(targets, id)
			}
		}
		return targets, skipped, nil
	}
	if t.Server != "" {
		h := c.hsmInfo(cl, t.Server)
		if h == nil {
			return nil, nil, trouble("hsm-sim list shows the cluster's HSMs", "--server %s: no such HSM in cluster %s", t.Server, cl.ID)
		}
		if h.Status != state.Running {
			return nil, nil, trouble("hsm-sim start "+h.ID, "--server %s: HSM is unreachable", t.Server)
		}
		return []string{t.Server}, nil, nil
	}
	var missing, unknown, unreachable []string
	for _, h := range cl.HSMs {
		if !c.Config.Lists(h.ID) {
			missing = append(missing, h.ID)
			skipped = append(skipped, Outcome{HSM: h.ID, Status: "skipped", Err: errors.New("not in the client config")})
		}
	}
	for _, ch := range c.Config.HSMs {
		h := c.hsmInfo(cl, ch.ID)
		switch {
		case h == nil:
			unknown = append(unknown, ch.ID)
		case h.Status != state.Running:
			unreachable = append(unreachable, ch.ID)
			skipped = append(skipped, Outcome{HSM: h.ID, Status: "skipped", Err: errors.New("unreachable")})
		default:
			targets = append(targets, ch.ID)
		}
	}
	if t.AllowPartial {
		if len(targets) == 0 {
			return nil, nil, trouble("", "no reachable HSM to act on")
		}
		return targets, skipped, nil
	}
	var problems []string
	hint := "or use --allow-partial to act on the reachable listed HSMs only (leaves drift for hsm-sync)"
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("the client config %s does not list HSM(s) %s of cluster %s", c.Config.Path, strings.Join(missing, ", "), cl.ID))
		hint = "run hsm-sync config --refresh, " + hint
	}
	if len(unknown) > 0 {
		problems = append(problems, fmt.Sprintf("the client config %s lists HSM(s) %s that cluster %s does not have", c.Config.Path, strings.Join(unknown, ", "), cl.ID))
		if len(missing) == 0 {
			hint = "run hsm-sync config --refresh, " + hint
		}
	}
	if len(unreachable) > 0 {
		problems = append(problems, fmt.Sprintf("HSM(s) %s unreachable", strings.Join(unreachable, ", ")))
		hint = "wait for them to come back (hsm-sim start ID), " + hint
	}
	if len(problems) > 0 {
		return nil, nil, trouble(hint, "refusing to change anything: %s", strings.Join(problems, "; "))
	}
	return targets, nil, nil
}

// lockCluster takes the state lock and reads the cluster as it is now.
func (c *Client) lockCluster() (*state.Cluster, func(), error) {
	unlock, err := c.Store.Lock(c.opts.LockWait, c.opts.Who)
	if err != nil {
		return nil, nil, &TroubleError{Err: err, Fix: "retry when the other command is done; HSM_LOCK_TIMEOUT sets the wait"}
	}
	cl, err := c.Store.LoadCluster()
	if err == nil {
		err = checkClock(c.Config.StateDir(), cl) // and so the clock as hsm-sim last set it
	}
	if err != nil {
		unlock()
		return nil, nil, &TroubleError{Err: err}
	}
	c.Cluster = cl
	return cl, unlock, nil
}

// keepErr marks an error after which the HSM's changes must still be
// written: a failed login counts toward lockout.
type keepErr struct{ error }

func (e keepErr) Unwrap() error { return e.error }

// Tx is one operation in progress: the lock is held and the HSMs loaded.
type Tx struct {
	c       *Client
	Cluster *state.Cluster
	Now     time.Time
	Rand    *Rand
	OpID    string
	auth    Authenticator
	pwCache map[string]bool // hash digest + password check results, so one password costs one KDF run
	targets []string        // the HSMs this operation acts on
}

// mutate runs fn on each target HSM and writes each one atomically. Unless
// partial, it writes nothing when fn fails on any HSM (but keeps the
// changes fn asked to keep, such as login failure counts).
func (c *Client) mutate(t Targeting, auth Authenticator, purpose string, fn func(tx *Tx, h *state.HSM) error, beforeWrite ...func(tx *Tx) error) (*Result, error) {
	cl, unlock, err := c.lockCluster()
	if err != nil {
		return nil, err
	}
	defer unlock()
	targets, skipped, err := c.planTargets(cl, t)
	if err != nil {
		return nil, err
	}
	hsms := make([]*state.HSM, len(targets))
	var counter uint64
	for i, id := range targets {
		if hsms[i], err = c.Store.LoadHSM(id); err != nil {
			return nil, &TroubleError{Err: err}
		}
		counter += hsms[i].Seq
	}
	if cl.Seed != nil {
		// Every write anywhere moves the deterministic stream on, so the
		// HSMs outside the targets count too.
		for _, h := range cl.HSMs {
			if slices.Contains(targets, h.ID) {
				continue
			}
			if hh, err := c.Store.LoadHSM(h.ID); err == nil {
				counter += hh.Seq
			}
		}
	}
	tx := &Tx{c: c, Cluster: cl, Now: c.Now(), Rand: newRand(cl.Seed, counter, purpose), auth: auth, pwCache: map[string]bool{}, targets: targets}
	tx.OpID = tx.Rand.ID("op-")

	errs := make([]error, len(hsms))
	failed := false
	for i, h := range hsms {
		errs[i] = fn(tx, h)
		if errs[i] != nil {
			failed = true
		}
	}
	if !failed || t.AllowPartial {
		for _, bw := range beforeWrite {
			if err := bw(tx); err != nil {
				return nil, err
			}
		}
	}
	res := &Result{}
	for i, h := range hsms {
		var keep keepErr
		write := errs[i] == nil && (!failed || t.AllowPartial)
		if errs[i] != nil && errors.As(errs[i], &keep) {
			write = true
		}
		if write {
			if err := c.Store.SaveHSM(h); err != nil && errs[i] == nil {
				errs[i] = err
			}
		}
		o := Outcome{HSM: h.ID, Status: "ok"}
		if errs[i] != nil {
			o = Outcome{HSM: h.ID, Status: "failed", Err: errs[i]}
		} else if !write {
			o = Outcome{HSM: h.ID, Status: "not written", Err: errors.New("another HSM refused")}
		}
		res.Outcomes = append(res.Outcomes, o)
	}
	res.Outcomes = append(res.Outcomes, skipped...)
	if failed && !t.AllowPartial {
		return res, combine(targets, errs)
	}
	if res.Partial() {
		return res, &PartialError{Result: res}
	}
	return res, nil
}

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

// read runs fn on every reachable HSM of the cluster under the lock, so
// what it shows is one moment of the cluster.
func (c *Client) read(fn func(cl *state.Cluster, hsms []*state.HSM) error) (warnings []string, err error) {
	cl, unlock, err := c.lockCluster()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var hsms []*state.HSM
	for _, info := range cl.HSMs {
		if info.Status != state.Running {
			warnings = append(warnings, fmt.Sprintf("HSM %s is unreachable; not shown", info.ID))
			continue
		}
		h, err := c.Store.LoadHSM(info.ID)
		if err != nil {
			return nil, &TroubleError{Err: err}
		}
		hsms = append(hsms, h)
		if !c.Config.Lists(info.ID) {
			warnings = append(warnings, fmt.Sprintf("the client config %s does not list HSM %s (hsm-sync config --refresh)", c.Config.Path, info.ID))
		}
	}
	for _, ch := range c.Config.HSMs {
		if c.hsmInfo(cl, ch.ID) == nil {
			warnings = append(warnings, fmt.Sprintf("the client config %s lists HSM %s, which cluster %s does not have", c.Config.Path, ch.ID, cl.ID))
		}
	}
	if len(hsms) == 0 {
		return warnings, trouble("hsm-sim start ID", "no reachable HSM in cluster %s", cl.ID)
	}
	return warnings, fn(cl, hsms)
}

func findUser(h *state.HSM, name string) *state.User {
	for i := range h.Users {
		if h.Users[i].Name == name {
			return &h.Users[i]
		}
	}
	return nil
}

func loggedIn(h *state.HSM, name string) bool {
	return slices.ContainsFunc(h.Sessions, func(s state.Session) bool { return s.User == name })
}

// act says who acts on h and asks the permission table about op: the one
// gate every operation passes.
func (tx *Tx) act(h *state.HSM, op policy.Op) (Principal, error) {
	p, err := tx.auth.On(tx, h)
	if err != nil {
		return p, err
	}
	return p, tx.c.Policy().Check(p.Role, op)
}

// touch records a user management change on the record.
func (tx *Tx) touch(h *state.HSM, u *state.User) {
	u.Changed = tx.Now
	u.Seq = h.Seq + 1
	u.Op = tx.OpID
}
