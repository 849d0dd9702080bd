//go:build unix

package statelock

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"
)

// BenchmarkAcquireRelease is the uncontended cost of the fair lock: the
// queue's files and flocks on top of the one on .lock.
func BenchmarkAcquireRelease(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		rel, err := Acquire(dir, time.Second, "bench", time.Hour, nil)
		if err != nil {
			b.Fatal(err)
		}
		rel()
	}
}

// BenchmarkBareFlock is the floor the fair lock adds to: open .lock, flock
// it, close.
func BenchmarkBareFlock(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, ".lock")
	for b.Loop() {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
}

// BenchmarkStoreLock is the lock state.Store.Lock takes today: gofrs/flock
// with a bounded TryLockContext, then the holder written with O_TRUNC,
// which on ext4 makes every close flush (auto_da_alloc).
func BenchmarkStoreLock(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, ".lock")
	for b.Loop() {
		if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
			b.Fatal("irregular")
		}
		fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW), flock.SetPermissions(0o600))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok, err := fl.TryLockContext(ctx, 5*time.Millisecond)
		cancel()
		if !ok || err != nil {
			b.Fatal(ok, err)
		}
		if f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600); err == nil {
			fmt.Fprintf(f, "pid %d (%s)\n", os.Getpid(), "bench")
			f.Close()
		}
		_ = fl.Unlock()
	}
}
