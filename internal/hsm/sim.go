package hsm

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/hsmkit/hsmkit/internal/config"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/simclock"
	"github.com/hsmkit/hsmkit/internal/state"
)

// InitOptions describe a new simulated cluster.
type InitOptions struct {
	StateDir   string
	ConfigPath string
	HSMs       int
	AZs        []string
	ClusterID  string
	Seed       *int64
	KDF        state.KDF
	Clock      *simclock.Clock // the new cluster's clock (nil: real); its time stamps the cluster's creation
	// Uninitialized leaves the cluster UNINITIALIZED with its CSR; else
	// a CA of the simulator's own signs it at once (docs/design.md,
	// "Cluster certificates and backups").
	Uninitialized bool
	// FromBackup makes the cluster from a backup (ParseBackup): its HSMs
	// hold the backup's users, keys and policy, with its certificates.
	FromBackup *Backup
	Profile    string // the role profile (policy.ByName); "" is cloudhsm
}

// Init creates a cluster: the first HSM holds the profile's initial users
// (CloudHSM's unactivated admin and app_user; Luna's predefined appliance
// users), the others are clones of it. It writes the client config
// listing every HSM and refuses to overwrite a state or a config.
func Init(o InitOptions) (*config.Config, *state.Cluster, error) {
	if o.HSMs < 1 || o.HSMs > MaxHSMs {
		return nil, nil, fmt.Errorf("--hsms %d: a cluster has 1 to %d HSMs", o.HSMs, MaxHSMs)
	}
	if len(o.AZs) == 0 {
		o.AZs = []string{"us-east-1a", "us-east-1b", "us-east-1c"}
	}
	clock, err := initClock(o.Clock)
	if err != nil {
		return nil, nil, err
	}
	now := clock.Now()
	table, err := policy.ByName(o.Profile)
	if err != nil {
		return nil, nil, fmt.Errorf("--profile: %v", err)
	}
	if b := o.FromBackup; b != nil {
		// The backup's users are of its cluster's profile: under another
		// table their roles mean nothing, or something else.
		bt, err := policy.ByName(b.Cluster.Profile)
		if err != nil {
			return nil, nil, fmt.Errorf("--from-backup: %v", err)
		}
		if bt != table {
			return nil, nil, fmt.Errorf("--profile %s and --from-backup do not go together: the backup is of a %s cluster, and a cluster made from it keeps its profile", table.Name, bt.Name)
		}
	}
	r := newRand(o.Seed, 0, "init")
	cl := &state.Cluster{ID: o.ClusterID, Created: now, Seed: o.Seed, KDF: o.KDF, Salt: r.Bytes(16), AZs: o.AZs, Clock: clock,
		MaskingKey: r.Secret(32)}
	cl.Profile = table.StoredName()
	if b := o.FromBackup; b != nil {
		if o.Uninitialized {
			return nil, nil, errors.New("--from-backup and --uninitialized do not go together: a cluster made from a backup has the backup's certificates")
		}
		// The backup's secrets: its password hashes and masked keys are
		// only readable with them.
		cl.KDF, cl.Salt, cl.MaskingKey = b.Cluster.KDF, b.Cluster.Salt, b.Cluster.MaskingKey
	}
	if cl.ID == "" {
		cl.ID = r.ID("cluster-")
	}
	if !config.ValidID(cl.ID) {
		return nil, nil, fmt.Errorf("--cluster-id %q: want lowercase letters, digits and -, like cluster-abc123", cl.ID)
	}
	if _, err := config.Load(o.ConfigPath); err == nil || !errors.Is(err, config.ErrNotFound) {
		return nil, nil, fmt.Errorf("%s already exists; not overwriting a client config (pass --config to write another)", o.ConfigPath)
	}
	// The config is written last: check first that it can be, so a bad
	// --config leaves no state behind that a second init would refuse.
	if fi, err := os.Stat(filepath.Dir(o.ConfigPath)); err != nil || !fi.IsDir() {
		return nil, nil, fmt.Errorf("--config %s: its directory %s does not exist; nothing was created", o.ConfigPath, filepath.Dir(o.ConfigPath))
	}
	if err := table.Check(policy.Account, policy.InitCluster); err != nil {
		return nil, nil, err
	}
	// A cluster left UNINITIALIZED waits for the account's initialize:
	// under a table without it, it would wait for ever.
	if o.Uninitialized && table.Check(policy.Account, policy.InitializeCluster) != nil {
		return nil, nil, fmt.Errorf("--uninitialized: the %s profile's clusters are not initialized with a CSR (the account may not initialize the cluster); leave it out", table.Name)
	}
	st, err := state.Create(o.StateDir)
	if err != nil {
		return nil, nil, err
	}
	// The one operation that precedes its cluster: it makes the state
	// directory, then writes it under the lock like every other.
	unlock, err := st.Lock(10*time.Second, "hsm-sim init", nil)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	var first *state.HSM
	if b := o.FromBackup; b != nil {
		first = cloneHSM(b.HSM, "")
	} else {
		first = &state.HSM{ID: "", NextUserID: 0, NextTokenID: 0x10, Quorum: state.DefaultQuorum()}
		first.History = state.Stamp(nil, now, 0, first.Quorum)
		first.Users = []state.User{}
		for i, iu := range table.Initial {
			pw := iu.Password
			if pw == "" {
				pw = string(r.Bytes(24)) // nobody's to know
			}
			first.Users = append(first.Users, state.User{ID: i + 1, Name: iu.Name, Role: string(iu.Role), Hash: hashPassword(cl, iu.Name, pw), Changed: now, Op: "op-init",
				Lineage: "op-init", Kind: state.KindInit, Approvals: 1, Disabled: iu.Disabled, Expired: iu.Expired})
		}
		first.NextUserID = len(first.Users)
	}
	for i := 0; i < o.HSMs; i++ {
		info := newHSMInfo(cl, r, o.AZs[i%len(o.AZs)], now)
		cl.HSMs = append(cl.HSMs, info)
		h := cloneHSM(first, info.ID)
		if err := st.CreateHSM(h); err != nil {
			return nil, nil, err
		}
	}
	// Drawn after the ids, so seeded ids stay what they were.
	if b := o.FromBackup; b != nil {
		cl.State, cl.CSRKey, cl.CSR, cl.Cert, cl.TrustAnchor = b.Cluster.State, b.Cluster.CSRKey, b.Cluster.CSR, b.Cluster.Cert, b.Cluster.TrustAnchor
	} else if cl.CSRKey, cl.CSR, err = newClusterCSR(r, cl.HSMs[0].Serial); err != nil {
		return nil, nil, err
	} else {
		cl.State = state.Uninitialized
	}
	if o.FromBackup == nil && !o.Uninitialized {
		if cl.Cert, cl.TrustAnchor, err = quickSign(r, cl.ID, cl.CSR, now); err != nil {
			return nil, nil, err
		}
		cl.State = state.Initialized
	}
	if err := st.SaveCluster(cl); err != nil {
		return nil, nil, err
	}
	cfg := &config.Config{Cluster: cl.ID, State: o.StateDir, Path: o.ConfigPath}
	if rel, err := filepath.Rel(filepath.Dir(absPath(o.ConfigPath)), absPath(o.StateDir)); err == nil {
		cfg.State = rel
	}
	for _, h := range cl.HSMs {
		cfg.HSMs = append(cfg.HSMs, config.HSM{ID: h.ID, IP: h.IP})
	}
	if err := config.Create(o.ConfigPath, cfg); err != nil {
		return nil, nil, err
	}
	return cfg, cl, nil
}

func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

var azRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`) })

// MaxHSMs is CloudHSM's limit of HSMs per cluster.
const MaxHSMs = 28

func newHSMInfo(cl *state.Cluster, r *Rand, az string, now time.Time) state.HSMInfo {
	azIndex := slices.Index(cl.AZs, az)
	if azIndex < 0 {
		azIndex = len(cl.AZs)
	}
	host := 10
	for _, h := range cl.HSMs {
		if h.AZ == az {
			host++
		}
	}
	s := r.Bytes(4)
	return state.HSMInfo{
		ID: r.ID("hsm-"), AZ: az, IP: fmt.Sprintf("10.0.%d.%d", azIndex, host),
		Serial:   fmt.Sprintf("%08d", (uint32(s[0])<<24|uint32(s[1])<<16|uint32(s[2])<<8|uint32(s[3]))%100000000),
		Model:    "hsm2m.medium (simulated)",
		Firmware: "3.4.0-sim",
		Status:   state.Running, Joined: now,
	}
}

// cloneHSM copies users, keys, deletion records and policy: what a joining HSM
// gets from its peer. Sessions and tokens belong to the peer alone.
func cloneHSM(from *state.HSM, id string) *state.HSM {
	h := &state.HSM{ID: id, Seq: from.Seq, NextUserID: from.NextUserID, NextTokenID: 0x10, History: slices.Clone(from.History)}
	h.Users = slices.Clone(from.Users)
	h.Deleted = slices.Clone(from.Deleted)
	h.Quorum = from.Quorum.Clone()
	// A profile's custom roles and policy values (Luna's) go with the users.
	h.Roles, h.Policies = slices.Clone(from.Roles), maps.Clone(from.Policies)
	// Token keys are cloned as the masked objects they are; session keys
	// live on the HSM that made them (docs/design.md, "Keys").
	h.NextKey, h.KeyDeleted = from.NextKey, slices.Clone(from.KeyDeleted)
	for _, k := range from.Keys {
		if k.Session == "" {
			h.Keys = append(h.Keys, k)
		}
	}
	if h.Users == nil {
		h.Users = []state.User{}
	}
	return h
}

func (c *Client) mustHSM(cl *state.Cluster, id string) (*state.HSMInfo, error) {
	if h := c.hsmInfo(cl, id); h != nil {
		return h, nil
	}
	return nil, fmt.Errorf("no HSM %q in cluster %s", id, cl.ID)
}

// AddHSM adds an HSM cloned from an active peer. The client config is left
// as it is: a real client's config does not learn of the newcomer either.
func (c *Client) AddHSM(az string) (state.HSMInfo, error) { return c.addHSM(Account{}, az, nil, nil) }

// JoinMember adds an HSM that brings records of its own (Luna: an
// appliance member of another cluster, with its own HSM and its own
// appliance users and custom roles). The cluster is the authority: the
// records of the levels the profile synchronizes (Profile.Synced) are the
// cluster's, copied from an active peer, and the member's own are
// overwritten; the rest (its HSM's roles and partitions) stay its own.
// Overwritten names what of the member's was lost or replaced.
func (c *Client) JoinMember(az string, member *state.HSM) (info state.HSMInfo, overwritten []string, err error) {
	info, err = c.addHSM(Account{}, az, member, &overwritten)
	return info, overwritten, err
}

func (c *Client) addHSM(auth Authenticator, az string, member *state.HSM, overwritten *[]string) (state.HSMInfo, error) {
	var info state.HSMInfo
	_, err := c.run(op{name: "add-hsm", scope: scopeCluster, perm: policy.AddHSM, auth: auth, write: true,
		whole: func(tx *Tx, _ Principal) error {
			cl := tx.Cluster
			if len(cl.HSMs) >= MaxHSMs {
				return fmt.Errorf("cluster %s has %d HSMs, the most a cluster can have", cl.ID, MaxHSMs)
			}
			if az != "" && !azRe().MatchString(az) {
				return fmt.Errorf("--az %q: want an availability zone name such as us-east-1a", az)
			}
			var peer *state.HSM
			for _, h := range cl.HSMs {
				if h.Status != state.Running {
					continue
				}
				var users int
				if err := tx.View(h.ID, func(t *state.HSMTx) error { var err error; users, err = t.CountUsers(); return err }); err != nil {
					return err
				}
				if users > 1 || peer == nil {
					p, err := c.Store.LoadHSM(h.ID)
					if err != nil {
						return &TroubleError{Err: err}
					}
					peer = p
				}
				if users > 1 {
					break
				}
			}
			if peer == nil {
				return fmt.Errorf("no reachable HSM to clone from: start one first (hsm-sim start ID)")
			}
			if len(peer.Users) <= 1 {
				// A zeroized peer holds only app_user and the default policy:
				// the clone would miss every user and weaken the quorum.
				return fmt.Errorf("every reachable HSM is zeroized (%s holds only app_user): the new HSM would clone no users and the default quorum policy; start an HSM that holds the cluster's users (hsm-sim start ID), or repair with hsm-sync apply first", peer.ID)
			}
			if az == "" {
				az = cl.AZs[len(cl.HSMs)%len(cl.AZs)]
			} else if !slices.Contains(cl.AZs, az) {
				cl.AZs = append(cl.AZs, az)
			}
			// Ids keep the derivation they have always had, so seeded
			// scenarios keep their golden files.
			var counter uint64
			for _, h := range cl.HSMs {
				counter += uint64(len(h.ID))
			}
			info = newHSMInfo(cl, newRand(cl.Seed, peer.Seq+counter+uint64(len(cl.HSMs)), "add-hsm"), az, tx.Now)
			if c.hsmInfo(cl, info.ID) != nil {
				return fmt.Errorf("HSM id %s is taken; add it again", info.ID)
			}
			// The database is made first; the cluster record that names it
			// is the commit point (a kill in between leaves a file no
			// cluster names, which the next CreateHSM of that id replaces).
			h := cloneHSM(peer, info.ID)
			if member != nil {
				h, *overwritten = c.joined(h, member)
			}
			if err := c.Store.CreateHSM(h); err != nil {
				return err
			}
			cl.HSMs = append(cl.HSMs, info)
			tx.ClusterChanged()
			return nil
		}})
	return info, err
}

// RemoveHSM deletes an HSM from the cluster.
func (c *Client) RemoveHSM(id string) error { return c.removeHSM(Account{}, id) }

func (c *Client) removeHSM(auth Authenticator, id string) error {
	_, err := c.run(op{name: "remove-hsm", scope: scopeCluster, perm: policy.RemoveHSM, auth: auth, write: true,
		whole: func(tx *Tx, _ Principal) error {
			cl := tx.Cluster
			if _, err := c.mustHSM(cl, id); err != nil {
				return err
			}
			if len(cl.HSMs) == 1 {
				return fmt.Errorf("%s is the cluster's last HSM; a cluster keeps at least one", id)
			}
			cl.HSMs = slices.DeleteFunc(cl.HSMs, func(h state.HSMInfo) bool { return h.ID == id })
			tx.ClusterChanged()
			return nil
		},
		afterCommit: func(tx *Tx) error { return c.Store.RemoveHSM(id) }})
	return err
}

// SetReachable stops (unreachable) or starts an HSM.
func (c *Client) SetReachable(id string, up bool) error { return c.setReachable(Account{}, id, up) }

func (c *Client) setReachable(auth Authenticator, id string, up bool) error {
	_, err := c.run(op{name: "reachability", scope: scopeCluster, perm: policy.Reachability, auth: auth, write: true,
		whole: func(tx *Tx, _ Principal) error {
			h, err := c.mustHSM(tx.Cluster, id)
			if err != nil {
				return err
			}
			want := state.Stopped
			if up {
				want = state.Running
			}
			if h.Status == want {
				return fmt.Errorf("HSM %s is already %s", id, want)
			}
			h.Status = want
			tx.ClusterChanged()
			return nil
		}})
	return err
}

// Zeroize destroys an HSM's users, sessions, tokens and policy; only the
// appliance user remains. Anyone may do it (docs/design.md, "The permission table"), which is why the
// cluster's security group matters.
func (c *Client) Zeroize(auth Authenticator, id string) error {
	_, err := c.run(op{name: "zeroize", scope: scopeCluster, perm: policy.Zeroize, auth: auth, write: true,
		whole: func(tx *Tx, _ Principal) error {
			info, err := c.mustHSM(tx.Cluster, id)
			if err != nil {
				return err
			}
			if info.Status != state.Running {
				return fmt.Errorf("HSM %s is unreachable; start it first", id)
			}
			h, err := tx.HSM(id)
			if err != nil {
				return err
			}
			z := &state.HSM{ID: id, NextUserID: h.Meta.NextUserID, NextTokenID: h.Meta.NextTokenID, Quorum: state.DefaultQuorum(), Users: []state.User{},
				Roles: h.Meta.Roles}
			// What it enforced before is gone with its users.
			z.History = state.Stamp(nil, tx.Now, h.Meta.Seq+1, z.Quorum)
			// What is not the HSM's stays: the users that come with the
			// cluster and stay (CloudHSM's app_user), the appliance's own
			// users and custom roles, the cluster's keyrings (Luna's).
			t := c.Policy()
			err = h.ForEachUser(func(u *state.User) error {
				if t.Undeletable(u.Name) || !t.Spec(policy.Role(u.Role)).Level.OfHSM() {
					z.Users = append(z.Users, *u)
				}
				return nil
			})
			if err != nil {
				return err
			}
			return h.Replace(z)
		}})
	return err
}

// HSMView is one HSM's basic cluster info.
type HSMView struct {
	state.HSMInfo
	Users  int  `json:"users"`
	Listed bool `json:"in-client-config"`
}

// ListHSMs gives the basic cluster info of every HSM.
func (c *Client) ListHSMs(auth Authenticator) ([]HSMView, error) {
	var out []HSMView
	_, err := c.run(op{name: "list-hsms", scope: scopeCluster, perm: policy.ClusterInfo, auth: auth,
		whole: func(tx *Tx, _ Principal) error {
			for _, info := range tx.Cluster.HSMs {
				v := HSMView{HSMInfo: info, Listed: c.Config.Lists(info.ID), Users: -1}
				if err := tx.View(info.ID, func(h *state.HSMTx) error { var err error; v.Users, err = h.CountUsers(); return err }); err != nil {
					return err
				}
				out = append(out, v)
			}
			return nil
		}})
	return out, err
}

// Dump reads whole HSMs (all of them, or the one named) for people and
// golden tests: the AWS account's view of the simulator, with password
// hashes shown as digests.
func (c *Client) Dump(id string) ([]*state.HSM, error) { return c.dump(Account{}, id) }

func (c *Client) dump(auth Authenticator, id string) ([]*state.HSM, error) {
	var out []*state.HSM
	_, err := c.run(op{name: "dump", scope: scopeCluster, perm: policy.DumpState, auth: auth,
		whole: func(tx *Tx, _ Principal) error {
			for _, info := range tx.Cluster.HSMs {
				if id != "" && info.ID != id {
					continue
				}
				var h *state.HSM
				err := tx.View(info.ID, func(t *state.HSMTx) error {
					var err error
					h, err = t.Snapshot()
					return err
				})
				if err != nil {
					return err
				}
				out = append(out, h)
			}
			if id != "" && len(out) == 0 {
				return fmt.Errorf("no HSM %q in cluster %s", id, tx.Cluster.ID)
			}
			return nil
		}})
	return out, err
}

// joined is the HSM a member becomes on joining: the cluster's records
// (from, a clone of a peer) of the levels the profile synchronizes, and
// the member's own of the others, renumbered after the cluster's.
func (c *Client) joined(from, member *state.HSM) (*state.HSM, []string) {
	t := c.Policy()
	synced := func(u *state.User) bool { return slices.Contains(t.Synced, t.Spec(policy.Role(u.Role)).Level) }
	h := from
	var lost []string
	kept := []state.User{}
	for _, u := range h.Users {
		if synced(&u) {
			kept = append(kept, u)
		}
	}
	for _, u := range member.Users {
		if !synced(&u) {
			h.NextUserID++
			u.ID = h.NextUserID
			kept = append(kept, u)
			continue
		}
		i := slices.IndexFunc(kept, func(k state.User) bool { return k.Name == u.Name })
		switch {
		case i < 0:
			lost = append(lost, "user "+u.Name+" (removed)")
		case !bytes.Equal(mustShared(&kept[i]), mustShared(&u)):
			lost = append(lost, "user "+u.Name+" (replaced by the cluster's)")
		}
	}
	h.Users = kept
	for _, r := range member.Roles {
		i := slices.IndexFunc(h.Roles, func(k state.CustomRole) bool { return k.Name == r.Name })
		switch {
		case i < 0:
			lost = append(lost, "role "+r.Name+" (removed)")
		case !slices.Equal(h.Roles[i].Commands, r.Commands):
			lost = append(lost, "role "+r.Name+" (replaced by the cluster's)")
		}
	}
	// The member's HSM keeps its own policy values.
	h.Policies = member.Policies
	return h, lost
}

// mustShared is the part of a user record that must be equal on every
// HSM (state.SharedPart of its stored form).
func mustShared(u *state.User) []byte {
	sh, err := state.SharedPart(state.EncodeUser(u))
	if err != nil {
		return nil
	}
	return sh
}

// LoadMember reads one HSM of another cluster's state, under that
// cluster's lock: an appliance that joins this cluster with what it holds
// (JoinMember). Its profile must be this cluster's.
func (c *Client) LoadMember(stateDir, id string) (*state.HSM, error) {
	st, err := state.Open(stateDir)
	if err != nil {
		return nil, &TroubleError{Err: err}
	}
	unlock, err := st.Lock(c.opts.LockWait, c.opts.Who, c.opts.Waiting)
	if err != nil {
		return nil, &TroubleError{Err: err}
	}
	defer unlock()
	other, err := st.LoadCluster()
	if err != nil {
		return nil, &TroubleError{Err: err}
	}
	if other.ID == c.Cluster.ID {
		return nil, fmt.Errorf("%s is this cluster's own state: add-hsm adds a member cloned from a peer", stateDir)
	}
	if t, err := policy.ByName(other.Profile); err != nil || t != c.Policy() {
		return nil, fmt.Errorf("cluster %s has another role profile (%q); a member joins a cluster of its own profile", other.ID, other.Profile)
	}
	if c.hsmInfo(other, id) == nil {
		return nil, fmt.Errorf("no HSM %q in cluster %s", id, other.ID)
	}
	h, err := st.LoadHSM(id)
	if err != nil {
		return nil, &TroubleError{Err: err}
	}
	return h, nil
}
