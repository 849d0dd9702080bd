// Package hsmkey is the hsm-key command: a crypto user's keys — generate,
// list, share, delete, set attributes, import, wrap and unwrap, sign and
// verify — over the engine's key operations (docs/design.md, "Keys").
// Its JSON is cloudhsm-cli's (package keyview). encrypt, decrypt and hmac
// are hsmkit's own verbs: cloudhsm-cli has none.
package hsmkey

import (
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/cli/clustercli"
	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/keyview"
)

func str(name, usage string) ucli.Flag { return &ucli.StringFlag{Name: name, Usage: usage} }
func num(name, usage string) ucli.Flag { return &ucli.IntFlag{Name: name, Usage: usage} }
func list(name, usage string) ucli.Flag {
	return &ucli.StringSliceFlag{Name: name, Usage: usage + " (repeat the flag for more)"}
}

// pairExample and mechExample complete the examples of the commands built
// per key type and mechanism.
var pairExample = map[string]string{
	"rsa": "hsm-key generate-asymmetric-pair rsa --public-label p1 --private-label k1 --modulus-size-bits 2048 --public-exponent 65537",
	"ec":  "hsm-key generate-asymmetric-pair ec --public-label p1 --private-label k1 --curve secp256r1",
}

var mechExample = map[string]string{
	"wrap":    " --payload-filter attr.label=k1 --wrapping-filter attr.label=wk --path k1.wrapped",
	"unwrap":  " --filter attr.label=wk --key-type-class aes --label k2 --data-path k1.wrapped",
	"sign":    " --filter attr.label=k1 --hash-function sha256 --data-path msg.bin",
	"verify":  " --filter attr.label=p1 --hash-function sha256 --data-path msg.bin --signature-path msg.sig",
	"encrypt": " --filter attr.label=k1 --data-path plain.bin",
	"decrypt": " --filter attr.label=k1 --data-path ct.bin",
}

// Front is one front end of the key commands: hsm-key with hsmkit's
// conventions, or (Vendor) cloudhsm-cli's key and crypto trees, which
// spell a few flags cloudhsm-cli's way and act as cloudhsm-cli's login.
// The operations and their rules are the engine's either way.
type Front struct {
	Env    cli.Env
	Vendor bool
	// Auth says who acts; nil means hsm-key's own: HSM_PIN or
	// CLOUDHSM_PIN, else the session file.
	Auth func() (hsm.Authenticator, error)
}

// Main runs hsm-key and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fe := &Front{Env: cli.NewEnv(args, stdin, stdout, stderr)}
	app := &ucli.App{
		Usage: "manage and use the keys of a CloudHSM cluster (simulated)", Description: "A crypto user's keys on the simulated cluster, over the same engine as cloudhsm-cli's key and crypto commands, with hsmkit's conventions (tables, -o json for cloudhsm-cli's JSON, sessions and HSM_PIN, exit codes). Key material is held only masked; encrypt, decrypt and hmac are hsmkit's own verbs.", UsageText: "hsm-key generate-symmetric aes --label k1 --key-length-bytes 32\nhsm-key list --filter attr.label=k1 --verbose\nhsm-key sign rsa-pkcs --filter attr.label=signer --hash-function sha256 --data-path msg.bin",
		Commands: fe.commands(),
	}
	return cli.Run(app, fe.Env, args)
}

// VendorTrees returns cloudhsm-cli's key and crypto commands (sign and
// verify are crypto's), without hsmkit's own verbs.
func (fe *Front) VendorTrees() (key, crypto []*ucli.Command) {
	fe.Vendor = true
	for _, c := range fe.commands() {
		switch c.Name {
		case "sign", "verify":
			crypto = append(crypto, c)
		case "encrypt", "decrypt", "hmac":
		default:
			key = append(key, c)
		}
	}
	var walk func(group string, cmds []*ucli.Command)
	walk = func(group string, cmds []*ucli.Command) {
		for _, c := range cmds {
			c.UsageText = strings.ReplaceAll(strings.ReplaceAll(c.UsageText, "hsm-key -o json ", "hsm-key "), "hsm-key ", "cloudhsm-cli "+group+" ")
			if group == "crypto" {
				c.UsageText = strings.ReplaceAll(c.UsageText, "--filter", "--key-filter")
			}
			c.Description = strings.ReplaceAll(c.Description, "hsm-key ", "cloudhsm-cli "+group+" ")
			walk(group, c.Subcommands)
		}
	}
	walk("key", key)
	walk("crypto", crypto)
	return key, crypto
}

// sessionKeyFlag is cloudhsm-cli's --session (a session key); hsm-key's
// --session is its session file.
func (fe *Front) sessionKeyFlag() string {
	if fe.Vendor {
		return "session"
	}
	return "session-key"
}

func (fe *Front) commands() []*ucli.Command {
	reading := func(extra ...ucli.Flag) []ucli.Flag {
		f := []ucli.Flag{&ucli.BoolFlag{Name: "disable-key-availability-check", Usage: "use a token key even if only one HSM holds it", EnvVars: []string{"HSM_DISABLE_KEY_AVAILABILITY_CHECK"}}}
		if !fe.Vendor {
			f = append(f, clustercli.SessionFlag())
		}
		return append(f, extra...)
	}
	mutating := func(extra ...ucli.Flag) []ucli.Flag {
		if fe.Vendor {
			return extra
		}
		f := append([]ucli.Flag{clustercli.SessionFlag()}, clustercli.TargetFlags()...)
		return append(f, extra...)
	}
	filter := list("filter", "select the key: `key-reference=0x…` or attr.NAME=VALUE")
	keyFilterFlag := filter
	if fe.Vendor {
		keyFilterFlag = list("key-filter", "select the key: `key-reference=0x…` or attr.NAME=VALUE")
	}
	approval := str("approval", "signed quorum token `FILE` of the key's key-management service")
	owning := []ucli.Flag{
		list("share-crypto-users", "share the key with this crypto `USER`"),
		num("manage-key-quorum-value", "approvals (2-8) the key-management service needs; 0 off"),
		num("use-key-quorum-value", "approvals (2-8) the key-usage service needs; 0 off"),
		&ucli.BoolFlag{Name: fe.sessionKeyFlag(), Usage: "a session key: on one HSM, gone when the session ends (cloudhsm-cli's --session; hsm-key's --session is the session file)"},
	}
	symmetric := func(typ, lengths string) *ucli.Command {
		return &ucli.Command{Name: typ, Usage: "generate a " + typ + " key",
			Description: "Generates a " + typ + " key on every HSM of the client config, owned by you (a crypto user); --share-crypto-users shares it, the quorum values turn on key quorum, --session-key keeps it on one HSM for this session only.",
			UsageText:   "hsm-key generate-symmetric " + typ + " --label k1 --key-length-bytes 32",
			Flags: mutating(append([]ucli.Flag{str("label", "the key's `LABEL`"), num("key-length-bytes", lengths),
				list("attributes", "`NAME=VALUE` attribute")}, owning...)...),
			Action: func(c *ucli.Context) error { return fe.generate(c, typ) }}
	}
	pair := func(typ string, own ...ucli.Flag) *ucli.Command {
		return &ucli.Command{Name: typ, Usage: "generate an " + typ + " key pair",
			Description: "Generates an " + typ + " key pair on every HSM of the client config, owned by you (a crypto user). The public key is usable by every crypto user and never shared; the private key is yours and those you share it with.",
			UsageText:   pairExample[typ],
			Flags: mutating(append(append([]ucli.Flag{str("public-label", "the public key's `LABEL`"), str("private-label", "the private key's `LABEL`"),
				list("public-attributes", "`NAME=VALUE` attribute of the public key"), list("private-attributes", "`NAME=VALUE` attribute of the private key")}, own...), owning...)...),
			Action: func(c *ucli.Context) error { return fe.generate(c, typ) }}
	}
	data := []ucli.Flag{str("data", "the input as `BASE64`"), str("data-path", "the input `FILE`")}
	signFlags := append([]ucli.Flag{keyFilterFlag, str("hash-function", "sha1, sha224, sha256, sha384 or sha512"), str("data-type", "raw (default) or digest"),
		num("salt-length", "rsa-pkcs-pss salt length (default: the hash's)")}, data...)
	mechs := func(verb string, action func(c *ucli.Context, mech string) error, flags []ucli.Flag, names ...string) []*ucli.Command {
		var out []*ucli.Command
		for _, m := range names {
			out = append(out, &ucli.Command{Name: m, Usage: verb + " with " + m, Flags: flags,
				Description: "The " + verb + " command with the " + m + " mechanism (see hsm-key " + verb + " --help).",
				UsageText:   "hsm-key " + verb + " " + m + mechExample[verb],
				Action:      func(c *ucli.Context) error { return action(c, m) }})
		}
		return out
	}
	wrapFlags := []ucli.Flag{list("payload-filter", "select the key to wrap"), list("wrapping-filter", "select the wrapping key"),
		str("path", "write the wrapped key to `FILE`"), num("tag-length-bits", "aes-gcm tag length (96-128)"), str("aad", "aes-gcm additional data (hex)"),
		str("hash-function", "rsa-oaep hash (and MGF1 hash)"), approval}
	unwrapFlags := append(append([]ucli.Flag{filter, str("key-type-class", "aes, generic-secret, rsa-private or ec-private"), str("label", "the new key's `LABEL`"),
		list("attributes", "`NAME=VALUE` attribute"), str("iv", "aes-gcm IV (hex, 0x…)"), num("tag-length-bits", "aes-gcm tag length (96-128)"),
		str("aad", "aes-gcm additional data (hex)"), str("hash-function", "rsa-oaep hash (and MGF1 hash)")}, data...), owning...)
	return []*ucli.Command{
		{Name: "generate-symmetric", Usage: "generate a secret key on every HSM", Description: "Generates an AES or generic secret key.", UsageText: "hsm-key generate-symmetric aes --label k1 --key-length-bytes 32",
			Subcommands: []*ucli.Command{symmetric("aes", "16, 24 or 32"), symmetric("generic-secret", "1 to 800")}},
		{Name: "generate-asymmetric-pair", Usage: "generate a key pair on every HSM", Description: "Generates an RSA or EC key pair.", UsageText: "hsm-key generate-asymmetric-pair ec --public-label p1 --private-label k1 --curve secp256r1",
			Subcommands: []*ucli.Command{
				pair("rsa", num("modulus-size-bits", "2048 to 4096"), num("public-exponent", "65537")),
				pair("ec", str("curve", "prime256v1, secp256r1, secp224r1, secp384r1 or secp521r1")),
			}},
		{Name: "list", Usage: "list the keys you own, are shared, and every public key", Description: "Lists the keys you may see: yours, those shared with you and every public key; --filter narrows (key-reference=0x... or attr.NAME=VALUE), --max-items and --starting-token page, --verbose shows every attribute and where the key is.", UsageText: "hsm-key list\nhsm-key -o json list --filter attr.class=private-key --verbose",
			Flags: reading(filter, num("max-items", "keys per page (default 10)"), str("starting-token", "the next_token of the page before"),
				&ucli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "every attribute and where the key is"}),
			Action: func(c *ucli.Context) error { return fe.listKeys(c) }},
		{Name: "share", Usage: "share a key you own with a crypto user", Description: "Shares a key you own with another crypto user, who may then use it (never manage it). Public keys are never shared.", UsageText: "hsm-key share --filter attr.label=k1 --username bob --role crypto-user",
			Flags:  mutating(filter, str("username", "the crypto `USER`"), str("role", "crypto-user"), approval),
			Action: func(c *ucli.Context) error { return fe.share(c, true) }},
		{Name: "unshare", Usage: "stop sharing a key you own", Description: "Stops sharing a key you own with a crypto user; refused below the key's quorum value.", UsageText: "hsm-key unshare --filter attr.label=k1 --username bob --role crypto-user",
			Flags:  mutating(filter, str("username", "the crypto `USER`"), str("role", "crypto-user"), approval),
			Action: func(c *ucli.Context) error { return fe.share(c, false) }},
		{Name: "delete", Usage: "delete a key you own", Description: "Deletes a key you own from every HSM; the other half of a pair stays.", UsageText: "hsm-key delete --filter key-reference=0x0000000000000003",
			Flags:  mutating(filter, approval),
			Action: func(c *ucli.Context) error { return fe.deleteKey(c) }},
		{Name: "set-attribute", Usage: "change a key's attribute (an admin: only trusted)", Description: "Changes an attribute of a key you own, within what CloudHSM allows to change; an admin may set only trusted.", UsageText: "hsm-key set-attribute --filter attr.label=k1 --name decrypt --value false",
			Flags:  mutating(filter, str("name", "the attribute"), str("value", "its new value"), approval),
			Action: func(c *ucli.Context) error { return fe.setAttribute(c) }},
		{Name: "generate-file", Usage: "write a key's public key as PEM", Description: "Writes the public key of a key pair as PEM, for openssl.", UsageText: "hsm-key generate-file --filter attr.label=p1 --path p1.pem --encoding pem",
			Flags:  reading(filter, str("path", "the PEM `FILE` to write"), str("encoding", "pem")),
			Action: func(c *ucli.Context) error { return fe.generateFile(c) }},
		{Name: "import", Usage: "import a key", Description: "Imports key material.", UsageText: "hsm-key import pem --path openssl.pub --label imported --key-type-class rsa-public",
			Subcommands: []*ucli.Command{{Name: "pem", Usage: "import an openssl public key (PEM)", Description: "Imports an RSA or EC public key that openssl wrote (PEM).", UsageText: "hsm-key import pem --path openssl.pub --label imported --key-type-class rsa-public",
				Flags:  mutating(str("path", "the PEM `FILE`"), str("label", "the key's `LABEL`"), str("key-type-class", "rsa-public or ec-public"), list("attributes", "`NAME=VALUE` attribute")),
				Action: func(c *ucli.Context) error { return fe.importPEM(c) }}}},
		{Name: "wrap", Usage: "export a key you own under a wrapping key", Description: "Exports a key you own, wrapped under a wrapping key (aes-gcm, rsa-oaep, rsa-pkcs); the payload must be extractable.", UsageText: "hsm-key wrap rsa-oaep --payload-filter attr.label=k1 --wrapping-filter attr.label=imported --hash-function sha256 --path k1.wrapped",
			Subcommands: mechs("wrap", fe.wrap, reading(wrapFlags...), "aes-gcm", "rsa-oaep", "rsa-pkcs")},
		{Name: "unwrap", Usage: "import a wrapped key as yours", Description: "Unwraps a wrapped key with an unwrapping key you may use; the new key is yours.", UsageText: "hsm-key unwrap aes-gcm --filter attr.label=wk --key-type-class aes --label k2 --data-path k1.wrapped --iv 0x00",
			Subcommands: mechs("unwrap", fe.unwrap, mutating(unwrapFlags...), "aes-gcm", "rsa-oaep", "rsa-pkcs")},
		{Name: "sign", Usage: "sign data with a private key", Description: "Signs data (or a digest) with a private key you may use: rsa-pkcs, rsa-pkcs-pss, ecdsa.", UsageText: "hsm-key sign ecdsa --filter attr.label=k1 --hash-function sha256 --data-path msg.bin",
			Subcommands: mechs("sign", fe.sign, reading(append(signFlags, approval, str("signature-path", "also write the raw signature to `FILE`"))...), "rsa-pkcs", "rsa-pkcs-pss", "ecdsa")},
		{Name: "verify", Usage: "verify a signature with a public key", Description: "Verifies a signature with a public key.", UsageText: "hsm-key verify ecdsa --filter attr.label=p1 --hash-function sha256 --data-path msg.bin --signature-path msg.sig",
			Subcommands: mechs("verify", fe.verify, reading(append(signFlags, str("signature", "the signature as `BASE64`"), str("signature-path", "the signature `FILE`"))...), "rsa-pkcs", "rsa-pkcs-pss", "ecdsa")},
		{Name: "encrypt", Usage: "encrypt data (hsmkit's own verb: cloudhsm-cli has none)", Description: "Encrypts data with a key you may use (aes-gcm, rsa-oaep). hsmkit's own verb: cloudhsm-cli has no encrypt command.", UsageText: "hsm-key encrypt aes-gcm --filter attr.label=k1 --data-path plain.bin",
			Subcommands: mechs("encrypt", fe.encrypt, reading(append([]ucli.Flag{filter, str("aad", "aes-gcm additional data (hex)"), str("hash-function", "rsa-oaep hash")}, data...)...), "aes-gcm", "rsa-oaep")},
		{Name: "decrypt", Usage: "decrypt data (hsmkit's own verb: cloudhsm-cli has none)", Description: "Decrypts data with a key you may use. hsmkit's own verb: cloudhsm-cli has no decrypt command.", UsageText: "hsm-key decrypt aes-gcm --filter attr.label=k1 --data-path ct.bin --iv 0x00",
			Subcommands: mechs("decrypt", fe.decrypt, reading(append([]ucli.Flag{filter, str("iv", "aes-gcm IV (hex, 0x…)"), str("aad", "aes-gcm additional data (hex)"), str("hash-function", "rsa-oaep hash")}, data...)...), "aes-gcm", "rsa-oaep")},
		{Name: "hmac", Usage: "HMAC data with a secret key (hsmkit's own verb: cloudhsm-cli has none)", Description: "Computes an HMAC with a secret key you may use. hsmkit's own verb: cloudhsm-cli has no mac command.", UsageText: "hsm-key hmac --filter attr.label=mac --hash-function sha256 --data-path msg.bin",
			Flags:  reading(append([]ucli.Flag{filter, str("hash-function", "sha1, sha224, sha256, sha384 or sha512")}, data...)...),
			Action: func(c *ucli.Context) error { return fe.hmacCmd(c) }},
	}
}

// request parses the common flags; reads also set the availability check.
func (fe *Front) request(c *ucli.Context, need clustercli.Need) (*clustercli.Request, error) {
	acting := need&clustercli.Acting != 0
	if fe.Auth != nil {
		need &^= clustercli.Acting
	}
	req, err := clustercli.Parse(c, fe.Env, need)
	if err != nil {
		return nil, err
	}
	if fe.Auth != nil && acting {
		if req.Auth, err = fe.Auth(); err != nil {
			return nil, err
		}
	}
	if c.Bool("disable-key-availability-check") {
		req.Client.DisableKeyAvailabilityCheck()
	}
	return req, nil
}

// withKey parses a command that uses the one key --filter selects.
func (fe *Front) withKey(c *ucli.Context) (*clustercli.Request, hsm.KeyFilter, error) {
	req, err := fe.request(c, clustercli.Acting)
	if err != nil {
		return nil, hsm.KeyFilter{}, err
	}
	name := "filter"
	if fe.Vendor && slices.ContainsFunc(c.Command.Flags, func(f ucli.Flag) bool { return slices.Contains(f.Names(), "key-filter") }) {
		name = "key-filter" // cloudhsm-cli's crypto sign and verify
	}
	f, err := keyFilter(c, name, true)
	return req, f, err
}

func keyFilter(c *ucli.Context, flag string, required bool) (hsm.KeyFilter, error) {
	terms := c.StringSlice(flag)
	if required && len(terms) == 0 {
		return hsm.KeyFilter{}, cli.Usagef("--%s is required (key-reference=0x… or attr.NAME=VALUE)", flag)
	}
	f, err := hsm.ParseKeyFilter(terms)
	if err != nil {
		return f, cli.Usagef("--%s: %v", flag, err)
	}
	return f, nil
}

func (fe *Front) ownership(c *ucli.Context) hsm.Ownership {
	return hsm.Ownership{ShareWith: c.StringSlice("share-crypto-users"), ManageQuorum: c.Int("manage-key-quorum-value"),
		UseQuorum: c.Int("use-key-quorum-value"), Session: c.Bool(fe.sessionKeyFlag())}
}

func (fe *Front) generate(c *ucli.Context, typ string) error {
	req, err := fe.request(c, clustercli.Mutating)
	if err != nil {
		return err
	}
	spec := hsm.KeySpec{Type: typ, Ownership: fe.ownership(c)}
	switch typ {
	case "aes", "generic-secret":
		spec.Label, spec.LengthBytes, spec.Attrs = c.String("label"), c.Int("key-length-bytes"), c.StringSlice("attributes")
		if !c.IsSet("label") || !c.IsSet("key-length-bytes") {
			return cli.Usagef("--label and --key-length-bytes are required")
		}
	default:
		spec.Label, spec.PrivateLabel = c.String("public-label"), c.String("private-label")
		spec.Attrs, spec.PrivateAttrs = c.StringSlice("public-attributes"), c.StringSlice("private-attributes")
		spec.ModulusBits, spec.PublicExponent, spec.Curve = c.Int("modulus-size-bits"), c.Int("public-exponent"), c.String("curve")
		if !c.IsSet("public-label") || !c.IsSet("private-label") {
			return cli.Usagef("--public-label and --private-label are required")
		}
	}
	keys, res, err := req.Client.GenerateKey(req.Targeting, req.Auth, spec)
	return created(req, res, err, keys)
}

// created reports new keys: cloudhsm-cli's JSON, or a line per key.
func created(req *clustercli.Request, res *hsm.Result, err error, keys []hsm.KeyInfo) error {
	var lines []string
	for _, k := range keys {
		lines = append(lines, fmt.Sprintf("%s %s %s %q on %d HSM(s)", hsm.RefString(k.Key.Ref), k.Key.Type, k.Key.Class, k.Key.Label, len(k.HSMs)))
	}
	return req.Outcome(res, err, keyview.Generated(keys), strings.Join(lines, "\n"))
}

func (fe *Front) listKeys(c *ucli.Context) error {
	req, err := fe.request(c, clustercli.Acting)
	if err != nil {
		return err
	}
	f, err := keyFilter(c, "filter", false)
	if err != nil {
		return err
	}
	page, err := keyview.ParsePage(c.Int("max-items"), c.String("starting-token"))
	if err != nil {
		return cli.Usagef("%v", err)
	}
	keys, warnings, err := req.Client.ListKeys(req.Auth, f)
	fe.Env.Warn(warnings)
	if err != nil {
		return err
	}
	return req.Emit(keyview.List(keys, c.Bool("verbose"), page), func(w io.Writer) error {
		var rows [][]string
		start, end := page.Bounds(len(keys))
		for _, k := range keys[start:end] {
			rows = append(rows, []string{hsm.RefString(k.Key.Ref), k.Key.Label, k.Key.Type, k.Key.Class, k.Key.Owner, orDash(strings.Join(k.Key.Shared, ",")), k.Coverage})
		}
		if err := cli.Table(w, []string{"Key reference", "Label", "Type", "Class", "Owner", "Shared with", "Cluster coverage"}, rows); err != nil {
			return err
		}
		if end < len(keys) {
			cli.Linef(w, "%d of %d keys; next page: --starting-token %d", end-start, len(keys), end)
		}
		return nil
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// manage is the shape of share, unshare, delete and set-attribute.
func (fe *Front) manage(c *ucli.Context, msg string, run func(req *clustercli.Request, f hsm.KeyFilter, a *hsm.Approval) (*hsm.Result, error)) error {
	req, err := fe.request(c, clustercli.Mutating)
	if err != nil {
		return err
	}
	f, err := keyFilter(c, "filter", true)
	if err != nil {
		return err
	}
	a, err := clustercli.Approval(c)
	if err != nil {
		return err
	}
	res, err := run(req, f, a)
	return req.Outcome(res, err, keyview.Message(msg), msg)
}

func (fe *Front) share(c *ucli.Context, on bool) error {
	user := strings.ToLower(c.String("username"))
	if user == "" {
		return cli.Usagef("--username is required")
	}
	if r := c.String("role"); r != "" && r != "crypto-user" && r != "CU" {
		return cli.Usagef("--role %q: keys are shared with crypto users only", r)
	}
	if !on {
		return fe.manage(c, keyview.MsgUnshared, func(req *clustercli.Request, f hsm.KeyFilter, a *hsm.Approval) (*hsm.Result, error) {
			return req.Client.UnshareKey(req.Targeting, req.Auth, f, user, a)
		})
	}
	return fe.manage(c, keyview.MsgShared, func(req *clustercli.Request, f hsm.KeyFilter, a *hsm.Approval) (*hsm.Result, error) {
		return req.Client.ShareKey(req.Targeting, req.Auth, f, user, a)
	})
}

func (fe *Front) deleteKey(c *ucli.Context) error {
	return fe.manage(c, keyview.MsgDeleted, func(req *clustercli.Request, f hsm.KeyFilter, a *hsm.Approval) (*hsm.Result, error) {
		return req.Client.DeleteKey(req.Targeting, req.Auth, f, a)
	})
}

func (fe *Front) setAttribute(c *ucli.Context) error {
	if !c.IsSet("name") || !c.IsSet("value") {
		return cli.Usagef("--name and --value are required")
	}
	return fe.manage(c, keyview.MsgAttribute, func(req *clustercli.Request, f hsm.KeyFilter, a *hsm.Approval) (*hsm.Result, error) {
		return req.Client.SetKeyAttribute(req.Targeting, req.Auth, f, c.String("name"), c.String("value"), a)
	})
}

func (fe *Front) generateFile(c *ucli.Context) error {
	req, f, err := fe.withKey(c)
	if err != nil {
		return err
	}
	path := c.String("path")
	if path == "" {
		return cli.Usagef("--path is required")
	}
	if e := c.String("encoding"); e != "" && e != "pem" {
		return cli.Usagef("--encoding %q: hsmkit writes pem (a public key) only", e)
	}
	pemData, err := req.Client.PublicPEM(req.Auth, f)
	if err != nil {
		return err
	}
	if err := fileio.WriteFile(path, pemData, 0o600); err != nil {
		return err
	}
	return req.Emit(keyview.Message("Successfully generated key file"), func(w io.Writer) error {
		cli.Linef(w, "wrote the public key to %s", path)
		return nil
	})
}

func (fe *Front) importPEM(c *ucli.Context) error {
	req, err := fe.request(c, clustercli.Mutating)
	if err != nil {
		return err
	}
	if c.String("path") == "" || !c.IsSet("label") || c.String("key-type-class") == "" {
		return cli.Usagef("--path, --label and --key-type-class are required")
	}
	pemData, err := cli.ReadInput("--path", c.String("path"))
	if err != nil {
		return err
	}
	keys, res, err := req.Client.ImportPEM(req.Targeting, req.Auth, pemData, c.String("key-type-class"), c.String("label"), c.StringSlice("attributes"))
	return created(req, res, err, keys)
}

// input reads --data (base64) or --data-path.
func input(c *ucli.Context, b64, path string) ([]byte, error) {
	switch {
	case c.String(b64) != "" && c.String(path) != "":
		return nil, cli.Usagef("--%s and --%s do not go together", b64, path)
	case c.String(path) != "":
		return cli.ReadInput("--"+path, c.String(path))
	case c.IsSet(b64):
		d, err := base64.StdEncoding.DecodeString(c.String(b64))
		if err != nil {
			return nil, cli.Usagef("--%s: not base64", b64)
		}
		return d, nil
	}
	return nil, cli.Usagef("--%s or --%s is required", b64, path)
}

func hexFlag(c *ucli.Context, name string) ([]byte, error) {
	s := strings.TrimPrefix(c.String(name), "0x")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, cli.Usagef("--%s: not hex", name)
	}
	return b, nil
}

func hashFlag(c *ucli.Context, required bool) (crypto.Hash, error) {
	if !c.IsSet("hash-function") && !required {
		return 0, nil
	}
	h, err := hsm.ParseHash(c.String("hash-function"))
	if err != nil {
		return 0, cli.Usagef("%v", err)
	}
	return h, nil
}

func signSpec(c *ucli.Context, mech string) (hsm.SignSpec, error) {
	h, err := hashFlag(c, true)
	if err != nil {
		return hsm.SignSpec{}, err
	}
	d, err := input(c, "data", "data-path")
	if err != nil {
		return hsm.SignSpec{}, err
	}
	s := hsm.SignSpec{Mech: mech, Hash: h, Data: d, SaltLength: c.Int("salt-length")}
	switch c.String("data-type") {
	case "", "raw":
	case "digest":
		s.Digest = true
	default:
		return s, cli.Usagef("--data-type %q: want raw or digest", c.String("data-type"))
	}
	return s, nil
}

func (fe *Front) sign(c *ucli.Context, mech string) error {
	req, f, err := fe.withKey(c)
	if err != nil {
		return err
	}
	s, err := signSpec(c, mech)
	if err != nil {
		return err
	}
	a, err := clustercli.Approval(c)
	if err != nil {
		return err
	}
	ref, sig, err := req.Client.Sign(req.Auth, f, s, a)
	if err != nil {
		return err
	}
	if p := c.String("signature-path"); p != "" {
		if err := fileio.WriteFile(p, sig, 0o600); err != nil {
			return err
		}
	}
	return req.Emit(keyview.Signature(ref, sig), func(w io.Writer) error {
		cli.Linef(w, "%s", base64.StdEncoding.EncodeToString(sig))
		return nil
	})
}

func (fe *Front) verify(c *ucli.Context, mech string) error {
	req, f, err := fe.withKey(c)
	if err != nil {
		return err
	}
	s, err := signSpec(c, mech)
	if err != nil {
		return err
	}
	sig, err := input(c, "signature", "signature-path")
	if err != nil {
		return err
	}
	if err := req.Client.Verify(req.Auth, f, s, sig); err != nil {
		return err
	}
	return req.Emit(keyview.Message(keyview.MsgVerified), func(w io.Writer) error {
		cli.Linef(w, "%s", keyview.MsgVerified)
		return nil
	})
}

func wrapSpec(c *ucli.Context, mech string, wrapping string) (hsm.WrapSpec, error) {
	s := hsm.WrapSpec{Mech: mech, TagBits: c.Int("tag-length-bits")}
	var err error
	if s.Wrapping, err = keyFilter(c, wrapping, true); err != nil {
		return s, err
	}
	if s.AAD, err = hexFlag(c, "aad"); err != nil {
		return s, err
	}
	s.Hash, err = hashFlag(c, mech == "rsa-oaep")
	return s, err
}

func (fe *Front) wrap(c *ucli.Context, mech string) error {
	req, err := fe.request(c, clustercli.Acting)
	if err != nil {
		return err
	}
	s, err := wrapSpec(c, mech, "wrapping-filter")
	if err != nil {
		return err
	}
	if s.Payload, err = keyFilter(c, "payload-filter", true); err != nil {
		return err
	}
	a, err := clustercli.Approval(c)
	if err != nil {
		return err
	}
	w, err := req.Client.Wrap(req.Auth, s, a)
	if err != nil {
		return err
	}
	if p := c.String("path"); p != "" {
		if err := fileio.WriteFile(p, w.Data, 0o600); err != nil {
			return err
		}
	}
	return req.Emit(keyview.Wrapped(w), func(out io.Writer) error {
		cli.Linef(out, "%s", base64.StdEncoding.EncodeToString(w.Data))
		return nil
	})
}

func (fe *Front) unwrap(c *ucli.Context, mech string) error {
	req, err := fe.request(c, clustercli.Mutating)
	if err != nil {
		return err
	}
	ws, err := wrapSpec(c, mech, "filter")
	if err != nil {
		return err
	}
	s := hsm.UnwrapSpec{WrapSpec: ws, KeyTypeClass: c.String("key-type-class"), Label: c.String("label"), Attrs: c.StringSlice("attributes"), Ownership: fe.ownership(c)}
	if s.IV, err = hexFlag(c, "iv"); err != nil {
		return err
	}
	if s.Data, err = input(c, "data", "data-path"); err != nil {
		return err
	}
	if s.KeyTypeClass == "" || !c.IsSet("label") {
		return cli.Usagef("--key-type-class and --label are required")
	}
	keys, res, err := req.Client.Unwrap(req.Targeting, req.Auth, s)
	return created(req, res, err, keys)
}

func cipherSpec(c *ucli.Context, mech string) (hsm.CipherSpec, hsm.KeyFilter, []byte, error) {
	s := hsm.CipherSpec{Mech: mech}
	f, err := keyFilter(c, "filter", true)
	if err != nil {
		return s, f, nil, err
	}
	if s.AAD, err = hexFlag(c, "aad"); err != nil {
		return s, f, nil, err
	}
	if s.Hash, err = hashFlag(c, mech == "rsa-oaep"); err != nil {
		return s, f, nil, err
	}
	d, err := input(c, "data", "data-path")
	return s, f, d, err
}

func (fe *Front) encrypt(c *ucli.Context, mech string) error {
	req, err := fe.request(c, clustercli.Acting)
	if err != nil {
		return err
	}
	s, f, d, err := cipherSpec(c, mech)
	if err != nil {
		return err
	}
	ct, err := req.Client.Encrypt(req.Auth, f, s, d)
	if err != nil {
		return err
	}
	out := keyview.Object{{Name: "data", Value: base64.StdEncoding.EncodeToString(ct.Data)}}
	if ct.IV != nil {
		out = append(keyview.Object{{Name: "iv", Value: fmt.Sprintf("0x%x", ct.IV)}}, out...)
	}
	return req.Emit(out, func(w io.Writer) error {
		if ct.IV != nil {
			cli.Linef(w, "iv 0x%x", ct.IV)
		}
		cli.Linef(w, "%s", base64.StdEncoding.EncodeToString(ct.Data))
		return nil
	})
}

func (fe *Front) decrypt(c *ucli.Context, mech string) error {
	req, err := fe.request(c, clustercli.Acting)
	if err != nil {
		return err
	}
	s, f, d, err := cipherSpec(c, mech)
	if err != nil {
		return err
	}
	iv, err := hexFlag(c, "iv")
	if err != nil {
		return err
	}
	if len(iv) == 0 {
		iv = nil
	}
	plain, err := req.Client.Decrypt(req.Auth, f, s, &hsm.Ciphertext{IV: iv, Data: d})
	if err != nil {
		return err
	}
	b64 := base64.StdEncoding.EncodeToString(plain)
	return req.Emit(keyview.Object{{Name: "data", Value: b64}}, func(w io.Writer) error {
		cli.Linef(w, "%s", b64)
		return nil
	})
}

func (fe *Front) hmacCmd(c *ucli.Context) error {
	req, f, err := fe.withKey(c)
	if err != nil {
		return err
	}
	h, err := hashFlag(c, true)
	if err != nil {
		return err
	}
	d, err := input(c, "data", "data-path")
	if err != nil {
		return err
	}
	mac, err := req.Client.HMAC(req.Auth, f, h, d)
	if err != nil {
		return err
	}
	return req.Emit(keyview.Object{{Name: "hmac", Value: fmt.Sprintf("%x", mac)}}, func(w io.Writer) error {
		cli.Linef(w, "%x", mac)
		return nil
	})
}
