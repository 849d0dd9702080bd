//go:build linux

// Package torture holds the crash torture test of hsmkit: several workers
// run random mixes of user management (creates, deletes, password changes,
// logins with wrong and right passwords) and, in a second phase, quorum
// token generation, offline signing and approved operations, as real child
// processes of the real binaries against one 3-HSM simulated cluster, while
// a killer SIGKILLs a random child at a random moment, hundreds of times.
//
// After every kill (with the workers paused) and at the end it checks:
//   - every HSM file loads and validates, its write counter never goes back,
//     and the only other files beside them are renameio's temp files;
//   - every operation that exited 0 is on every HSM (user present with its
//     role and the same password hash, or absent after a delete; login
//     failure counts as the model expects);
//   - no file of the state is written outside the state directory (the
//     children get their own TMPDIR, which must hold no HSM copy);
//   - drift exists only for users that a killed operation touched, and
//     hsm-sync diff reports all of it; at random checks (-torture.repair)
//     and at the end of each phase hsm-sync apply (itself sometimes killed
//     part-way) repairs it, and diff is clean afterwards, but for users
//     hsm-sync calls undecidable, which are skipped, logged, and must be
//     users a killed or partial operation touched; the end of each phase
//     settles them the two ways hsm-sync names (an admin's approved
//     password reset, or hsm-sync apply --approval);
//   - the privilege invariant (privilege_test.go): no user holds a
//     privilege that no authorized operation gave it (admins, deleted
//     users, locks, tokens), checked before and after every repair;
//   - keys (keys_test.go; each worker's owner generates AES keys and EC
//     pairs, shares and unshares them with its sharee, and deletes them
//     with hsm-key): every key record on every HSM decodes and its masked
//     material opens to the key its record describes, with its check
//     value (hsm.CheckKeyMaterial: no key half-written); every key user,
//     through the engine (ListKeys), sees a key on exactly the HSMs whose
//     record makes it owner or shared user, or where it is public, and a
//     sample of signs (all of them at the end of a phase) is refused to a
//     user shared on no HSM and works, verifying, for one shared on every
//     HSM (no key readable by a user it was not shared with); a command
//     that exited 0 is on every HSM; only keys a killed command touched
//     drift; hsm-sync diff reports every drifting key and no other, each
//     with a decision and its reason; hsm-sync apply leaves none but the
//     ones diff then calls undecidable (named in the log), and a second
//     apply after a whole repair has nothing to repair.
//
// Besides the kills, the mix holds the attacks the never-escalate rule
// and single-use tokens answer: an HSM stopped while an approved
// operation acts on the others (--allow-partial, its token generated so
// too); a user deleted that way logging in where the delete missed and
// changing its own password there; a user locked on one HSM changing its
// password on the others; the token of an approved operation that was
// killed, refused or partial offered again for a fresh admin; a partial
// activation and the lowering of the quorum value without its approvals
// (once, at the setup and at the switch of phases).
//
// The kills land at three kinds of moments: a random delay within the
// binary's typical run time, as the child begins an HSM commit after its
// first or second (up to its fifth for an approved operation, which
// first spends its token everywhere): drift between HSMs, and inside
// such a commit (seen with inotify, writes into an HSM database; the
// lock file names the writer).
//
// Default size (CI, about a minute on 2 cores): go test ./internal/torture
// Three times that: go test -run 'TestTorture$' ./internal/torture -torture.kills=600 -timeout 30m -v
// Ten times that:  go test -run Torture ./internal/torture -torture.kills=2000 -timeout 90m -v
// A failure logs -torture.seed; the choices replay with it, the timing not.
package torture

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hsmkit/hsmkit/internal/hsm"
)

var (
	flagKills    = flag.Int("torture.kills", 200, "SIGKILLs that must land on a running child (split over the two phases)")
	flagWorkers  = flag.Int("torture.workers", 4, "concurrent worker loops")
	flagSeed     = flag.Uint64("torture.seed", 0, "seed of the workload's random choices (0: from the clock; logged)")
	flagMaxDelay = flag.Duration("torture.maxdelay", 250*time.Millisecond, "cap on the random delay between a child's start and its SIGKILL (drawn up to 1.2x the binary's typical run time)")
	flagVerbose  = flag.Bool("torture.verbose", false, "log every kill, and hsm-sync diff's explanation of what it cannot decide")
	flagRepair   = flag.Float64("torture.repair", 0.5, "probability that a check with drift repairs it with hsm-sync apply at once (drift accumulates otherwise; the end of a phase always repairs)")
)

// buildBinaries builds the five commands once per test binary run.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %v", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		dir, err := os.MkdirTemp("", "hsmkit-torture-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/...: %v\n%s", err, out)
			return
		}
		buildDir = dir
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// proc is one child process.
type proc struct {
	prog   string
	args   []string
	start  time.Time
	dur    time.Duration
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process is reaped
	killed bool          // it died of SIGKILL
	// approved: a user operation carrying a quorum token; the killer
	// never leaves it alone.
	approved bool
	code     int // exit code; -1 when killed
	stdout   bytes.Buffer
	stderr   bytes.Buffer
}

func (p *proc) String() string {
	args := make([]string, len(p.args))
	for i, a := range p.args {
		if filepath.IsAbs(a) {
			a = filepath.Base(a) // files of the test's directory
		}
		args[i] = a
	}
	return fmt.Sprintf("%s %s", p.prog, strings.Join(args, " "))
}

// describe is for failure messages.
func (p *proc) describe() string {
	return fmt.Sprintf("%s: exit %d\nstdout: %s\nstderr: %s", p, p.code, strings.TrimSpace(p.stdout.String()), strings.TrimSpace(p.stderr.String()))
}

// harness is one torture run: the cluster directory, the pause lock, the
// killer's feed and the counters.
type harness struct {
	t        *testing.T
	bin      string
	dir      string // cluster.yaml, sessions, keys, token files
	stateDir string
	tmp      string // TMPDIR of the children
	baseEnv  []string

	// pause: workers hold it shared around each operation sequence (and
	// every model access); the checker takes it exclusively.
	pause sync.RWMutex

	offers chan *proc // running killable children, offered to the killer

	ewmaMu sync.Mutex
	ewma   map[string]time.Duration // typical run time per binary

	errs   atomic.Int32
	cancel context.CancelFunc // of the current phase
	report func(msg string)   // when set, failures go here instead (the checks' own tests)

	workers []*worker
	chk     *checker
	quorum  bool // the phase: the user service needs 2 approvals

	hsmIDs    []string   // the cluster's HSMs
	approvers []approver // admins with a registered quorum key
	opSeq     atomic.Int64
	tokens    tokens // which operation wrote with each quorum token

	// counters
	ops, opsOK, opsKilled, missed  atomic.Int64
	checks, repairs, repairedUsers atomic.Int64
	applyKills, uncertainNow       atomic.Int64
	killsBy                        sync.Map // prog → *atomic.Int64
	killsApproved                  sync.Map // verb → *atomic.Int64
	killedApprovedWrote            atomic.Int64
	outages, partialOps, selfBacks atomic.Int64
	probes, probesUsed, probesGone atomic.Int64
	probesFirstUse, locksOne       atomic.Int64
	settledReset, settledApproved  atomic.Int64
	privilegeErrs                  atomic.Int64
	keySigns, keysRepaired         atomic.Int64

	keyUsers map[string]string // the workers' key users: name → password
}

const maxErrors = 20

// errorf reports a failure; after maxErrors the phase is stopped.
func (h *harness) errorf(format string, a ...any) {
	if h.report != nil {
		h.report(fmt.Sprintf(format, a...))
		return
	}
	h.t.Helper()
	h.t.Errorf(format, a...)
	if h.errs.Add(1) >= maxErrors && h.cancel != nil {
		h.cancel()
	}
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, bin: binaries(t), dir: t.TempDir(), offers: make(chan *proc), ewma: map[string]time.Duration{}, keyUsers: map[string]string{}}
	h.stateDir = filepath.Join(h.dir, "st")
	h.tmp = filepath.Join(h.dir, "tmp")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HSM_") {
			h.baseEnv = append(h.baseEnv, kv)
		}
	}
	h.baseEnv = append(h.baseEnv,
		"HSM_CONFIG="+filepath.Join(h.dir, "cluster.yaml"),
		"HSM_LOCK_TIMEOUT=60s",
		// The children's own temp dir, on the state's file system: nothing of
		// the state may be written outside the state directory.
		"TMPDIR="+h.tmp,
	)
	if err := os.Mkdir(h.tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	return h
}

// start starts a child. A killable child is offered to the killer while
// it runs; killAfter > 0 kills it after that delay from its start.
func (h *harness) start(killable bool, killAfter time.Duration, env []string, prog string, args ...string) *proc {
	return h.launch(&proc{prog: prog, args: args}, killable, killAfter, env)
}

// launch starts the child p describes (prog, args, approved).
func (h *harness) launch(p *proc, killable bool, killAfter time.Duration, env []string) *proc {
	prog, args := p.prog, p.args
	p.exited = make(chan struct{})
	p.cmd = exec.Command(filepath.Join(h.bin, prog), args...)
	p.cmd.Dir = h.dir
	p.cmd.Env = append(append([]string{}, h.baseEnv...), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		h.errorf("starting %s: %v", p, err)
		p.code = -2
		close(p.exited)
		return p
	}
	if killAfter > 0 {
		time.AfterFunc(killAfter, func() { _ = p.cmd.Process.Signal(syscall.SIGKILL) })
	}
	if killable {
		select {
		case h.offers <- p:
		default:
		}
	}
	return p
}

// wait reaps a started child.
func (h *harness) wait(p *proc) *proc {
	if p.code == -2 {
		return p
	}
	hang := time.AfterFunc(3*time.Minute, func() {
		h.errorf("%s hangs: killing it", p)
		_ = p.cmd.Process.Kill()
	})
	err := p.cmd.Wait()
	hang.Stop()
	p.dur = time.Since(p.start)
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		p.killed = ws.Signal() == syscall.SIGKILL
		p.code = -1
	} else {
		p.code = p.cmd.ProcessState.ExitCode()
	}
	if err != nil && p.code == 0 {
		h.errorf("%s: %v", p, err)
	}
	if !p.killed {
		h.ewmaMu.Lock()
		if old, ok := h.ewma[p.prog]; ok {
			h.ewma[p.prog] = (old*7 + p.dur) / 8
		} else {
			h.ewma[p.prog] = p.dur
		}
		h.ewmaMu.Unlock()
	}
	close(p.exited)
	return p
}

// run starts a child and waits for it.
func (h *harness) run(killable bool, env []string, prog string, args ...string) *proc {
	return h.wait(h.start(killable, 0, env, prog, args...))
}

// must runs an unkillable setup step that has to succeed.
func (h *harness) must(env []string, prog string, args ...string) *proc {
	h.t.Helper()
	p := h.run(false, env, prog, args...)
	if p.code != 0 {
		h.t.Fatalf("setup: %s", p.describe())
	}
	return p
}

// killDelay is the random moment of a kill after the child's start: within
// the binary's typical run time (so most kills land mid-operation), at most
// -torture.maxdelay.
func (h *harness) killDelay(rng *rand.Rand, prog string) time.Duration {
	h.ewmaMu.Lock()
	typ, ok := h.ewma[prog]
	h.ewmaMu.Unlock()
	limit := *flagMaxDelay
	if ok && typ*6/5 < limit {
		limit = typ * 6 / 5
	}
	if limit <= 0 {
		return 0
	}
	return time.Duration(rng.Int64N(int64(limit) + 1))
}

func (h *harness) countKill(prog string) {
	v, _ := h.killsBy.LoadOrStore(prog, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// countApprovedKill counts a kill in the middle of an approved user
// operation (create, delete, change-password).
func (h *harness) countApprovedKill(verb string) {
	v, _ := h.killsApproved.LoadOrStore(verb, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Strike modes: when, in a child's life, the killer strikes.
const (
	strikeAnytime    = iota // a random delay within the binary's typical run time
	strikeAfterWrite        // as the child begins its (k+1)-th HSM commit, after its k-th: between HSMs
	strikeMidWrite          // as the child begins its k-th HSM commit: inside it
)

var strikeNames = []string{"anytime", "after-hsm-write", "mid-write"}

// strike kills p at a random moment of the chosen mode; it returns what it
// waited for, for messages.
func (h *harness) strike(rng *rand.Rand, p *proc, mode int, events <-chan fsEvent) string {
	if mode == strikeAnytime || events == nil {
		delay := h.killDelay(rng, p.prog)
		time.Sleep(time.Until(p.start.Add(delay))) // the randomized moment of the kill is the workload
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		return fmt.Sprintf("%s after start", delay.Round(time.Microsecond))
	}
	for drained := false; !drained; { // events of earlier children
		select {
		case <-events:
		default:
			drained = true
		}
	}
	// The k-th commit of this child: each HSM a command changes is one
	// bbolt commit of its database, a run of writes into that one file
	// (an approved operation first commits the spend of its token on
	// every HSM, then its own change).
	want := 1 + rng.IntN(2)
	if p.approved {
		want = 1 + rng.IntN(5)
	}
	if mode == strikeAfterWrite {
		want++ // the first write of the next commit: the k-th is done
	}
	commits, last := 0, ""
	for {
		select {
		case <-p.exited:
			return "nothing" // it ended before: a miss
		case e, ok := <-events:
			if !ok {
				return "nothing"
			}
			if !e.modify || e.name == last || !strings.HasSuffix(e.name, ".db") || strings.HasPrefix(e.name, ".") || h.lockHolder() != p.cmd.Process.Pid {
				continue
			}
			last = e.name
			if commits++; commits < want {
				continue
			}
			delay := time.Duration(rng.IntN(300)) * time.Microsecond
			time.Sleep(delay) // the randomized moment of the kill is the workload
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			return fmt.Sprintf("%s after the first write of its commit #%d (%s)", delay, want, e.name)
		}
	}
}

// killer SIGKILLs offered children until kills of them landed, checking
// the invariants after each.
func (h *harness) killer(ctx context.Context, rng *rand.Rand, kills int, done func()) int {
	defer done()
	stop := make(chan struct{})
	defer close(stop)
	events, err := h.watchHSMs(stop)
	if err != nil {
		h.t.Logf("no inotify (%v): every kill is at a random delay", err)
	}
	landed := 0
	for landed < kills {
		var p *proc
		select {
		case p = <-h.offers:
		case <-ctx.Done():
			return landed
		}
		// Leave some children alone, so which one dies is random. The
		// quorum phase aims at the approved operations: they come after
		// the token's generation and signatures, which the killer would
		// mostly take first.
		leave := rng.IntN(3) == 0
		if h.quorum {
			leave = rng.IntN(8) != 0
		}
		if leave && !p.approved {
			continue
		}
		mode := strikeAnytime
		if p.prog != "hsm-sign" { // hsm-sign is offline: it never writes the state
			mode = []int{strikeAnytime, strikeAnytime, strikeAfterWrite, strikeAfterWrite, strikeMidWrite}[rng.IntN(5)]
		}
		when := h.strike(rng, p, mode, events)
		<-p.exited
		if !p.killed {
			h.missed.Add(1)
			continue
		}
		landed++
		h.countKill(p.prog + "/" + strikeNames[mode])
		why := fmt.Sprintf("kill %d (%s; %s)", landed, p, when)
		if *flagVerbose {
			h.t.Logf("%s", why)
		}
		h.chk.check(rng, false, why)
		if ctx.Err() != nil {
			return landed
		}
	}
	return landed
}

// runPhase runs the workers and the killer until kills landed.
func (h *harness) runPhase(t *testing.T, name string, seed uint64, kills int, quorum bool) {
	h.t = t
	h.chk.h = h
	h.quorum = quorum
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	defer cancel()
	start := time.Now()
	opsBefore, okBefore := h.ops.Load(), h.opsOK.Load()
	var wg sync.WaitGroup
	for _, w := range h.workers {
		w.quorum = quorum
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	landed := h.killer(ctx, rand.New(rand.NewPCG(seed, 0x4b111)), kills, cancel)
	wg.Wait()
	h.chk.check(rand.New(rand.NewPCG(seed, 1)), true, "end of phase "+name)
	t.Logf("phase %s: %d kills landed in %s; %d ops run, %d exited 0", name, landed, time.Since(start).Round(time.Millisecond),
		h.ops.Load()-opsBefore, h.opsOK.Load()-okBefore)
	if landed < kills && h.errs.Load() == 0 {
		t.Errorf("only %d of %d kills landed", landed, kills)
	}
}

// setup makes the cluster: 3 HSMs, activated; admin, admin2 and admin3
// with registered quorum keys; one admin and session per worker.
func (h *harness) setup(workers int, seed uint64) {
	h.must(nil, "hsm-sim", "init", "--state", "st", "--hsms", "3", "--seed", "1", "--kdf", "test")
	hsms, err := loadHSMs(h.stateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, x := range hsms {
		h.hsmIDs = append(h.hsmIDs, x.ID)
	}
	h.activationAllOrNothing()
	h.must(password("Admin-pass1"), "hsm-user", "activate")
	if p := h.run(false, password("Admin-pass2"), "hsm-user", "activate"); p.code != 1 || !strings.Contains(p.stderr.String(), "already activated") {
		h.t.Fatalf("setup: activating an activated cluster again must be refused: %s", p.describe())
	}
	sess := func(name string) string { return filepath.Join(h.dir, name+".session") }
	h.must(password("Admin-pass1"), "hsm-user", "login", "--username", "admin", "--role", "admin", "--session", sess("admin"))
	h.chk = &checker{h: h, adminSess: sess("admin"), quorumUser: 1, lastSeq: map[string]uint64{},
		reported: map[string]bool{}, tmpOtherAll: map[string]bool{}, undecided: map[string]bool{},
		fixed: map[string]string{"admin": "admin", "admin2": "admin", "admin3": "admin", "app_user": "internal(APPLIANCE_USER)"}}
	var approvers []approver
	for _, a := range []string{"admin", "admin2", "admin3"} {
		if a != "admin" {
			h.must(password(a+"-Pass1"), "hsm-user", "create", "--session", sess("admin"), "--username", a, "--role", "admin")
			h.must(password(a+"-Pass1"), "hsm-user", "login", "--username", a, "--role", "admin", "--session", sess(a))
		}
		key, pub := filepath.Join(h.dir, a+".key"), filepath.Join(h.dir, a+".pub")
		reg := filepath.Join(h.dir, "reg-"+a+".json")
		h.must(nil, "hsm-sign", "keygen", "--private-key", key, "--public-key", pub)
		h.must(nil, "hsm-quorum", "generate", "--session", sess(a), "--service", "registration", "--token", reg)
		h.must(nil, "hsm-sign", "sign", "--key", key, "--username", a, "--out", reg+".signed", reg)
		h.must(nil, "hsm-user", "change-quorum", "register", "--session", sess(a), "--public-key", pub, "--signed-token", reg+".signed")
		approvers = append(approvers, approver{name: a, key: key})
	}
	for i := 1; i <= workers; i++ {
		w := newWorker(h, i, seed, approvers)
		pw := fmt.Sprintf("W%d-adm-pass1", i)
		h.must(password(pw), "hsm-user", "create", "--session", sess("admin"), "--username", w.admin, "--role", "admin")
		h.must(password(pw), "hsm-user", "login", "--username", w.admin, "--role", "admin", "--session", w.adminSess)
		h.chk.fixed[w.admin] = "admin"
		for _, u := range []string{w.keyOwner, w.keySharee} {
			pw := "Key-" + u + "-pass1"
			h.must(password(pw), "hsm-user", "create", "--session", sess("admin"), "--username", u, "--role", "crypto-user")
			h.chk.fixed[u] = "crypto-user"
			h.keyUsers[u] = pw
		}
		h.workers = append(h.workers, w)
	}
	h.approvers = approvers
	// The lineage of each fixed user (the privilege invariant: an admin of
	// the setup stays the user the setup made).
	if hsms, err = loadHSMs(h.stateDir); err != nil {
		h.t.Fatal(err)
	}
	h.chk.fixedLineage = map[string]string{}
	for name := range h.chk.fixed {
		for _, x := range hsms {
			r := findUser(x, name)
			if r == nil {
				h.t.Fatalf("setup: %s lacks %s", x.ID, name)
			}
			if lin, ok := h.chk.fixedLineage[name]; ok && lin != r.Lineage {
				h.t.Fatalf("setup: %s has lineage %s on %s and %s elsewhere", name, r.Lineage, x.ID, lin)
			}
			h.chk.fixedLineage[name] = r.Lineage
		}
	}
}

// activationAllOrNothing checks, before the activation, that a partial
// one is refused and changes nothing: an HSM left holding the
// unactivated admin would let anyone with the default password become an
// admin there.
func (h *harness) activationAllOrNothing() {
	before, err := loadHSMs(h.stateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, args := range [][]string{{"--allow-partial"}, {"--server", h.hsmIDs[0]}} {
		p := h.run(false, password("Admin-pass1"), "hsm-user", append([]string{"activate"}, args...)...)
		if p.code != 1 || !strings.Contains(p.stderr.String(), "all or nothing") {
			h.t.Fatalf("setup: a partial activation must be refused: %s", p.describe())
		}
	}
	after, err := loadHSMs(h.stateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	for i, x := range after {
		if x.Seq != before[i].Seq {
			h.t.Fatalf("setup: a refused partial activation wrote %s (write counter %d, was %d)", x.ID, x.Seq, before[i].Seq)
		}
	}
}

// loweringNeedsApprovals checks, once the user value is 2, that lowering
// it needs a quorum-service token with two approvals: refused without a
// token, and with one signature.
func (h *harness) loweringNeedsApprovals() {
	p := h.run(false, nil, "hsm-quorum", "set-value", "--session", h.chk.adminSess, "--service", "user", "--value", "1")
	if p.code != 1 || !strings.Contains(p.stderr.String(), hsm.ErrQuorumRequired.Error()) {
		h.t.Fatalf("lowering the user quorum value alone must be refused: %s", p.describe())
	}
	tok := filepath.Join(h.dir, "lower.json")
	h.must(nil, "hsm-quorum", "generate", "--session", h.chk.adminSess, "--service", "quorum", "--token", tok)
	a := h.approvers[0]
	h.must(nil, "hsm-sign", "sign", "--key", a.key, "--username", a.name, "--out", tok, tok)
	p = h.run(false, nil, "hsm-quorum", "set-value", "--session", h.chk.adminSess, "--service", "user", "--value", "1", "--approval", tok)
	if p.code != 1 || !strings.Contains(p.stderr.String(), "1 of 2 approvals") {
		h.t.Fatalf("lowering the user quorum value with one approval must be refused: %s", p.describe())
	}
	h.must(nil, "hsm-quorum", "delete", "--scope", "user", "--session", h.chk.adminSess)
}

// TestTorture is the crash torture test (see the package comment).
func TestTorture(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("-torture.seed=%d -torture.kills=%d -torture.workers=%d", seed, *flagKills, *flagWorkers)
	start := time.Now()
	h := newHarness(t)
	h.setup(*flagWorkers, seed)
	t.Logf("setup: %s", time.Since(start).Round(time.Millisecond))

	killsA := *flagKills / 2
	t.Run("quorum-off", func(t *testing.T) { h.runPhase(t, "quorum-off", seed+1, killsA, false) })
	h.t = t
	if t.Failed() {
		t.FailNow()
	}
	// The first quorum value needs no token: from now on every create,
	// delete and admin password change needs two admins' approval.
	h.must(nil, "hsm-quorum", "set-value", "--session", h.chk.adminSess, "--service", "user", "--value", "2")
	h.chk.quorumUser = 2
	h.loweringNeedsApprovals()
	t.Run("quorum-2", func(t *testing.T) { h.runPhase(t, "quorum-2", seed+2, *flagKills-killsA, true) })
	h.t = t
	if t.Failed() {
		t.FailNow()
	}
	h.finalLogins()

	var byProg []string
	h.killsBy.Range(func(k, v any) bool {
		byProg = append(byProg, fmt.Sprintf("%s %d", k, v.(interface{ Load() int64 }).Load()))
		return true
	})
	sort.Strings(byProg)
	if n := len(h.chk.tmpOtherAll); n > 0 {
		// Not state, but written through the system temp dir: session files
		// (hsm.SessionFile.Save) and token files (hsm-quorum generate).
		t.Logf("%d files left in the children's TMPDIR by killed writes of files outside the state: %s", n, strings.Join(sortedKeys(h.chk.tmpOtherAll), " "))
	}
	var approvedKills []string
	var nApproved int64
	h.killsApproved.Range(func(k, v any) bool {
		n := v.(interface{ Load() int64 }).Load()
		nApproved += n
		approvedKills = append(approvedKills, fmt.Sprintf("%s %d", k, n))
		return true
	})
	sort.Strings(approvedKills)
	t.Logf("total %s: %d ops run, %d exited 0, %d killed (%s), %d kill attempts too late; %d checks, %d repairs (%d drifting users repaired, %d users undecidable, settled %d times by an admin's reset and %d by an approved repair), %d hsm-sync apply killed part-way; %d renameio temp files left; %d users uncertain at the end",
		time.Since(start).Round(time.Millisecond), h.ops.Load(), h.opsOK.Load(), h.opsKilled.Load(), strings.Join(byProg, ", "), h.missed.Load(),
		h.checks.Load(), h.repairs.Load(), h.repairedUsers.Load(), len(h.chk.undecided), h.settledReset.Load(), h.settledApproved.Load(),
		h.applyKills.Load(), h.chk.temps, h.uncertainNow.Load())
	t.Logf("privilege: %d kills mid-approved-operation (%s; %d of them had written), %d outages (an HSM stopped) with %d approved operations done on the others only, %d deleted users changed their own password where the delete missed, %d users locked on one HSM changed their own password on the others; %d tokens offered again after a kill, refusal or partial operation: %d refused as used, %d refused as held nowhere, %d first uses (killed before the spend); %d privilege violations",
		nApproved, strings.Join(approvedKills, ", "), h.killedApprovedWrote.Load(), h.outages.Load(), h.partialOps.Load(), h.selfBacks.Load(), h.locksOne.Load(),
		h.probes.Load(), h.probesUsed.Load(), h.probesGone.Load(), h.probesFirstUse.Load(), h.privilegeErrs.Load())
	var nKeys, nUnc, nUndec int
	for _, w := range h.workers {
		for _, e := range w.keys {
			nKeys++
			if !e.certain {
				nUnc++
			}
			if e.undecidable {
				nUndec++
			}
		}
	}
	t.Logf("keys: %d generated, %d drifting keys repaired, %d signs through the engine as the key users, %d keys uncertain and %d undecidable at the end",
		nKeys, h.keysRepaired.Load(), h.keySigns.Load(), nUnc, nUndec)
}

// finalLogins logs in, on every HSM, a few users per worker whose
// password the journal knows: whatever kills and repairs did, the hash on
// every HSM is the password's.
func (h *harness) finalLogins() {
	for _, w := range h.workers {
		n := 0
		for _, u := range w.users {
			if n == 3 || !u.certain || !u.exists || u.pw == "" || u.failures >= hsm.MaxFailures || u.sessions {
				continue
			}
			n++
			sess := filepath.Join(h.dir, "final.session")
			p := h.run(false, password(u.pw), "hsm-user", "login", "--username", u.name, "--role", u.role, "--session", sess)
			if p.code != 0 {
				h.errorf("final login of %s with its journaled password: %s", u.name, p.describe())
				continue
			}
			h.must(nil, "hsm-user", "logout", "--session", sess)
		}
	}
}
