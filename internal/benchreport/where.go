package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Where the time goes: the sections that measure a command also take, on
// the same cluster, its syscall counts (strace -c), the package
// initialisation of its binary (GODEBUG=inittrace=1) and a CPU profile of
// the process (perf record), each when the tool is on PATH. The findings
// are listed after the measurements.

type finding struct {
	title, cmd string
	lines      []string
}

var findings []finding

func addFinding(title, cmd string, lines ...string) {
	findings = append(findings, finding{title, cmd, lines})
}

func writeFindings(w *bytes.Buffer) {
	fmt.Fprintf(w, "## Where the time goes\n\n")
	if len(findings) == 0 {
		fmt.Fprintf(w, "Neither strace nor perf was found; nothing was traced.\n\n")
		return
	}
	for _, f := range findings {
		fmt.Fprintf(w, "**%s** (`%s`)\n\n", f.title, f.cmd)
		for _, l := range f.lines {
			fmt.Fprintf(w, "- %s\n", l)
		}
		fmt.Fprintln(w)
	}
}

func have(tool string) bool {
	_, err := exec.LookPath(tool)
	return err == nil
}

// straceCounts runs the command once under strace -f -c and returns the
// number of calls of each syscall.
func straceCounts(dir string, env []string, name string, args ...string) map[string]int {
	out := filepath.Join(dir, "strace.out")
	cmd := exec.Command("strace", append([]string{"-f", "-c", "-o", out, name}, args...)...)
	cmd.Dir, cmd.Env = dir, append(cleanEnv(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			note("strace %s: %v\n%s", name, err, b)
			return nil
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil
	}
	counts := map[string]int{}
	// % time, seconds, usecs/call, calls, [errors,] syscall
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[len(f)-1] == "total" {
			continue
		}
		if _, err := strconv.ParseFloat(f[0], 64); err != nil {
			continue
		}
		if n, err := strconv.Atoi(f[3]); err == nil {
			counts[f[len(f)-1]] = n
		}
	}
	return counts
}

// openCount counts, with strace -f -e openat, how often the command opens
// files whose name matches re.
func openCount(dir string, env []string, re *regexp.Regexp, name string, args ...string) int {
	out := filepath.Join(dir, "strace-open.out")
	cmd := exec.Command("strace", append([]string{"-f", "-e", "trace=openat", "-o", out, name}, args...)...)
	cmd.Dir, cmd.Env = dir, append(cleanEnv(), env...)
	if _, err := cmd.CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			return -1
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return -1
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if re.MatchString(line) && !strings.Contains(line, "ENOENT") {
			n++
		}
	}
	return n
}

// initTime is the median over n runs of the total package initialisation
// time GODEBUG=inittrace=1 reports for a binary, and its largest packages.
func initTime(dir string, n int, name string, args ...string) (time.Duration, []string) {
	var totals []time.Duration
	per := map[string][]float64{}
	for range n {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, append(cleanEnv(), "GODEBUG=inittrace=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		_ = cmd.Run()
		total := 0.0
		sc := bufio.NewScanner(&stderr)
		for sc.Scan() {
			// init PKG @0.5 ms, 0.04 ms clock, 0 bytes, 0 allocs
			f := strings.Fields(sc.Text())
			if len(f) < 6 || f[0] != "init" {
				continue
			}
			v, err := strconv.ParseFloat(f[4], 64)
			if err != nil {
				continue
			}
			total += v
			per[f[1]] = append(per[f[1]], v)
		}
		totals = append(totals, time.Duration(total*1e6))
	}
	type pkg struct {
		name string
		ms   float64
	}
	var ps []pkg
	for k, vs := range per {
		slices.Sort(vs)
		ps = append(ps, pkg{k, vs[len(vs)/2]})
	}
	slices.SortFunc(ps, func(a, b pkg) int { return strings.Compare(fmt.Sprintf("%09.3f", b.ms), fmt.Sprintf("%09.3f", a.ms)) })
	var top []string
	for _, p := range ps[:min(5, len(ps))] {
		top = append(top, fmt.Sprintf("%s %.2f ms", strings.ReplaceAll(p.name, "%2e", "."), p.ms))
	}
	return median(totals), top
}

var perfLine = regexp.MustCompile(`^\s+([0-9.]+)%\s+([0-9.]+)%\s+\[[.k]\]\s+(\S+)`)

// perfProfile records the command once with perf and returns, for each
// frame whose name contains one of the keys, the share of the samples
// under it (children) and, separately, the functions with the largest
// share of their own.
func perfProfile(dir string, env []string, keys []string, name string, args ...string) (under map[string]float64, self []string, ok bool) {
	data := filepath.Join(dir, "perf.data")
	cmd := exec.Command("perf", append([]string{"record", "-q", "-F", "1999", "-g", "-o", data, "--", name}, args...)...)
	cmd.Dir, cmd.Env = dir, append(cleanEnv(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			note("perf record %s: %v\n%s", name, err, b)
			return nil, nil, false
		}
	}
	defer os.Remove(data)
	rep, err := exec.Command("perf", "report", "-i", data, "--children", "--sort", "symbol", "--stdio", "-g", "none").Output()
	if err != nil {
		note("perf report: %v", err)
		return nil, nil, false
	}
	under = map[string]float64{}
	type fn struct {
		name string
		self float64
	}
	var fns []fn
	for _, line := range strings.Split(string(rep), "\n") {
		m := perfLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		children, _ := strconv.ParseFloat(m[1], 64)
		s, _ := strconv.ParseFloat(m[2], 64)
		sym := m[3]
		for _, k := range keys {
			if strings.Contains(sym, k) && children > under[k] {
				under[k] = children
			}
		}
		fns = append(fns, fn{sym, s})
	}
	slices.SortFunc(fns, func(a, b fn) int {
		switch {
		case a.self > b.self:
			return -1
		case a.self < b.self:
			return 1
		}
		return 0
	})
	for _, f := range fns[:min(6, len(fns))] {
		self = append(self, fmt.Sprintf("%s %.1f%%", shortSym(f.name), f.self))
	}
	return under, self, true
}

// shortSym drops the module path from a Go symbol.
func shortSym(s string) string {
	return strings.TrimPrefix(s, "github.com/hsmkit/hsmkit/internal/")
}

// underLine lists the profile's shares for the keys, in order, skipping
// those not found.
func underLine(under map[string]float64, keys []string, labels []string) string {
	var parts []string
	for i, k := range keys {
		if v, ok := under[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", labels[i], v))
		}
	}
	return strings.Join(parts, "; ")
}

// traceCreate counts what one create does to the disk, beside the floor,
// and times hsm-user's package initialisation.
func traceCreate(c *benchCluster, floorBin, hsmUser string) {
	if have("strace") {
		fl := straceCounts(filepath.Join(c.dir, "floor"), nil, floorBin, "-n", "3", filepath.Join(c.dir, "floor"))
		cr := straceCounts(c.dir, c.env(), hsmUser, "create", "--username", "traced1", "--role", "crypto-user")
		opens := openCount(c.dir, c.env(), regexp.MustCompile(`\.db"`), hsmUser, "create", "--username", "traced2", "--role", "crypto-user")
		if fl != nil && cr != nil {
			addFinding(fmt.Sprintf("`hsm-user create` on 3 HSMs of %d users, syscalls", c.users), "strace -f -c",
				fmt.Sprintf("create: %d fdatasync, %d fsync, %d pwrite64, %d flock, %d mmap, %d munmap; it opens an HSM database %d times (each HSM once to read, once to write)",
					cr["fdatasync"], cr["fsync"], cr["pwrite64"], cr["flock"], cr["mmap"], cr["munmap"], opens),
				fmt.Sprintf("floor: %d fsync (3 files and the directory after each rename), %d fdatasync, %d write",
					fl["fsync"], fl["fdatasync"], fl["write"]),
				"a bbolt commit syncs twice (the dirty pages, then the meta page), so a create issues as many syncs as the floor: 2 per HSM")
		}
	}
	total, top := initTime(c.dir, 21, hsmUser, "--help")
	addFinding("`hsm-user` start-up", "GODEBUG=inittrace=1 hsm-user --help, median of 21",
		fmt.Sprintf("package initialisation: %s in all; the largest: %s", msd(total), strings.Join(top, ", ")))
}

// profileDiff profiles one hsm-sync diff on the cluster.
func profileDiff(c *benchCluster, hsmSync string) {
	if !have("perf") {
		return
	}
	keys := []string{"hsm.(*Client).snapshot", "hsm.(*Client).snapshot.func1", "runtime.mapaccess2_faststr", "runtime.slicebytetostring", "state.SharedPart",
		"hsm.(*Client).snapshot.func2", "bbolt.Open", "bbolt.munmap", "asm_exc_page_fault", "syncdiff.Diff", "cli.Emit", "runtime.gcBgMarkWorker"}
	labels := []string{"reading the HSMs (snapshot)", "first pass over every record (ForEachShared)", "of which the name map lookups (rows[name])", "converting each key to a string",
		"SharedPart", "second pass (drifted users in full)", "opening the databases", "unmapping them", "page faults (mapping the databases)", "syncdiff.Diff", "writing the JSON", "GC workers"}
	under, self, ok := perfProfile(c.dir, c.env(), keys, hsmSync, "diff", "-o", "json")
	if !ok {
		return
	}
	addFinding(fmt.Sprintf("`hsm-sync diff -o json`, 28 HSMs × %d users in sync, CPU profile", c.users), "perf record -g; shares of the samples",
		"under: "+underLine(under, keys, labels), "own time, largest: "+strings.Join(self, ", "))
}

// profileApply traces and profiles one hsm-sync apply on the drifted
// cluster; restore puts the drift back.
func profileApply(c *benchCluster, hsmSync string, drifted int, restore func()) {
	if have("strace") {
		restore()
		opens := openCount(c.dir, c.env(), regexp.MustCompile(`\.db"`), hsmSync, "apply")
		restore()
		cnt := straceCounts(c.dir, c.env(), hsmSync, "apply")
		if opens >= 0 && cnt != nil {
			addFinding(fmt.Sprintf("`hsm-sync apply`, 3 HSMs × %d users, %d users copied, syscalls", c.users, drifted), "strace -f",
				fmt.Sprintf("it opens an HSM database %d times (%.1f per user copied): %d mmap, %d munmap, %d flock; %d fdatasync",
					opens, float64(opens)/float64(drifted), cnt["mmap"], cnt["munmap"], cnt["flock"], cnt["fdatasync"]))
		}
	}
	if have("perf") {
		restore()
		keys := []string{"hsm.(*Client).Repair", "hsm.(*Client).snapshot", "hsm.(*Tx).View", "state.(*Store).Begin", "bbolt.(*DB).Close", "state.(*HSMTx).PutUser",
			"state.(*HSMTx).Commit", "asm_exc_page_fault", "runtime.gcBgMarkWorker"}
		labels := []string{"Repair", "of which the diff's reads (snapshot)", "reading each copied user from its source HSM (Tx.View)", "opening a database (Store.Begin)",
			"closing it (DB.Close, munmap)", "writing the users (PutUser)", "the commit", "page faults", "GC workers"}
		under, self, ok := perfProfile(c.dir, c.env(), keys, hsmSync, "apply", "-o", "json")
		if ok {
			addFinding(fmt.Sprintf("`hsm-sync apply`, 3 HSMs × %d users, %d users copied, CPU profile", c.users, drifted), "perf record -g; shares of the samples",
				"under: "+underLine(under, keys, labels), "own time, largest: "+strings.Join(self, ", "))
		}
	}
}
