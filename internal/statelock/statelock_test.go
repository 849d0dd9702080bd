//go:build unix

package statelock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Helper processes: the test binary re-executed with these set.
const (
	envMode  = "HSMKIT_STATELOCK_HELPER" // "hold": acquire, say "held", block
	envDir   = "HSMKIT_STATELOCK_DIR"
	envWho   = "HSMKIT_STATELOCK_WHO"
	envCrash = "HSMKIT_STATELOCK_CRASH" // SIGKILL itself at this step
)

// TestHelperProcess is not a test: it is the child of the kill tests.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(envMode) != "hold" {
		t.Skip("helper process only")
	}
	if step := os.Getenv(envCrash); step != "" {
		testHook = func(s string) {
			if s == step {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
	_, err := Acquire(os.Getenv(envDir), time.Minute, os.Getenv(envWho), time.Hour, nil)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("held")
	// Block until killed; the parent owns our lifetime.
	for {
		time.Sleep(time.Hour)
	}
}

type child struct {
	cmd  *exec.Cmd
	out  *bufio.Reader
	done chan error
}

// startChild runs a helper that acquires dir's lock as who, dying at crash
// if that is not empty.
func startChild(t *testing.T, dir, who, crash string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envMode+"=hold", envDir+"="+dir, envWho+"="+who, envCrash+"="+crash)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, out: bufio.NewReader(stdout), done: make(chan error, 1)}
	t.Cleanup(func() { c.kill(t) })
	return c
}

// waitHeld reads the child's "held" line.
func (c *child) waitHeld(t *testing.T) {
	t.Helper()
	line, err := c.out.ReadString('\n')
	if strings.TrimSpace(line) != "held" {
		t.Fatalf("child said %q, %v; want held", line, err)
	}
}

// kill sends SIGKILL and reaps the child, so its flocks are gone after.
func (c *child) kill(t *testing.T) {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_, _ = c.out.WriteTo(devNull{}) // drain so Wait does not block on the pipe
	_ = c.cmd.Wait()
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

func newDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustAcquire(t testing.TB, dir, who string) func() {
	t.Helper()
	rel, err := Acquire(dir, 30*time.Second, who, time.Hour, nil)
	if err != nil {
		t.Fatalf("Acquire %s: %v", who, err)
	}
	return rel
}

// ticketOf finds the ticket of who in the queue directory if its owner
// holds it (a shared probe fails), or 0.
func ticketOf(dir, who string) uint64 {
	q := filepath.Join(dir, queueName)
	names, _ := os.ReadDir(q)
	for _, e := range names {
		tk, ok := parseTicket(e.Name())
		if !ok {
			continue
		}
		f, err := os.Open(filepath.Join(q, e.Name()))
		if err != nil {
			continue
		}
		buf := make([]byte, readMax)
		n, _ := f.Read(buf)
		live := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil
		f.Close()
		if live && strings.Contains(string(buf[:n]), "("+who+")\n") {
			return tk
		}
	}
	return 0
}

// waitQueued observes the queue files until who holds a ticket: from then
// on its place in line is fixed. It fails rather than hang.
func waitQueued(t *testing.T, dir, who string) uint64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if tk := ticketOf(dir, who); tk != 0 {
			return tk
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed up in the queue", who)
		}
		time.Sleep(200 * time.Microsecond) // polling the files, not waiting blind
	}
}

// queueFiles lists the queue directory.
func queueFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, queueName))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestMutualExclusion: goroutines, each with its own descriptors and so a
// process as far as flock is concerned, increment a counter file by read,
// modify, write. A lost update or two holders at once fails.
func TestMutualExclusion(t *testing.T) {
	dir := newDir(t)
	path := filepath.Join(dir, "count")
	if err := os.WriteFile(path, []byte("0"), 0o600); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 40
	var inside atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*3)
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				rel, err := Acquire(dir, time.Minute, fmt.Sprintf("w%d", w), time.Hour, nil)
				if err != nil {
					errs <- err
					return
				}
				if n := inside.Add(1); n != 1 {
					errs <- fmt.Errorf("%d holders at once", n)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					errs <- err
				}
				n, _ := strconv.Atoi(string(b))
				// Widen the window a lost update needs.
				for range 3 {
					_, _ = os.Stat(path)
				}
				if err := os.WriteFile(path, []byte(strconv.Itoa(n+1)), 0o600); err != nil {
					errs <- err
				}
				inside.Add(-1)
				rel()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != strconv.Itoa(workers*rounds) {
		t.Fatalf("count %s, want %d", b, workers*rounds)
	}
	// The queue does not grow with use: the counter and the last ticket.
	if names := queueFiles(t, dir); len(names) > 2 {
		t.Errorf("queue directory holds %v after all released", names)
	}
}

// startWaiters starts waiters one after another, each only once the one
// before is observed queued, and returns the order they got the lock in.
func startWaiters(t *testing.T, dir string, whos []string) (order chan string, errs chan error, wg *sync.WaitGroup) {
	order = make(chan string, len(whos))
	errs = make(chan error, len(whos))
	wg = &sync.WaitGroup{}
	for _, who := range whos {
		wg.Go(func() {
			rel, err := Acquire(dir, 20*time.Second, who, time.Hour, nil)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", who, err)
				return
			}
			order <- who // sent while holding: the send order is the lock order
			rel()
		})
		waitQueued(t, dir, who)
	}
	return order, errs, wg
}

func checkOrder(t *testing.T, order chan string, errs chan error, wg *sync.WaitGroup, want []string) {
	t.Helper()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	close(order)
	var got []string
	for w := range order {
		got = append(got, w)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("lock order %v, want %v", got, want)
	}
}

// TestFIFO: waiters get the lock in the order they queued.
func TestFIFO(t *testing.T) {
	dir := newDir(t)
	whos := []string{"W1", "W2", "W3", "W4", "W5"}
	for round := range 8 {
		rel := mustAcquire(t, dir, "H")
		order, errs, wg := startWaiters(t, dir, whos)
		rel()
		checkOrder(t, order, errs, wg, whos)
		if names := queueFiles(t, dir); len(names) > 2 {
			t.Fatalf("round %d: queue directory holds %v after all released", round, names)
		}
	}
}

// TestKillHolder: a holder killed with SIGKILL does not keep the lock, and
// the waiters queued behind it get it in order.
func TestKillHolder(t *testing.T) {
	dir := newDir(t)
	c := startChild(t, dir, "child", "")
	c.waitHeld(t)
	holder := fmt.Sprintf("pid %d (child)", c.cmd.Process.Pid)
	if _, err := Acquire(dir, 10*time.Millisecond, "probe", time.Hour, nil); err == nil {
		t.Fatal("acquired while the child holds the lock")
	} else if le := (*LockedError)(nil); !errors.As(err, &le) || le.Holder != holder {
		t.Fatalf("err %v, want locked by %s", err, holder)
	}
	order, errs, wg := startWaiters(t, dir, []string{"W1", "W2", "W3"})
	c.kill(t)
	checkOrder(t, order, errs, wg, []string{"W1", "W2", "W3"})
	mustAcquire(t, dir, "after")()
}

// TestKillQueued: a waiter killed while queued does not break the chain:
// those behind it still get the lock, in order.
func TestKillQueued(t *testing.T) {
	dir := newDir(t)
	for _, pos := range []string{"first", "middle", "last"} {
		t.Run(pos, func(t *testing.T) {
			rel := mustAcquire(t, dir, "H")
			var before, after []string
			switch pos {
			case "middle":
				before = []string{"W1"}
				after = []string{"W2", "W3"}
			case "first":
				after = []string{"W1", "W2"}
			case "last":
				before = []string{"W1", "W2"}
			}
			o1, e1, g1 := startWaiters(t, dir, before)
			c := startChild(t, dir, "victim", "")
			waitQueued(t, dir, "victim")
			o2, e2, g2 := startWaiters(t, dir, after)
			c.kill(t)
			rel()
			checkOrder(t, o1, e1, g1, before)
			checkOrder(t, o2, e2, g2, after)
			mustAcquire(t, dir, "after")()
		})
	}
}

// TestKillAtEveryStep: a process killed between any two steps of Acquire
// leaves the queue usable: the next ones get the lock at once and in order,
// and leftovers are cleaned up. Each step is tried with the lock free and
// with the victim queued behind a holder and in front of two waiters.
func TestKillAtEveryStep(t *testing.T) {
	dir := newDir(t)
	// Up to counter-written the victim dies before it waits for anyone;
	// from walked on it dies once its turn has come.
	early := []string{"counter-locked", "ticket-created", "ticket-locked", "counter-written"}
	late := []string{"walked", "marked", "locked"}
	died := func(t *testing.T, c *child, step string) {
		t.Helper()
		err := c.cmd.Wait()
		ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child did not die at %s: %v", step, err)
		}
	}
	for _, step := range append(early, late...) {
		t.Run(step, func(t *testing.T) {
			// Free lock.
			c := startChild(t, dir, "victim", step)
			died(t, c, step)
			r, err := Acquire(dir, 5*time.Second, "next", time.Hour, nil)
			if err != nil {
				t.Fatalf("after a death at %s: %v", step, err)
			}
			r()

			// Queued behind H, in front of W1 and W2.
			rel := mustAcquire(t, dir, "H")
			c = startChild(t, dir, "victim", step)
			if slices.Contains(early, step) {
				died(t, c, step)
			} else {
				waitQueued(t, dir, "victim")
			}
			order, errs, wg := startWaiters(t, dir, []string{"W1", "W2"})
			rel()
			if !slices.Contains(early, step) {
				died(t, c, step)
			}
			checkOrder(t, order, errs, wg, []string{"W1", "W2"})
		})
	}
	// Sweeps bound the leftovers: a few more rounds clear them all.
	for range sweepEvery {
		mustAcquire(t, dir, "tidy")()
	}
	if names := queueFiles(t, dir); len(names) > 2 {
		t.Errorf("queue directory holds %v", names)
	}
}

// TestNotify: notify is called once, after notifyAfter, naming the holder
// and counting those ahead; when the wait runs out Acquire fails with a
// LockedError in state.LockedError's format.
func TestNotify(t *testing.T) {
	dir := newDir(t)
	rel := mustAcquire(t, dir, "hsm-user create")
	holder := fmt.Sprintf("pid %d (hsm-user create)", os.Getpid())

	order, errs, wg := startWaiters(t, dir, []string{"W1", "W2"})
	msgs := make(chan string, 10)
	var calls atomic.Int32
	got := make(chan error, 1)
	start := time.Now()
	go func() {
		r, err := Acquire(dir, time.Minute, "W3", 30*time.Millisecond, func(m string) {
			calls.Add(1)
			msgs <- m
		})
		if err == nil {
			r()
		}
		got <- err
	}()
	var msg string
	select {
	case msg = <-msgs:
	case <-time.After(20 * time.Second):
		t.Fatal("notify was not called")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("notify after %s, before notifyAfter", d)
	}
	if want := "waiting for the state lock held by " + holder + "; 2 ahead"; msg != want {
		t.Errorf("notify said %q, want %q", msg, want)
	}
	rel()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	checkOrder(t, order, errs, wg, []string{"W1", "W2"})
	if n := calls.Load(); n != 1 {
		t.Errorf("notify called %d times", n)
	}

	// No wait, no notice.
	r, err := Acquire(dir, time.Second, "free", 0, func(string) { t.Error("notified without waiting") })
	if err != nil {
		t.Fatal(err)
	}
	r()
}

func TestLockedError(t *testing.T) {
	dir := newDir(t)
	rel := mustAcquire(t, dir, "hsm-user create")
	holder := fmt.Sprintf("pid %d (hsm-user create)", os.Getpid())
	_, err := Acquire(dir, 40*time.Millisecond, "late", time.Hour, func(string) { t.Error("notified before notifyAfter") })
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("err %v, want a LockedError", err)
	}
	path := filepath.Join(dir, ".lock")
	if le.Holder != holder || le.Waited != 40*time.Millisecond || le.Path != path {
		t.Errorf("LockedError %+v", le)
	}
	if want := fmt.Sprintf("state is locked by %s (waited 40ms for %s)", holder, path); err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	// The one that gave up took its ticket file with it, and the queue
	// moves.
	hk := ticketOf(dir, "hsm-user create")
	if names := queueFiles(t, dir); len(names) != 2 || !slices.Contains(names, counterName) || !slices.Contains(names, ticketName(hk)) {
		t.Errorf("after giving up the queue holds %v, want only the counter and H's ticket %d", names, hk)
	}
	rel()
	mustAcquire(t, dir, "next")()
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf(".lock holds %q after release", b)
	}
}

// holdTicket makes ticket file t in dir's queue with state st and, if
// live, holds its flock as its owner would; it returns a release.
func holdTicket(t *testing.T, dir string, tk uint64, st string, live bool) func() {
	t.Helper()
	q := filepath.Join(dir, queueName)
	if err := os.MkdirAll(q, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(q, ticketName(tk)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%spid 1 (t%d)\n", st, tk)
	if !live {
		f.Close()
		return func() {}
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// TestWalkPastDead: a newcomer whose predecessor died or gave up while
// queued (its ticket unlocked and without "turn", or gone) keeps waiting for
// the live tickets below it; a ticket with "turn" ends the walk.
func TestWalkPastDead(t *testing.T) {
	for _, c := range []struct {
		name string
		pred string // state of ticket 3, "" for no file
	}{{"dead", stateWait}, {"empty", "-"}, {"gone", ""}} {
		t.Run(c.name, func(t *testing.T) {
			dir := newDir(t)
			holdTicket(t, dir, 1, stateTurn, false) // finished long ago
			rel := holdTicket(t, dir, 2, stateWait, true)
			switch c.pred {
			case "":
			case "-":
				holdTicket(t, dir, 3, "", false)
			default:
				holdTicket(t, dir, 3, c.pred, false)
			}
			counter := filepath.Join(dir, queueName, counterName)
			if err := os.WriteFile(counter, fmt.Appendf(nil, "%020d\n", 4), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Acquire(dir, 30*time.Millisecond, "newcomer", time.Hour, nil); err == nil {
				t.Fatal("got the lock past live ticket 2")
			}
			rel()
			mustAcquire(t, dir, "newcomer")()
		})
	}
	t.Run("turn", func(t *testing.T) {
		dir := newDir(t)
		// Ticket 2 is live but 3 had its turn, so 2 must be someone
		// outside the rules; the walk trusts 3 and stops there.
		defer holdTicket(t, dir, 2, stateWait, true)()
		holdTicket(t, dir, 3, stateTurn, false)
		counter := filepath.Join(dir, queueName, counterName)
		if err := os.WriteFile(counter, fmt.Appendf(nil, "%020d\n", 4), 0o600); err != nil {
			t.Fatal(err)
		}
		rel, err := Acquire(dir, 30*time.Millisecond, "newcomer", time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		rel()
	})
}

// TestSweep: files of finished tickets that no walk meets (below a ticket
// that had its turn) are swept by a later holder, and the sweep never
// touches a live ticket.
func TestSweep(t *testing.T) {
	dir := newDir(t)
	holdTicket(t, dir, 2, stateWait, false)
	holdTicket(t, dir, 3, stateTurn, false)
	holdTicket(t, dir, 4, stateTurn, false)
	counter := filepath.Join(dir, queueName, counterName)
	if err := os.WriteFile(counter, fmt.Appendf(nil, "%020d\n", 5), 0o600); err != nil {
		t.Fatal(err)
	}
	// Tickets above ours, as after a counter lowered by hand: a live one,
	// and an unlocked one, which might be one being created (made, not yet
	// locked) and so is not the sweep's to judge.
	defer holdTicket(t, dir, 1000, stateWait, true)()
	holdTicket(t, dir, 1001, "", false)
	for range sweepEvery {
		mustAcquire(t, dir, "x")()
	}
	names := queueFiles(t, dir)
	if slices.Contains(names, "2") || slices.Contains(names, "3") || !slices.Contains(names, "1000") || !slices.Contains(names, "1001") {
		t.Errorf("queue holds %v; want 2 and 3 swept, 1000 and 1001 kept", names)
	}
}

// TestGiveUpInMiddle: a waiter that times out between two others does not
// break the chain.
func TestGiveUpInMiddle(t *testing.T) {
	dir := newDir(t)
	rel := mustAcquire(t, dir, "H")
	o1, e1, g1 := startWaiters(t, dir, []string{"W1"})
	gaveUp := make(chan error, 1)
	go func() {
		_, err := Acquire(dir, 50*time.Millisecond, "quitter", time.Hour, nil)
		gaveUp <- err
	}()
	waitQueued(t, dir, "quitter")
	o2, e2, g2 := startWaiters(t, dir, []string{"W2", "W3"})
	if err := <-gaveUp; err == nil {
		t.Fatal("the quitter got the lock while H held it")
	}
	rel()
	checkOrder(t, o1, e1, g1, []string{"W1"})
	checkOrder(t, o2, e2, g2, []string{"W2", "W3"})
}

// TestRefuseSymlink: .lock as a symlink is refused and its target left as
// it was; so are other non-regular files and a symlinked queue directory.
func TestRefuseSymlink(t *testing.T) {
	dir := newDir(t)
	target := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(target, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, ".lock")); err != nil {
		t.Fatal(err)
	}
	_, err := Acquire(dir, time.Second, "x", time.Hour, nil)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("err %v, want a refusal", err)
	}
	b, _ := os.ReadFile(target)
	fi, _ := os.Stat(target)
	if string(b) != "keep me\n" || fi.Mode().Perm() != 0o644 {
		t.Errorf("target now %q, %v", b, fi.Mode())
	}
	if _, err := os.Lstat(filepath.Join(dir, queueName)); err == nil {
		t.Error("joined the queue before refusing .lock")
	}

	// A dangling symlink would be created through by O_CREAT without
	// O_NOFOLLOW.
	dir2 := newDir(t)
	missing := filepath.Join(t.TempDir(), "missing")
	if err := os.Symlink(missing, filepath.Join(dir2, ".lock")); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir2, time.Second, "x", time.Hour, nil); err == nil {
		t.Error("dangling symlink accepted")
	}
	if _, err := os.Lstat(missing); err == nil {
		t.Error("created the symlink's target")
	}

	dir3 := newDir(t)
	if err := syscall.Mkfifo(filepath.Join(dir3, ".lock"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir3, time.Second, "x", time.Hour, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO: err %v", err)
	}

	dir4 := newDir(t)
	if err := os.Symlink(t.TempDir(), filepath.Join(dir4, queueName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir4, time.Second, "x", time.Hour, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("symlinked queue: err %v", err)
	}
}

// TestCorruptCounter: a garbled, oversized or lowered counter is recovered
// from, and a lowered one does not let a newcomer past a live holder.
func TestCorruptCounter(t *testing.T) {
	dir := newDir(t)
	counter := filepath.Join(dir, queueName, counterName)
	mustAcquire(t, dir, "first")()
	for _, bad := range []string{"", "garbage", "-1\n", "00000000000000000000\n", "99999999999999999999\n", strings.Repeat("7", 1<<20)} {
		if err := os.WriteFile(counter, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		rel, err := Acquire(dir, time.Second, "after", time.Hour, nil)
		if err != nil {
			t.Fatalf("counter %.20q: %v", bad, err)
		}
		rel()
		b, _ := os.ReadFile(counter)
		if _, ok := readCounterBytes(b); !ok {
			t.Fatalf("counter %.20q left as %q", bad, b)
		}
	}

	// A counter garbled while others wait still gives the newcomer a
	// ticket after theirs.
	rel := mustAcquire(t, dir, "H")
	o, e, g := startWaiters(t, dir, []string{"W1"})
	if err := os.WriteFile(counter, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	o2, e2, g2 := startWaiters(t, dir, []string{"W2"})
	if w1, w2 := ticketOf(dir, "W1"), ticketOf(dir, "W2"); w2 <= w1 {
		t.Errorf("after the garbled counter W2 has ticket %d, not after W1's %d", w2, w1)
	}
	rel()
	checkOrder(t, o, e, g, []string{"W1"})
	checkOrder(t, o2, e2, g2, []string{"W2"})

	// Lower the counter onto the live holder's ticket.
	rel = mustAcquire(t, dir, "H")
	tk := ticketOf(dir, "H")
	if err := os.WriteFile(counter, fmt.Appendf(nil, "%020d\n", tk), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir, 30*time.Millisecond, "newcomer", time.Hour, nil); err == nil {
		t.Fatal("newcomer got the lock while H holds it")
	}
	rel()
	mustAcquire(t, dir, "newcomer")()
}

func readCounterBytes(b []byte) (uint64, bool) {
	f, err := os.CreateTemp("", "counter")
	if err != nil {
		return 0, false
	}
	defer os.Remove(f.Name())
	defer f.Close()
	f.Write(b)
	return readCounter(int(f.Fd()))
}

// TestModes: files 0600, directory 0700.
func TestModes(t *testing.T) {
	dir := newDir(t)
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	mustAcquire(t, dir, "x")()
	mustAcquire(t, dir, "y")()
	check := func(p string, want os.FileMode) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	check(filepath.Join(dir, ".lock"), 0o600)
	check(filepath.Join(dir, queueName), 0o700)
	for _, n := range queueFiles(t, dir) {
		check(filepath.Join(dir, queueName, n), 0o600)
	}
}

// TestReleaseIdempotent: a second release must not release someone else's
// lock (the descriptors are gone, not reused).
func TestReleaseIdempotent(t *testing.T) {
	dir := newDir(t)
	rel := mustAcquire(t, dir, "a")
	rel()
	rel2 := mustAcquire(t, dir, "b")
	rel()
	if _, err := Acquire(dir, 10*time.Millisecond, "c", time.Hour, nil); err == nil {
		t.Fatal("a's second release freed b's lock")
	}
	rel2()
}
