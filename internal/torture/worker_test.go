//go:build linux

package torture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/state"
	"github.com/hsmkit/hsmkit/internal/statelock"
)

// user is the journal of one user of a worker's namespace: what the
// operations that exited 0 say must be on every HSM. A killed operation
// makes the user uncertain until the checker resolves it from a state in
// which every HSM agrees; so does one done on some HSMs only (one was
// stopped), with what the repair must then make of it.
type user struct {
	name     string
	role     string // its role when it exists (a guess while uncertain)
	exists   bool
	certain  bool
	pw       string   // current password; "" unknown
	digest   string   // hsm.HashDigest of its hash on every HSM; "" until learned
	cands    []string // passwords a killed operation may have set
	failures int      // login failure count on every HSM
	sessions bool     // may be logged in on some HSM (a killed login or logout)
	retired  bool     // an orphan session (a login killed before its session file) pins it, or it is undecidable
	killedBy []string // killed operations since it was last certain, for messages
	// expect is what an approved operation done on some HSMs only wants
	// once hsm-sync apply has finished it; a later command's kill voids it.
	expect *expectation
	// undecidable: hsm-sync apply could not decide it; retired until the
	// end of the phase settles it.
	undecidable bool
	prov        *provenance // the privilege invariant's (privilege_test.go); kept when the fields above are reset
}

// expectation is what a partial operation leaves for the repair to finish.
type expectation struct {
	exists    bool
	oldDigest string // a reset: the hash it replaced must not come back
	why       string
}

func (u *user) uncertain(p *proc, pw string) {
	u.certain = false
	u.expect = nil
	if pw != "" {
		u.cands = append(u.cands, pw)
	}
	u.killedBy = append(u.killedBy, p.String())
}

// partial marks u after an approved operation that reached some HSMs
// only: it drifts until hsm-sync apply finishes it as e says.
func (u *user) partial(p *proc, pw string, e expectation) {
	u.uncertain(p, pw)
	e.why = p.String()
	u.expect = &e
}

// approver is an admin with a registered quorum key.
type approver struct{ name, key string }

// worker runs random operations on its own user namespace (wN_…) with its
// own admin (wN_adm) and session files, so a killed child of one worker
// does not disturb the others.
type worker struct {
	h         *harness
	id        int
	rng       *rand.Rand
	admin     string
	adminSess string
	userSess  string // the session file of its users' own logins
	selfSess  string // the session of a deleted user on the HSM its delete missed
	sessUser  *user  // whose login userSess holds
	tok       string // token file prefix
	users     []*user
	next      int
	quorum    bool     // the user service needs 2 approvals
	target    []string // targeting flags of the user operations: --allow-partial during an outage
	approvers []approver
	// keys: the worker's key owner and the crypto user it shares with
	// (keys_test.go), and the journal of the owner's keys.
	keyOwner, keySharee string
	keys                []*keyEntry
	nextKey             int
}

const (
	activeUsers = 8
	// outageEvery: one iteration in this many of the quorum phase is an
	// outage (one HSM stopped for an approved --allow-partial operation).
	outageEvery = 25
	// lockEvery: one iteration in this many locks a user on one HSM
	// alone, then changes its password on the others (lockOne).
	lockEvery = 40
	// probeEvery: the token of one approved operation in this many that
	// was killed, refused or done on some HSMs only is offered again.
	probeEvery = 2
)

func newWorker(h *harness, id int, seed uint64, approvers []approver) *worker {
	w := &worker{h: h, id: id, rng: rand.New(rand.NewPCG(seed, uint64(id))), approvers: approvers}
	w.admin = fmt.Sprintf("w%d_adm", id)
	w.adminSess = filepath.Join(h.dir, w.admin+".session")
	w.userSess = filepath.Join(h.dir, fmt.Sprintf("w%d_user.session", id))
	w.selfSess = filepath.Join(h.dir, fmt.Sprintf("w%d_self.session", id))
	w.tok = filepath.Join(h.dir, fmt.Sprintf("w%d_token", id))
	w.keyOwner, w.keySharee = fmt.Sprintf("w%d_ko", id), fmt.Sprintf("w%d_ks", id)
	return w
}

func (w *worker) loop(ctx context.Context) {
	for ctx.Err() == nil {
		switch {
		case w.quorum && w.rng.IntN(outageEvery) == 0:
			w.outage()
		case w.rng.IntN(lockEvery) == 0:
			w.lockOne()
		case w.rng.IntN(keyEvery) == 0:
			w.h.pause.RLock()
			w.keyIteration()
			w.h.pause.RUnlock()
		default:
			w.h.pause.RLock()
			w.iteration()
			w.h.pause.RUnlock()
		}
	}
}

// op runs one killable child of an operation and counts it.
func (w *worker) op(env []string, prog string, args ...string) *proc {
	return w.opk(true, false, env, prog, args...)
}

// opk runs one child of an operation, killable or not, and counts it;
// approved says it carries a quorum token (the killer then never lets
// it be). Exit codes other than 0 and 1 (usage, config or state
// trouble, lock timeouts) are failures.
func (w *worker) opk(killable, approved bool, env []string, prog string, args ...string) *proc {
	p := w.h.wait(w.h.launch(&proc{prog: prog, args: args, approved: approved}, killable, 0, env))
	w.h.ops.Add(1)
	switch {
	case p.killed:
		w.h.opsKilled.Add(1)
		if approved {
			w.h.countApprovedKill(args[0])
		}
	case p.code == 0:
		w.h.opsOK.Add(1)
	case p.code != 1:
		w.h.errorf("worker %d: unexpected exit: %s", w.id, p.describe())
	}
	return p
}

func password(env string) []string { return []string{"HSM_PASSWORD=" + env} }

func (w *worker) newPW() string { return fmt.Sprintf("Pw%d-%08d", w.id, w.rng.IntN(1e8)) }

// doneRe is how an --allow-partial command reports that it reached some
// HSMs only (exit 1).
var doneRe = regexp.MustCompile(`done on (\d+) of \d+ HSMs`)

// doneOn is on how many HSMs an --allow-partial command that exited 1
// was done; 0 otherwise.
func doneOn(p *proc) int {
	if p.killed || p.code != 1 {
		return 0
	}
	m := doneRe.FindStringSubmatch(p.stderr.String())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// fresh adds a user that never existed.
func (w *worker) fresh() *user {
	u := &user{name: fmt.Sprintf("w%d_%d", w.id, w.next), role: "crypto-user", certain: true}
	w.next++
	w.users = append(w.users, u)
	return u
}

// pick chooses a user, adding fresh names so enough are usable.
func (w *worker) pick() *user {
	var active []*user
	for _, u := range w.users {
		if !u.retired {
			active = append(active, u)
		}
	}
	for len(active) < activeUsers {
		active = append(active, w.fresh())
	}
	return active[w.rng.IntN(len(active))]
}

func (w *worker) iteration() {
	u := w.pick()
	if !w.endSession() {
		return
	}
	r := w.rng.IntN(100)
	switch {
	case u.certain && !u.exists:
		switch {
		case r < 85:
			w.create(u)
		case r < 93:
			w.loginWrong(u)
		default:
			w.delete(u)
		}
	case u.certain:
		switch {
		case r < 18:
			w.delete(u)
		case r < 38 || u.pw == "":
			w.changePassword(u)
		case r < 63:
			w.loginWrong(u)
		default:
			w.loginRight(u)
		}
	default:
		switch r % 4 {
		case 0:
			w.create(u)
		case 1:
			w.delete(u)
		case 2:
			w.changePassword(u)
		default:
			w.loginWrong(u)
		}
	}
}

// pickFor draws up to four users and returns the first that ok accepts,
// or nil.
func (w *worker) pickFor(ok func(*user) bool) *user {
	for range 4 {
		if c := w.pick(); ok(c) {
			return c
		}
	}
	return nil
}

// outage stops one HSM (the worker's seeded stream chooses it), runs one
// approved user operation with --allow-partial on the others, its token
// generated with --allow-partial too, maybe offers that token again,
// starts the HSM and, after a delete done on the others, has the deleted
// user log in on the HSM the delete missed and change its own password
// there. It holds every other worker and the checker off (the pause lock,
// exclusively): no other command may meet the stopped HSM, and the
// checks see the cluster whole.
func (w *worker) outage() {
	h := w.h
	h.pause.Lock()
	defer h.pause.Unlock()
	u := w.pickFor(func(c *user) bool { return c.certain && !c.sessions })
	if u == nil || !w.endSession() {
		return
	}
	x := h.hsmIDs[w.rng.IntN(len(h.hsmIDs))]
	if p := h.run(false, nil, "hsm-sim", "stop", x); p.code != 0 {
		h.errorf("worker %d: %s", w.id, p.describe())
		return
	}
	h.outages.Add(1)
	pw, role, failures := u.pw, u.role, u.failures
	deleted := false
	w.target = []string{"--allow-partial"}
	if ap, ok := w.approve(); ok {
		var p *proc
		switch r := w.rng.IntN(100); {
		case !u.exists:
			role = "crypto-user"
			if r < 30 {
				role = "admin"
			}
			p = w.doCreate(u, role, ap, false)
		case r < 55:
			p = w.doDelete(u, ap)
			deleted = doneOn(p) > 0
		default:
			p = w.doReset(u, ap)
		}
		if doneOn(p) > 0 {
			h.partialOps.Add(1)
		}
		w.maybeProbe(ap, p)
	}
	w.target = nil
	for attempt := 0; ; attempt++ {
		p := h.run(false, nil, "hsm-sim", "start", x)
		if p.code == 0 {
			break
		}
		h.errorf("worker %d: %s", w.id, p.describe())
		if attempt == 2 {
			h.cancel() // a stopped HSM would fail every command
			return
		}
	}
	if deleted && pw != "" && failures < hsm.MaxFailures {
		w.selfBack(u, x, pw, role)
	}
}

// selfBack is the attack of a deleted user that brings itself back: after
// a delete that missed HSM x, the user logs in there alone and changes its
// own password, a record of its lineage newer than the deletion. hsm-sync
// apply must delete it there, never copy it back.
func (w *worker) selfBack(u *user, x, pw, role string) {
	h := w.h
	l := h.run(false, password(pw), "hsm-user", "login", "--server", x, "--session", w.selfSess, "--username", u.name, "--role", role)
	if l.code != 0 {
		h.errorf("worker %d: the login of %s on %s, which its delete missed: %s", w.id, u.name, x, l.describe())
		return
	}
	rec := w.rec(state.KindSelfPassword, role, nil)
	expect := u.expect
	c := w.op(password(w.newPW()), "hsm-user", "change-password", "--server", x, "--session", w.selfSess, "--username", u.name, "--role", role)
	rec.cmd = c.String()
	switch {
	case c.killed:
		u.uncertain(c, "")
		u.expect = expect // the deletion stands whatever the kill did
	case c.code != 0:
		h.errorf("worker %d: %s changing its own password on %s: %s", w.id, u.name, x, c.describe())
	default:
		h.selfBacks.Add(1)
	}
	if o := h.run(false, nil, "hsm-user", "logout", "--session", w.selfSess); o.code != 0 {
		h.errorf("worker %d: %s", w.id, o.describe())
	}
	w.learn(u, c, rec, 0)
}

// lockOne is the attack of a repair that unlocks: a user is locked on one
// HSM alone (five wrong passwords there), then logs in on the others
// (--allow-partial) and changes its own password there. The majority's
// record is unlocked; copying it would unlock the user where it is
// locked, which only an admin's reset may do, so hsm-sync must call the
// user undecidable, and the end of the phase settles it. It holds the
// other workers and the checker off, like an outage.
func (w *worker) lockOne() {
	h := w.h
	h.pause.Lock()
	defer h.pause.Unlock()
	u := w.pickFor(func(c *user) bool { return c.certain && c.exists && !c.sessions && c.pw != "" && c.failures == 0 })
	if u == nil || !w.endSession() {
		return
	}
	x := h.hsmIDs[w.rng.IntN(len(h.hsmIDs))]
	for range hsm.MaxFailures {
		p := h.run(false, password(fmt.Sprintf("Wrong-%08d", w.rng.IntN(1e8))), "hsm-user", "login", "--server", x, "--session", w.selfSess, "--username", u.name, "--role", u.role)
		h.ops.Add(1)
		if p.code != 1 {
			h.errorf("worker %d: a wrong password of %s on %s alone: %s", w.id, u.name, x, p.describe())
			return
		}
		u.uncertain(p, "")
	}
	h.locksOne.Add(1)
	l := h.run(false, password(u.pw), "hsm-user", "login", "--allow-partial", "--session", w.selfSess, "--username", u.name, "--role", u.role)
	h.ops.Add(1)
	if doneOn(l) != len(h.hsmIDs)-1 {
		h.errorf("worker %d: the login of %s, locked on %s, must open on the other HSMs only: %s", w.id, u.name, x, l.describe())
		if _, err := os.Stat(w.selfSess); err == nil {
			h.run(false, nil, "hsm-user", "logout", "--session", w.selfSess)
		}
		return
	}
	pw := w.newPW()
	rec := w.rec(state.KindSelfPassword, u.role, nil)
	c := w.op(password(pw), "hsm-user", "change-password", "--allow-partial", "--session", w.selfSess, "--username", u.name, "--role", u.role)
	rec.cmd = c.String()
	switch {
	case c.killed:
		u.uncertain(c, pw)
	case doneOn(c) == len(h.hsmIDs)-1:
		u.cands = append(u.cands, pw)
	default:
		h.errorf("worker %d: %s, locked on %s, changing its own password on the others: %s", w.id, u.name, x, c.describe())
	}
	if o := h.run(false, nil, "hsm-user", "logout", "--session", w.selfSess); o.code != 0 {
		h.errorf("worker %d: %s", w.id, o.describe())
	}
	w.learn(u, c, rec, doneOn(c))
}

// endSession logs out a session a killed child left behind.
func (w *worker) endSession() bool {
	for range 5 {
		if _, err := os.Stat(w.userSess); err != nil {
			return true
		}
		p := w.op(nil, "hsm-user", "logout", "--session", w.userSess)
		switch {
		case p.killed:
			if w.sessUser != nil {
				w.sessUser.sessions = true
			}
		case p.code == 1 && strings.Contains(p.stderr.String(), "is open on none of the HSMs it names"):
			// A login killed before its first HSM write, or a logout
			// killed after its last: the file opens nothing, and logout
			// says so rather than pretend; the hint says to remove it.
			if err := os.Remove(w.userSess); err != nil {
				w.h.errorf("worker %d: %v", w.id, err)
				return false
			}
			return true
		case p.code != 0:
			w.h.errorf("worker %d: logout of a leftover session: %s", w.id, p.describe())
			return false
		}
	}
	return false
}

// approval is what approve got for one user-service operation.
type approval struct {
	args         []string // --approval FILE; none while the quorum is off
	file         string
	digest       string // hex SHA-256 of the token's approval_data
	approvals    int    // signatures (1 while the quorum is off: the caller alone)
	insufficient bool   // one signature where two are needed
}

// approve gets an approval for one user-service operation when the
// quorum is on: generate a token, have two admins sign it offline (one
// in ten times only one, which must not be enough). ok is false when a
// step was killed.
func (w *worker) approve() (*approval, bool) {
	if !w.quorum {
		return &approval{approvals: 1}, true
	}
	tok, tok1, tok2 := w.tok+".json", w.tok+".1", w.tok+".2"
	for attempt := 0; ; attempt++ {
		for _, f := range []string{tok, tok1, tok2} {
			os.Remove(f)
		}
		p := w.op(nil, "hsm-quorum", append([]string{"generate", "--session", w.adminSess, "--service", "user", "--token", tok}, w.target...)...)
		if p.killed {
			return nil, false
		}
		// A killed generate or approved operation, or a refused approval,
		// leaves an unused token on some HSMs: delete it and try again.
		if p.code != 0 && attempt < 2 && strings.Contains(p.stderr.String(), "already has an active user token") {
			d := w.op(nil, "hsm-quorum", append([]string{"delete", "--scope", "user", "--session", w.adminSess}, w.target...)...)
			if d.killed {
				return nil, false
			}
			if d.code != 0 && doneOn(d) == 0 {
				w.h.errorf("worker %d: %s", w.id, d.describe())
				return nil, false
			}
			continue
		}
		if p.code == 0 || doneOn(p) > 0 { // on the reachable HSMs during an outage
			break
		}
		w.h.errorf("worker %d: token generation refused: %s", w.id, p.describe())
		return nil, false
	}
	digest, err := tokenDigest(tok)
	if err != nil {
		w.h.errorf("worker %d: %v", w.id, err)
		return nil, false
	}
	i := w.rng.IntN(len(w.approvers))
	j := (i + 1 + w.rng.IntN(len(w.approvers)-1)) % len(w.approvers)
	a, b := w.approvers[i], w.approvers[j]
	s := w.op(nil, "hsm-sign", "sign", "--key", a.key, "--username", a.name, "--out", tok1, tok)
	if s.killed {
		return nil, false
	}
	if s.code != 0 {
		w.h.errorf("worker %d: %s", w.id, s.describe())
		return nil, false
	}
	if w.rng.IntN(10) == 0 {
		return &approval{args: []string{"--approval", tok1}, file: tok1, digest: digest, approvals: 1, insufficient: true}, true
	}
	s = w.op(nil, "hsm-sign", "sign", "--key", b.key, "--username", b.name, "--out", tok2, tok1)
	if s.killed {
		return nil, false
	}
	if s.code != 0 {
		w.h.errorf("worker %d: %s", w.id, s.describe())
		return nil, false
	}
	return &approval{args: []string{"--approval", tok2}, file: tok2, digest: digest, approvals: 2}, true
}

// rec starts the journal's record of an operation.
func (w *worker) rec(verb, role string, ap *approval) *opRec {
	r := &opRec{seq: w.h.opSeq.Add(1), verb: verb, role: role, approvals: 1, authorized: true}
	if ap != nil && ap.file != "" {
		r.approvals, r.token, r.authorized = ap.approvals, ap.digest, !ap.insufficient
	}
	return r
}

// maybeProbe offers, now and then, the token of an approved operation
// that was killed, refused or done on some HSMs only, again: for the
// creation of a fresh admin, what a leftover token would let its holder
// do. Wherever an HSM spent the token it must be refused ("already
// used"), and where no HSM holds it ("no HSM holds"); it may succeed
// only where the first operation was killed before the token was spent
// anywhere, so that this is the token's one operation (the ledger checks
// that nothing else wrote with it). --allow-partial during an outage:
// where the first was killed between two HSMs' spends, it may act on the
// HSMs that had not spent it yet, the token's one operation again.
func (w *worker) maybeProbe(ap *approval, p *proc) {
	if ap == nil || ap.file == "" || ap.insufficient || !p.killed && p.code != 1 || w.rng.IntN(probeEvery) != 0 {
		return
	}
	h := w.h
	hsms, err := loadHSMs(h.stateDir)
	if err != nil {
		h.errorf("worker %d: %v", w.id, err)
		return
	}
	held, used, _ := tokenState(hsms, ap.digest)
	first := h.tokens.writer(ap.digest)
	v := w.fresh()
	q := w.doCreateProbe(v, ap)
	wrote := q.code == 0 || doneOn(q) > 0
	stderr := q.stderr.String()
	h.probes.Add(1)
	switch {
	case wrote && (first != "" || used > 0 && w.target == nil):
		h.errorf("worker %d: a token reused after %s (exit %d; spent on %d of the %d HSMs that hold it; %s) approved a second operation: %s",
			w.id, p, p.code, used, held, map[bool]string{true: "it wrote with it", false: "it wrote nothing"}[first != ""], q.describe())
	case wrote:
		h.probesFirstUse.Add(1)
	case held == 0 && !strings.Contains(stderr, "no HSM holds a token"):
		h.errorf("worker %d: a token no HSM holds, reused after %s, refused without saying so: %s", w.id, p, q.describe())
	case held == 0:
		h.probesGone.Add(1)
	case used > 0 && !strings.Contains(stderr, "already used"):
		h.errorf("worker %d: a token spent on %d of %d HSMs, reused after %s, refused without saying it was used: %s", w.id, used, held, p, q.describe())
	case used > 0:
		h.probesUsed.Add(1)
	default:
		h.errorf("worker %d: a token %s never spent (the command was killed before), reused, was refused: %s", w.id, p, q.describe())
	}
}

func (w *worker) create(u *user) {
	role := "crypto-user"
	if w.rng.IntN(5) == 0 {
		role = "admin"
	}
	ap, ok := w.approve()
	if !ok {
		return
	}
	w.maybeProbe(ap, w.doCreate(u, role, ap, false))
}

// doCreate creates u, killable; probe: unkillable, and the refusal is
// the probe's to judge.
func (w *worker) doCreate(u *user, role string, ap *approval, probe bool) *proc {
	pw := w.newPW()
	rec := w.rec(state.KindCreate, role, ap)
	args := append([]string{"create", "--session", w.adminSess, "--username", u.name, "--role", role}, w.target...)
	p := w.opk(!probe, ap.file != "", password(pw), "hsm-user", append(args, ap.args...)...)
	rec.cmd = p.String()
	done := doneOn(p)
	switch {
	case p.killed:
		if !u.exists {
			u.role = role
		}
		u.uncertain(p, pw)
	case done > 0:
		switch {
		case ap.insufficient:
			w.h.errorf("worker %d: create with 1 of 2 approvals succeeded on %d HSMs: %s", w.id, done, p.describe())
		case u.certain && u.exists:
			w.h.errorf("worker %d: create of existing user %s succeeded on %d HSMs: %s", w.id, u.name, done, p.describe())
		}
		u.role = role
		u.partial(p, pw, expectation{exists: true})
	case p.code == 0:
		switch {
		case ap.insufficient:
			w.h.errorf("worker %d: create with 1 of 2 approvals succeeded: %s", w.id, p.describe())
		case u.certain && u.exists:
			w.h.errorf("worker %d: create of existing user %s succeeded: %s", w.id, u.name, p.describe())
		}
		*u = user{name: u.name, role: role, exists: true, certain: true, pw: pw, prov: u.prov}
	case p.code == 1 && u.certain && !u.exists && !ap.insufficient && !probe:
		w.h.errorf("worker %d: create of absent user %s refused: %s", w.id, u.name, p.describe())
	}
	w.learn(u, p, rec, done)
	return p
}

// doCreateProbe is the probe's create: a fresh admin, unkillable.
func (w *worker) doCreateProbe(v *user, ap *approval) *proc {
	return w.doCreate(v, "admin", ap, true)
}

func (w *worker) delete(u *user) {
	ap, ok := w.approve()
	if !ok {
		return
	}
	w.maybeProbe(ap, w.doDelete(u, ap))
}

func (w *worker) doDelete(u *user, ap *approval) *proc {
	rec := w.rec(verbDelete, u.role, ap)
	args := append([]string{"delete", "--session", w.adminSess, "--username", u.name, "--role", u.role}, w.target...)
	p := w.opk(true, ap.file != "", nil, "hsm-user", append(args, ap.args...)...)
	rec.cmd = p.String()
	done := doneOn(p)
	switch {
	case p.killed:
		u.uncertain(p, "")
	case done > 0:
		switch {
		case ap.insufficient:
			w.h.errorf("worker %d: delete with 1 of 2 approvals succeeded on %d HSMs: %s", w.id, done, p.describe())
		case u.certain && !u.exists:
			w.h.errorf("worker %d: delete of absent user %s succeeded on %d HSMs: %s", w.id, u.name, done, p.describe())
		}
		u.partial(p, "", expectation{exists: false})
	case p.code == 0:
		switch {
		case ap.insufficient:
			w.h.errorf("worker %d: delete with 1 of 2 approvals succeeded: %s", w.id, p.describe())
		case u.certain && !u.exists:
			w.h.errorf("worker %d: delete of absent user %s succeeded: %s", w.id, u.name, p.describe())
		}
		*u = user{name: u.name, role: u.role, certain: true, prov: u.prov}
	case p.code == 1 && u.certain && u.exists && !u.sessions && !ap.insufficient:
		w.h.errorf("worker %d: delete of user %s refused: %s", w.id, u.name, p.describe())
	}
	w.learn(u, p, rec, done)
	return p
}

// changePassword is an admin's change of another user's password (quorum
// service user).
func (w *worker) changePassword(u *user) {
	ap, ok := w.approve()
	if !ok {
		return
	}
	w.maybeProbe(ap, w.doReset(u, ap))
}

func (w *worker) doReset(u *user, ap *approval) *proc {
	pw := w.newPW()
	rec := w.rec(state.KindReset, u.role, ap)
	args := append([]string{"change-password", "--session", w.adminSess, "--username", u.name, "--role", u.role}, w.target...)
	p := w.opk(true, ap.file != "", password(pw), "hsm-user", append(args, ap.args...)...)
	rec.cmd = p.String()
	done := doneOn(p)
	switch {
	case p.killed:
		u.uncertain(p, pw)
	case done > 0:
		switch {
		case ap.insufficient:
			w.h.errorf("worker %d: change-password with 1 of 2 approvals succeeded on %d HSMs: %s", w.id, done, p.describe())
		case u.certain && !u.exists:
			w.h.errorf("worker %d: change-password of absent user %s succeeded on %d HSMs: %s", w.id, u.name, done, p.describe())
		}
		u.partial(p, pw, expectation{exists: true, oldDigest: u.digest})
	case p.code == 0:
		switch {
		case ap.insufficient:
			w.h.errorf("worker %d: change-password with 1 of 2 approvals succeeded: %s", w.id, p.describe())
		case u.certain && !u.exists:
			w.h.errorf("worker %d: change-password of absent user %s succeeded: %s", w.id, u.name, p.describe())
		}
		*u = user{name: u.name, role: u.role, exists: true, certain: true, pw: pw, sessions: u.sessions, prov: u.prov}
	case p.code == 1 && u.certain && u.exists && !u.sessions && !ap.insufficient:
		w.h.errorf("worker %d: change-password of user %s refused: %s", w.id, u.name, p.describe())
	}
	w.learn(u, p, rec, done)
	return p
}

func (w *worker) loginWrong(u *user) {
	p := w.op(password(fmt.Sprintf("Wrong-%08d", w.rng.IntN(1e8))), "hsm-user", "login", "--session", w.userSess, "--username", u.name, "--role", u.role)
	switch {
	case p.killed:
		u.uncertain(p, "")
	case p.code == 0:
		w.sessUser = u
		w.h.errorf("worker %d: login of %s with a wrong password succeeded: %s", w.id, u.name, p.describe())
	case u.certain && u.exists && u.failures < hsm.MaxFailures:
		u.failures++
	}
	w.learn(u, p, nil, 0)
}

// loginRight logs a user in with its password, sometimes changes its own
// password in that session, and logs out.
func (w *worker) loginRight(u *user) {
	p := w.op(password(u.pw), "hsm-user", "login", "--session", w.userSess, "--username", u.name, "--role", u.role)
	switch {
	case p.killed:
		w.sessUser = u
		u.sessions = true
		u.uncertain(p, "")
		w.learn(u, p, nil, 0)
		return
	case p.code != 0:
		if u.failures < hsm.MaxFailures {
			w.h.errorf("worker %d: login of %s with its password refused: %s", w.id, u.name, p.describe())
		}
		w.learn(u, p, nil, 0)
		return
	}
	w.sessUser = u
	if u.failures >= hsm.MaxFailures {
		w.h.errorf("worker %d: login of locked user %s succeeded: %s", w.id, u.name, p.describe())
	}
	u.failures = 0
	w.learn(u, p, nil, 0)
	if w.rng.IntN(2) == 0 {
		pw := w.newPW()
		rec := w.rec(state.KindSelfPassword, u.role, nil)
		c := w.op(password(pw), "hsm-user", "change-password", "--session", w.userSess, "--username", u.name, "--role", u.role)
		rec.cmd = c.String()
		switch {
		case c.killed:
			u.uncertain(c, pw)
		case c.code == 0:
			u.pw, u.digest, u.failures = pw, "", 0
		default:
			w.h.errorf("worker %d: %s changing its own password refused: %s", w.id, u.name, c.describe())
		}
		w.learn(u, c, rec, 0)
	}
	l := w.op(nil, "hsm-user", "logout", "--session", w.userSess)
	switch {
	case l.killed:
		u.sessions = true
	case l.code != 0:
		w.h.errorf("worker %d: logout: %s", w.id, l.describe())
	}
}

// learn reads the state after a command on u, killed or not: it
// attributes the operation the command left on u's records to rec (nil:
// a command that writes no user record; see harness.attribute), then
// checks u against every HSM if the journal is certain of it.
func (w *worker) learn(u *user, p *proc, rec *opRec, done int) {
	hsms, err := loadHSMs(w.h.stateDir)
	if err != nil {
		w.h.errorf("worker %d: after %s: %v", w.id, p, err)
		return
	}
	w.h.attribute(u, p, rec, done, hsms, fmt.Sprintf("worker %d", w.id))
	if !u.certain || p.killed {
		return
	}
	if msg := u.mismatch(hsms); msg != "" {
		w.h.errorf("worker %d: after %s (exit %d): %s\nstderr: %s", w.id, p, p.code, msg, strings.TrimSpace(p.stderr.String()))
		u.certain = false // reported once; the checker resolves it
		u.killedBy = append(u.killedBy, "mismatch")
	}
}

// mismatch compares a certain user with every HSM, learning its hash
// digest the first time.
func (u *user) mismatch(hsms []*state.HSM) string {
	for _, h := range hsms {
		r := findUser(h, u.name)
		switch {
		case !u.exists && r != nil:
			return fmt.Sprintf("%s must be absent but %s holds it (%s)", u.name, h.ID, r.Role)
		case !u.exists:
			continue
		case r == nil:
			return fmt.Sprintf("%s must exist but %s lacks it", u.name, h.ID)
		case r.Role != u.role:
			return fmt.Sprintf("%s must be a %s but is a %s on %s", u.name, u.role, r.Role, h.ID)
		case r.Failures != u.failures:
			return fmt.Sprintf("%s must have %d login failures but has %d on %s", u.name, u.failures, r.Failures, h.ID)
		}
		d := hsm.HashDigest(r.Hash)
		if u.digest == "" {
			u.digest = d
		} else if d != u.digest {
			return fmt.Sprintf("%s has password hash %s on %s, want %s", u.name, d, h.ID, u.digest)
		}
	}
	return ""
}

func findUser(h *state.HSM, name string) *state.User {
	for i := range h.Users {
		if h.Users[i].Name == name {
			return &h.Users[i]
		}
	}
	return nil
}

// loadHSMs reads every HSM of the cluster straight from the state, under
// the state lock, as the commands do. Workers read while other workers'
// children run: without the lock a read waits on the flock of an HSM
// database a child holds for writing, which gives up after 5 seconds on a
// loaded machine ("corrupt state: timeout"). statelock rather than
// Store.Lock: the lock holder's sweep would remove the temp files a kill
// left, which the checker counts.
func loadHSMs(dir string) ([]*state.HSM, error) {
	unlock, err := statelock.Acquire(dir, time.Minute, "hsmkit torture test (read)", time.Second, nil)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := state.Open(dir)
	if err != nil {
		return nil, err
	}
	cl, err := st.LoadCluster()
	if err != nil {
		return nil, err
	}
	var out []*state.HSM
	for _, info := range cl.HSMs {
		h, err := st.LoadHSM(info.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}
