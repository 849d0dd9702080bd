package hsmsim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/hsm"
)

// Backups, clusters made from them, and deleting a cluster
// (docs/design.md, "Cluster certificates and backups").
func backupCommands(env cli.Env) []*ucli.Command {
	return []*ucli.Command{
		{
			Name: "backup", Usage: "write a backup of the cluster to a new file (0600)",
			Description: "Writes a backup of an initialized cluster: one active HSM's users, keys and quorum policy, the cluster's certificates and its secrets (the password-hash salt, the key-masking key and the HSM key behind the certificate), as CloudHSM's backups hold them. The file is created (never overwritten) with mode 0600: keep it as you would the state. hsm-sim init --from-backup makes a new cluster from it.",
			UsageText:   "hsm-sim backup --out backup.json",
			Flags:       []ucli.Flag{&ucli.StringFlag{Name: "out", Usage: "backup `FILE` to create"}},
			Action:      func(c *ucli.Context) error { return backup(c, env) },
		},
		{
			Name: "delete-cluster", Usage: "delete the cluster (remove its other HSMs first)",
			Description: "Deletes the cluster, as aws cloudhsmv2 delete-cluster does once its HSMs are deleted. A simulated cluster keeps at least one HSM, so the command refuses while more than one remains (hsm-sim remove-hsm the others) and deletes the last with the cluster. cluster.json stays behind as a tombstone: every command on the cluster then fails with \"cluster not found\". A backup taken before makes a new cluster with hsm-sim init --from-backup.",
			UsageText:   "hsm-sim remove-hsm hsm-abc123\nhsm-sim delete-cluster",
			Action: func(c *ucli.Context) error {
				cl, err := open(c, env, cli.NoArgs(c))
				if err != nil {
					return err
				}
				if err := cl.DeleteCluster(); err != nil {
					return err
				}
				msg := "deleted cluster " + cl.Cluster.ID
				return cli.Emit(c, map[string]any{"cluster-id": cl.Cluster.ID, "state": "DELETED"}, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, msg)
					return err
				})
			},
		},
	}
}

func backup(c *ucli.Context, env cli.Env) error {
	out := c.String("out")
	args := cli.NoArgs(c)
	if args == nil && out == "" {
		args = cli.Usagef("backup needs --out FILE")
	}
	if args == nil {
		args = cli.CheckOutputPath("--out", out)
	}
	cl, err := open(c, env, args)
	if err != nil {
		return err
	}
	b, err := cl.Backup()
	if err != nil {
		return err
	}
	data, err := b.Marshal()
	if err != nil {
		return err
	}
	if err := fileio.WriteNew(out, data, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return cli.Usagef("--out %s already exists; a backup is never written over a file", out)
		}
		return fmt.Errorf("--out %s: %w", out, err)
	}
	msg := fmt.Sprintf("backed up cluster %s (%s) to %s", cl.Cluster.ID, b.Cluster.State, out)
	return cli.Emit(c, map[string]any{"cluster-id": cl.Cluster.ID, "backup": out, "state": b.Cluster.State}, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, msg)
		return err
	})
}

// readBackup reads and checks --from-backup.
func readBackup(path string) (*hsm.Backup, error) {
	data, err := fileio.ReadFile(path, hsm.MaxBackupFile)
	if err != nil {
		return nil, cli.Usagef("--from-backup: %v", err)
	}
	return hsm.ParseBackup("--from-backup "+path, data)
}
