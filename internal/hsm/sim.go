package hsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
}

// Init creates a cluster: the first HSM holds the unactivated admin and
// app_user, the others are clones of it. It writes the client config
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
	r := newRand(o.Seed, 0, "init")
	cl := &state.Cluster{ID: o.ClusterID, Created: now, Seed: o.Seed, KDF: o.KDF, Salt: r.Bytes(16), AZs: o.AZs, Clock: clock}
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
	st, err := state.Create(o.StateDir)
	if err != nil {
		return nil, nil, err
	}
	first := &state.HSM{ID: "", NextUserID: 0, NextTokenID: 0x10, Quorum: state.DefaultQuorum()}
	admin := state.User{ID: 1, Name: "admin", Role: string(policy.Unactivated), Hash: hashPassword(cl, "admin", DefaultPrecoPassword), Changed: now, Op: "op-init"}
	app := state.User{ID: 2, Name: "app_user", Role: string(policy.Appliance), Hash: hashPassword(cl, "app_user", string(r.Bytes(24))), Changed: now, Op: "op-init"}
	first.Users, first.NextUserID = []state.User{admin, app}, 2
	for i := 0; i < o.HSMs; i++ {
		info := newHSMInfo(cl, r, o.AZs[i%len(o.AZs)], now)
		cl.HSMs = append(cl.HSMs, info)
		h := cloneHSM(first, info.ID)
		if err := st.SaveHSM(h); err != nil {
			return nil, nil, err
		}
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

var azRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

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

// cloneHSM copies users, deletion records and policy: what a joining HSM
// gets from its peer. Sessions and tokens belong to the peer alone.
func cloneHSM(from *state.HSM, id string) *state.HSM {
	h := &state.HSM{ID: id, Seq: from.Seq, NextUserID: from.NextUserID, NextTokenID: 0x10}
	h.Users = slices.Clone(from.Users)
	h.Deleted = slices.Clone(from.Deleted)
	h.Quorum = from.Quorum
	h.Quorum.Values = map[string]int{}
	for k, v := range from.Quorum.Values {
		h.Quorum.Values[k] = v
	}
	if h.Users == nil {
		h.Users = []state.User{}
	}
	return h
}

// simulate runs a cluster-side change under the lock.
func (c *Client) simulate(fn func(cl *state.Cluster) error) error {
	cl, unlock, err := c.lockCluster()
	if err != nil {
		return err
	}
	defer unlock()
	return fn(cl)
}

func (c *Client) mustHSM(cl *state.Cluster, id string) (*state.HSMInfo, error) {
	if h := c.hsmInfo(cl, id); h != nil {
		return h, nil
	}
	return nil, fmt.Errorf("no HSM %q in cluster %s", id, cl.ID)
}

// AddHSM adds an HSM cloned from an active peer. The client config is left
// as it is: a real client's config does not learn of the newcomer either.
func (c *Client) AddHSM(az string) (state.HSMInfo, error) {
	var info state.HSMInfo
	err := c.simulate(func(cl *state.Cluster) error {
		if err := c.Policy().Check(policy.Unauthenticated, policy.ClusterInfo); err != nil {
			return err
		}
		if len(cl.HSMs) >= MaxHSMs {
			return fmt.Errorf("cluster %s has %d HSMs, the most a cluster can have", cl.ID, MaxHSMs)
		}
		var peer *state.HSM
		for _, h := range cl.HSMs {
			if h.Status == state.Running {
				p, err := c.Store.LoadHSM(h.ID)
				if err != nil {
					return &TroubleError{Err: err}
				}
				if len(p.Users) > 1 || peer == nil {
					peer = p
				}
				if len(p.Users) > 1 {
					break
				}
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
		if az != "" && !azRe.MatchString(az) {
			return fmt.Errorf("--az %q: want an availability zone name such as us-east-1a", az)
		}
		if az == "" {
			az = cl.AZs[len(cl.HSMs)%len(cl.AZs)]
		} else if !slices.Contains(cl.AZs, az) {
			cl.AZs = append(cl.AZs, az)
		}
		var counter uint64
		for _, h := range cl.HSMs {
			counter += uint64(len(h.ID))
		}
		r := newRand(cl.Seed, peer.Seq+counter+uint64(len(cl.HSMs)), "add-hsm")
		info = newHSMInfo(cl, r, az, c.Now())
		if err := c.Store.SaveHSM(cloneHSM(peer, info.ID)); err != nil {
			return err
		}
		cl.HSMs = append(cl.HSMs, info)
		return c.Store.SaveCluster(cl)
	})
	return info, err
}

// RemoveHSM deletes an HSM from the cluster.
func (c *Client) RemoveHSM(id string) error {
	return c.simulate(func(cl *state.Cluster) error {
		if _, err := c.mustHSM(cl, id); err != nil {
			return err
		}
		if len(cl.HSMs) == 1 {
			return fmt.Errorf("%s is the cluster's last HSM; a cluster keeps at least one", id)
		}
		cl.HSMs = slices.DeleteFunc(cl.HSMs, func(h state.HSMInfo) bool { return h.ID == id })
		if err := c.Store.SaveCluster(cl); err != nil {
			return err
		}
		return c.Store.RemoveHSM(id)
	})
}

// SetReachable stops (unreachable) or starts an HSM.
func (c *Client) SetReachable(id string, up bool) error {
	return c.simulate(func(cl *state.Cluster) error {
		h, err := c.mustHSM(cl, id)
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
		return c.Store.SaveCluster(cl)
	})
}

// Zeroize destroys an HSM's users, sessions, tokens and policy; only the
// appliance user remains. Anyone may do it (seed 000), which is why the
// cluster's security group matters.
func (c *Client) Zeroize(auth Authenticator, id string) error {
	return c.simulate(func(cl *state.Cluster) error {
		p, err := auth.On(nil, nil)
		if err != nil {
			return err
		}
		if err := c.Policy().Check(p.Role, policy.Zeroize); err != nil {
			return err
		}
		info, err := c.mustHSM(cl, id)
		if err != nil {
			return err
		}
		if info.Status != state.Running {
			return fmt.Errorf("HSM %s is unreachable; start it first", id)
		}
		h, err := c.Store.LoadHSM(id)
		if err != nil {
			return &TroubleError{Err: err}
		}
		z := &state.HSM{ID: id, Seq: h.Seq, NextUserID: h.NextUserID, NextTokenID: h.NextTokenID, Quorum: state.DefaultQuorum(), Users: []state.User{}}
		for _, u := range h.Users {
			if policy.Role(u.Role) == policy.Appliance {
				z.Users = append(z.Users, u)
			}
		}
		return c.Store.SaveHSM(z)
	})
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
	err := c.simulate(func(cl *state.Cluster) error {
		p, err := auth.On(nil, nil)
		if err != nil {
			return err
		}
		if err := c.Policy().Check(p.Role, policy.ClusterInfo); err != nil {
			return err
		}
		for _, info := range cl.HSMs {
			v := HSMView{HSMInfo: info, Listed: c.Config.Lists(info.ID), Users: -1}
			if h, err := c.Store.LoadHSM(info.ID); err == nil {
				v.Users = len(h.Users)
			} else {
				return &TroubleError{Err: err}
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}
