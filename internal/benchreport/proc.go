package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// sample is one timed run of a process: wall time from fork to wait, the
// child's peak resident set (ru_maxrss, KiB on Linux) and its stdout.
type sample struct {
	d   time.Duration
	rss int64 // KiB
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

// runProc runs name once in dir and times it; an exit code outside want
// stops the report.
func runProc(dir string, env []string, want []int, name string, args ...string) sample {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			fail("%s %s: %v", name, strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	if !slices.Contains(want, code) {
		fail("%s %s: exit %d, want %v\n%s%s", name, strings.Join(args, " "), code, want, stdout.Bytes(), stderr.Bytes())
	}
	s := sample{d: d, out: stdout.Bytes()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.rss = ru.Maxrss
	}
	return s
}

// stats summarises the samples of one measurement.
type stats struct {
	n                int
	median, min, max time.Duration
	maxRSS           int64 // KiB, the largest of any run
}

func summarize(ss []sample) stats {
	if len(ss) == 0 {
		return stats{}
	}
	ds := make([]time.Duration, len(ss))
	st := stats{n: len(ss)}
	for i, s := range ss {
		ds[i] = s.d
		st.maxRSS = max(st.maxRSS, s.rss)
	}
	slices.Sort(ds)
	st.min, st.max = ds[0], ds[len(ds)-1]
	if len(ds)%2 == 1 {
		st.median = ds[len(ds)/2]
	} else {
		st.median = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
	}
	return st
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
