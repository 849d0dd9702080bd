package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The whole-process measurements: each command is the built binary, run
// by fork and exec and timed to its exit, as an operator or cron runs it.
// What it is compared with is measured in the same loop, run for run.

// createVsFloor is `hsm-user create` on a 3-HSM cluster at several sizes,
// beside the floor program writing the same 3 files durably. The sizes are
// interleaved in every round, so that a change in the machine's load
// moves them all alike.
func createVsFloor(w *bytes.Buffer, work, bin string, runs int) {
	sizes := []int{0, 1024, 10000}
	type row struct {
		users            int
		floor, ses, pin  stats
		pairSes, pairPin float64 // median of each round's create / floor
		overSes, overPin int     // rounds whose create took more than 2 floors
		db               int64
	}
	runs = 2*runs + 1 // cheap, and the disk's jitter needs them
	floorBin, hsmUser := filepath.Join(bin, "floor"), filepath.Join(bin, "hsm-user")
	var cs []*benchCluster
	for _, n := range sizes {
		c := newCluster(work, bin, fmt.Sprintf("create-%d", n), 3, n, nil)
		if err := os.MkdirAll(filepath.Join(c.dir, "floor"), 0o700); err != nil {
			fail("%v", err)
		}
		cs = append(cs, c)
	}
	floor, ses, pin := make([][]sample, len(sizes)), make([][]sample, len(sizes)), make([][]sample, len(sizes))
	var start, help []sample
	for i := -2; i < runs; i++ { // two warm-up rounds, not kept
		s0 := runProc(work, nil, []int{0}, floorBin, "-n", "0", work)
		s1 := runProc(work, cs[0].env(), []int{0}, hsmUser, "--help")
		if i >= 0 {
			start, help = append(start, s0), append(help, s1)
		}
		for k, c := range cs {
			pinEnv := c.env("HSM_PIN=admin:"+benchPassword, "HSM_ROLE=admin", "HSM_SESSION="+filepath.Join(c.dir, "none.session"))
			f := runProc(c.dir, nil, []int{0}, floorBin, "-n", "3", filepath.Join(c.dir, "floor"))
			s := runProc(c.dir, c.env(), []int{0}, hsmUser, "create", "--username", fmt.Sprintf("new_s%d", i+2), "--role", "crypto-user")
			p := runProc(c.dir, pinEnv, []int{0}, hsmUser, "create", "--username", fmt.Sprintf("new_p%d", i+2), "--role", "crypto-user")
			if i >= 0 {
				floor[k], ses[k], pin[k] = append(floor[k], f), append(ses[k], s), append(pin[k], p)
			}
		}
	}
	var rows []row
	for k, c := range cs {
		rows = append(rows, row{users: sizes[k], floor: summarize(floor[k]), ses: summarize(ses[k]), pin: summarize(pin[k]),
			pairSes: pairedRatio(ses[k], floor[k]), pairPin: pairedRatio(pin[k], floor[k]),
			overSes: roundsOver(ses[k], floor[k], 2), overPin: roundsOver(pin[k], floor[k], 2), db: c.dbSize() / 3})
	}
	startSt, helpSt := summarize(start), summarize(help)
	traceCreate(cs[len(cs)-1], floorBin, hsmUser)
	fmt.Fprintf(w, "## `hsm-user create` as a process vs the fsync floor as a process\n\n")
	fmt.Fprintf(w, "Three 3-HSM clusters (`--kdf test`) with 0, 1,024 and 10,000 users on every HSM beside admin and app_user.\n"+
		"Each round runs, for each cluster in turn: the floor program (`internal/benchreport/floor -n 3 DIR`: for each of\n"+
		"3 files, write 4 KiB to a temp file, fsync, rename, fsync the directory — one durable write per HSM, as a\n"+
		"process), `hsm-user create --username U --role crypto-user` as admin by its session file, and the same create\n"+
		"as a one-shot login (`HSM_PIN=admin:… HSM_ROLE=admin`). %d rounds after 2 warm-up rounds; medians, with the\n"+
		"fastest and slowest run in brackets. **create / floor** divides the medians (the goal is checked on it); per\n"+
		"round is the median of each round's create / floor, which cancels slow changes in the machine's load; fastest\n"+
		"divides the fastest runs.\n\n", runs)
	fmt.Fprintf(w, "| users per HSM | database size | floor (3 durable writes) | create, session | create, HSM_PIN | **create / floor** (session, PIN) | per round | fastest | rounds over 2× |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| %d | %.1f MiB | %s (%s) | %s (%s) | %s (%s) | **%.2f, %.2f** | %.2f, %.2f | %.2f, %.2f | %d, %d of %d |\n", r.users, float64(r.db)/(1<<20),
			msd(r.floor.median), r.floor.spread(), msd(r.ses.median), r.ses.spread(), msd(r.pin.median), r.pin.spread(),
			ratio(r.ses.median, r.floor.median), ratio(r.pin.median, r.floor.median), r.pairSes, r.pairPin,
			ratio(r.ses.min, r.floor.min), ratio(r.pin.min, r.floor.min), r.overSes, r.overPin, runs)
	}
	fmt.Fprintf(w, "\nIn the same rounds, a Go process that does nothing (`floor -n 0`) took %s and `hsm-user --help` %s:\n"+
		"process start-up is that much of every figure above. CPU time (user + system, medians): floor %s; create by\n"+
		"session %s, %s and %s at the three sizes; the rest of each wall time is waiting, mostly for the disk's syncs.\n",
		msd(startSt.median), msd(helpSt.median), msd(rows[0].floor.cpu), msd(rows[0].ses.cpu), msd(rows[1].ses.cpu), msd(rows[2].ses.cpu))
	first, last := rows[0], rows[len(rows)-1]
	for _, r := range rows {
		rs, rp := ratio(r.ses.median, r.floor.median), ratio(r.pin.median, r.floor.median)
		addGoal(fmt.Sprintf("`hsm-user create`, 3 HSMs × %d users, vs the floor process", r.users), "≤ 2× the floor",
			fmt.Sprintf("session %.2f×, HSM_PIN %.2f× (%s, %s vs %s; per round %.2f×, %.2f×; fastest runs %.2f×, %.2f×)", rs, rp,
				msd(r.ses.median), msd(r.pin.median), msd(r.floor.median), r.pairSes, r.pairPin, ratio(r.ses.min, r.floor.min), ratio(r.pin.min, r.floor.min)),
			rs <= 2 && rp <= 2)
	}
	fs, fp := ratio(last.ses.median, first.ses.median), ratio(last.pin.median, first.pin.median)
	addGoal(fmt.Sprintf("`hsm-user create` flat in users (%d vs %d per HSM)", last.users, first.users), "≤ 1.2× (flat within noise)",
		fmt.Sprintf("session %.2f×, HSM_PIN %.2f×", fs, fp), fs <= 1.2 && fp <= 1.2)
	fmt.Fprintf(w, "\nGoal: create within 2× the floor at every size, and flat in users. ")
	worst := 0.0
	for _, r := range rows {
		worst = max(worst, ratio(r.ses.median, r.floor.median), ratio(r.pin.median, r.floor.median))
	}
	fastest := 0.0
	for _, r := range rows {
		fastest = max(fastest, ratio(r.ses.min, r.floor.min), ratio(r.pin.min, r.floor.min))
	}
	if worst <= 2 {
		fmt.Fprintf(w, "Within 2×: **met** (worst ratio %.2f). ", worst)
		if fastest > 2 {
			fmt.Fprintf(w, "But the fastest runs are %.2f× apart at worst: when neither is slowed by other work the create\n"+
				"is more than twice the floor, and the medians pass because load slows the floor's syncs more than the create. ", fastest)
		}
	} else {
		fmt.Fprintf(w, "Within 2×: **not met** (worst ratio %.2f). ", worst)
	}
	fmt.Fprintf(w, "From %d to %d users per HSM the session create moved from %s to %s (%.2f×), the one-shot create from %s to %s (%.2f×).\n\n",
		first.users, last.users, msd(first.ses.median), msd(last.ses.median), ratio(last.ses.median, first.ses.median),
		msd(first.pin.median), msd(last.pin.median), ratio(last.pin.median, first.pin.median))
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// roundsOver counts the rounds in which a took more than k times b.
func roundsOver(a, b []sample, k float64) int {
	n := 0
	for i := range min(len(a), len(b)) {
		if float64(a[i].d) > k*float64(b[i].d) {
			n++
		}
	}
	return n
}

// pairedRatio is the median of a[i] / b[i]: runs taken side by side.
func pairedRatio(a, b []sample) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		rs = append(rs, float64(a[i].d)/float64(b[i].d))
	}
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	if len(rs)%2 == 1 {
		return rs[len(rs)/2]
	}
	return (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
}

// diffAtScale is `hsm-sync diff -o json` on 28 HSMs, in sync and with 1%
// of the users missing on the last HSM.
func diffAtScale(w *bytes.Buffer, work, bin string, runs int, full bool) {
	type row struct {
		users, drifted int
		st             stats
		goal           time.Duration
		over           int // runs slower than the goal
	}
	var rows []row
	sizes := []int{1024}
	if full {
		sizes = append(sizes, 100000)
	}
	hsmSync := filepath.Join(bin, "hsm-sync")
	var setups []string
	for _, n := range sizes {
		c := newCluster(work, bin, fmt.Sprintf("diff-%d", n), 28, n, nil)
		setups = append(setups, fmt.Sprintf("28 × %d users in %s (%.0f MiB of databases)", n, c.setup.Round(100*time.Millisecond), float64(c.dbSize())/(1<<20)))
		goal := 100 * time.Millisecond
		if n > 10000 {
			goal = 2 * time.Second
		}
		measure := func(want int, drifted int) {
			var ss []sample
			for i := -1; i < runs; i++ {
				s := runProc(c.dir, c.env(), []int{want}, hsmSync, "diff", "-o", "json")
				if i < 0 {
					checkDiff(s.out, drifted)
					continue
				}
				ss = append(ss, s)
			}
			over := 0
			for _, x := range ss {
				if x.d > goal {
					over++
				}
			}
			rows = append(rows, row{users: n, drifted: drifted, st: summarize(ss), goal: goal, over: over})
		}
		measure(0, 0)
		if n == sizes[len(sizes)-1] {
			profileDiff(c, hsmSync)
		}
		c.drop(27, func(i int) bool { return i%100 == 0 })
		syscall.Sync()
		measure(1, (n+99)/100)
		if workDir != "" {
			os.RemoveAll(c.dir) // up to 1.5 GB
		}
	}
	fmt.Fprintf(w, "## `hsm-sync diff` as a process on 28 HSMs\n\n")
	fmt.Fprintf(w, "`hsm-sync diff -o json` as admin by its session file, on 28 HSMs (`--kdf test`) with N users on every HSM,\n"+
		"first in sync (exit 0), then with 1%% of the users missing on the last HSM (exit 1). %d runs each after one\n"+
		"warm-up run that checks the report; medians, with the fastest and slowest run; CPU time is the median of\n"+
		"user + system time (it moves less than the wall time when other work shares the CPUs); peak RSS is the\n"+
		"largest `ru_maxrss` of the child over the runs. The goal is checked on the median wall time.\n\n", runs)
	fmt.Fprintf(w, "| HSMs × users | drift | time | min–max | CPU time | peak RSS | goal | met | runs over the time goal |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		met := r.st.median <= r.goal
		goal := "≤ " + msd(r.goal)
		if r.users > 10000 {
			goal += ", ≤ 200 MB peak RSS"
			met = met && r.st.maxRSS*1024 <= 200e6 // 200 MB, not MiB
		}
		drift := "in sync"
		if r.drifted > 0 {
			drift = fmt.Sprintf("%d users missing on 1 HSM", r.drifted)
		}
		fmt.Fprintf(w, "| 28 × %d | %s | %s | %s | %s | %s | %s | %s | %d of %d |\n", r.users, drift, msd(r.st.median), r.st.spread(), msd(r.st.cpu), mib(r.st.maxRSS), goal, yes(met), r.over, r.st.n)
		addGoal(fmt.Sprintf("`hsm-sync diff -o json`, 28 HSMs × %d users, %s", r.users, drift), goal,
			fmt.Sprintf("%s (CPU %s; %d of %d runs over %s), peak RSS %s", msd(r.st.median), msd(r.st.cpu), r.over, r.st.n, msd(r.goal), mib(r.st.maxRSS)), met)
	}
	fmt.Fprintf(w, "\nSet-up (init, activate, fill, copies, login, sync): %s.\n", strings.Join(setups, "; "))
	if !full {
		fmt.Fprintf(w, "28 × 100,000 users was left out (`-quick`); `make bench-report` measures it.\n")
	}
	fmt.Fprintln(w)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// checkDiff checks a diff's JSON report names the drifted users.
func checkDiff(out []byte, drifted int) {
	var r struct {
		Data struct {
			Users []json.RawMessage `json:"users"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		fail("hsm-sync diff -o json: %v\n%.400s", err, out)
	}
	if len(r.Data.Users) != drifted {
		fail("hsm-sync diff -o json: %d users differ, want %d\n%.400s", len(r.Data.Users), drifted, out)
	}
}

// applyLinear is `hsm-sync apply` on 3 HSMs with 10% of the users missing
// on one: the drifted HSM's database is put back before every run.
func applyLinear(w *bytes.Buffer, work, bin string, runs int) {
	type row struct {
		users, drifted int
		drift, insync  stats
	}
	var rows []row
	hsmSync := filepath.Join(bin, "hsm-sync")
	for _, n := range []int{1024, 65536} {
		c := newCluster(work, bin, fmt.Sprintf("apply-%d", n), 3, n, func(h, i int) bool { return h == 2 && i%10 == 0 })
		drifted := (n + 9) / 10
		pristine := filepath.Join(c.dir, "drifted.db")
		copyFile(c.dbPath(c.ids[2]), pristine)
		var drift, insync []sample
		for i := -1; i < runs; i++ {
			copyFile(pristine, c.dbPath(c.ids[2]))
			s1 := runProc(c.dir, c.env(), []int{0}, hsmSync, "apply", "-o", "json")
			checkApply(s1.out, drifted)
			s2 := runProc(c.dir, c.env(), []int{0}, hsmSync, "apply", "-o", "json")
			checkApply(s2.out, 0)
			if i >= 0 {
				drift, insync = append(drift, s1), append(insync, s2)
			}
		}
		rows = append(rows, row{users: n, drifted: drifted, drift: summarize(drift), insync: summarize(insync)})
		restore := func() { copyFile(pristine, c.dbPath(c.ids[2])) }
		if n == 65536 {
			profileApply(c, hsmSync, drifted, restore)
		}
		restore() // kept with -keep: drifted, to profile
	}
	fmt.Fprintf(w, "## `hsm-sync apply` as a process: linear in users\n\n")
	fmt.Fprintf(w, "`hsm-sync apply -o json` as admin by its session file on 3 HSMs (`--kdf test`) with N users, 10%% of them\n"+
		"missing on the third HSM (a create that missed it). Before each run the drifted database is put back\n"+
		"(copied and fsynced, untimed); right after, the same apply runs again with nothing to repair. %d runs\n"+
		"each after one warm-up; medians. Per drifted user: the whole apply divided by the users it copied;\n"+
		"marginal: (apply − apply with nothing to repair) / users copied.\n\n", runs)
	fmt.Fprintf(w, "| HSMs × users | users copied | apply | min–max | CPU time | nothing to repair | per drifted user | marginal per drifted user | peak RSS |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		per := float64(r.drift.median.Microseconds()) / float64(r.drifted)
		marg := float64((r.drift.median - r.insync.median).Microseconds()) / float64(r.drifted)
		fmt.Fprintf(w, "| 3 × %d | %d | %s | %s | %s | %s | %.0f µs | %.0f µs | %s |\n", r.users, r.drifted, msd(r.drift.median), r.drift.spread(),
			msd(r.drift.cpu), msd(r.insync.median), per, marg, mib(r.drift.maxRSS))
	}
	a, b := rows[0], rows[len(rows)-1]
	pa := float64(a.drift.median) / float64(a.drifted)
	pb := float64(b.drift.median) / float64(b.drifted)
	fmt.Fprintf(w, "\nFrom %d to %d drifted users (%.0f×) the apply took %.1f× as long; the time per drifted user went from %.0f µs to %.0f µs.\n\n",
		a.drifted, b.drifted, float64(b.drifted)/float64(a.drifted), ratio(b.drift.median, a.drift.median), pa/1e3, pb/1e3)
	addGoal(fmt.Sprintf("`hsm-sync apply` linear in users (3 × %d vs 3 × %d, 10%% drift)", b.users, a.users), "time per drifted user ≤ 1.25× at the larger size",
		fmt.Sprintf("%.0f µs vs %.0f µs per drifted user (%.2f×)", pb/1e3, pa/1e3, pb/pa), pb <= 1.25*pa)
}

// checkApply checks apply's JSON says how many users it repaired.
func checkApply(out []byte, repairs int) {
	var r struct {
		Data struct {
			Repairs *int `json:"repairs"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.Data.Repairs == nil {
		fail("hsm-sync apply -o json: %v\n%.400s", err, out)
	}
	if *r.Data.Repairs != repairs {
		fail("hsm-sync apply -o json: %d repairs, want %d", *r.Data.Repairs, repairs)
	}
}
