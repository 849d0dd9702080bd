package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hsmkit/hsmkit/internal/state"
)

// A benchCluster is a simulated cluster made by the commands themselves
// (hsm-sim init, hsm-user activate and login, all with --kdf test) and then
// filled with users directly through the store, as a fixture: one
// transaction fills the first HSM, and the others are byte copies of its
// database with their own id in the meta record (what add-hsm's clone
// holds), which is much faster than filling each.
type benchCluster struct {
	dir   string // holds cluster.yaml, st/ and the session
	bin   string
	ids   []string
	store *state.Store
	users int           // users added per HSM, beside admin and app_user
	setup time.Duration // making and filling it
}

// benchPassword is admin's password; benchEnv is every command's
// environment: the config, admin's session, no one-shot login.
const benchPassword = "Admin-pass1"

func (c *benchCluster) env(extra ...string) []string {
	env := []string{"HSM_CONFIG=" + filepath.Join(c.dir, "cluster.yaml"), "HSM_SESSION=" + filepath.Join(c.dir, "admin.session"),
		"HSM_PASSWORD=" + benchPassword, "HSM_LOCK_TIMEOUT=60s"}
	return append(env, extra...)
}

// cmd runs one of the built commands once, untimed, and fails on an exit
// code other than 0.
func (c *benchCluster) cmd(extra []string, args ...string) []byte {
	s := runProc(c.dir, c.env(extra...), []int{0}, filepath.Join(c.bin, args[0]), args[1:]...)
	return s.out
}

// newCluster makes a cluster of n HSMs in work/name, activated, with
// perHSM users on every HSM, and admin logged in (a session in
// admin.session). drop, if set, leaves user number i out of HSM number h.
func newCluster(work, bin, name string, n, perHSM int, drop func(h, i int) bool) *benchCluster {
	t0 := time.Now()
	c := &benchCluster{dir: filepath.Join(work, name), bin: bin, users: perHSM}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		fail("%v", err)
	}
	c.cmd(nil, "hsm-sim", "init", "--clock", "2026-11-22T10:00:00Z", "--state", "st", "--hsms", fmt.Sprint(n), "--seed", "1", "--kdf", "test")
	c.cmd(nil, "hsm-user", "activate")
	var err error
	if c.store, err = state.Open(filepath.Join(c.dir, "st")); err != nil {
		fail("%v", err)
	}
	cl, err := c.store.LoadCluster()
	if err != nil {
		fail("%v", err)
	}
	for _, h := range cl.HSMs {
		c.ids = append(c.ids, h.ID)
	}
	if perHSM > 0 {
		c.fill(perHSM)
		for h := 1; h < n; h++ {
			c.clone(c.ids[0], c.ids[h])
		}
		if drop != nil {
			for h := range n {
				c.drop(h, func(i int) bool { return drop(h, i) })
			}
		}
	}
	c.cmd(nil, "hsm-user", "login", "--username", "admin", "--role", "admin")
	syscall.Sync() // nothing of the set-up is left for a measured fsync to flush
	c.setup = time.Since(t0)
	note("cluster %s: %d HSMs x %d users, set up in %s", name, n, perHSM, time.Since(t0).Round(time.Millisecond))
	return c
}

func (c *benchCluster) lock() func() {
	unlock, err := c.store.Lock(time.Minute, "benchreport", nil)
	if err != nil {
		fail("%v", err)
	}
	return unlock
}

// benchUser is user number i: a crypto user with admin's password hash
// record (a real argon2id hash of the cluster's cost), so every record is
// as large as a real one.
func benchUser(i int, admin *state.User) *state.User {
	return &state.User{ID: 3 + i, Name: fmt.Sprintf("user_%06d", i), Role: "crypto-user", Hash: admin.Hash,
		Changed: admin.Changed, Seq: admin.Seq + uint64(i) + 1, Op: fmt.Sprintf("op-bench%06d", i)}
}

// fill adds users to the first HSM in one transaction.
func (c *benchCluster) fill(users int) {
	defer c.lock()()
	t, err := c.store.Begin(c.ids[0], true)
	if err != nil {
		fail("%v", err)
	}
	admin, err := t.User("admin")
	if err != nil || admin == nil || admin.Hash == nil {
		fail("%s: no admin with a password (%v)", c.ids[0], err)
	}
	for i := range users {
		if err := t.PutUser(benchUser(i, admin)); err != nil {
			fail("%v", err)
		}
	}
	t.Meta.NextUserID = max(t.Meta.NextUserID, 3+users)
	if err := t.Commit(); err != nil {
		fail("%v", err)
	}
}

// drop deletes the users for which gone says so from HSM number h, in one
// transaction, leaving no deletion record: a create that missed that HSM.
func (c *benchCluster) drop(h int, gone func(i int) bool) {
	defer c.lock()()
	t, err := c.store.Begin(c.ids[h], true)
	if err != nil {
		fail("%v", err)
	}
	for i := range c.users {
		if gone(i) {
			if err := t.DeleteUser(fmt.Sprintf("user_%06d", i)); err != nil {
				fail("%v", err)
			}
		}
	}
	if err := t.Commit(); err != nil {
		fail("%v", err)
	}
}

func (c *benchCluster) dbPath(id string) string {
	return filepath.Join(c.dir, "st", "hsms", id+".db")
}

// clone replaces HSM dst's database with a copy of src's, its meta record
// naming dst.
func (c *benchCluster) clone(src, dst string) {
	defer c.lock()()
	tmp := c.dbPath(dst) + ".bench"
	copyFile(c.dbPath(src), tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true, Timeout: time.Second})
	if err != nil {
		fail("%s: %v", tmp, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("meta"))
		if b == nil {
			return fmt.Errorf("%s: no meta bucket", tmp)
		}
		var m state.Meta
		if err := json.Unmarshal(b.Get([]byte("meta")), &m); err != nil {
			return err
		}
		m.ID = dst
		raw, err := json.Marshal(&m)
		if err != nil {
			return err
		}
		return b.Put([]byte("meta"), raw)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fail("%v", err)
	}
	if err := os.Rename(tmp, c.dbPath(dst)); err != nil {
		fail("%v", err)
	}
}

// copyFile copies src to dst (mode 0600) and fsyncs it, so that no
// measured fsync has the copy to flush.
func copyFile(src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		fail("%v", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		fail("%v", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		fail("%v", err)
	}
	if err := out.Sync(); err != nil {
		fail("%v", err)
	}
	if err := out.Close(); err != nil {
		fail("%v", err)
	}
}

// dbSize is the total size of the cluster's HSM databases.
func (c *benchCluster) dbSize() int64 {
	var n int64
	for _, id := range c.ids {
		if fi, err := os.Stat(c.dbPath(id)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func note(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "benchreport: "+strings.TrimSuffix(format, "\n")+"\n", a...)
}
