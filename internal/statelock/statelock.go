//go:build unix

// Package statelock is the writer lock of a state directory, granted first
// come first served across processes.
//
// # Files
//
//	DIR/.lock           the mutex: an exclusive flock; the holder writes "pid N (who)"
//	DIR/.lockq/         the queue (0700)
//	DIR/.lockq/counter  the next ticket, "%020d\n"; flocked briefly to take a ticket
//	DIR/.lockq/T        ticket T (decimal): "wait\npid N (who)\n", "turn" once T's wait is over
//
// # Why two layers
//
// flock(2) alone is correct but not fair: when a lock is released every
// poller races for it, and a process that happens to poll at the wrong
// moments can lose for ever and time out ("state is locked") while later
// arrivals get through. So the order is decided by a ticket queue, and the
// mutual exclusion is still decided by the flock on DIR/.lock alone. Every
// path that takes the lock ends with that flock, so a queue that is
// damaged, deleted or bypassed (an older build that flocks .lock directly)
// can only cost fairness, never exclusion. .lock is never renamed over, so
// the lock stays on one inode, and it is opened with O_NOFOLLOW: a symlink
// or other non-regular file there is refused, not followed, because the
// holder truncates and writes it.
//
// # The queue: a chain of flocks (CLH/MCS style)
//
// Under the counter file's flock a process reads the counter, creates
// ticket file T with O_EXCL, flocks it exclusively and only then writes
// T+1 back. Because the ticket is locked before anyone can learn that it
// exists, a ticket that is not locked is a ticket whose owner has finished:
// released, given up or died. The kernel drops the flocks of a killed
// process, so death is just another way of finishing and a SIGKILL at any
// instant never wedges the queue.
//
// Process T then waits for its predecessor's flock. Only T waits on T-1,
// so there is no thundering herd and order is kept even though the wait is
// a poll: flock cannot be interrupted by a deadline, and a blocked flock in
// a helper thread could not be abandoned on timeout without leaking it.
// Once it has the predecessor's flock it reads that ticket: "turn" means the
// predecessor's own wait had ended, so everyone before it had finished too,
// and T may go on. A ticket without "turn" belonged to a process that gave
// up or died while queued; then T has not learned anything about the
// tickets below, and it goes on to wait for the next lower ticket that
// still exists, until it meets a "turn" or runs out of tickets. That is
// what makes abandonment and death while queued safe: the chain is
// re-joined around the missing link instead of being broken by it.
//
// Having waited, T writes "turn" into its own ticket and then takes the
// flock on .lock (normally free at once: the predecessor releases .lock
// before its ticket). Its ticket stays locked until release, so T+1 waits
// for the whole critical section.
//
// # Cleaning up
//
// A ticket file is removed only by a process holding its flock (the owner
// giving up, or a later ticket that acquired it): holding the flock proves
// that its owner has finished, so a live ticket is never removed and "no
// file" always means "finished". Each walker removes the tickets it waited
// for; a holder keeps its own file after release so that its successor can
// read the "turn" in it, and that successor removes it. Files left by
// processes killed at awkward moments are swept by the holder, under .lock,
// whenever its walk needed the slow path and every sweepEvery tickets
// otherwise; the sweep only touches tickets below the holder's own, which
// can only belong to finished processes. So the directory holds the
// counter, the current queue and a bounded number of leftovers.
//
// The counter is read with a bound and parsed strictly. If it is missing,
// garbled or names a ticket that already exists (a process killed between
// creating its ticket and writing the counter), the next ticket is
// recomputed from the largest ticket file present, so tickets keep growing
// and never collide with a live one. A counter that was lowered to a valid
// free number by hand could put a newcomer ahead of live waiters; that only
// costs fairness, for the reason above.
//
// All files are 0600, directories 0700, and every descriptor is close-on-
// exec: a flock inherited by a child process would outlive its owner.
//
// # Cost
//
// Uncontended, Acquire and release make about thirty system calls where a
// bare flock makes three (see BenchmarkAcquireRelease and
// BenchmarkBareFlock): tens of microseconds, against commands that fsync
// several files. Under contention a hand-over costs up to maxPoll of
// latency, the poll interval of the one waiter next in line.
//
// # Using it from state.Store
//
//	type LockedError = statelock.LockedError
//
//	func (s *Store) Lock(wait time.Duration, who string) (func(), error) {
//		unlock, err := statelock.Acquire(s.Dir, wait, who, time.Second,
//			func(m string) { fmt.Fprintln(os.Stderr, m) })
//		if err != nil {
//			return nil, err
//		}
//		s.sweepTemp()
//		return unlock, nil
//	}
//
// Processes of an older build that flock DIR/.lock directly still exclude
// and are excluded; they just do not queue.
package statelock

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// LockedError says who holds the lock when the wait ran out. It keeps the
// fields and message of state.LockedError so callers can switch over.
type LockedError struct {
	Path   string
	Holder string
	Waited time.Duration
}

func (e *LockedError) Error() string {
	h := e.Holder
	if h == "" {
		h = "another process"
	}
	return fmt.Sprintf("state is locked by %s (waited %s for %s)", h, e.Waited, e.Path)
}

const (
	lockName    = ".lock"
	queueName   = ".lockq"
	counterName = "counter"

	// counterLen is the fixed size of the counter: 20 digits and a newline.
	// A fixed size lets it be rewritten in place with one pwrite.
	counterLen = 21
	// maxTicket keeps ticket arithmetic far from overflow; at a million
	// locks a second it lasts 146000 years.
	maxTicket = 1 << 62
	// readMax bounds every read of a file that others can write.
	readMax = 512
	// whoMax bounds the "who" text written into files.
	whoMax = 200

	stateWait = "wait\n"
	stateTurn = "turn\n" // same length as stateWait: it is written over it

	// The predecessor is polled from minPoll, doubling to maxPoll: a
	// hand-over is usually quick, and a long wait should not burn CPU.
	minPoll = 20 * time.Microsecond
	maxPoll = time.Millisecond

	// sweepEvery bounds how long leftovers of killed processes that the
	// walks did not meet can linger.
	sweepEvery = 16
)

// testHook, when set by a test, is called at each step of Acquire; a
// helper process kills itself there to prove that dying between any two
// steps leaves the queue usable.
var testHook func(step string)

func hook(step string) {
	if testHook != nil {
		testHook(step)
	}
}

// Acquire takes the exclusive lock of a state directory, first come first
// served across processes. who is written for others to see, as
// "pid N (who)". If the wait passes notifyAfter, notify (when not nil) is
// called once, from this goroutine, with a message saying what it waits
// for. After wait it fails with *LockedError and leaves the queue as if it
// had never joined. release is idempotent.
func Acquire(dir string, wait time.Duration, who string, notifyAfter time.Duration, notify func(string)) (release func(), err error) {
	start := time.Now()
	a := &acquirer{
		dir:      dir,
		lockPath: filepath.Join(dir, lockName),
		line:     fmt.Sprintf("pid %d (%s)\n", os.Getpid(), cleanWho(who)),
		start:    start,
		wait:     wait,
		deadline: start.Add(wait),
		notifyAt: start.Add(notifyAfter),
		notify:   notify,
		dfd:      -1,
		qfd:      -1,
		lfd:      -1,
		tfd:      -1,
	}
	defer func() {
		if err != nil {
			a.abandon()
		}
	}()
	if err := a.open(); err != nil {
		return nil, err
	}
	if err := a.takeTicket(); err != nil {
		return nil, err
	}
	if err := a.walk(); err != nil {
		return nil, err
	}
	hook("walked")
	// Everyone before us has finished: say so, so that our successor can
	// stop its walk at our ticket even if we are killed from here on.
	if _, err := unix.Pwrite(a.tfd, []byte(stateTurn), 0); err != nil {
		return nil, a.errorf(a.ticketPath(a.ticket), err)
	}
	hook("marked")
	// The real mutex. Normally free at once; it is polled in case a
	// process outside the queue holds it or our predecessor's kernel
	// cleanup released the ticket first.
	if err := a.flockPoll(a.lfd); err != nil {
		return nil, err
	}
	hook("locked")
	// Write, then cut off whatever was longer. Not the other way round:
	// ext4 flushes a file truncated to zero and rewritten when it is
	// closed (auto_da_alloc), which costs a disk write per lock.
	if n, err := unix.Pwrite(a.lfd, []byte(a.line), 0); err == nil {
		_ = unix.Ftruncate(a.lfd, int64(n))
	}
	if a.sweepWant || a.ticket%sweepEvery == 0 {
		a.sweep()
	}
	// The directories are only needed to join the queue and clean it.
	closeFD(&a.qfd)
	closeFD(&a.dfd)
	var once sync.Once
	return func() {
		once.Do(func() {
			// Empty .lock so that nobody is named as the holder after we
			// leave (our line's page is discarded unwritten, so close has
			// nothing to flush), and release it before the ticket, so
			// that our successor finds it free.
			_ = unix.Ftruncate(a.lfd, 0)
			closeFD(&a.lfd)
			closeFD(&a.tfd)
		})
	}, nil
}

type acquirer struct {
	dir      string
	lockPath string
	line     string // "pid N (who)\n"

	start    time.Time
	wait     time.Duration
	deadline time.Time
	notifyAt time.Time
	notify   func(string)

	dfd, qfd, lfd, tfd int // DIR, DIR/.lockq, DIR/.lock, our ticket; -1 when closed
	ticket             uint64
	sweepWant          bool
}

func (a *acquirer) queuePath() string          { return filepath.Join(a.dir, queueName) }
func (a *acquirer) ticketPath(t uint64) string { return filepath.Join(a.queuePath(), ticketName(t)) }
func (a *acquirer) errorf(path string, err error) error {
	return fmt.Errorf("state lock: %s: %w", path, err)
}

func ticketName(t uint64) string { return strconv.FormatUint(t, 10) }

// parseTicket accepts only what ticketName produces.
func parseTicket(name string) (uint64, bool) {
	if len(name) == 0 || len(name) > 19 || (name[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	t, err := strconv.ParseUint(name, 10, 64)
	if err != nil || t > maxTicket {
		return 0, false
	}
	return t, true
}

// cleanWho keeps "who" on one line and short: it shares files with the
// state words that readers parse.
func cleanWho(who string) string {
	who = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(who, "?"))
	if len(who) > whoMax {
		who = strings.ToValidUTF8(who[:whoMax], "")
	}
	return who
}

func closeFD(fd *int) {
	if *fd >= 0 {
		_ = unix.Close(*fd)
		*fd = -1
	}
}

// open opens DIR, checks and opens .lock (before joining the queue, so a
// refused .lock costs nobody a place), and opens or makes .lockq.
func (a *acquirer) open() error {
	var err error
	a.dfd, err = unix.Open(a.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return a.errorf(a.dir, err)
	}
	// Look before opening: opening a device or FIFO can have effects.
	var st unix.Stat_t
	if err := unix.Fstatat(a.dfd, lockName, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: not a regular file (a symlink or device is refused); remove it", a.lockPath)
	}
	// O_NOFOLLOW closes the race with a symlink planted after the look.
	a.lfd, err = unix.Openat(a.dfd, lockName, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return fmt.Errorf("%s: not a regular file (a symlink or device is refused); remove it", a.lockPath)
		}
		return a.errorf(a.lockPath, err)
	}
	if err := unix.Fstat(a.lfd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: not a regular file (a symlink or device is refused); remove it", a.lockPath)
	}

	qflags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	a.qfd, err = unix.Openat(a.dfd, queueName, qflags, 0)
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mkdirat(a.dfd, queueName, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return a.errorf(a.queuePath(), err)
		}
		a.qfd, err = unix.Openat(a.dfd, queueName, qflags, 0)
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return fmt.Errorf("%s: not a directory (a symlink is refused); remove it", a.queuePath())
		}
		return a.errorf(a.queuePath(), err)
	}
	return nil
}

// openRegular opens name in the queue directory without following a
// symlink, and refuses anything but a regular file.
func (a *acquirer) openRegular(name string, flags int) (int, error) {
	fd, err := unix.Openat(a.qfd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, unix.EINVAL
	}
	return fd, nil
}

// takeTicket gets the next ticket and holds its flock.
func (a *acquirer) takeTicket() error {
	cpath := filepath.Join(a.queuePath(), counterName)
	cfd, err := a.openRegular(counterName, unix.O_RDWR|unix.O_CREAT)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%s: not a regular file (a symlink or device is refused); remove it", cpath)
		}
		return a.errorf(cpath, err)
	}
	defer unix.Close(cfd) // also releases its flock
	if err := a.flockPoll(cfd); err != nil {
		return err
	}
	hook("counter-locked")

	t, ok := readCounter(cfd)
	if !ok {
		// Missing or garbled: start above every ticket there is.
		a.sweepWant = true
		if t, err = a.nextFromFiles(); err != nil {
			return err
		}
	}
	for tries := 0; ; tries++ {
		a.tfd, err = unix.Openat(a.qfd, ticketName(t), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || tries > 0 {
			return a.errorf(a.ticketPath(t), err)
		}
		// The counter is behind the files: a process died between making
		// its ticket and writing the counter, or the counter was edited.
		a.sweepWant = true
		n, err := a.nextFromFiles()
		if err != nil {
			return err
		}
		t = max(n, t+1)
	}
	a.ticket = t
	hook("ticket-created")
	// Nobody else can know this ticket yet, so the lock is free.
	if err := unix.Flock(a.tfd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return a.errorf(a.ticketPath(t), err)
	}
	hook("ticket-locked")
	if !ok {
		_ = unix.Ftruncate(cfd, 0)
	}
	if _, err := unix.Pwrite(cfd, fmt.Appendf(nil, "%020d\n", t+1), 0); err != nil {
		return a.errorf(cpath, err)
	}
	hook("counter-written")
	// Release the counter now, not at return: the rest is ours alone.
	_ = unix.Flock(cfd, unix.LOCK_UN)
	_, _ = unix.Pwrite(a.tfd, []byte(stateWait+a.line), 0)
	return nil
}

// readCounter reads the counter strictly: exactly 20 digits and a newline,
// in range. Anything else is reported as not ok, to be recovered from.
func readCounter(fd int) (uint64, bool) {
	buf := make([]byte, counterLen+1)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil || n != counterLen || buf[counterLen-1] != '\n' {
		return 0, false
	}
	for _, c := range buf[:counterLen-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	t, err := strconv.ParseUint(string(buf[:counterLen-1]), 10, 64)
	if err != nil || t == 0 || t > maxTicket {
		return 0, false
	}
	return t, true
}

// tickets lists the ticket numbers in the queue directory.
func (a *acquirer) tickets() ([]uint64, error) {
	fd, err := unix.Openat(a.qfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, a.errorf(a.queuePath(), err)
	}
	f := os.NewFile(uintptr(fd), a.queuePath())
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, a.errorf(a.queuePath(), err)
	}
	var ts []uint64
	for _, n := range names {
		if t, ok := parseTicket(n); ok {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return ts, nil
}

func (a *acquirer) nextFromFiles() (uint64, error) {
	ts, err := a.tickets()
	if err != nil {
		return 0, err
	}
	next := uint64(1)
	if len(ts) > 0 {
		next = ts[len(ts)-1] + 1
	}
	if next > maxTicket {
		return 0, fmt.Errorf("%s: ticket numbers exhausted; remove the directory when no process uses the state", a.queuePath())
	}
	return next, nil
}

// walk waits until every ticket before ours has finished.
func (a *acquirer) walk() error {
	if a.ticket > 1 {
		// The usual case: the predecessor exists and its wait had ended.
		turn, err := a.waitTicket(a.ticket - 1)
		if err != nil || turn {
			return err
		}
	}
	// The predecessor gave up, died while queued or never was: go down the
	// tickets that exist until one that had its turn, or none is left.
	// No ticket below ours can appear any more, so one listing is enough.
	a.sweepWant = true
	ts, err := a.tickets()
	if err != nil {
		return err
	}
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i] >= a.ticket-1 {
			continue
		}
		turn, err := a.waitTicket(ts[i])
		if err != nil || turn {
			return err
		}
	}
	return nil
}

// waitTicket waits for ticket t's flock, removes its file, and says whether
// its owner had had its turn. A missing ticket is finished, without a turn.
func (a *acquirer) waitTicket(t uint64) (turn bool, err error) {
	fd, err := a.openRegular(ticketName(t), unix.O_RDONLY)
	if err != nil {
		// ENOENT: finished and removed. A symlink or other odd file under
		// a ticket's name was not made by Acquire and is nobody's ticket.
		return false, nil
	}
	defer unix.Close(fd)
	if err := a.flockPoll(fd); err != nil {
		return false, err
	}
	var buf [len(stateTurn)]byte
	n, _ := unix.Pread(fd, buf[:], 0)
	// Holding its flock proves its owner is done with it.
	_ = unix.Unlinkat(a.qfd, ticketName(t), 0)
	return n == len(buf) && string(buf[:]) == stateTurn, nil
}

// sweep removes the files of finished tickets below ours: those of
// processes killed where no walk met them. Run under .lock.
func (a *acquirer) sweep() {
	ts, err := a.tickets()
	if err != nil {
		return
	}
	for _, t := range ts {
		if t >= a.ticket {
			break
		}
		fd, err := a.openRegular(ticketName(t), unix.O_RDONLY)
		if err != nil {
			continue
		}
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
			_ = unix.Unlinkat(a.qfd, ticketName(t), 0)
		}
		unix.Close(fd)
	}
}

// flockPoll takes an exclusive flock on fd by polling until the deadline,
// calling notify once on the way if the wait gets long.
func (a *acquirer) flockPoll(fd int) error {
	d := minPoll
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return a.errorf(a.lockPath, err)
		}
		now := time.Now()
		if !now.Before(a.deadline) {
			return &LockedError{Path: a.lockPath, Holder: a.holder(), Waited: a.wait}
		}
		sleep := min(d, a.deadline.Sub(now))
		if a.notify != nil {
			if !now.Before(a.notifyAt) {
				n := a.notify
				a.notify = nil
				n(a.waitingMessage())
			} else {
				sleep = min(sleep, a.notifyAt.Sub(now))
			}
		}
		time.Sleep(sleep)
		d = min(2*d, maxPoll)
	}
}

// abandon leaves the queue after a failure. Our file is removed before its
// flock is dropped, so a successor either still has it open and reads it,
// or finds no file; both mean "finished".
func (a *acquirer) abandon() {
	if a.tfd >= 0 && a.qfd >= 0 {
		_ = unix.Unlinkat(a.qfd, ticketName(a.ticket), 0)
	}
	closeFD(&a.tfd)
	closeFD(&a.lfd)
	closeFD(&a.qfd)
	closeFD(&a.dfd)
}

// firstLine is the first line of a file others may write, read with a bound.
func firstLine(fd int, off int64) string {
	buf := make([]byte, readMax)
	n, _ := unix.Pread(fd, buf, off)
	if n < 0 {
		n = 0
	}
	line, _, _ := bytes.Cut(buf[:n], []byte("\n"))
	return strings.ToValidUTF8(strings.TrimSpace(string(line)), "?")
}

// holder names the process holding .lock, or "" if it cannot tell.
func (a *acquirer) holder() string {
	if a.lfd >= 0 {
		if h := firstLine(a.lfd, 0); h != "" {
			return h
		}
	}
	// Between holders .lock is empty; name the ticket whose turn it is.
	_, turn := a.queueAhead()
	return turn
}

// queueAhead counts the live tickets before ours that are still waiting,
// and names the live one that has its turn. A ticket is live if its flock
// is held; a shared probe cannot take it from the owner.
func (a *acquirer) queueAhead() (waiting int, turn string) {
	if a.qfd < 0 {
		return 0, ""
	}
	ts, err := a.tickets()
	if err != nil {
		return 0, ""
	}
	for _, t := range ts {
		if a.ticket != 0 && t >= a.ticket {
			break
		}
		fd, err := a.openRegular(ticketName(t), unix.O_RDONLY)
		if err != nil {
			continue
		}
		if unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB) == nil {
			unix.Close(fd) // finished
			continue
		}
		var st [len(stateTurn)]byte
		n, _ := unix.Pread(fd, st[:], 0)
		if n == len(st) && string(st[:]) == stateTurn {
			turn = firstLine(fd, int64(len(stateTurn)))
		} else {
			waiting++
		}
		unix.Close(fd)
	}
	return waiting, turn
}

func (a *acquirer) waitingMessage() string {
	h := ""
	if a.lfd >= 0 {
		h = firstLine(a.lfd, 0)
	}
	ahead, turn := a.queueAhead()
	if h == "" {
		h = turn
	}
	if h == "" {
		h = "another process"
	}
	return fmt.Sprintf("waiting for the state lock held by %s; %d ahead", h, ahead)
}
