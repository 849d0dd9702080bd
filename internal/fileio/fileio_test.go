//go:build unix

package fileio

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// entries lists dir's names, to see what a write leaves behind.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestWriteFilePermsAndNoTemp(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, perm := range []fs.FileMode{0o600, 0o644, 0o640} {
		dir := t.TempDir()
		p := filepath.Join(dir, "f.yaml")
		if err := WriteFile(p, []byte("one"), perm); err != nil {
			t.Fatal(err)
		}
		if got := mode(t, p); got != perm {
			t.Errorf("new file: mode %v, want %v", got, perm)
		}
		// Replacing a file: the mode asked for wins, not the old file's.
		os.Chmod(p, 0o666)
		if err := WriteFile(p, []byte("two"), perm); err != nil {
			t.Fatal(err)
		}
		if got := mode(t, p); got != perm {
			t.Errorf("replaced file: mode %v, want %v", got, perm)
		}
		if b, _ := os.ReadFile(p); string(b) != "two" {
			t.Errorf("content %q", b)
		}
		if got := entries(t, dir); len(got) != 1 {
			t.Errorf("left behind: %v", got)
		}
	}
	// A strict umask does not narrow it either: the mode is exact.
	syscall.Umask(0o077)
	p := filepath.Join(t.TempDir(), "pub.pem")
	if err := WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, p); got != 0o644 {
		t.Errorf("under umask 077: mode %v, want 0644", got)
	}
}

// TestWriteFileTempBesideTarget: the temp file is made in the target's
// directory (a rename across file systems is not atomic), never in TMPDIR.
func TestWriteFileTempBesideTarget(t *testing.T) {
	tmpdir := t.TempDir()
	t.Setenv("TMPDIR", tmpdir)
	// A target directory that does not exist makes the temp file's
	// creation fail (even for root): the error shows where it was tried.
	ro := filepath.Join(t.TempDir(), "missing")
	err := WriteFile(filepath.Join(ro, "f"), []byte("x"), 0o600)
	var pe *fs.PathError
	if !errors.As(err, &pe) || filepath.Dir(pe.Path) != ro || !strings.HasPrefix(filepath.Base(pe.Path), ".f") {
		t.Errorf("error %v: want the temp file tried in %s", err, ro)
	}
	if !strings.Contains(err.Error(), filepath.Join(ro, "f")) {
		t.Errorf("error %q does not name the target", err)
	}
	if got := entries(t, tmpdir); len(got) != 0 {
		t.Errorf("TMPDIR used: %v", got)
	}
}

func TestWriteFileRefusesSymlinkAndDir(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real")
	os.WriteFile(target, []byte("keep"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	if err := WriteFile(link, []byte("x"), 0o600); err == nil || !strings.Contains(err.Error(), link+" is a symlink") {
		t.Errorf("write through symlink: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("target changed: %q", b)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&fs.ModeSymlink == 0 {
		t.Error("symlink replaced")
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)
	if err := WriteFile(sub, []byte("x"), 0o600); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("write over directory: %v", err)
	}
}

func TestWriteNew(t *testing.T) {
	t.Run("unnamed", testWriteNew)
	t.Run("named", func(t *testing.T) {
		noUnnamed = true
		defer func() { noUnnamed = false }()
		testWriteNew(t)
	})
}

func testWriteNew(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "a.key")
	if err := WriteNew(p, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, p); got != 0o600 {
		t.Errorf("mode %v", got)
	}
	if b, _ := os.ReadFile(p); string(b) != "secret" {
		t.Errorf("content %q", b)
	}
	// Never replaces anything, not even a dangling symlink.
	err := WriteNew(p, []byte("other"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("second WriteNew: %v, want ErrExist", err)
	}
	os.Symlink("nowhere", filepath.Join(dir, "dangling"))
	if err := WriteNew(filepath.Join(dir, "dangling"), nil, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("dangling symlink: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "secret" {
		t.Errorf("overwritten: %q", b)
	}
	// Success and refusal alike leave no temp file.
	if got := entries(t, dir); len(got) != 2 {
		t.Errorf("left behind: %v", got)
	}
	// A missing directory: an error naming the path, nothing created.
	if err := WriteNew(filepath.Join(dir, "no", "b.key"), nil, 0o600); err == nil || !strings.Contains(err.Error(), "b.key") {
		t.Errorf("missing dir: %v", err)
	}
}

// TestWriteNewRace: of two creators of one name, exactly one wins.
func TestWriteNewRace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	errs := make(chan error, 8)
	for i := range 8 {
		go func() { errs <- WriteNew(p, []byte{byte('0' + i)}, 0o600) }()
	}
	won := 0
	for range 8 {
		if err := <-errs; err == nil {
			won++
		} else if !errors.Is(err, fs.ErrExist) {
			t.Error(err)
		}
	}
	if won != 1 {
		t.Errorf("%d writers won", won)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("left behind: %v", got)
	}
}

// TestWriteNewUnnamed: on Linux the data sits in an unnamed file until it
// is complete, so a process killed mid-write leaves no file at all.
func TestWriteNewUnnamed(t *testing.T) {
	dir := t.TempDir()
	f, link, ok := openAnonymous(dir)
	if !ok {
		t.Skip("no O_TMPFILE here: WriteNew uses a named temp file")
	}
	defer f.Close()
	if err := fill(f, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Fatalf("a written but unlinked file is visible: %v", got)
	}
	if err := link(filepath.Join(dir, "k")); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, dir); len(got) != 1 || got[0] != "k" {
		t.Errorf("after link: %v", got)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("hello"), 0o600)
	if b, err := ReadFile(small, 5); err != nil || string(b) != "hello" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	// Symlinks are followed: configs and sessions may be links.
	link := filepath.Join(dir, "link")
	os.Symlink("small", link)
	if b, err := ReadFile(link, 5); err != nil || string(b) != "hello" {
		t.Errorf("via symlink: %q, %v", b, err)
	}
	_, err := ReadFile(small, 4)
	var tl *TooLargeError
	if !errors.As(err, &tl) || err.Error() != small+" is larger than 4 bytes" {
		t.Errorf("too large: %v", err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, 1<<20+1), 0o600)
	if _, err := ReadFile(big, 1<<20); err == nil || err.Error() != big+" is larger than 1 MiB" {
		t.Errorf("too large: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "dangling"), 10); err == nil {
		t.Error("dangling symlink read")
	}
	_, err = ReadFile(dir, 10)
	if !errors.Is(err, ErrNotRegular) || !errors.Is(err, syscall.EISDIR) || err.Error() != "read "+dir+": is a directory" {
		t.Errorf("directory: %v", err)
	}
	_, err = ReadFile("/dev/zero", 10)
	if !errors.Is(err, ErrNotRegular) || err.Error() != "read /dev/zero: is a character device, not a regular file" {
		t.Errorf("/dev/zero: %v", err)
	}
}

// TestReadFileFIFO: a FIFO with no writer would block an open(2) for
// reading forever; ReadFile refuses it at once.
func TestReadFileFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadFile(p, 10); done <- err }()
	select {
	case err := <-done:
		var nr *NotRegularError
		if !errors.As(err, &nr) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFile blocked on a FIFO")
	}
}

func TestReadAll(t *testing.T) {
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	_, err = ReadAll(f, 16<<20, "stdin")
	if err == nil || err.Error() != "stdin is larger than 16 MiB" {
		t.Errorf("/dev/zero: %v", err)
	}
	if b, err := ReadAll(strings.NewReader("abc"), 3, "stdin"); err != nil || string(b) != "abc" {
		t.Errorf("ReadAll = %q, %v", b, err)
	}
	if _, err := ReadAll(strings.NewReader("abcd"), 4<<10-1, "x"); err != nil {
		t.Error(err)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 bytes", 100: "100 bytes", 1024: "1 KiB", 4096: "4 KiB", 1500: "1500 bytes", 16 << 20: "16 MiB", 1<<20 + 1024: "1025 KiB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Error(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("missing dir: %v", err)
	}
}
