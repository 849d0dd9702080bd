//go:build linux

package torture

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// fsEvent is a file event in the state's hsms directory: a write into an
// HSM database (each bbolt commit writes its pages, then its meta page),
// the creation of a file, or a rename onto one.
type fsEvent struct {
	name   string
	rename bool
	modify bool
}

// watchHSMs reports the file events of the hsms directory until stop is
// closed, so the killer can strike inside a multi-HSM write: between two
// HSMs' commits, or inside one.
func (h *harness) watchHSMs(stop <-chan struct{}) (<-chan fsEvent, error) {
	return h.watch(filepath.Join(h.stateDir, "hsms"), stop)
}

// watch reports the creations, renames and writes in dir until stop is
// closed.
func (h *harness) watch(dir string, stop <-chan struct{}) (<-chan fsEvent, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_MODIFY); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Read parks in the runtime poller
	ch := make(chan fsEvent, 256)
	go func() {
		<-stop
		f.Close()
	}()
	go func() {
		buf := make([]byte, 64*1024)
		for {
			n, err := f.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
				e := fsEvent{name: strings.TrimRight(string(name), "\x00"), rename: ev.Mask&syscall.IN_MOVED_TO != 0, modify: ev.Mask&syscall.IN_MODIFY != 0}
				select {
				case ch <- e:
				default: // nobody is targeting now
				}
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}()
	return ch, nil
}

// lockHolder is the pid the sidecar lock file names ("pid N (…)"), or 0.
func (h *harness) lockHolder() int {
	data, err := os.ReadFile(filepath.Join(h.stateDir, ".lock"))
	if err != nil {
		return 0
	}
	s, ok := strings.CutPrefix(string(data), "pid ")
	if !ok {
		return 0
	}
	if i := strings.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(s))
	return pid
}
