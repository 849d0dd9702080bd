package hsm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/simclock"
	"github.com/hsmkit/hsmkit/internal/state"
)

// TestClusterClock: the engine's time is the cluster's clock, and a change
// made by hsm-sim (another client) is seen by the next operation under the
// lock, not the time this client opened with.
func TestClusterClock(t *testing.T) {
	c := newTestCluster(t, 2, false)
	other, err := OpenConfig(c.Config, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Now().Equal(testNow) {
		t.Fatalf("Now() = %v, want the cluster's fixed %v", c.Now(), testNow)
	}
	later := testNow.Add(time.Hour)
	if got, err := other.SetClock(simclock.Fixed, later); err != nil || !got.At.Equal(later) {
		t.Fatalf("SetClock: %+v, %v", got, err)
	}
	if _, err := c.ListHSMs(Nobody{}); err != nil { // any read under the lock
		t.Fatal(err)
	}
	if !c.Now().Equal(later) {
		t.Fatalf("after the lock, Now() = %v, want %v", c.Now(), later)
	}

	if got, err := other.AdvanceClock(601 * time.Second); err != nil || !got.At.Equal(later.Add(601*time.Second)) {
		t.Fatalf("AdvanceClock: %+v, %v", got, err)
	}
	// Backwards is allowed: hsm-sim owns the cluster.
	if _, err := other.SetClock(simclock.Fixed, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := other.AdvanceClock(0); err == nil {
		t.Fatal("AdvanceClock(0) accepted")
	}
	if _, err := other.SetClock(simclock.Fixed, simclock.Max.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.AdvanceClock(48 * time.Hour); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("AdvanceClock past 9999: %v", err)
	}

	if _, err := other.SetClock(simclock.Real, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := other.AdvanceClock(time.Minute); err == nil || !strings.Contains(err.Error(), "real") {
		t.Fatalf("AdvanceClock on a real clock: %v", err)
	}
	if _, err := c.ListHSMs(Nobody{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(c.Now()); d < 0 || d > time.Minute {
		t.Fatalf("real clock: Now() = %v", c.Now())
	}
	if _, err := other.SetClock("sundial", testNow); err == nil {
		t.Fatal(`SetClock("sundial") accepted`)
	}
	if _, err := other.SetClock(simclock.Fixed, time.Time{}); err == nil {
		t.Fatal("SetClock before 1970 accepted")
	}
}

// TestBadStoredClock: a malformed clock in cluster.json is a state
// problem, not a time to guess.
func TestBadStoredClock(t *testing.T) {
	c := newTestCluster(t, 1, false)
	cl, err := c.Store.LoadCluster()
	if err != nil {
		t.Fatal(err)
	}
	cl.Clock = &simclock.Clock{Mode: "sundial"}
	if err := c.Store.SaveCluster(cl); err != nil {
		t.Fatal(err)
	}
	var te *TroubleError
	if _, err := OpenConfig(c.Config, Options{}); err == nil || !strings.Contains(err.Error(), "cluster.json: clock:") {
		t.Fatalf("OpenConfig: %v", err)
	} else if !errors.As(err, &te) {
		t.Fatalf("OpenConfig: %T, want a TroubleError", err)
	}
	if _, err := c.ListHSMs(Nobody{}); err == nil || !strings.Contains(err.Error(), "cluster.json: clock:") {
		t.Fatalf("under the lock: %v", err)
	}
}

// TestInitClock: a nil clock is stored as real; a bad one creates nothing.
func TestInitClock(t *testing.T) {
	dir := t.TempDir()
	_, cl, err := Init(InitOptions{StateDir: dir + "/st", ConfigPath: dir + "/cluster.yaml", HSMs: 1, KDF: TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Clock == nil || cl.Clock.Mode != simclock.Real || time.Since(cl.Created) > time.Minute {
		t.Fatalf("default clock %+v, created %v", cl.Clock, cl.Created)
	}
	_, _, err = Init(InitOptions{StateDir: dir + "/st2", ConfigPath: dir + "/c2.yaml", HSMs: 1, KDF: TestKDF, Clock: &simclock.Clock{Mode: "sundial"}})
	if err == nil {
		t.Fatal("Init with a bad clock succeeded")
	}
	if _, err := state.Open(dir + "/st2"); err == nil {
		t.Fatal("Init with a bad clock left a state behind")
	}
}
