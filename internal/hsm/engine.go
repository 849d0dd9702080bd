// Package hsm is the HSM engine: the simulated cluster's users, sessions,
// lockout and tokens, one method per operation. Every operation, whatever
// command asks for it, runs through one transaction path (tx.go): take the
// lock, load, resolve the caller from each HSM's current records, ask the
// permission table (package policy), run, commit each HSM it changed. See
// docs/design.md, "The engine".
package hsm

import (
	"errors"
	"fmt"
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
	// Waiting is told, once, when the lock has been waited for a second.
	Waiting func(msg string)
	Who     string // shown to others waiting for the lock
	Policy  *policy.Table
	// NoKeyAvailabilityCheck lets a token key held by one HSM be used
	// (SDK 5's --disable-key-availability-check).
	NoKeyAvailabilityCheck bool
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
	st, err := state.Open(cfg.StateDir())
	if err != nil {
		return nil, &TroubleError{Err: fmt.Errorf("%s: state %s: %w", cfg.Path, cfg.StateDir(), notFound(err))}
	}
	cl, err := st.LoadCluster()
	if err == nil && cl.State == state.Deleted {
		return nil, &TroubleError{Err: fmt.Errorf("%s: cluster %s was deleted (hsm-sim delete-cluster): %w", cfg.Path, cl.ID, ErrClusterNotFound),
			Fix: "create a cluster from a backup (hsm-sim init --from-backup FILE) and point the client at it"}
	}
	if err == nil {
		err = checkClock(cfg.StateDir(), cl) // the client's clock is cl.Clock (Client.now)
	}
	if err != nil {
		return nil, &TroubleError{Err: notFound(err)}
	}
	if opts.Policy == nil {
		// The cluster names its profile (docs/design.md, "Adding a role
		// profile"); the engine asks that table and no other.
		if opts.Policy, err = policy.ByName(cl.Profile); err != nil {
			return nil, &TroubleError{Err: fmt.Errorf("%s: %w", cfg.StateDir(), err)}
		}
	}
	if cl.ID != cfg.Cluster {
		return nil, trouble("fix the cluster or state key of "+cfg.Path,
			"%s: names cluster %s but the state at %s holds cluster %s", cfg.Path, cfg.Cluster, cfg.StateDir(), cl.ID)
	}
	return &Client{Config: cfg, Store: st, Cluster: cl, opts: opts}, nil
}

// notFound marks a state directory that holds no cluster as
// ErrClusterNotFound too.
func notFound(err error) error {
	if errors.Is(err, state.ErrNoState) {
		return &notFoundError{err}
	}
	return err
}

type notFoundError struct{ error }

func (e *notFoundError) Unwrap() []error { return []error{e.error, ErrClusterNotFound} }

// Now is the simulated time: the cluster's clock.
func (c *Client) Now() time.Time { return c.now() }

// Policy is the permission table in force.
func (c *Client) Policy() *policy.Table { return c.opts.Policy }

// Targeting says which HSMs a mutating command acts on.
type Targeting struct {
	AllowPartial bool   // act on the reachable listed HSMs even if others are missed
	Server       string // act on this one HSM only (CMU's server mode; docs/design.md, "The repair story")
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

// OK lists the HSMs where the operation succeeded: none when r is nil
// (an operation refused before it ran).
func (r *Result) OK() []string {
	if r == nil {
		return nil
	}
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

// DisableKeyAvailabilityCheck lets this client use a token key that only
// one HSM holds (docs/design.md, "Keys").
func (c *Client) DisableKeyAvailabilityCheck() { c.opts.NoKeyAvailabilityCheck = true }
