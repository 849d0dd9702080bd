//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoadRefusesFIFO: --config naming a FIFO fails at once, unread.
func TestLoadRefusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(p); done <- err }()
	select {
	case err := <-done:
		if err == nil || err.Error() != p+": is a named pipe (FIFO), not a config file" {
			t.Errorf("Load(FIFO) = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load blocked on a FIFO")
	}
}

// TestSymlinkedConfig: a config reached by a symlink loads; refreshing it
// is refused rather than replacing the link with a copy.
func TestSymlinkedConfig(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.yaml")
	os.WriteFile(real, []byte(good), 0o600)
	link := filepath.Join(dir, "cluster.yaml")
	os.Symlink("real.yaml", link)
	c, err := Load(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetHSMs([]HSM{{ID: "hsm-a"}}); err == nil || !strings.Contains(err.Error(), "is a symlink") {
		t.Errorf("SetHSMs through a symlink: %v", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the symlink was replaced")
	}
}

// TestCreateNeverReplaces: Create refuses an existing file and leaves no
// temp file beside it.
func TestCreateNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cluster.yaml")
	c, _ := Parse("x", []byte(good))
	if err := Create(p, c); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	if err := Create(p, c); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second Create: %v", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("left behind: %v", es)
	}
}
