// Package simclock is the simulated cluster's clock. It is stored with the
// cluster (cluster.json) and set only by hsm-sim, the simulated AWS side:
// a client that could pick its own time could revive an expired quorum
// token or win a recency tie in an hsm-sync repair.
package simclock

import (
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"
)

// The clock's modes.
const (
	Real  = "real"  // the wall clock
	Fixed = "fixed" // stands still at At until set or advanced
)

// Clock is the time the cluster shows.
type Clock struct {
	Mode string    `json:"mode"`        // Real or Fixed
	At   time.Time `json:"at,omitzero"` // Fixed: the time it shows
}

// The range of times a clock may show: RFC 3339's four-digit years, and
// nothing before the Unix epoch, which no real HSM would show either.
var (
	Min = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	Max = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// MaxAdvance is the longest step ParseAdvance accepts: long enough for any
// timeout, short enough that a typo (48000h) is caught.
const MaxAdvance = 10 * 365 * 24 * time.Hour

// Example is shown in errors about a bad time.
const Example = "2026-01-01T00:00:00Z"

// Now is the time the clock shows, in UTC. A nil clock (a cluster made
// before clocks were stored) is the wall clock.
func (c *Clock) Now() time.Time {
	if c == nil || c.Mode != Fixed {
		return time.Now().UTC()
	}
	return c.At.UTC()
}

// Validate checks a clock read from the state or about to be stored.
func (c *Clock) Validate() error {
	if c == nil {
		return nil
	}
	switch c.Mode {
	case Real:
		if !c.At.IsZero() {
			return errors.New("a real clock has no fixed time")
		}
		return nil
	case Fixed:
		return InRange(c.At)
	}
	return fmt.Errorf("clock mode %q: want %s or %s", c.Mode, Real, Fixed)
}

// InRange refuses a time outside Min..Max.
func InRange(t time.Time) error {
	if t.Before(Min) || t.After(Max) {
		return fmt.Errorf("%s is out of range: the clock shows times from %s to %s",
			t.UTC().Format(time.RFC3339Nano), Min.Format(time.RFC3339), Max.Format(time.RFC3339))
	}
	return nil
}

var (
	digits   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]+$`) })
	dateOnly = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`) })
	noZone   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9:.]+$`) })
	// rfc3339 is the one spelling accepted: upper-case T and Z, at most
	// nanoseconds, a zone; time.Parse alone also takes a comma before the
	// fraction and lower-case letters.
	rfc3339 = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)
	})
)

// Parse reads a time: strict RFC 3339 with a time zone, such as
// 2026-01-01T00:00:00Z, returned in UTC. Bare dates and Unix seconds are
// refused rather than guessed at (HSM_NOW=2026-06-01 once meant 1970).
func Parse(s string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("%q: %swant an RFC 3339 time with a time zone, such as %s", s, why, Example)
	}
	switch {
	case digits().MatchString(s):
		return bad("Unix seconds are not accepted; ")
	case dateOnly().MatchString(s):
		return bad("a date alone is not a time; ")
	case noZone().MatchString(s):
		return bad("no time zone; ")
	}
	if !rfc3339().MatchString(s) {
		return bad("")
	}
	// The shape is right; time.Parse checks the ranges (month 13, 25:00).
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return bad("")
	}
	t = t.UTC()
	if err := InRange(t); err != nil {
		return time.Time{}, fmt.Errorf("%q: %v", s, err)
	}
	return t, nil
}

// ParseAdvance reads how far to move a fixed clock: a Go duration such as
// 90s, 10m or 48h, positive and at most MaxAdvance.
func ParseAdvance(s string) (time.Duration, error) {
	const want = "want a positive duration such as 90s, 10m or 48h"
	// No sign and no bare number: ParseDuration takes "+5m" and "0".
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, fmt.Errorf("%q: %s", s, want)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: %s", s, want)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: %s", s, want)
	}
	if d > MaxAdvance {
		return 0, fmt.Errorf("%q: at most %s (10 years) at a time", s, MaxAdvance)
	}
	return d, nil
}
