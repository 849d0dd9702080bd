// Package hsmkms is the hsm-kms command: AWS KMS's custom key store API on
// the simulated cluster, with aws kms's subcommand names, flags, JSON
// output, error messages and exit codes, so that `aws kms X …` in a
// script is `hsm-kms X …` (docs/design.md, "The KMS custom key store").
// It is a front end: every rule is internal/kms's or the engine's.
package hsmkms

import (
	"errors"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cli/awscli"
	"github.com/hsmkit/hsmkit/internal/cli/clustercli"
	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/kms"
)

// DefaultAccount is the account id the simulation answers for, the one
// the KMS guide's examples use.
const DefaultAccount = "111122223333"

// maxParamFile bounds a file:// or fileb:// argument: KMS's largest
// parameter is a 6 KiB ciphertext blob, a trust anchor is 5,000 characters.
const maxParamFile = 1 << 20

// Main runs hsm-kms and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := cli.NewEnv(args, stdin, stdout, stderr)
	code := cli.Run(app(env), env, args)
	if code == cli.ExitUsage {
		code = awscli.ExitUsage
	}
	return code
}

// awsFlags are the AWS CLI's global options that hsm-kms takes on every
// subcommand.
func awsFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "region", Usage: "the AWS `REGION` (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1)"},
		&ucli.StringFlag{Name: "output", Usage: "output `FORMAT`: json (default) or text"},
		&ucli.StringFlag{Name: "query", Usage: "a JMESPath `QUERY` on the response: field names joined by '.', each with an optional [N] or [*]"},
		&ucli.StringFlag{Name: "cli-binary-format", Usage: "how blob values given on the command line are read: base64 (default) or raw-in-base64-out"},
		&ucli.BoolFlag{Name: "no-cli-pager", Usage: "accepted for the AWS CLI's sake; hsm-kms never pages"},
		&ucli.StringFlag{Name: "profile", Usage: "accepted for the AWS CLI's sake; the simulation has one account (HSM_AWS_ACCOUNT)"},
	}
}

type command struct {
	name, usage, desc, example string
	flags                      []ucli.Flag
	run                        func(c *ucli.Context, s *kms.Service, p params) (any, error)
}

func str(name, usage string) ucli.Flag   { return &ucli.StringFlag{Name: name, Usage: usage} }
func boolf(name, usage string) ucli.Flag { return &ucli.BoolFlag{Name: name, Usage: usage} }

var (
	storeID   = str("custom-key-store-id", "the custom key store's `ID` (cks-…)")
	keyID     = str("key-id", "the KMS key: its `ID` or ARN")
	context   = str("encryption-context", "the encryption context: K1=V1,K2=V2 or JSON")
	algorithm = str("encryption-algorithm", "SYMMETRIC_DEFAULT, the only algorithm of a key in a CloudHSM key store")
)

func commands() []command {
	return []command{
		{"create-custom-key-store", "create a custom key store on a CloudHSM cluster",
			"Creates an AWS CloudHSM key store for the cluster the client config (-c) reaches. The cluster must be ACTIVE, its trust anchor the one given, not associated with another key store, with active HSMs in two Availability Zones. The store starts DISCONNECTED; the password is kmsuser's, and is not checked until connect.",
			"hsm-kms create-custom-key-store --custom-key-store-name ExampleKeyStore --cloud-hsm-cluster-id \"$CLUSTER\" --trust-anchor-certificate file://customerCA.crt --key-store-password \"$KMSUSER_PW\"",
			[]ucli.Flag{str("custom-key-store-name", "a `NAME` unique in the account and Region"), str("cloud-hsm-cluster-id", "the cluster's `ID`"),
				str("trust-anchor-certificate", "the cluster's trust anchor (customerCA.crt): `PEM`, or file://PATH"),
				str("key-store-password", "kmsuser's `PASSWORD` (7 to 32 characters), or file://PATH to keep it out of the process list"), str("custom-key-store-type", "AWS_CLOUDHSM (the default; EXTERNAL_KEY_STORE is not simulated)")},
			func(c *ucli.Context, s *kms.Service, p params) (any, error) {
				anchor, err := awscli.Text("trust-anchor-certificate", c.String("trust-anchor-certificate"), p.read)
				if err != nil {
					return nil, err
				}
				pw, err := p.password(c)
				if err != nil {
					return nil, err
				}
				id, err := s.CreateCustomKeyStore(kms.CreateInput{Name: c.String("custom-key-store-name"), ClusterID: c.String("cloud-hsm-cluster-id"),
					TrustAnchor: anchor, Password: pw, Type: c.String("custom-key-store-type")})
				return struct {
					CustomKeyStoreID string `json:"CustomKeyStoreId"`
				}{id}, err
			}},
		{"describe-custom-key-stores", "show the custom key stores and their connection states",
			"Shows every custom key store of the account in the Region, or the one named. ConnectionErrorCode appears only when the ConnectionState is FAILED. A connect in progress is finished first, unless the hold-connect fault keeps it CONNECTING.",
			"hsm-kms describe-custom-key-stores --custom-key-store-id \"$CKS\" --query 'CustomKeyStores[0].ConnectionState' --output text",
			[]ucli.Flag{storeID, str("custom-key-store-name", "the store's `NAME`")},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				v, err := s.DescribeCustomKeyStores(c.String("custom-key-store-id"), c.String("custom-key-store-name"))
				return struct {
					CustomKeyStores []kms.StoreView `json:"CustomKeyStores"`
				}{v}, err
			}},
		{"connect-custom-key-store", "connect a key store to its cluster",
			"Begins a connect and returns at once, as KMS does: the store is CONNECTING, then CONNECTED or FAILED with a ConnectionErrorCode by the time the next hsm-kms command looks. KMS logs in as kmsuser on every HSM it reaches, alone, rotates kmsuser's password to one only it knows, and stays logged in. A FAILED store must be disconnected first.",
			"hsm-kms connect-custom-key-store --custom-key-store-id \"$CKS\"", []ucli.Flag{storeID},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				return nil, s.ConnectCustomKeyStore(c.String("custom-key-store-id"))
			}},
		{"disconnect-custom-key-store", "disconnect a key store from its cluster",
			"Logs KMS out of the cluster; the store is DISCONNECTED and its KMS keys Unavailable (those pending deletion stay PendingDeletion). Clears a FAILED state.",
			"hsm-kms disconnect-custom-key-store --custom-key-store-id \"$CKS\"", []ucli.Flag{storeID},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				return nil, s.DisconnectCustomKeyStore(c.String("custom-key-store-id"))
			}},
		{"update-custom-key-store", "rename a key store, or change its password or cluster",
			"Renames a store (connected or disconnected), or, disconnected only, sets the kmsuser password KMS uses (it changes no password in the cluster) or moves the store to a cluster that shares its backup history, reached through the client config (-c).",
			"hsm-kms update-custom-key-store --custom-key-store-id \"$CKS\" --key-store-password \"$KMSUSER_PW\"",
			[]ucli.Flag{storeID, str("new-custom-key-store-name", "the new `NAME`"), str("key-store-password", "kmsuser's current `PASSWORD` in the cluster, or file://PATH to keep it out of the process list"), str("cloud-hsm-cluster-id", "a related cluster's `ID`")},
			func(c *ucli.Context, s *kms.Service, p params) (any, error) {
				pw, err := p.password(c)
				if err != nil {
					return nil, err
				}
				return nil, s.UpdateCustomKeyStore(kms.UpdateInput{ID: c.String("custom-key-store-id"), NewName: c.String("new-custom-key-store-name"),
					Password: pw, ClusterID: c.String("cloud-hsm-cluster-id")})
			}},
		{"delete-custom-key-store", "delete a disconnected key store that holds no KMS key",
			"Deletes a store's record in KMS; the cluster, kmsuser and any key material are left as they are.",
			"hsm-kms delete-custom-key-store --custom-key-store-id \"$CKS\"", []ucli.Flag{storeID},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				return nil, s.DeleteCustomKeyStore(c.String("custom-key-store-id"))
			}},
		{"create-key", "create a KMS key whose material is an AES-256 key in the cluster",
			"Creates a symmetric KMS key in a CONNECTED CloudHSM key store. KMS, logged in as kmsuser, makes a persistent, non-extractable AES-256 key labelled with the KMS key's ARN on the HSMs it is logged in to; the cluster needs active HSMs in two Availability Zones.",
			"hsm-kms create-key --origin AWS_CLOUDHSM --custom-key-store-id \"$CKS\" --description 'Example key'",
			[]ucli.Flag{str("origin", "AWS_CLOUDHSM"), storeID, str("description", "a `TEXT`"), str("key-spec", "SYMMETRIC_DEFAULT"),
				str("customer-master-key-spec", "SYMMETRIC_DEFAULT (the older name of --key-spec)"), str("key-usage", "ENCRYPT_DECRYPT"), boolf("multi-region", "refused: a custom key store holds single-Region keys")},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				spec := c.String("key-spec")
				if spec == "" {
					spec = c.String("customer-master-key-spec")
				}
				m, err := s.CreateKey(kms.CreateKeyInput{StoreID: c.String("custom-key-store-id"), Origin: c.String("origin"), KeySpec: spec,
					KeyUsage: c.String("key-usage"), Description: c.String("description"), MultiRegion: c.Bool("multi-region")})
				return metadata(m), err
			}},
		{"describe-key", "show a KMS key", "Shows a KMS key's metadata, its key state derived from its key store's connection.",
			"hsm-kms describe-key --key-id \"$KEY\" --query KeyMetadata.KeyState --output text", []ucli.Flag{keyID},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				m, err := s.DescribeKey(c.String("key-id"))
				return metadata(m), err
			}},
		{"list-keys", "list the KMS keys", "Lists the account's KMS keys in the Region: id and ARN.", "hsm-kms list-keys --query 'Keys[*].KeyId' --output text",
			[]ucli.Flag{str("limit", "accepted; every key is listed")},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				v, err := s.ListKeys()
				return struct {
					Keys []kms.KeyListEntry `json:"Keys"`
				}{v}, err
			}},
		{"enable-key", "enable a KMS key", "Enables a key; on an Unavailable key it takes effect when the store is connected again.", "hsm-kms enable-key --key-id \"$KEY\"", []ucli.Flag{keyID},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				return nil, s.SetEnabled(c.String("key-id"), true)
			}},
		{"disable-key", "disable a KMS key", "Disables a key: cryptographic operations with it fail with DisabledException.", "hsm-kms disable-key --key-id \"$KEY\"", []ucli.Flag{keyID},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				return nil, s.SetEnabled(c.String("key-id"), false)
			}},
		{"schedule-key-deletion", "schedule a KMS key's deletion",
			"Schedules a key's deletion after 7 to 30 days (default 30) of the cluster's clock. At the date the next hsm-kms command deletes the key, and its key material in the cluster where KMS can still reach it as kmsuser (a disconnected store or a changed password leaves it behind).",
			"hsm-kms schedule-key-deletion --key-id \"$KEY\" --pending-window-in-days 7",
			[]ucli.Flag{keyID, str("pending-window-in-days", "`DAYS` of waiting, 7 to 30")},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				days := 0
				if v := c.String("pending-window-in-days"); v != "" {
					n, err := strconv.Atoi(v)
					if err != nil {
						return nil, &awscli.ParamError{Msg: "argument --pending-window-in-days: invalid int value: '" + v + "'"}
					}
					days = n
				}
				return s.ScheduleKeyDeletion(c.String("key-id"), days)
			}},
		{"cancel-key-deletion", "cancel a KMS key's scheduled deletion", "Cancels a scheduled deletion; the key is Disabled.", "hsm-kms cancel-key-deletion --key-id \"$KEY\"", []ucli.Flag{keyID},
			func(c *ucli.Context, s *kms.Service, _ params) (any, error) {
				arn, err := s.CancelKeyDeletion(c.String("key-id"))
				return struct {
					KeyID string `json:"KeyId"`
				}{arn}, err
			}},
		{"encrypt", "encrypt up to 4 KiB under a KMS key",
			"Encrypts with the key's AES-256 key inside the cluster (AES-GCM, the encryption context authenticated). The ciphertext blob is printed in base64, as the AWS CLI prints blobs.",
			"hsm-kms encrypt --key-id \"$KEY\" --plaintext fileb://secret.txt --query CiphertextBlob --output text | base64 --decode > secret.enc",
			[]ucli.Flag{keyID, str("plaintext", "the data: fileb://PATH, or base64"), context, algorithm},
			func(c *ucli.Context, s *kms.Service, p params) (any, error) {
				plain, err := p.blob(c, "plaintext")
				if err != nil {
					return nil, err
				}
				ctx, err := p.context(c, "encryption-context")
				if err != nil {
					return nil, err
				}
				return s.Encrypt(c.String("key-id"), plain, ctx, c.String("encryption-algorithm"))
			}},
		{"decrypt", "decrypt a ciphertext blob", "Decrypts a ciphertext blob made by encrypt or generate-data-key; the key is read from the blob, and must be the one named by --key-id when given.",
			"hsm-kms decrypt --ciphertext-blob fileb://secret.enc --query Plaintext --output text | base64 --decode",
			[]ucli.Flag{str("ciphertext-blob", "the blob: fileb://PATH, or base64"), context, keyID, algorithm},
			func(c *ucli.Context, s *kms.Service, p params) (any, error) {
				blob, err := p.blob(c, "ciphertext-blob")
				if err != nil {
					return nil, err
				}
				ctx, err := p.context(c, "encryption-context")
				if err != nil {
					return nil, err
				}
				return s.Decrypt(blob, ctx, c.String("key-id"), c.String("encryption-algorithm"))
			}},
		dataKey("generate-data-key", false), dataKey("generate-data-key-without-plaintext", true),
		{"re-encrypt", "decrypt a blob and encrypt it under another KMS key, inside KMS",
			"Decrypts a ciphertext blob and encrypts its plaintext under the destination key without returning it.",
			"hsm-kms re-encrypt --ciphertext-blob fileb://secret.enc --destination-key-id \"$KEY2\" --query CiphertextBlob --output text",
			[]ucli.Flag{str("ciphertext-blob", "the blob: fileb://PATH, or base64"), str("source-encryption-context", "the blob's encryption context"),
				str("source-key-id", "the key the blob must be under"), str("destination-key-id", "the key to encrypt under"),
				str("destination-encryption-context", "the new blob's encryption context")},
			func(c *ucli.Context, s *kms.Service, p params) (any, error) {
				blob, err := p.blob(c, "ciphertext-blob")
				if err != nil {
					return nil, err
				}
				src, err := p.context(c, "source-encryption-context")
				if err != nil {
					return nil, err
				}
				dst, err := p.context(c, "destination-encryption-context")
				if err != nil {
					return nil, err
				}
				return s.ReEncrypt(blob, src, c.String("source-key-id"), c.String("destination-key-id"), dst)
			}},
	}
}

func dataKey(name string, without bool) command {
	desc := "Makes a data key (--key-spec AES_256 or AES_128, or --number-of-bytes 1 to 1024) and returns it encrypted under the KMS key, and in plaintext."
	if without {
		desc = "Makes a data key (--key-spec AES_256 or AES_128, or --number-of-bytes 1 to 1024) and returns it encrypted under the KMS key only."
	}
	return command{name, "make a data key encrypted under a KMS key", desc,
		"hsm-kms " + name + " --key-id \"$KEY\" --key-spec AES_256",
		[]ucli.Flag{keyID, str("key-spec", "AES_256 or AES_128"), str("number-of-bytes", "the data key's length in `BYTES`"), context},
		func(c *ucli.Context, s *kms.Service, p params) (any, error) {
			n := 0
			if v := c.String("number-of-bytes"); v != "" {
				var err error
				if n, err = strconv.Atoi(v); err != nil {
					return nil, &awscli.ParamError{Msg: "argument --number-of-bytes: invalid int value: '" + v + "'"}
				}
			}
			ctx, err := p.context(c, "encryption-context")
			if err != nil {
				return nil, err
			}
			return s.GenerateDataKey(c.String("key-id"), c.String("key-spec"), n, ctx, without)
		}}
}

func metadata(m kms.KeyMetadata) any {
	if m.KeyID == "" {
		return nil
	}
	return struct {
		KeyMetadata kms.KeyMetadata `json:"KeyMetadata"`
	}{m}
}

// params reads parameters the way the AWS CLI does.
type params struct{ binaryFormat string }

func (params) read(path string) ([]byte, error) { return fileio.ReadFile(path, maxParamFile) }

func (p params) blob(c *ucli.Context, name string) ([]byte, error) {
	return awscli.Blob(name, c.String(name), p.binaryFormat, p.read)
}

// password reads --key-store-password: as the AWS CLI reads any string
// parameter, file://PATH is the file's content, byte for byte (no
// newline is trimmed), which keeps the password out of argv
// (docs/design.md, "The AWS CLI's conventions").
func (p params) password(c *ucli.Context) (string, error) {
	return awscli.Text("key-store-password", c.String("key-store-password"), p.read)
}

func (p params) context(c *ucli.Context, name string) (map[string]string, error) {
	return awscli.Map(name, c.String(name), p.read)
}

// required are the parameters each subcommand cannot do without, as the
// AWS CLI's parser knows them.
var required = map[string][]string{
	"create-custom-key-store":             {"custom-key-store-name"},
	"connect-custom-key-store":            {"custom-key-store-id"},
	"disconnect-custom-key-store":         {"custom-key-store-id"},
	"update-custom-key-store":             {"custom-key-store-id"},
	"delete-custom-key-store":             {"custom-key-store-id"},
	"describe-key":                        {"key-id"},
	"enable-key":                          {"key-id"},
	"disable-key":                         {"key-id"},
	"schedule-key-deletion":               {"key-id"},
	"cancel-key-deletion":                 {"key-id"},
	"encrypt":                             {"key-id", "plaintext"},
	"decrypt":                             {"ciphertext-blob"},
	"generate-data-key":                   {"key-id"},
	"generate-data-key-without-plaintext": {"key-id"},
	"re-encrypt":                          {"ciphertext-blob", "destination-key-id"},
}

func checkRequired(c *ucli.Context) error {
	var missing []string
	for _, n := range required[c.Command.Name] {
		if !c.IsSet(n) {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) > 0 {
		return &awscli.ParamError{Msg: "the following arguments are required: " + strings.Join(missing, ", ")}
	}
	return nil
}

func app(env cli.Env) *ucli.App {
	var cmds []*ucli.Command
	for _, cmd := range append(commands(), doctorCommand()) {
		cmd := cmd
		cmds = append(cmds, &ucli.Command{Name: cmd.name, Usage: cmd.usage, Description: cmd.desc, UsageText: cmd.example,
			Flags: append(cmd.flags, awsFlags()...),
			Action: func(c *ucli.Context) error {
				if err := cli.NoArgs(c); err != nil {
					return err
				}
				if err := checkRequired(c); err != nil {
					return err
				}
				s, err := service(c, env)
				if err != nil {
					return err
				}
				out, err := cmd.run(c, s, params{binaryFormat: c.String("cli-binary-format")})
				return finish(c, env, out, err)
			}})
	}
	a := &ucli.App{
		Usage: "AWS KMS's custom key store API on the simulated cluster, as aws kms",
		Description: "Each subcommand is the aws kms subcommand of the same name, with its flags, JSON output, error messages and exit codes (252 bad parameters, 254 a service error, 255 anything else). " +
			"The KMS state of the account (HSM_AWS_ACCOUNT, default " + DefaultAccount + ") and Region is kept under HSM_KMS_STATE (default: the directory kms beside the client config); clusters are reached through client configs (-c).",
		UsageText: "hsm-kms create-custom-key-store --custom-key-store-name ExampleKeyStore --cloud-hsm-cluster-id \"$CLUSTER\" --trust-anchor-certificate file://customerCA.crt --key-store-password \"$KMSUSER_PW\"\n" +
			"hsm-kms connect-custom-key-store --custom-key-store-id \"$CKS\"\n" +
			"hsm-kms create-key --origin AWS_CLOUDHSM --custom-key-store-id \"$CKS\"",
		Commands: cmds,
	}
	cli.SetNoEnvelope(a)
	return a
}

// service makes the KMS of the account and Region the environment names.
func service(c *ucli.Context, env cli.Env) (*kms.Service, error) {
	opts, err := clustercli.EngineOptions(c, env)
	if err != nil {
		return nil, err
	}
	config, err := filepath.Abs(cli.ConfigPath(c))
	if err != nil {
		return nil, err
	}
	root := env.Getenv("HSM_KMS_STATE")
	if root == "" {
		root = filepath.Join(filepath.Dir(config), "kms")
	}
	account := env.Getenv("HSM_AWS_ACCOUNT")
	if account == "" {
		account = DefaultAccount
	}
	region := c.String("region")
	for _, v := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if region == "" {
			region = env.Getenv(v)
		}
	}
	if region == "" {
		region = "us-east-1"
	}
	return &kms.Service{Acct: kms.Account{Root: root, ID: account, Region: region, Seed: env.Getenv("HSM_KMS_SEED")}, Config: config,
		Open: func(path string) (*hsm.Client, error) { return hsm.Open(path, opts) }, Wait: opts.LockWait}, nil
}

// finish prints a response, or reports an error as the AWS CLI does.
func finish(c *ucli.Context, env cli.Env, out any, err error) error {
	var se *kms.Error
	switch {
	case errors.As(err, &se):
		awscli.ServiceError(env.Stderr, se)
		return cli.QuietExit(awscli.ExitService)
	case awscli.IsParam(err):
		return &cli.Error{Code: awscli.ExitUsage, Err: err}
	case err != nil:
		return &cli.Error{Code: awscli.ExitOther, Err: err}
	}
	if d, ok := out.(diagnosis); ok {
		if c.String("output") == "table" {
			if err := d.table(env.Stdout); err != nil {
				return err
			}
		} else if err := awscli.Render(env.Stdout, d.Diagnosis, c.String("output"), c.String("query")); err != nil {
			return &cli.Error{Code: awscli.ExitUsage, Err: err}
		}
		if d.Failed() {
			return cli.QuietExit(cli.ExitFailed)
		}
		return nil
	}
	if err := awscli.Render(env.Stdout, out, c.String("output"), c.String("query")); err != nil {
		if awscli.IsParam(err) {
			return &cli.Error{Code: awscli.ExitUsage, Err: err}
		}
		return err
	}
	return nil
}
