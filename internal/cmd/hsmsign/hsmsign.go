// Package hsmsign is hsm-sign: an approver's offline tool to make a quorum
// key, sign token files with it and check signatures. It signs exactly as
// `openssl pkeyutl -sign -pkeyopt digest:sha256` does, so approvers may use
// either.
package hsmsign

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/keys"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/quorum"
)

// passphraseEnv holds an encrypted key's passphrase for scripts.
const passphraseEnv = "HSM_KEY_PASSPHRASE"

// maxInput bounds what is read from a token or key file: they are small,
// and reading /dev/zero by mistake should fail, not hang.
const maxInput = 16 << 20

// Main runs hsm-sign and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := cli.NewEnv(args, stdin, stdout, stderr)
	return run(env, args)
}

func run(env cli.Env, args []string) int {
	return cli.Run(newApp(env), env, args)
}

func newApp(env cli.Env) *ucli.App {
	passStdin := func() ucli.Flag {
		return &ucli.BoolFlag{Name: "passphrase-stdin", Usage: "read the key's passphrase from the first line of standard input (else env " + passphraseEnv + ", else a prompt)"}
	}
	flags := func(fs ...[]ucli.Flag) []ucli.Flag { return slices.Concat(fs...) }
	return &ucli.App{
		Usage: "sign quorum tokens offline (byte-compatible with openssl pkeyutl -sign -pkeyopt digest:sha256)",
		Description: "An approver's offline tool: it makes an RSA-2048 quorum key, signs quorum token files with it, " +
			"verifies and merges signed copies. It reads no cluster state and needs no login.\n" +
			"Signatures are RSASSA-PKCS1-v1_5 over SHA-256, byte-identical to openssl pkeyutl -sign -pkeyopt digest:sha256.",
		UsageText: "hsm-sign keygen --private-key me.key --public-key me.pub\n" +
			"hsm-sign sign --key me.key --username officer2 --out signed.token admin.token",
		// A file name may contain a comma.
		DisableSliceFlagSeparator: true,
		Action: func(c *ucli.Context) error {
			return cli.Usagef("missing command: keygen, sign, verify, merge or raw")
		},
		Commands: []*ucli.Command{
			{
				Name:      "keygen",
				Usage:     "make an RSA-2048 quorum key pair; never overwrites a file",
				ArgsUsage: " ",
				Description: "Writes a new RSA-2048 private key (PKCS#8 PEM, mode 0600) and its public key. " +
					"Refuses to overwrite either file. With --encrypt the private key is encrypted with a passphrase " +
					"(--passphrase-stdin, env " + passphraseEnv + ", or a prompt; never argv).",
				UsageText: "hsm-sign keygen --private-key officer2.key --public-key officer2.pub\n" +
					"hsm-sign keygen --encrypt --passphrase-stdin --private-key me.key --public-key me.pub < passphrase.txt",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "private-key", Usage: "write the private key (PKCS#8 PEM, mode 0600) to `FILE`"},
					&ucli.StringFlag{Name: "public-key", Usage: "write the public key (SubjectPublicKeyInfo PEM) to `FILE`"},
					&ucli.BoolFlag{Name: "encrypt", Usage: "encrypt the private key with a passphrase (PBES2, AES-256-CBC)"},
					passStdin(),
				},
				Action: func(c *ucli.Context) error { return keygen(c, env) },
			},
			{
				Name:      "sign",
				Usage:     "add your signature to a service token file, or sign every entry of a registration token file",
				ArgsUsage: "TOKEN (- for standard input)",
				Description: "Adds your signature of the token to the file's signatures, keeping the others, and writes the result " +
					"to --out FILE (atomically; may be the token itself) or standard output. " +
					"A registration token (hsm-quorum generate --service registration) gets every entry signed.\n" +
					"-o FILE after the command's name still works as --out FILE; -o json or -o table there is refused.",
				UsageText: "hsm-sign sign --key officer2.key --username officer2 --out o2.token admin.token\n" +
					"cat admin.token | hsm-sign sign --key officer2.key --username officer2 - > o2.token",
				Flags: flags([]ucli.Flag{
					&ucli.StringFlag{Name: "key", Usage: "your private key `FILE` (PEM: PKCS#1, PKCS#8 or encrypted PKCS#8)"},
					&ucli.StringFlag{Name: "username", Usage: "your HSM username `NAME`"},
				}, cli.OutFlags("write the signed token to `FILE` (atomically; default standard output)"), []ucli.Flag{passStdin()}),
				Action: func(c *ucli.Context) error { return sign(c, env) },
			},
			{
				Name:  "verify",
				Usage: "check the signatures on a token file",
				Description: "Either --username NAME --public-key FILE (one approver), or one --public-key NAME=FILE per approver.\n" +
					"Every approver named must have signed, with a signature that verifies; signatures by others are reported as not checked.\n" +
					"Exit 0 when all verify, 1 when one does not.",
				UsageText: "hsm-sign verify --public-key officer2=o2.pub --public-key officer3=o3.pub approved.token\n" +
					"hsm-sign -o json verify --username officer2 --public-key o2.pub o2.token",
				ArgsUsage: "TOKEN (- for standard input)",
				Flags: []ucli.Flag{
					&ucli.StringSliceFlag{Name: "public-key", Usage: "an approver's public key: `NAME=FILE`, or FILE with --username (repeatable)"},
					&ucli.StringFlag{Name: "username", Usage: "the approver `NAME` whose --public-key FILE is given"},
				},
				Action: func(c *ucli.Context) error { return verify(c, env) },
			},
			{
				Name:      "merge",
				Usage:     "merge copies of one token that approvers signed in parallel",
				ArgsUsage: "TOKEN...",
				Description: "Takes copies of one token, each signed by some approvers, and writes one token with every signature. " +
					"Copies of different tokens are refused.",
				UsageText: "hsm-sign merge --out approved.token o2.token o3.token",
				Flags:     cli.OutFlags("write the merged token to `FILE` (atomically; - for standard output)"),
				Action:    func(c *ucli.Context) error { return merge(c, env) },
			},
			{
				Name:      "raw",
				Usage:     "sign a 32-byte digest: exactly openssl pkeyutl -sign -inkey KEY -pkeyopt digest:sha256 -in IN -out OUT",
				ArgsUsage: " ",
				Description: "Signs the 32 bytes of --in (a token's SHA-256, base64-decoded) and writes the 256-byte signature " +
					"to --out, as the manual openssl steps of CloudHSM's quorum guide do.",
				UsageText: "hsm-sign raw --key me.key --in token.bin --out sig.bin",
				Flags: flags([]ucli.Flag{
					&ucli.StringFlag{Name: "key", Usage: "private key `FILE`"},
					&ucli.StringFlag{Name: "in", Usage: "the 32-byte digest `FILE` (- for standard input)"},
				}, cli.OutFlags("the 256-byte signature `FILE` (- for standard output)"), []ucli.Flag{passStdin()}),
				Action: func(c *ucli.Context) error { return raw(c, env) },
			},
		},
	}
}

// checkOutput validates the output format. sign, merge and raw take -o
// after their name as the output file; before it, -o is the format, and a
// file name there is a slip worth naming.
func checkOutput(c *ucli.Context) error {
	if _, err := cli.Output(c); err != nil {
		return cli.Usagef("-o/--output before the command is the output format (table or json); to name the output file, put -o FILE after the command: hsm-sign %s -o FILE", c.Command.Name)
	}
	return nil
}

// requiredOut is the output file, which the command needs.
func requiredOut(c *ucli.Context) (string, error) {
	out, err := cli.OutFile(c)
	if err == nil && out == "" {
		err = cli.Usagef("--out is required")
	}
	return out, err
}

func required(c *ucli.Context, names ...string) error {
	for _, n := range names {
		if c.String(n) == "" {
			return cli.Usagef("--%s is required", n)
		}
	}
	return nil
}

func keygen(c *ucli.Context, env cli.Env) error {
	if err := cli.NoArgs(c); err != nil {
		return err
	}
	if err := checkOutput(c); err != nil {
		return err
	}
	if err := required(c, "private-key", "public-key"); err != nil {
		return err
	}
	privPath, pubPath := c.String("private-key"), c.String("public-key")
	if filepath.Clean(privPath) == filepath.Clean(pubPath) {
		return cli.Usagef("--private-key and --public-key name the same file")
	}
	if c.Bool("passphrase-stdin") && !c.Bool("encrypt") {
		return cli.Usagef("--passphrase-stdin needs --encrypt")
	}
	// Check both before making anything, so a refusal leaves nothing behind.
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return existsErr(p)
		}
	}
	var pass []byte
	if c.Bool("encrypt") {
		p, err := newPassphrase(c, env)
		if err != nil {
			return err
		}
		pass = []byte(p)
	}
	key, err := keys.GenerateKey()
	if err != nil {
		return err
	}
	privPEM, err := keys.MarshalPrivateKeyPEM(key, pass)
	if err != nil {
		return err
	}
	if err := writeNew(privPath, privPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, keys.MarshalPublicKeyPEM(&key.PublicKey), 0o644); err != nil {
		os.Remove(privPath) // we just made it; a half pair is useless
		return err
	}
	fp := keys.Fingerprint(&key.PublicKey)
	return cli.Emit(c, map[string]any{
		"private-key": privPath,
		"public-key":  pubPath,
		"encrypted":   c.Bool("encrypt"),
		"fingerprint": fp,
	}, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "private key: %s\npublic key:  %s\nfingerprint: %s\n", privPath, pubPath, fp)
		return err
	})
}

func existsErr(path string) error {
	return cli.Refused(fmt.Errorf("%s already exists; refusing to overwrite a key file", path),
		"remove it first if you really mean to replace it, or choose another name")
}

// newPassphrase reads a passphrase for a new key; on a terminal it asks twice.
func newPassphrase(c *ucli.Context, env cli.Env) (string, error) {
	fromStdin := c.Bool("passphrase-stdin")
	p, err := cli.ReadSecret(env, fromStdin, passphraseEnv, "New passphrase: ")
	if err != nil {
		return "", noPassphrase("--encrypt", fromStdin, err)
	}
	if !fromStdin && env.Getenv(passphraseEnv) == "" {
		again, err := cli.ReadSecret(env, false, passphraseEnv, "Confirm passphrase: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", cli.Usagef("the passphrases do not match")
		}
	}
	if p == "" {
		return "", cli.Usagef("empty passphrase")
	}
	return p, nil
}

func noPassphrase(what string, fromStdin bool, err error) error {
	var ce *cli.Error
	if !errors.As(err, &ce) || ce.Code != cli.ExitUsage {
		return err
	}
	if fromStdin {
		return cli.Usagef("--passphrase-stdin: no passphrase on standard input")
	}
	return cli.Usagef("%s needs a passphrase: use --passphrase-stdin, env %s, or run on a terminal", what, passphraseEnv)
}

// loadKey reads a private key, asking for a passphrase only if it is encrypted.
func loadKey(c *ucli.Context, env cli.Env) (*rsa.PrivateKey, error) {
	path := c.String("key")
	data, err := readInput(env, path)
	if err != nil {
		return nil, err
	}
	k, err := keys.LoadPrivateKey(path, data, func() ([]byte, error) {
		p, err := cli.ReadSecret(env, c.Bool("passphrase-stdin"), passphraseEnv, "Passphrase for "+path+": ")
		if err != nil {
			return nil, noPassphrase(path+" is encrypted and", c.Bool("passphrase-stdin"), err)
		}
		return []byte(p), nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// readInput reads a named regular file, or standard input for "-".
func readInput(env cli.Env, name string) ([]byte, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = fileio.ReadAll(env.Stdin, maxInput, "stdin")
	} else {
		data, err = fileio.ReadFile(name, maxInput)
	}
	var pe *fs.PathError
	switch {
	case err == nil:
		return data, nil
	case errors.As(err, new(*fileio.TooLargeError)):
		return nil, fmt.Errorf("%s: larger than %s; not a token or key file", displayName(name), fileio.Size(maxInput))
	case errors.As(err, &pe) && pe.Op == "stat":
		return nil, err // "stat FILE: no such file or directory" names it
	}
	return nil, fmt.Errorf("%s: %w", displayName(name), err)
}

func displayName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

// writeOutput writes data to path atomically (temp file and rename in the
// same directory), or to standard output for "" and "-".
func writeOutput(env cli.Env, path string, data []byte) error {
	if path == "" || path == "-" {
		_, err := env.Stdout.Write(data)
		return err
	}
	return fileio.WriteFile(path, data, 0o644)
}

// writeNew creates path with data, never replacing an existing file. The
// data is complete and synced before it gets its name, so no half-written
// key is ever visible; on Linux it is written unnamed, so even a killed
// keygen leaves no private key behind in a temp file (see fileio.WriteNew).
func writeNew(path string, data []byte, perm os.FileMode) error {
	err := fileio.WriteNew(path, data, perm)
	if errors.Is(err, fs.ErrExist) {
		return existsErr(path)
	}
	return err
}

func sign(c *ucli.Context, env cli.Env) error {
	if err := cli.ExactArgs(c, 1, "TOKEN"); err != nil {
		return err
	}
	if err := checkOutput(c); err != nil {
		return err
	}
	if err := required(c, "key", "username"); err != nil {
		return err
	}
	outPath, err := cli.OutFile(c)
	if err != nil {
		return err
	}
	user, err := policy.NormalizeUsername(c.String("username"))
	if err != nil {
		return cli.Usagef("--username: %v", err)
	}
	tokenPath := c.Args().First()
	if tokenPath == "-" && c.Bool("passphrase-stdin") {
		return cli.Usagef("--passphrase-stdin and TOKEN - both want standard input; give the token as a file, or the passphrase in env %s", passphraseEnv)
	}
	data, err := readInput(env, tokenPath)
	if err != nil {
		return err
	}
	name := displayName(tokenPath)
	// Parse before loading the key: a bad file should not cost a passphrase.
	var out []byte
	if quorum.IsRegistrationFile(data) {
		rf, err := quorum.ParseRegistrationFile(name, data)
		if err != nil {
			return err
		}
		if err := checkRegistrant(rf, user); err != nil {
			return err
		}
		key, err := loadKey(c, env)
		if err != nil {
			return err
		}
		if err := rf.Sign(key); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		out = rf.Marshal()
	} else {
		tf, err := quorum.ParseTokenFile(name, data)
		if err != nil {
			return err
		}
		key, err := loadKey(c, env)
		if err != nil {
			return err
		}
		if err := tf.Sign(user, key); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		out = tf.Marshal()
	}
	return writeOutput(env, outPath, out)
}

// checkRegistrant refuses to sign a registration token generated by someone
// else: it registers the key of the user who generated it. Entries whose
// approval_data hsmkit cannot decode (another HSM's format) are not checked.
func checkRegistrant(rf *quorum.RegistrationFile, user string) error {
	for i, t := range rf.Tokens {
		recs, err := quorum.DecodeApprovalData(t.ApprovalData)
		if err != nil {
			continue
		}
		for _, r := range recs {
			if r.Username != user {
				return fmt.Errorf("%s: tokens[%d] was generated by %s, not %s: a registration token is signed by the user registering their own key",
					rf.Name, i, r.Username, user)
			}
		}
	}
	return nil
}

func verify(c *ucli.Context, env cli.Env) error {
	if err := cli.ExactArgs(c, 1, "TOKEN"); err != nil {
		return err
	}
	if err := checkOutput(c); err != nil {
		return err
	}
	specs := c.StringSlice("public-key")
	if len(specs) == 0 {
		return cli.Usagef("--public-key is required: --username NAME --public-key FILE, or --public-key NAME=FILE per approver")
	}
	type approver struct{ user, file string }
	var want []approver
	if c.IsSet("username") {
		if len(specs) != 1 {
			return cli.Usagef("--username takes exactly one --public-key FILE; for several approvers use --public-key NAME=FILE each, without --username")
		}
		u, err := policy.NormalizeUsername(c.String("username"))
		if err != nil {
			return cli.Usagef("--username: %v", err)
		}
		want = append(want, approver{u, specs[0]})
	} else {
		for _, s := range specs {
			u, f, ok := strings.Cut(s, "=")
			if !ok || f == "" {
				return cli.Usagef("--public-key %q: want NAME=FILE (or --username NAME with a single --public-key FILE)", s)
			}
			u, err := policy.NormalizeUsername(u)
			if err != nil {
				return cli.Usagef("--public-key %q: %v", s, err)
			}
			if slices.ContainsFunc(want, func(a approver) bool { return a.user == u }) {
				return cli.Usagef("--public-key: %s is given twice", u)
			}
			want = append(want, approver{u, f})
		}
	}
	registered := map[string]*rsa.PublicKey{}
	for _, a := range want {
		data, err := readInput(env, a.file)
		if err != nil {
			return err
		}
		pub, err := keys.LoadPublicKey(a.file, data)
		if err != nil {
			return err
		}
		registered[a.user] = pub
	}
	tokenPath := c.Args().First()
	data, err := readInput(env, tokenPath)
	if err != nil {
		return err
	}
	name := displayName(tokenPath)

	if quorum.IsRegistrationFile(data) {
		rf, err := quorum.ParseRegistrationFile(name, data)
		if err != nil {
			return err
		}
		if len(want) != 1 {
			return cli.Usagef("%s is a registration token: it carries one user's signatures; give one --public-key", name)
		}
		if err := checkRegistrant(rf, want[0].user); err != nil {
			return err
		}
		if err := rf.Verify(registered[want[0].user]); err != nil {
			return err
		}
		return cli.Emit(c, map[string]any{"token": name, "kind": "registration", "approvers": []string{want[0].user}, "entries": len(rf.Tokens)},
			func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s: all %d entries signed by %s's key\n", name, len(rf.Tokens), want[0].user)
				return err
			})
	}

	tf, err := quorum.ParseTokenFile(name, data)
	if err != nil {
		return err
	}
	checked := *tf
	checked.Signatures = nil
	var unchecked []string
	for _, s := range tf.Signatures {
		if _, ok := registered[s.Username]; ok {
			checked.Signatures = append(checked.Signatures, s)
		} else if !slices.Contains(unchecked, s.Username) {
			unchecked = append(unchecked, s.Username)
		}
	}
	approvers, err := quorum.Approvers(&checked, registered)
	if err != nil {
		return err
	}
	for _, a := range want {
		if !slices.Contains(approvers, a.user) {
			return fmt.Errorf("%s: no signature by %s", name, a.user)
		}
	}
	if len(unchecked) > 0 {
		env.Warnf("%s: not checked (no --public-key given): signatures by %s", name, strings.Join(unchecked, ", "))
	}
	return cli.Emit(c, map[string]any{"token": name, "kind": "service", "approvers": approvers, "unchecked": nonNil(unchecked)},
		func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "%s: signatures verified: %s\n", name, strings.Join(approvers, ", "))
			return err
		})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func merge(c *ucli.Context, env cli.Env) error {
	if err := cli.NoStrayFlags(c); err != nil {
		return err
	}
	if c.NArg() == 0 {
		return cli.Usagef("merge needs at least one TOKEN file")
	}
	if err := checkOutput(c); err != nil {
		return err
	}
	outPath, err := requiredOut(c)
	if err != nil {
		return err
	}
	if n := slices.Index(c.Args().Slice(), "-"); n >= 0 && slices.Index(c.Args().Slice()[n+1:], "-") >= 0 {
		return cli.Usagef("standard input (-) can be read only once")
	}
	var files []*quorum.TokenFile
	for _, p := range c.Args().Slice() {
		data, err := readInput(env, p)
		if err != nil {
			return err
		}
		if quorum.IsRegistrationFile(data) {
			return fmt.Errorf("%s is a registration token; merge works on service token files (a registration token has one signer)", displayName(p))
		}
		tf, err := quorum.ParseTokenFile(displayName(p), data)
		if err != nil {
			return err
		}
		files = append(files, tf)
	}
	m, err := quorum.Merge(files...)
	if err != nil {
		return err
	}
	return writeOutput(env, outPath, m.Marshal())
}

func raw(c *ucli.Context, env cli.Env) error {
	if err := cli.NoArgs(c); err != nil {
		return err
	}
	if err := checkOutput(c); err != nil {
		return err
	}
	if err := required(c, "key", "in"); err != nil {
		return err
	}
	outPath, err := requiredOut(c)
	if err != nil {
		return err
	}
	in := c.String("in")
	if in == "-" && c.Bool("passphrase-stdin") {
		return cli.Usagef("--passphrase-stdin and --in - both want standard input; give the input as a file, or the passphrase in env %s", passphraseEnv)
	}
	data, err := readInput(env, in)
	if err != nil {
		return err
	}
	if len(data) != keys.DigestSize {
		return fmt.Errorf("%s: %d bytes; raw signs a %d-byte SHA-256 digest, as openssl pkeyutl -pkeyopt digest:sha256 does",
			displayName(in), len(data), keys.DigestSize)
	}
	key, err := loadKey(c, env)
	if err != nil {
		return err
	}
	sig, err := keys.Sign(key, data)
	if err != nil {
		return err
	}
	return writeOutput(env, outPath, sig)
}
