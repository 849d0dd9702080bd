package hsm

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/simclock"
	"github.com/hsmkit/hsmkit/internal/state"
)

// The simulated time is the cluster's business, not the client's: it
// lives in cluster.json and only hsm-sim (the AWS side) changes it, so no
// client can revive an expired token or win a recency tie in a repair.

// now is the cluster's clock as last read: lockCluster re-reads the
// cluster, so an operation under the lock sees the clock hsm-sim last set.
// Options.Now overrides it for in-process tests.
func (c *Client) now() time.Time {
	if c.opts.Now != nil {
		return c.opts.Now()
	}
	return c.Cluster.Clock.Now()
}

// checkClock refuses a cluster.json whose clock is malformed (hand-edited,
// or from a newer build) rather than guess a time.
func checkClock(stateDir string, cl *state.Cluster) error {
	if err := cl.Clock.Validate(); err != nil {
		return fmt.Errorf("%s: clock: %w", filepath.Join(stateDir, "cluster.json"), err)
	}
	return nil
}

// initClock is the clock a new cluster starts with: a copy of c, real when
// nil.
func initClock(c *simclock.Clock) (*simclock.Clock, error) {
	if c == nil {
		return &simclock.Clock{Mode: simclock.Real}, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cp := *c
	cp.At = cp.At.UTC()
	return &cp, nil
}

// ClusterClock reads the cluster's clock under the lock.
func (c *Client) ClusterClock() (simclock.Clock, error) {
	var out simclock.Clock
	_, err := c.run(op{name: "clock-show", scope: scopeCluster, perm: policy.ClusterInfo, auth: Account{},
		whole: func(tx *Tx, _ Principal) error {
			out = clockOf(tx.Cluster)
			return nil
		}})
	return out, err
}

// SetClock sets the cluster's clock: fixed at at, or real (at is then
// ignored). Any time may be set, backwards too: whoever runs hsm-sim owns
// the simulated cluster, as AWS owns a real one.
func (c *Client) SetClock(mode string, at time.Time) (simclock.Clock, error) {
	next := simclock.Clock{Mode: mode}
	if mode == simclock.Fixed {
		next.At = at.UTC()
	}
	if err := next.Validate(); err != nil {
		return simclock.Clock{}, err
	}
	_, err := c.run(op{name: "clock-set", scope: scopeCluster, perm: policy.SetClock, auth: Account{}, write: true,
		whole: func(tx *Tx, _ Principal) error {
			tx.Cluster.Clock = &next
			tx.ClusterChanged()
			return nil
		}})
	return next, err
}

// AdvanceClock moves a fixed clock forward by d. A real clock is refused:
// it moves by itself, and turning it into a fixed one here would be a
// surprise.
func (c *Client) AdvanceClock(d time.Duration) (simclock.Clock, error) {
	var next simclock.Clock
	_, err := c.run(op{name: "clock-advance", scope: scopeCluster, perm: policy.SetClock, auth: Account{}, write: true,
		whole: func(tx *Tx, _ Principal) error {
			cl := tx.Cluster
			cur := clockOf(cl)
			if cur.Mode != simclock.Fixed {
				return fmt.Errorf("the clock of cluster %s is real (the wall clock), which advances by itself; only a fixed clock is advanced: hsm-sim clock set TIME first", cl.ID)
			}
			if d <= 0 {
				return fmt.Errorf("advance by %s: the clock only moves forward (hsm-sim clock set TIME sets any time)", d)
			}
			next = simclock.Clock{Mode: simclock.Fixed, At: cur.At.Add(d)}
			if err := next.Validate(); err != nil {
				return fmt.Errorf("advance by %s: %w", d, err)
			}
			cl.Clock = &next
			tx.ClusterChanged()
			return nil
		}})
	return next, err
}

// clockOf is the cluster's clock, real when none is stored.
func clockOf(cl *state.Cluster) simclock.Clock {
	if cl.Clock == nil {
		return simclock.Clock{Mode: simclock.Real}
	}
	return *cl.Clock
}
