package hsmkit_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// ishell drives one `cloudhsm-cli interactive` process through a scenario,
// as an operator at the prompt does, so that files can be made between
// its commands (a token signed with openssl while the login that
// generated it stays open):
//
//	ishell start [--cluster-id ID]   start it in the current directory
//	ishell send LINE [INPUT...]      write a command line, and the lines it reads
//	                                 (passwords), then wait for its JSON reply
//	ishell prompt TEXT LINE [INPUT...]  the same, but wait until TEXT appears on
//	                                 its stderr (a question such as the signed
//	                                 token file's path), to answer with send
//	ishell end CODE                  close its input, wait, check the exit code;
//	                                 its whole output becomes stdout (and stderr)
type ishell struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	seen  bytes.Buffer // stdout read so far

	mu       sync.Mutex
	stderr   bytes.Buffer  // all of stderr, filled by a goroutine
	asked    int           // stderr up to here was matched by a prompt
	errMoved chan struct{} // a signal after each stderr read
	errDone  chan struct{} // stderr reached its end
}

var (
	ishellsMu sync.Mutex
	ishells   = map[*testscript.TestScript]*ishell{}
)

// ishellEnv are the variables a scenario may set that the process needs.
var ishellEnv = []string{"PATH", "HOME", "TMPDIR", "WORK", "HSM_CONFIG", "HSM_LOCK_TIMEOUT", "HSM_SESSION",
	"HSM_PIN", "HSM_ROLE", "CLOUDHSM_PIN", "CLOUDHSM_ROLE", "GOCOVERDIR"}

// ishellWait bounds one wait for a reply: a watchdog for a process that
// waits for input the scenario forgot, not a pause.
const ishellWait = time.Minute

func cmdIshell(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: ishell start|send|end ...")
	}
	ishellsMu.Lock()
	sh := ishells[ts]
	ishellsMu.Unlock()
	if args[0] != "start" && sh == nil {
		ts.Fatalf("ishell %s: no ishell started", args[0])
	}
	switch args[0] {
	case "start":
		if sh != nil {
			ts.Fatalf("ishell start: one is running")
		}
		path, err := exec.LookPath("cloudhsm-cli")
		ts.Check(err)
		sh = &ishell{cmd: exec.Command(path, append([]string{"interactive"}, args[1:]...)...)}
		sh.cmd.Dir = ts.MkAbs(".")
		for _, k := range ishellEnv {
			if v := ts.Getenv(k); v != "" {
				sh.cmd.Env = append(sh.cmd.Env, k+"="+v)
			}
		}
		errPipe, err := sh.cmd.StderrPipe()
		ts.Check(err)
		sh.errMoved, sh.errDone = make(chan struct{}, 1), make(chan struct{})
		go sh.copyStderr(errPipe)
		sh.stdin, err = sh.cmd.StdinPipe()
		ts.Check(err)
		out, err := sh.cmd.StdoutPipe()
		ts.Check(err)
		sh.out = bufio.NewReader(out)
		ts.Check(sh.cmd.Start())
		ishellsMu.Lock()
		ishells[ts] = sh
		ishellsMu.Unlock()
		ts.Defer(func() {
			_ = sh.cmd.Process.Kill()
			_ = sh.cmd.Wait()
			ishellsMu.Lock()
			delete(ishells, ts)
			ishellsMu.Unlock()
		})
	case "send":
		if len(args) < 2 {
			ts.Fatalf("usage: ishell send LINE [INPUT...]")
		}
		_, err := io.WriteString(sh.stdin, strings.Join(args[1:], "\n")+"\n")
		ts.Check(err)
		ts.Check(sh.reply())
	case "prompt":
		if len(args) < 3 {
			ts.Fatalf("usage: ishell prompt TEXT LINE [INPUT...]")
		}
		_, err := io.WriteString(sh.stdin, strings.Join(args[2:], "\n")+"\n")
		ts.Check(err)
		ts.Check(sh.waitPrompt(args[1]))
	case "end":
		if len(args) != 2 {
			ts.Fatalf("usage: ishell end CODE")
		}
		want, err := strconv.Atoi(args[1])
		ts.Check(err)
		ts.Check(sh.stdin.Close())
		rest, err := io.ReadAll(sh.out)
		ts.Check(err)
		sh.seen.Write(rest)
		<-sh.errDone
		err = sh.cmd.Wait()
		got := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			got = ee.ExitCode()
		} else {
			ts.Check(err)
		}
		_, _ = ts.Stdout().Write(sh.seen.Bytes())
		sh.mu.Lock()
		_, _ = ts.Stderr().Write(sh.stderr.Bytes())
		sh.mu.Unlock()
		ishellsMu.Lock()
		delete(ishells, ts)
		ishellsMu.Unlock()
		if got != want {
			ts.Fatalf("cloudhsm-cli interactive exited %d, want %d\n%s", got, want, sh.stderr.String())
		}
	default:
		ts.Fatalf("ishell: unknown subcommand %q", args[0])
	}
}

// reply reads stdout up to the end of one JSON reply: a line that is "}".
func (sh *ishell) reply() error {
	done := make(chan error, 1)
	go func() {
		for {
			line, err := sh.out.ReadString('\n')
			sh.seen.WriteString(line)
			if err != nil {
				sh.mu.Lock()
				msg := strings.TrimSpace(sh.stderr.String())
				sh.mu.Unlock()
				done <- errors.New("cloudhsm-cli interactive ended before its reply: " + msg)
				return
			}
			if line == "}\n" {
				done <- nil
				return
			}
		}
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(ishellWait):
		return errors.New("no reply from cloudhsm-cli interactive within " + ishellWait.String())
	}
}

// copyStderr keeps the process's stderr, signalling each read.
func (sh *ishell) copyStderr(r io.Reader) {
	defer close(sh.errDone)
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		sh.mu.Lock()
		sh.stderr.Write(buf[:n])
		sh.mu.Unlock()
		select {
		case sh.errMoved <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// waitPrompt waits until text appears on stderr after the last prompt.
func (sh *ishell) waitPrompt(text string) error {
	deadline := time.After(ishellWait)
	for {
		sh.mu.Lock()
		i := strings.Index(sh.stderr.String()[sh.asked:], text)
		if i >= 0 {
			sh.asked += i + len(text)
		}
		sh.mu.Unlock()
		if i >= 0 {
			return nil
		}
		select {
		case <-sh.errMoved:
		case <-sh.errDone:
			sh.mu.Lock()
			found := strings.Contains(sh.stderr.String()[sh.asked:], text)
			sh.mu.Unlock()
			if found {
				continue
			}
			return errors.New("cloudhsm-cli interactive ended before asking " + text)
		case <-deadline:
			return errors.New("cloudhsm-cli interactive did not ask " + text + " within " + ishellWait.String())
		}
	}
}
