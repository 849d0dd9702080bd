//go:build linux

package torture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/state"
	"github.com/hsmkit/hsmkit/internal/statelock"
)

// user is the journal of one user of a worker's namespace: what the
// operations that exited 0 say must be on every HSM. A killed operation
// makes the user uncertain until the checker resolves it from a state in
// which every HSM agrees.
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
	retired  bool     // an orphan session (a login killed before its session file) pins it
	killedBy []string // killed operations since it was last certain, for messages
}

func (u *user) uncertain(p *proc, pw string) {
	u.certain = false
	if pw != "" {
		u.cands = append(u.cands, pw)
	}
	u.killedBy = append(u.killedBy, p.String())
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
	sessUser  *user  // whose login userSess holds
	tok       string // token file prefix
	users     []*user
	next      int
	quorum    bool // the user service needs 2 approvals
	approvers []approver
}

const activeUsers = 8

func newWorker(h *harness, id int, seed uint64, approvers []approver) *worker {
	w := &worker{h: h, id: id, rng: rand.New(rand.NewPCG(seed, uint64(id))), approvers: approvers}
	w.admin = fmt.Sprintf("w%d_adm", id)
	w.adminSess = filepath.Join(h.dir, w.admin+".session")
	w.userSess = filepath.Join(h.dir, fmt.Sprintf("w%d_user.session", id))
	w.tok = filepath.Join(h.dir, fmt.Sprintf("w%d_token", id))
	return w
}

func (w *worker) loop(ctx context.Context) {
	for ctx.Err() == nil {
		w.h.pause.RLock()
		w.iteration()
		w.h.pause.RUnlock()
	}
}

// op runs one killable child of an operation and counts it. Exit codes
// other than 0 and 1 (usage, config or state trouble, lock timeouts) are
// failures.
func (w *worker) op(env []string, prog string, args ...string) *proc {
	p := w.h.run(true, env, prog, args...)
	w.h.ops.Add(1)
	switch {
	case p.killed:
		w.h.opsKilled.Add(1)
	case p.code == 0:
		w.h.opsOK.Add(1)
	case p.code != 1:
		w.h.errorf("worker %d: unexpected exit: %s", w.id, p.describe())
	}
	return p
}

func password(env string) []string { return []string{"HSM_PASSWORD=" + env} }

func (w *worker) newPW() string { return fmt.Sprintf("Pw%d-%08d", w.id, w.rng.IntN(1e8)) }

// pick chooses a user, adding fresh names so enough are usable.
func (w *worker) pick() *user {
	var active []*user
	for _, u := range w.users {
		if !u.retired {
			active = append(active, u)
		}
	}
	for len(active) < activeUsers {
		u := &user{name: fmt.Sprintf("w%d_%d", w.id, w.next), role: "crypto-user", certain: true}
		w.next++
		w.users = append(w.users, u)
		active = append(active, u)
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

// approve gets an approval for one user-service operation when the
// quorum is on: generate a token, have two admins sign it offline (one
// in ten times only one, which must not be enough). ok is false when a
// step was killed.
func (w *worker) approve() (args []string, insufficient, ok bool) {
	if !w.quorum {
		return nil, false, true
	}
	tok, tok1, tok2 := w.tok+".json", w.tok+".1", w.tok+".2"
	for attempt := 0; ; attempt++ {
		for _, f := range []string{tok, tok1, tok2} {
			os.Remove(f)
		}
		p := w.op(nil, "hsm-quorum", "generate", "--session", w.adminSess, "--service", "user", "--token", tok)
		if p.killed {
			return nil, false, false
		}
		if p.code == 0 {
			break
		}
		// A killed generate or approved operation, or a refused approval,
		// leaves an unused token on some HSMs: delete it and try again.
		if attempt < 2 && strings.Contains(p.stderr.String(), "already has an active user token") {
			d := w.op(nil, "hsm-quorum", "delete", "--scope", "user", "--session", w.adminSess)
			if d.killed {
				return nil, false, false
			}
			if d.code != 0 {
				w.h.errorf("worker %d: %s", w.id, d.describe())
				return nil, false, false
			}
			continue
		}
		w.h.errorf("worker %d: token generation refused: %s", w.id, p.describe())
		return nil, false, false
	}
	i := w.rng.IntN(len(w.approvers))
	j := (i + 1 + w.rng.IntN(len(w.approvers)-1)) % len(w.approvers)
	a, b := w.approvers[i], w.approvers[j]
	s := w.op(nil, "hsm-sign", "sign", "--key", a.key, "--username", a.name, "--out", tok1, tok)
	if s.killed {
		return nil, false, false
	}
	if s.code != 0 {
		w.h.errorf("worker %d: %s", w.id, s.describe())
		return nil, false, false
	}
	if w.rng.IntN(10) == 0 {
		return []string{"--approval", tok1}, true, true
	}
	s = w.op(nil, "hsm-sign", "sign", "--key", b.key, "--username", b.name, "--out", tok2, tok1)
	if s.killed {
		return nil, false, false
	}
	if s.code != 0 {
		w.h.errorf("worker %d: %s", w.id, s.describe())
		return nil, false, false
	}
	return []string{"--approval", tok2}, false, true
}

func (w *worker) create(u *user) {
	role := "crypto-user"
	if w.rng.IntN(5) == 0 {
		role = "admin"
	}
	approval, insufficient, ok := w.approve()
	if !ok {
		return
	}
	pw := w.newPW()
	p := w.op(password(pw), "hsm-user", append([]string{"create", "--session", w.adminSess, "--username", u.name, "--role", role}, approval...)...)
	switch {
	case p.killed:
		if !u.exists {
			u.role = role
		}
		u.uncertain(p, pw)
		return
	case p.code == 0:
		switch {
		case insufficient:
			w.h.errorf("worker %d: create with 1 of 2 approvals succeeded: %s", w.id, p.describe())
		case u.certain && u.exists:
			w.h.errorf("worker %d: create of existing user %s succeeded: %s", w.id, u.name, p.describe())
		}
		*u = user{name: u.name, role: role, exists: true, certain: true, pw: pw}
	case p.code == 1 && u.certain && !u.exists && !insufficient:
		w.h.errorf("worker %d: create of absent user %s refused: %s", w.id, u.name, p.describe())
	}
	w.verify(u, p)
}

func (w *worker) delete(u *user) {
	approval, insufficient, ok := w.approve()
	if !ok {
		return
	}
	p := w.op(nil, "hsm-user", append([]string{"delete", "--session", w.adminSess, "--username", u.name, "--role", u.role}, approval...)...)
	switch {
	case p.killed:
		u.uncertain(p, "")
		return
	case p.code == 0:
		switch {
		case insufficient:
			w.h.errorf("worker %d: delete with 1 of 2 approvals succeeded: %s", w.id, p.describe())
		case u.certain && !u.exists:
			w.h.errorf("worker %d: delete of absent user %s succeeded: %s", w.id, u.name, p.describe())
		}
		*u = user{name: u.name, role: u.role, certain: true}
	case p.code == 1 && u.certain && u.exists && !u.sessions && !insufficient:
		w.h.errorf("worker %d: delete of user %s refused: %s", w.id, u.name, p.describe())
	}
	w.verify(u, p)
}

// changePassword is an admin's change of another user's password (quorum
// service user).
func (w *worker) changePassword(u *user) {
	approval, insufficient, ok := w.approve()
	if !ok {
		return
	}
	pw := w.newPW()
	p := w.op(password(pw), "hsm-user", append([]string{"change-password", "--session", w.adminSess, "--username", u.name, "--role", u.role}, approval...)...)
	switch {
	case p.killed:
		u.uncertain(p, pw)
		return
	case p.code == 0:
		switch {
		case insufficient:
			w.h.errorf("worker %d: change-password with 1 of 2 approvals succeeded: %s", w.id, p.describe())
		case u.certain && !u.exists:
			w.h.errorf("worker %d: change-password of absent user %s succeeded: %s", w.id, u.name, p.describe())
		}
		*u = user{name: u.name, role: u.role, exists: true, certain: true, pw: pw, sessions: u.sessions}
	case p.code == 1 && u.certain && u.exists && !u.sessions && !insufficient:
		w.h.errorf("worker %d: change-password of user %s refused: %s", w.id, u.name, p.describe())
	}
	w.verify(u, p)
}

func (w *worker) loginWrong(u *user) {
	p := w.op(password(fmt.Sprintf("Wrong-%08d", w.rng.IntN(1e8))), "hsm-user", "login", "--session", w.userSess, "--username", u.name, "--role", u.role)
	switch {
	case p.killed:
		u.uncertain(p, "")
		return
	case p.code == 0:
		w.sessUser = u
		w.h.errorf("worker %d: login of %s with a wrong password succeeded: %s", w.id, u.name, p.describe())
	case u.certain && u.exists && u.failures < hsm.MaxFailures:
		u.failures++
	}
	w.verify(u, p)
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
		return
	case p.code != 0:
		if u.failures < hsm.MaxFailures {
			w.h.errorf("worker %d: login of %s with its password refused: %s", w.id, u.name, p.describe())
		}
		w.verify(u, p)
		return
	}
	w.sessUser = u
	if u.failures >= hsm.MaxFailures {
		w.h.errorf("worker %d: login of locked user %s succeeded: %s", w.id, u.name, p.describe())
	}
	u.failures = 0
	w.verify(u, p)
	if w.rng.IntN(2) == 0 {
		pw := w.newPW()
		c := w.op(password(pw), "hsm-user", "change-password", "--session", w.userSess, "--username", u.name, "--role", u.role)
		switch {
		case c.killed:
			u.uncertain(c, pw)
		case c.code == 0:
			u.pw, u.digest, u.failures = pw, "", 0
			w.verify(u, c)
		default:
			w.h.errorf("worker %d: %s changing its own password refused: %s", w.id, u.name, c.describe())
		}
	}
	l := w.op(nil, "hsm-user", "logout", "--session", w.userSess)
	switch {
	case l.killed:
		u.sessions = true
	case l.code != 0:
		w.h.errorf("worker %d: logout: %s", w.id, l.describe())
	}
}

// verify checks, right after an operation that was not killed, that a
// certain user is on every HSM as the journal says: present with its role,
// the same password hash and failure count, or absent. Only this worker
// changes its users, so the files are quiescent for it.
func (w *worker) verify(u *user, p *proc) {
	if !u.certain {
		return
	}
	hsms, err := loadHSMs(w.h.stateDir)
	if err != nil {
		w.h.errorf("worker %d: after %s: %v", w.id, p, err)
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
