package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// sample is one timed run of a process: wall time from fork to wait, the
// child's peak resident set (ru_maxrss, KiB on Linux) and its stdout.
type sample struct {
	d   time.Duration
	cpu time.Duration // user + system
	rss int64         // KiB
	out []byte
}

// cleanEnv is this process's environment without hsmkit's own variables,
// so that a caller's HSM_PIN or HSM_SESSION cannot leak into a run.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HSM_") {
			env = append(env, kv)
		}
	}
	return env
}

// launcher is the built launch program (internal/benchreport/launch),
// through which every measured command runs; result is where it reports.
var launcher, launchResult string

// runProc runs name once in dir through the launcher and times it; an exit
// code outside want stops the report.
func runProc(dir string, env []string, want []int, name string, args ...string) sample {
	cmd := exec.Command(launcher, append([]string{launchResult, name}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = os.Remove(launchResult)
	if err := cmd.Run(); err != nil {
		fail("launch %s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	raw, err := os.ReadFile(launchResult)
	if err != nil {
		fail("launch %s: %v", name, err)
	}
	var ns, rss, usr, sys int64
	var code int
	if _, err := fmt.Sscan(string(raw), &ns, &rss, &code, &usr, &sys); err != nil {
		fail("launch %s: %q: %v", name, raw, err)
	}
	if !slices.Contains(want, code) {
		fail("%s %s: exit %d, want %v\n%s%s", name, strings.Join(args, " "), code, want, stdout.Bytes(), stderr.Bytes())
	}
	return sample{d: time.Duration(ns), cpu: time.Duration(usr + sys), rss: rss, out: stdout.Bytes()}
}

// stats summarises the samples of one measurement.
type stats struct {
	n                int
	median, min, max time.Duration
	cpu              time.Duration // median CPU time (user + system)
	maxRSS           int64         // KiB, the largest of any run
}

func summarize(ss []sample) stats {
	if len(ss) == 0 {
		return stats{}
	}
	ds, cs := make([]time.Duration, len(ss)), make([]time.Duration, len(ss))
	st := stats{n: len(ss)}
	for i, s := range ss {
		ds[i], cs[i] = s.d, s.cpu
		st.maxRSS = max(st.maxRSS, s.rss)
	}
	slices.Sort(ds)
	st.min, st.max = ds[0], ds[len(ds)-1]
	st.median, st.cpu = median(ds), median(cs)
	return st
}

func median(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	if len(ds)%2 == 1 {
		return ds[len(ds)/2]
	}
	return (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
}

// msd formats a duration in milliseconds.
func msd(d time.Duration) string {
	v := float64(d.Nanoseconds()) / 1e6
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

// spread is "min–max" in milliseconds.
func (s stats) spread() string {
	return fmt.Sprintf("%s–%s", strings.TrimSuffix(msd(s.min), " ms"), msd(s.max))
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// A goal is one target the sections check, listed at the top.
type goal struct {
	what, target, got string
	met               bool
}

var goals []goal

func addGoal(what, target, got string, met bool) {
	goals = append(goals, goal{what, target, got, met})
}

func writeGoals(w *bytes.Buffer) {
	if len(goals) == 0 {
		return
	}
	fmt.Fprintf(w, "## Goals\n\n| what | goal | measured | met |\n|---|---|---|---|\n")
	for _, g := range goals {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", g.what, g.target, g.got, yes(g.met))
	}
	fmt.Fprintln(w)
}
