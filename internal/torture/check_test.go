//go:build linux

package torture

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
)

// checker verifies the state with every worker paused.
type checker struct {
	h            *harness
	adminSess    string
	fixed        map[string]string // users outside the workers' namespaces: name → role
	fixedLineage map[string]string // their lineage, from the setup
	quorumUser   int               // the user service's quorum value on every HSM
	lastSeq      map[string]uint64 // per HSM: a write is never undone
	temps        int               // renameio temp files left by kills, last seen
	reported     map[string]bool   // strays already reported
	tmpOther     map[string]bool   // other files in the children's TMPDIR, last seen
	tmpOtherAll  map[string]bool
	undecided    map[string]bool // users hsm-sync apply could not decide, ever
}

// An HSM database being created (add-hsm, init) is hsms/.<id>.db.new; an
// HSM's own transactions write inside its database, so a kill leaves no
// other file.
var tempRe = regexp.MustCompile(`^\.(hsm-[a-z0-9-]+)\.db\.new$`)

// load reads and validates every HSM file straight from the state.
func (c *checker) load(why string) ([]*state.HSM, bool) {
	h := c.h
	st, err := state.Open(h.stateDir)
	if err != nil {
		h.errorf("%s: %v", why, err)
		return nil, false
	}
	cl, err := st.LoadCluster()
	if err != nil {
		h.errorf("%s: %v", why, err)
		return nil, false
	}
	ids := map[string]bool{}
	for _, info := range cl.HSMs {
		ids[info.ID] = true
	}
	entries, err := os.ReadDir(filepath.Join(h.stateDir, "hsms"))
	if err != nil {
		h.errorf("%s: %v", why, err)
		return nil, false
	}
	c.temps = 0
	for _, e := range entries {
		name := e.Name()
		if m := tempRe.FindStringSubmatch(name); m != nil && ids[m[1]] {
			c.temps++ // a write killed before its rename; the HSM file is intact beside it
			continue
		}
		if id, ok := strings.CutSuffix(name, ".db"); ok && ids[id] {
			continue
		}
		h.errorf("%s: unexpected file hsms/%s", why, name)
	}
	c.strays(why)
	var out []*state.HSM
	for _, info := range cl.HSMs {
		x, err := st.LoadHSM(info.ID)
		if err != nil {
			h.errorf("%s: HSM %s does not load: %v", why, info.ID, err)
			return nil, false
		}
		for _, msg := range c.validate(x) {
			h.errorf("%s: HSM %s: %s", why, x.ID, msg)
		}
		out = append(out, x)
	}
	return out, true
}

// strays looks at the children's TMPDIR: a write killed part-way must not
// leave a copy of an HSM (password hashes, session hashes) outside the
// 0700 state directory. Other leftovers (session and token files written
// through the system temp dir) are counted and reported.
func (c *checker) strays(why string) {
	entries, err := os.ReadDir(c.h.tmp)
	if err != nil {
		c.h.errorf("%s: %v", why, err)
		return
	}
	c.tmpOther = map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".hsm-") || strings.HasPrefix(name, ".cluster.json") {
			if !c.reported[name] {
				c.reported[name] = true
				c.h.errorf("%s: state written outside the state directory: $TMPDIR/%s", why, name)
			}
			continue
		}
		c.tmpOther[name] = true
		c.tmpOtherAll[name] = true
	}
}

// validate checks one HSM's internal consistency.
func (c *checker) validate(x *state.HSM) []string {
	var bad []string
	if x.Seq < c.lastSeq[x.ID] {
		bad = append(bad, fmt.Sprintf("write counter went back from %d to %d: a write was lost", c.lastSeq[x.ID], x.Seq))
	}
	c.lastSeq[x.ID] = x.Seq
	names, ids := map[string]bool{}, map[int]bool{}
	for _, u := range x.Users {
		if n, err := policy.NormalizeUsername(u.Name); err != nil || n != u.Name {
			bad = append(bad, fmt.Sprintf("bad username %q", u.Name))
		}
		if names[u.Name] {
			bad = append(bad, fmt.Sprintf("user %s twice", u.Name))
		}
		if ids[u.ID] {
			bad = append(bad, fmt.Sprintf("user id %d twice", u.ID))
		}
		if u.ID > x.NextUserID {
			bad = append(bad, fmt.Sprintf("user %s has id %d above next_user_id %d", u.Name, u.ID, x.NextUserID))
		}
		names[u.Name], ids[u.ID] = true, true
		switch u.Role {
		case "admin", "crypto-user", "internal(APPLIANCE_USER)":
		default:
			bad = append(bad, fmt.Sprintf("user %s has role %q", u.Name, u.Role))
		}
		if u.Hash == nil && u.Role != "internal(APPLIANCE_USER)" {
			bad = append(bad, fmt.Sprintf("user %s has no password hash", u.Name))
		}
	}
	for _, d := range x.Deleted {
		if names[d.Name] {
			bad = append(bad, fmt.Sprintf("user %s is both present and deleted", d.Name))
		}
	}
	toks := map[uint32]bool{}
	for _, t := range x.Tokens {
		if toks[t.ID] || t.ID > x.NextTokenID {
			bad = append(bad, fmt.Sprintf("token id %d duplicated or above next_token_id %d", t.ID, x.NextTokenID))
		}
		toks[t.ID] = true
	}
	if v := x.Quorum.Values["user"]; v != c.quorumUser {
		bad = append(bad, fmt.Sprintf("quorum value of service user is %d, want %d", v, c.quorumUser))
	}
	return bad
}

// userRec is what hsm-sync compares of a user on one HSM.
type userRec struct {
	present              bool
	role, digest, qk, mf string
	failures             int
}

func recOf(x *state.HSM, name string) userRec {
	u := findUser(x, name)
	if u == nil {
		return userRec{}
	}
	r := userRec{present: true, role: u.Role, digest: hsm.HashDigest(u.Hash), failures: u.Failures}
	if u.QuorumKey != nil {
		r.qk = u.QuorumKey.Fingerprint
	}
	if u.MFA != nil {
		r.mf = u.MFA.Fingerprint
	}
	return r
}

// driftOf lists the users whose records differ between HSMs.
func driftOf(hsms []*state.HSM) map[string]bool {
	names := map[string]bool{}
	for _, x := range hsms {
		for _, u := range x.Users {
			names[u.Name] = true
		}
	}
	drift := map[string]bool{}
	for name := range names {
		first := recOf(hsms[0], name)
		for _, x := range hsms[1:] {
			if recOf(x, name) != first {
				drift[name] = true
			}
		}
	}
	return drift
}

// sortedKeys is a map's keys in order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }

// uncertain are the users a killed operation touched and no state has
// resolved since.
func (c *checker) uncertain() map[string]*user {
	out := map[string]*user{}
	for _, w := range c.h.workers {
		for _, u := range w.users {
			if !u.certain {
				out[u.name] = u
			}
		}
	}
	return out
}

// check pauses the workers and checks every invariant; with drift it
// sometimes (always when final) repairs it with hsm-sync.
func (c *checker) check(rng *rand.Rand, final bool, why string) {
	h := c.h
	h.pause.Lock()
	defer h.pause.Unlock()
	h.checks.Add(1)
	hsms, ok := c.load(why)
	if !ok {
		return
	}
	unc := c.uncertain()
	drift := driftOf(hsms)
	for _, name := range sortedKeys(drift) {
		if unc[name] == nil {
			h.errorf("%s: drift of %s, which no killed operation touched", why, name)
		}
	}
	c.verifyCertain(hsms, why)
	c.privilege(hsms, drift, why)
	kdrift := c.checkKeys(hsms, why)
	c.keyAccess(rng, hsms, final, why)
	if len(drift) > 0 || len(kdrift) > 0 {
		c.report(drift, kdrift, unc, why)
	}
	var skipped map[string]bool
	var undecidedKeys map[uint64]string
	if (len(drift) > 0 || len(kdrift) > 0) && (final || rng.Float64() < *flagRepair) {
		skipped, undecidedKeys = c.repair(rng, drift, kdrift, unc, why)
		if hsms, ok = c.load(why + ", after repair"); !ok {
			return
		}
		before, kbefore := drift, kdrift
		drift = driftOf(hsms)
		for _, name := range sortedKeys(drift) {
			if !skipped[name] {
				h.errorf("%s: %s still drifts after hsm-sync apply", why, name)
			}
		}
		h.repairedUsers.Add(int64(len(before) - len(drift)))
		c.verifyCertain(hsms, why+", after repair")
		c.privilege(hsms, drift, why+", after repair")
		kdrift = c.checkKeys(hsms, why+", after repair")
		for _, ref := range sortedKeys(kdrift) {
			if _, ok := undecidedKeys[ref]; !ok {
				h.errorf("%s: key %s (%s) still drifts after hsm-sync apply, which did not call it undecidable", why, hsm.RefString(ref), kdrift[ref])
			}
		}
		h.keysRepaired.Add(int64(len(kbefore) - len(kdrift)))
		c.keyAccess(rng, hsms, final, why+", after repair")
		if final && len(drift) > 0 {
			c.settle(rng, drift, why)
			if hsms, ok = c.load(why + ", after settling"); !ok {
				return
			}
			if drift = driftOf(hsms); len(drift) > 0 {
				h.errorf("%s: %s still drift after settling", why, strings.Join(sortedKeys(drift), ", "))
			}
			c.verifyCertain(hsms, why+", after settling")
			c.privilege(hsms, drift, why+", after settling")
		}
	}
	c.resolve(hsms, drift)
	c.resolveKeys(hsms, undecidedKeys)
	h.uncertainNow.Store(int64(len(c.uncertain())))
	if final {
		for name, u := range c.uncertain() {
			k := u.killedBy
			if len(k) > 2 {
				k = append([]string{fmt.Sprintf("… %d more", len(k)-2)}, k[len(k)-2:]...)
			}
			h.t.Logf("%s: %s stays uncertain (hsm-sync could not decide it); kills: %s", why, name, strings.Join(k, "; "))
		}
		for _, ref := range sortedKeys(undecidedKeys) {
			h.t.Logf("%s: key %s (%s) stays drifting: hsm-sync apply calls it undecidable", why, hsm.RefString(ref), undecidedKeys[ref])
		}
	}
}

// verifyCertain compares every certain user and the fixed users with every HSM.
func (c *checker) verifyCertain(hsms []*state.HSM, why string) {
	h := c.h
	for _, w := range h.workers {
		for _, u := range w.users {
			if !u.certain {
				continue
			}
			if msg := u.mismatch(hsms); msg != "" {
				h.errorf("%s: journal of worker %d: %s", why, w.id, msg)
				u.certain = false
				u.killedBy = append(u.killedBy, "mismatch")
			}
		}
	}
	for name, role := range c.fixed {
		for _, x := range hsms {
			if r := recOf(x, name); !r.present || r.role != role {
				h.errorf("%s: %s must be a %s on %s: %+v", why, name, role, x.ID, r)
			}
		}
	}
}

// resolve makes uncertain users certain again where every HSM agrees,
// and learns who holds sessions.
func (c *checker) resolve(hsms []*state.HSM, drift map[string]bool) {
	for _, w := range c.h.workers {
		for _, u := range w.users {
			if !u.certain && !drift[u.name] {
				r := recOf(hsms[0], u.name)
				if e := u.expect; e != nil {
					// What the repair made of an approved operation that
					// reached some HSMs only.
					switch {
					case r.present != e.exists:
						c.h.errorf("%s is %s on every HSM after %s, which hsm-sync apply had to finish", u.name,
							map[bool]string{true: "present", false: "absent"}[r.present], e.why)
					case e.exists && e.oldDigest != "" && r.digest == e.oldDigest:
						c.h.errorf("%s has the password hash %s undid, on every HSM: hsm-sync apply undid an approved reset", u.name, e.why)
					}
					u.expect = nil
				}
				u.exists, u.failures = r.present, r.failures
				switch {
				case !r.present:
					u.pw, u.digest = "", ""
				case r.digest == u.digest && u.digest != "":
					// the password did not change
				case len(u.cands) == 1:
					u.pw, u.digest = u.cands[0], r.digest
				default:
					u.pw, u.digest = "", r.digest // unknown until an admin sets it
				}
				if r.present {
					u.role = r.role
				}
				u.certain, u.cands, u.killedBy = true, nil, nil
			}
			if drift[u.name] && c.undecided[u.name] {
				u.retired = true // hsm-sync cannot decide it: every operation on it is refused
				u.undecidable = true
			}
			u.sessions = false
			for _, x := range hsms {
				if slices.ContainsFunc(x.Sessions, func(s state.Session) bool { return s.User == u.name }) {
					u.sessions = true
				}
			}
			if _, err := os.Stat(w.userSess); u.sessions && (w.sessUser != u || err != nil) {
				u.retired = true // an orphan session: it cannot be deleted any more
			}
		}
	}
}

type diffOut struct {
	ErrorCode int `json:"error_code"`
	Data      struct {
		InSync bool `json:"in-sync"`
		Users  []struct {
			Username string `json:"username"`
		} `json:"users"`
		Keys *keyDiffOut `json:"keys"`
	} `json:"data"`
}

// diff runs hsm-sync diff -o json: the users it reports, and its key part.
func (c *checker) diff(why string) (map[string]bool, *keyDiffOut, bool) {
	p := c.h.run(false, nil, "hsm-sync", "diff", "-o", "json", "--session", c.adminSess)
	if p.code != 0 && p.code != 1 {
		c.h.errorf("%s: %s", why, p.describe())
		return nil, nil, false
	}
	var d diffOut
	if err := json.Unmarshal(p.stdout.Bytes(), &d); err != nil {
		c.h.errorf("%s: hsm-sync diff -o json: %v\n%s", why, err, p.describe())
		return nil, nil, false
	}
	users := map[string]bool{}
	for _, u := range d.Data.Users {
		users[u.Username] = true
	}
	keysInSync := d.Data.Keys != nil && d.Data.Keys.InSync
	if (p.code == 0) != d.Data.InSync || (p.code == 0) != (len(users) == 0 && keysInSync) {
		c.h.errorf("%s: hsm-sync diff exit %d disagrees with its report: %s", why, p.code, p.describe())
	}
	return users, d.Data.Keys, true
}

var undecidedRe = regexp.MustCompile(`the plan leaves (.*) undecided`)

// report checks that hsm-sync diff reports the drift found on disk, and
// names only users a killed operation touched; and that it explains the
// key drift (reportKeys).
func (c *checker) report(drift map[string]bool, kdrift map[uint64]string, unc map[string]*user, why string) {
	h := c.h
	reported, keys, ok := c.diff(why)
	if !ok {
		return
	}
	c.reportKeys(keys, kdrift, why)
	for _, name := range sortedKeys(drift) {
		if !reported[name] {
			h.errorf("%s: hsm-sync diff does not report the drift of %s", why, name)
		}
	}
	for _, name := range sortedKeys(reported) {
		if unc[name] == nil {
			h.errorf("%s: hsm-sync diff reports %s, which no killed operation touched", why, name)
		}
	}
}

// repair runs the documented repair: hsm-sync apply (sometimes killed
// part-way first) repairs the drift, skipping what it calls undecidable,
// and diff is then clean but for the skipped users and the keys it calls
// undecidable, each named with its reason; a second apply, when nothing
// was left, has nothing to repair.
func (c *checker) repair(rng *rand.Rand, drift map[string]bool, kdrift map[uint64]string, unc map[string]*user, why string) (skipped map[string]bool, undecidedKeys map[uint64]string) {
	h := c.h
	h.repairs.Add(1)

	if rng.IntN(3) == 0 {
		// A repair can crash too: kill one part-way, then check the state.
		delay := h.killDelay(rng, "hsm-sync")
		p := h.wait(h.start(false, max(delay, time.Microsecond), nil, "hsm-sync", "apply", "--session", c.adminSess))
		if p.killed {
			h.applyKills.Add(1)
		} else if p.code != 0 && p.code != 1 {
			h.errorf("%s: %s", why, p.describe())
		}
		hsms, ok := c.load(why + ", after a killed hsm-sync apply")
		if !ok {
			return nil, nil
		}
		for _, name := range sortedKeys(driftOf(hsms)) {
			if unc[name] == nil {
				h.errorf("%s: a killed hsm-sync apply left drift of %s, which was in sync", why, name)
			}
		}
		kw := why + ", after a killed hsm-sync apply"
		for _, ref := range sortedKeys(c.checkKeys(hsms, kw)) {
			if _, ok := kdrift[ref]; !ok {
				h.errorf("%s: left drift of key %s, which was in sync", kw, hsm.RefString(ref))
			}
		}
	}

	skipped = map[string]bool{}
	for attempt := 0; ; attempt++ {
		args := []string{"apply", "-o", "json", "--session", c.adminSess}
		for _, s := range sortedKeys(skipped) {
			args = append(args, "--skip", s)
		}
		p := h.run(false, nil, "hsm-sync", args...)
		if p.code == 0 {
			break
		}
		m := undecidedRe.FindStringSubmatch(p.stderr.String())
		if p.code == 1 && m == nil && strings.TrimSpace(p.stderr.String()) == "" {
			break // it repaired what it could and skipped undecidable keys: diff names them
		}
		if p.code != 1 || m == nil || attempt > 0 {
			h.errorf("%s: %s", why, p.describe())
			return skipped, nil
		}
		names := strings.Split(m[1], ", ")
		if *flagVerbose || slices.ContainsFunc(names, func(n string) bool { return !c.undecided[n] }) {
			// Say why, once per user: it is a limit of the repair.
			d := h.run(false, nil, "hsm-sync", "diff", "--session", c.adminSess)
			for _, line := range strings.Split(d.stdout.String(), "\n") {
				for _, n := range names {
					if strings.HasPrefix(line, n+": undecidable") && (*flagVerbose || !c.undecided[n]) {
						h.t.Logf("%s: hsm-sync cannot decide: %s", why, line)
					}
				}
			}
		}
		for _, name := range names {
			skipped[name] = true
			c.undecided[name] = true
			if unc[name] == nil {
				h.errorf("%s: hsm-sync apply cannot decide %s, which no killed operation touched", why, name)
			}
		}
	}
	after, keys, ok := c.diff(why + ", after apply")
	if !ok {
		return skipped, nil
	}
	for _, name := range sortedKeys(after) {
		if !skipped[name] {
			h.errorf("%s: hsm-sync diff still reports %s after hsm-sync apply", why, name)
		}
	}
	hsms, ok := c.load(why + ", after apply")
	if !ok {
		return skipped, nil
	}
	aw := why + ", after apply"
	undecidedKeys = c.reportKeys(keys, c.checkKeys(hsms, aw), aw)
	for _, kd := range keys.Differ {
		if kd.Decision != "undecidable" {
			h.errorf("%s: hsm-sync diff still reports key %s after hsm-sync apply, decided %s: %s", aw, kd.Ref, kd.Decision, kd.Reason)
		} else if *flagVerbose {
			h.t.Logf("%s: key %s undecidable: %s", aw, kd.Ref, kd.Reason)
		}
	}
	if len(skipped) == 0 && len(undecidedKeys) == 0 && (rng.IntN(3) == 0 || len(kdrift) > 0 && rng.IntN(2) == 0) {
		// The repair is whole: the same call again changes nothing.
		if p := h.run(false, nil, "hsm-sync", "apply", "--session", c.adminSess); p.code != 0 || strings.TrimSpace(p.stdout.String()) != "nothing to repair" {
			h.errorf("%s: a second hsm-sync apply must have nothing to repair: %s", aw, p.describe())
		}
	}
	return skipped, undecidedKeys
}

// owner is the journal of a worker's user.
func (c *checker) owner(name string) *user {
	for _, w := range c.h.workers {
		for _, u := range w.users {
			if u.name == name {
				return u
			}
		}
	}
	return nil
}

// settle decides, at the end of a phase, the users hsm-sync apply left
// undecidable, in the two ways it names: an admin's reset of the
// password on every HSM (an authorized change, which unlocks), where the
// user is on every HSM with one role and logged in nowhere; otherwise a
// repair approved by two admins (hsm-sync apply --approval), which may
// grant what the rule refuses. Nothing drifts afterwards.
func (c *checker) settle(rng *rand.Rand, drift map[string]bool, why string) {
	h := c.h
	hsms, ok := c.load(why + ", before settling")
	if !ok {
		return
	}
	var rest []string
	for _, name := range sortedKeys(drift) {
		u := c.owner(name)
		if u == nil {
			h.errorf("%s: %s drifts, and no worker has it", why, name)
			continue
		}
		if rng.IntN(2) == 0 && c.reset(u, hsms, why) {
			continue
		}
		rest = append(rest, name)
	}
	if len(rest) > 0 {
		c.approvedRepair(rest, why)
	}
	for _, name := range sortedKeys(drift) {
		if u := c.owner(name); u != nil {
			u.undecidable, u.retired = false, false // resolve retires it again if a session pins it
		}
	}
}

// reset settles u by an admin's password reset, approved by two admins
// while the quorum is on. It says whether it could.
func (c *checker) reset(u *user, hsms []*state.HSM, why string) bool {
	h := c.h
	role := ""
	for _, x := range hsms {
		r := findUser(x, u.name)
		if r == nil || role != "" && r.Role != role || slices.ContainsFunc(x.Sessions, func(s state.Session) bool { return s.User == u.name }) {
			return false
		}
		role = r.Role
	}
	ap, ok := c.approval(c.quorumUser > 1, why)
	if !ok {
		return false
	}
	pw := fmt.Sprintf("Settle-%08d", h.opSeq.Load())
	rec := &opRec{seq: h.opSeq.Add(1), verb: state.KindReset, role: role, approvals: ap.approvals, authorized: true, token: ap.digest}
	p := h.run(false, password(pw), "hsm-user", append([]string{"change-password", "--session", c.adminSess, "--username", u.name, "--role", role}, ap.args...)...)
	rec.cmd = p.String()
	after, ok := c.load(why + ", after " + p.String())
	if !ok {
		return false
	}
	h.attribute(u, p, rec, 0, after, why)
	if p.code != 0 {
		h.errorf("%s: settling %s by an admin's reset: %s", why, u.name, p.describe())
		return false
	}
	*u = user{name: u.name, role: role, exists: true, certain: true, pw: pw, prov: u.prov}
	h.settledReset.Add(1)
	h.t.Logf("%s: undecidable %s settled by an admin's password reset (%s)", why, u.name, p)
	return true
}

// approval is a user-service token of the checker's admin session signed
// by two admins; none when need is false.
func (c *checker) approval(need bool, why string) (*approval, bool) {
	if !need {
		return &approval{approvals: 1}, true
	}
	h := c.h
	tok := filepath.Join(h.dir, "settle.json")
	for attempt := 0; ; attempt++ {
		os.Remove(tok)
		p := h.run(false, nil, "hsm-quorum", "generate", "--session", c.adminSess, "--service", "user", "--token", tok)
		if p.code == 0 {
			break
		}
		if attempt == 0 && strings.Contains(p.stderr.String(), "already has an active user token") {
			if d := h.run(false, nil, "hsm-quorum", "delete", "--scope", "user", "--session", c.adminSess); d.code == 0 {
				continue
			}
		}
		h.errorf("%s: %s", why, p.describe())
		return nil, false
	}
	digest, err := tokenDigest(tok)
	if err != nil {
		h.errorf("%s: %v", why, err)
		return nil, false
	}
	for _, a := range h.approvers[:2] {
		if p := h.run(false, nil, "hsm-sign", "sign", "--key", a.key, "--username", a.name, "--out", tok, tok); p.code != 0 {
			h.errorf("%s: %s", why, p.describe())
			return nil, false
		}
	}
	return &approval{args: []string{"--approval", tok}, file: tok, digest: digest, approvals: 2}, true
}

// approvedRepair settles the users names with a repair two admins
// approved: it may grant (unlock, bring back) what the rule refuses, so
// what it granted them is theirs.
func (c *checker) approvedRepair(names []string, why string) {
	h := c.h
	ap, ok := c.approval(true, why)
	if !ok {
		return
	}
	p := h.run(false, nil, "hsm-sync", "apply", "--session", c.adminSess, "--approval", ap.file)
	if p.code != 0 {
		h.errorf("%s: settling %s by an approved repair: %s", why, strings.Join(names, ", "), p.describe())
		return
	}
	h.useToken(ap.digest, p.String(), why)
	hsms, ok := c.load(why + ", after the approved repair")
	if !ok {
		return
	}
	if _, _, fresh := tokenState(hsms, ap.digest); len(fresh) > 0 {
		h.errorf("%s: %s left its token unused on %s", why, p, strings.Join(fresh, ", "))
	}
	for _, name := range names {
		pv := c.owner(name).pv()
		clear(pv.lockSeen)
		for lin, by := range pv.dead {
			for _, x := range hsms {
				if r := findUser(x, name); r != nil && r.Lineage == lin {
					h.t.Logf("%s: the approved repair brought back %s of lineage %s, which %s deleted", why, name, lin, by)
					delete(pv.dead, lin)
					break
				}
			}
		}
	}
	h.settledApproved.Add(int64(len(names)))
	h.t.Logf("%s: undecidable %s settled by an approved repair (%s)", why, strings.Join(names, ", "), p)
}
