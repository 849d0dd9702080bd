// Command launch runs one command and reports its wall time, peak RSS and
// exit code to a file:
//
//	launch RESULT NAME [ARG...]
//
// writes "NANOSECONDS MAXRSS_KIB EXIT USER_NS SYSTEM_NS\n" to RESULT (wall
// time, peak RSS, exit code, CPU time in user and kernel mode, all of the
// command alone); the command inherits
// stdin, stdout, stderr, the environment and the directory.
//
// benchreport runs every measured command through it because a child's
// ru_maxrss starts at its parent's peak RSS: Go starts a child with
// vfork, so until exec the child runs on the parent's memory map, and
// Linux carries that map's high-water mark into the child's ru_maxrss at
// exec. benchreport's own peak (it builds fixtures of 100,000 users) would
// hide the child's; launch's is a few MB. The time is taken here too,
// from just before fork to just after wait, so launch's own start-up is
// not in it.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: launch RESULT NAME [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			fmt.Fprintln(os.Stderr, "launch:", err)
			os.Exit(125)
		}
		code = ee.ExitCode()
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	usr, sys := cmd.ProcessState.UserTime(), cmd.ProcessState.SystemTime()
	if err := os.WriteFile(os.Args[1], fmt.Appendf(nil, "%d %d %d %d %d\n", d.Nanoseconds(), rss, code, usr.Nanoseconds(), sys.Nanoseconds()), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "launch:", err)
		os.Exit(125)
	}
}
