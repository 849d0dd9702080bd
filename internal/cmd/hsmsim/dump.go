package hsmsim

import (
	"fmt"
	"io"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/state"
)

func dumpCommand(env cli.Env) *ucli.Command {
	return &ucli.Command{
		Name: "dump", Description: "Prints every record of every HSM, or of one: users with their provenance, deletion records, sessions (never their secrets), tokens and the quorum policy, as JSON in a stable order, password hashes as digests.", UsageText: "hsm-sim dump\nhsm-sim dump hsm-abc123 > hsm.json", Usage: "print every HSM's records, or one HSM's, as JSON in a stable order (password hashes as digests)",
		ArgsUsage: "[HSM]",
		Action:    func(c *ucli.Context) error { return dump(c, env) },
	}
}

func migrateCommand(env cli.Env) *ucli.Command {
	return &ucli.Command{
		Name: "migrate", Description: "Converts a state directory an older hsmkit wrote (schema 1, one JSON file per HSM) to this version's databases. A migration killed part-way is simply run again.", UsageText: "hsm-sim migrate --state ./state", Usage: "convert a state directory written by an older hsmkit (schema version 1) to this version",
		Flags:  []ucli.Flag{&ucli.StringFlag{Name: "state", Usage: "state `DIR` to convert"}},
		Action: func(c *ucli.Context) error { return migrate(c, env) },
	}
}

// dumpUser is a user as dump shows it: everything but the hash itself.
type dumpUser struct {
	ID        int       `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Password  string    `json:"password"`
	Failures  int       `json:"failures"`
	QuorumKey string    `json:"quorum-key,omitempty"`
	MFA       string    `json:"mfa,omitempty"`
	Changed   time.Time `json:"changed"`
	Seq       uint64    `json:"seq"`
	Op        string    `json:"op"`
}

type dumpSession struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Created time.Time `json:"created"`
}

type dumpHSM struct {
	ID          string            `json:"id"`
	Seq         uint64            `json:"seq"`
	NextUserID  int               `json:"next-user-id"`
	NextTokenID uint32            `json:"next-token-id"`
	Quorum      state.Quorum      `json:"quorum"`
	Users       []dumpUser        `json:"users"`
	Deleted     []state.Tombstone `json:"deleted"`
	Sessions    []dumpSession     `json:"sessions"`
	Tokens      []state.Token     `json:"tokens"`
}

func dump(c *ucli.Context, env cli.Env) error {
	args := cli.NoStrayFlags(c)
	if c.NArg() > 1 {
		args = cli.Usagef("dump takes at most one HSM id")
	}
	cl, err := open(c, env, args)
	if err != nil {
		return err
	}
	hsms, err := cl.Dump(c.Args().First())
	if err != nil {
		return err
	}
	out := make([]dumpHSM, 0, len(hsms))
	for _, h := range hsms {
		d := dumpHSM{ID: h.ID, Seq: h.Seq, NextUserID: h.NextUserID, NextTokenID: h.NextTokenID, Quorum: h.Quorum,
			Users: []dumpUser{}, Deleted: h.Deleted, Sessions: []dumpSession{}, Tokens: h.Tokens}
		for _, u := range h.Users {
			du := dumpUser{ID: u.ID, Name: u.Name, Role: u.Role, Failures: u.Failures, Changed: u.Changed, Seq: u.Seq, Op: u.Op}
			if u.Hash != nil {
				du.Password = fmt.Sprintf("%s t=%d m=%d p=%d digest %s", u.Hash.Alg, u.Hash.Time, u.Hash.MemoryKiB, u.Hash.Threads, hsm.HashDigest(u.Hash))
			}
			if u.QuorumKey != nil {
				du.QuorumKey = u.QuorumKey.Fingerprint
			}
			if u.MFA != nil {
				du.MFA = u.MFA.Fingerprint
			}
			d.Users = append(d.Users, du)
		}
		for _, s := range h.Sessions {
			d.Sessions = append(d.Sessions, dumpSession{ID: s.ID, User: s.User, Created: s.Created})
		}
		out = append(out, d)
	}
	data := map[string]any{"cluster-id": cl.Cluster.ID, "hsms": out}
	return cli.Emit(c, data, func(w io.Writer) error { return cli.WriteJSONPlain(w, data) })
}

func migrate(c *ucli.Context, env cli.Env) error {
	if err := cli.NoArgs(c); err != nil {
		return err
	}
	dir := c.String("state")
	if dir == "" {
		return cli.Usagef("migrate needs --state DIR")
	}
	n, err := state.Migrate(dir, 20*time.Second)
	if err != nil {
		return cli.Trouble(err, "")
	}
	msg := fmt.Sprintf("%s is at schema version %d (%d HSM(s) converted)", dir, state.Schema, n)
	return cli.Emit(c, msg, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, msg)
		return err
	})
}
