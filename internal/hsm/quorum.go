package hsm

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/keys"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/quorum"
	"github.com/hsmkit/hsmkit/internal/state"
)

// Quorum services, as cloudhsm-cli names them.
const (
	ServiceUser         = "user"
	ServiceQuorum       = "quorum"
	ServiceRegistration = "registration"
	// The crypto user's services, bound to one key (docs/design.md,
	// "Keys"): managing it (share, unshare, set-attribute, wrap) and
	// using it (sign).
	ServiceKeyManagement = "key-management"
	ServiceKeyUsage      = "key-usage"
)

// ErrKeyQuorumFailed is cloudhsm-cli's refusal of a key operation that
// its key quorum did not approve.
//
//lint:ignore ST1005 cloudhsm-cli's exact message
var ErrKeyQuorumFailed = errors.New("Quorum Failed")

// Quorum values: 1 is off, otherwise 2 to MaxQuorum.
const MaxQuorum = 8

// ErrQuorumRequired is cloudhsm-cli's refusal when a token is missing or
// not approved; scripts compare it, capital letter included.
//
//lint:ignore ST1005 cloudhsm-cli's exact message
var ErrQuorumRequired = errors.New("Quorum approval is required for this operation")

// QuorumError is a refusal of an approval: it starts with cloudhsm-cli's
// message and says what exactly is wrong.
type QuorumError struct{ Why string }

func (e *QuorumError) Error() string        { return ErrQuorumRequired.Error() + ": " + e.Why }
func (e *QuorumError) Is(target error) bool { return target == ErrQuorumRequired }

// approvalMissing is the refusal of an operation offered without a token:
// cloudhsm-cli's exact message (scripts compare it), the way out as a hint.
type approvalMissing struct {
	service string
	needs   int
}

func (e *approvalMissing) Error() string        { return ErrQuorumRequired.Error() }
func (e *approvalMissing) Is(target error) bool { return target == ErrQuorumRequired }
func (e *approvalMissing) Hint() string {
	return fmt.Sprintf("the %s service needs %d approvals: hsm-quorum generate --service %s --token FILE, have %d admins sign it (hsm-sign sign), then pass --approval FILE",
		e.service, e.needs, e.service, e.needs)
}

// Approval is a signed token file offered with an operation.
type Approval struct {
	Path string
	Data []byte
	file *quorum.TokenFile
}

// parse reads the token file once, strictly; a bad file changes nothing.
func (a *Approval) parse() (*quorum.TokenFile, error) {
	if a.file != nil {
		return a.file, nil
	}
	tf, err := quorum.ParseTokenFile(a.Path, a.Data)
	if err != nil {
		return nil, err
	}
	a.file = tf
	return tf, nil
}

// expires is when a token's time runs out. It is fixed when the token is
// generated, so a later set-timeout neither revives an expired token nor
// voids pending ones; tokens from before that rule take the HSM's timeout.
func expires(h *state.HSMTx, t *state.Token) time.Time {
	if !t.Expires.IsZero() {
		return t.Expires
	}
	return t.Created.Add(time.Duration(h.Meta.Quorum.Generated) * time.Second)
}

// expired says whether a token's time has run out: generated tokens must be
// approved within the generated timeout.
func expired(h *state.HSMTx, t *state.Token, now time.Time) bool {
	return now.After(expires(h, t))
}

// digest is the SHA-256 of the token file's approval data: what names the
// token on every HSM it covers.
func (a *Approval) digest() ([]byte, error) {
	tf, err := a.parse()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(tf.ApprovalData)
	return sum[:], nil
}

// spendToken marks the token with this digest used on h, if h holds it
// unused.
func spendToken(h *state.HSMTx, digest []byte, now time.Time) error {
	toks, err := h.Tokens()
	if err != nil {
		return err
	}
	for i := range toks {
		t := &toks[i]
		if bytes.Equal(t.Digest, digest) && t.Used.IsZero() {
			t.Used = now
			if t.Approved.IsZero() {
				t.Approved = now
			}
			if err := h.PutToken(t); err != nil {
				return err
			}
		}
	}
	return nil
}

// purge drops tokens whose time ran out, and used ones once they would have.
func purge(h *state.HSMTx, now time.Time) ([]state.Token, error) {
	toks, err := h.Tokens()
	if err != nil {
		return nil, err
	}
	live := toks[:0]
	for _, t := range toks {
		if expired(h, &t, now) {
			if err := h.DeleteToken(t.ID); err != nil {
				return nil, err
			}
			continue
		}
		live = append(live, t)
	}
	return live, nil
}

// approversOf are the registered quorum keys of those who approve on h:
// the admins for the admin services (key 0); for a key's services, its
// owner and the crypto users it is shared with (docs/design.md, "Keys").
func approversOf(h *state.HSMTx, key uint64) (map[string]*rsa.PublicKey, error) {
	out := map[string]*rsa.PublicKey{}
	add := func(u *state.User) error {
		pub, err := keys.LoadPublicKey(u.Name+"'s registered key", []byte(u.QuorumKey.PEM))
		if err != nil {
			return fmt.Errorf("%s: %v", h.ID(), err)
		}
		out[u.Name] = pub
		return nil
	}
	if key == 0 {
		err := h.UsersWithRole(string(policy.Admin), func(u *state.User) error {
			if !canApprove(u) {
				return nil
			}
			return add(u)
		})
		return out, err
	}
	k, err := h.Key(key)
	if err != nil || k == nil {
		return out, err
	}
	for _, name := range append([]string{k.Owner}, k.Shared...) {
		u, err := h.User(name)
		if err != nil {
			return nil, err
		}
		if u != nil && u.QuorumKey != nil && policy.Role(u.Role) == policy.CryptoUser {
			if err := add(u); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// requireQuorum passes when need is 1 or less (quorum off) and no token
// is offered; otherwise the approval must be a token of this principal's
// session for this service, on this HSM, unexpired, unused, with need
// distinct valid signatures from admins with registered keys. accepted
// says the token passed: the quorum phase then spends it everywhere.
//
// A key service's token approves one operation on the key it was
// generated for (key), and its approvers are that key's owner and shared
// users with a registered quorum key (approversOf).
func (tx *Tx) requireQuorum(h *state.HSMTx, p Principal, service string, m int, a *Approval, key uint64) (accepted bool, err error) {
	if a != nil {
		// A bad file is an error even where no quorum is needed.
		if _, err := a.parse(); err != nil {
			return false, err
		}
	}
	if m <= 1 {
		return false, nil
	}
	if a == nil {
		if service == ServiceKeyManagement || service == ServiceKeyUsage {
			return false, ErrKeyQuorumFailed
		}
		return false, &approvalMissing{service: service, needs: m}
	}
	tf, err := a.parse()
	if err != nil {
		return false, err
	}
	recs, err := tf.Records()
	if err != nil {
		return false, fmt.Errorf("%s: approval_data: %v", a.Path, err)
	}
	digest := sha256.Sum256(tf.ApprovalData)
	tok, err := findToken(h, recs, digest[:])
	if err != nil {
		return false, err
	}
	if tok == nil {
		return false, &QuorumError{Why: fmt.Sprintf("no HSM holds a token matching %s (it was never generated, was deleted, its session ended, or its approval_data was altered)", a.Path)}
	}
	switch {
	case !tok.Used.IsZero():
		return false, &QuorumError{Why: fmt.Sprintf("the token in %s was already used at %s; a token approves one operation", a.Path, tok.Used.Format(time.RFC3339))}
	case tok.Service != service:
		return false, &QuorumError{Why: fmt.Sprintf("the token in %s is for the %s service, not %s", a.Path, tok.Service, service)}
	case tok.User != p.User:
		return false, &QuorumError{Why: fmt.Sprintf("the token in %s belongs to %s, not %s", a.Path, tok.User, p.User)}
	case p.Session == "":
		return false, &QuorumError{Why: "a token is bound to the login session that generated it; a one-shot login (HSM_PIN) cannot use one"}
	case tok.Session != p.Session:
		return false, &QuorumError{Why: fmt.Sprintf("the token in %s was generated in another login session", a.Path)}
	case tok.Coverage > len(tx.targets) && !(isKeyService(service) && len(tx.targets) == 0):
		// (A key's use runs on one HSM and spends its token on every
		// HSM: keyQuorum.)
		// Used on fewer HSMs than hold it, the token would stay fresh on
		// the others and approve a second operation there.
		return false, &QuorumError{Why: fmt.Sprintf("the token in %s was generated on %d HSMs and this operation reaches %d; a token approves one operation on every HSM it covers: generate one on the HSMs you act on (hsm-quorum generate with the same --server or --allow-partial)",
			a.Path, tok.Coverage, len(tx.targets))}
	case tok.Key != key:
		return false, &QuorumError{Why: fmt.Sprintf("the token in %s approves an operation on key %s, not %s", a.Path, RefString(tok.Key), RefString(key))}
	case expired(h, tok, tx.Now):
		return false, &QuorumError{Why: fmt.Sprintf("the token in %s expired at %s (generated timeout %d s)", a.Path,
			expires(h, tok).Format(time.RFC3339), int(expires(h, tok).Sub(tok.Created)/time.Second))}
	}
	keyring, err := approversOf(h, key)
	if err != nil {
		return false, err
	}
	approvers, err := quorum.Approvers(tf, keyring)
	if err != nil {
		return false, &QuorumError{Why: err.Error()}
	}
	tok.Approvals = approvers
	if len(approvers) < m {
		// Keep the approvals counted so far: hsm-quorum list shows them.
		if err := h.PutToken(tok); err != nil {
			return false, err
		}
		return false, keepErr{&QuorumError{Why: fmt.Sprintf("%d of %d approvals (%v)", len(approvers), m, approvers)}}
	}
	if err := h.PutToken(tok); err != nil {
		return false, err
	}
	if tx.approvals == nil {
		tx.approvals = map[string]int{}
	}
	tx.approvals[h.ID()] = len(approvers)
	return true, nil
}

// findToken finds the HSM's token among the file's records.
func findToken(h *state.HSMTx, recs []quorum.Record, digest []byte) (*state.Token, error) {
	toks, err := h.Tokens()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		for i := range toks {
			t := &toks[i]
			if t.ID == r.TokenID && bytes.Equal(t.Digest, digest) {
				return t, nil
			}
		}
	}
	return nil, nil
}

// GenerateToken makes a quorum token for the logged-in user: one record
// per HSM, each HSM holding its own, bound to the session. The file is
// written before the HSMs are, so a failure leaves no token without a file.
func (c *Client) GenerateToken(t Targeting, auth Authenticator, service, path string) (*Result, error) {
	return c.generateToken(t, auth, service, nil, path)
}

// GenerateKeyToken makes a key-management or key-usage token bound to the
// key f selects, which the caller owns or is shared: it approves one
// operation on that key, by its owner and shared users (docs/design.md,
// "Keys").
func (c *Client) GenerateKeyToken(t Targeting, auth Authenticator, service string, f KeyFilter, path string) (*Result, error) {
	return c.generateToken(t, auth, service, &f, path)
}

func isKeyService(service string) bool {
	return service == ServiceKeyManagement || service == ServiceKeyUsage
}

func (c *Client) generateToken(t Targeting, auth Authenticator, service string, f *KeyFilter, path string) (*Result, error) {
	svc, err := quorum.ParseService(service)
	if err != nil {
		return nil, err
	}
	perm := policy.QuorumToken
	switch {
	case isKeyService(service) && f == nil:
		return nil, fmt.Errorf("a %s token is bound to one key: select it with --filter", service)
	case !isKeyService(service) && f != nil:
		return nil, fmt.Errorf("a %s token is bound to no key: drop --filter", service)
	case isKeyService(service):
		perm = policy.KeyManagement
	case service == ServiceRegistration:
		perm = policy.RegisterQuorumKey
	}
	var ref uint64
	var records []quorum.Record
	type held struct {
		h   *state.HSMTx
		tok state.Token
	}
	var holders []held
	return c.run(op{name: "quorum-generate", perm: perm, auth: auth, target: t, write: true,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			if p.Session == "" {
				return errors.New("a quorum token is bound to a login session: log in with hsm-user login (HSM_PIN cannot hold a token)")
			}
			live, err := purge(h, tx.Now)
			if err != nil {
				return err
			}
			// The HSM makes room by purging expired tokens (above); a full
			// HSM with none expired refuses.
			if max := c.Policy().Limits.TokensPerHSM; max > 0 && len(live) >= max {
				return fmt.Errorf("%s already holds %d quorum tokens, the most it can, and none has expired; delete some (hsm-quorum delete) or wait", h.ID(), len(live))
			}
			if f != nil {
				k, err := selectKey(h, p, *f)
				if err != nil {
					return err
				}
				if relation(p, k) == policy.KeyOther || k.Class == state.ClassPublic {
					return fmt.Errorf("key %s is not yours or shared with you: no token of its services for %s", RefString(k.Ref), p.User)
				}
				if ref != 0 && ref != k.Ref {
					return fmt.Errorf("the filter selects key %s here but %s on another HSM (hsm-sync diff shows the drift)", RefString(k.Ref), RefString(ref))
				}
				ref = k.Ref
			}
			for _, old := range live {
				// Key services have no one-token limit.
				if old.User == p.User && old.Service == service && old.Used.IsZero() && f == nil {
					return fmt.Errorf("%s already has an active %s token on %s; use it, or delete it with hsm-quorum delete --scope user", p.User, service, h.ID())
				}
			}
			h.Meta.NextTokenID++
			rec := quorum.Record{Version: quorum.RecordVersion, Service: svc, TokenID: h.Meta.NextTokenID, Username: p.User, Created: tx.Now}
			tx.Rand.Read(rec.Nonce[:])
			records = append(records, rec)
			holders = append(holders, held{h, state.Token{ID: rec.TokenID, User: p.User, Session: p.Session, Service: service, Created: tx.Now,
				Expires: tx.Now.Add(time.Duration(h.Meta.Quorum.Generated) * time.Second), Key: ref}})
			return nil
		},
		beforeCommit: func(tx *Tx) error {
			// Every HSM's record is known: bind each token to its file,
			// then write the file.
			var data []byte
			if service == ServiceRegistration {
				rf := quorum.NewRegistrationFile(records)
				for i := range holders {
					sum := sha256.Sum256(rf.Tokens[i].ApprovalData)
					holders[i].tok.Digest = sum[:]
				}
				data = rf.Marshal()
			} else {
				tf := quorum.NewTokenFile(records)
				sum := sha256.Sum256(tf.ApprovalData)
				for i := range holders {
					holders[i].tok.Digest = sum[:]
				}
				data = tf.Marshal()
			}
			for i := range holders {
				holders[i].tok.Coverage = len(records)
				if err := holders[i].h.PutToken(&holders[i].tok); err != nil {
					return err
				}
			}
			return fileio.WriteFile(path, data, 0o644)
		}})
}

// TokenWritten is the answer of quorum token-sign generate. The guide's
// command page prints "filepath", its quorum walkthrough "path": both, so
// either kind of script finds it (docs/design.md, "cloudhsm-cli").
type TokenWritten struct {
	Filepath string `json:"filepath"`
	Path     string `json:"path"`
}

// Written is the answer for a token file written to path.
func Written(path string) TokenWritten { return TokenWritten{Filepath: path, Path: path} }

// ValuesView is quorum token-sign list-quorum-values' answer.
type ValuesView struct {
	User   int `json:"user"`
	Quorum int `json:"quorum"`
}

// TimeoutsView is quorum token-sign list-timeouts' answer.
type TimeoutsView struct {
	Generated int `json:"generated"`
	Approved  int `json:"approved"`
}

// ValuesOf and TimeoutsOf are q as those commands show it.
func ValuesOf(q state.Quorum) ValuesView {
	return ValuesView{User: q.Values[ServiceUser], Quorum: q.Values[ServiceQuorum]}
}

func TimeoutsOf(q state.Quorum) TimeoutsView {
	return TimeoutsView{Generated: q.Generated, Approved: q.Approved}
}

// TokenView is one token as cloudhsm-cli's quorum token-sign list shows it.
type TokenView struct {
	Username          string `json:"username"`
	Service           string `json:"service"`
	ApprovalsRequired Value  `json:"approvals-required"`
	Approvals         Value  `json:"number-of-approvals"`
	TimeoutSeconds    Value  `json:"token-timeout-seconds"`
	Coverage          string `json:"cluster-coverage"`
}

// Value is cloudhsm-cli's {"value": N}.
type Value struct {
	Value int `json:"value"`
}

// ListTokens lists the unexpired, unused tokens of the cluster.
func (c *Client) ListTokens(auth Authenticator) ([]TokenView, []string, error) {
	out := []TokenView{}
	warnings, err := c.read(auth, policy.QuorumPolicyRead, func(cl *state.Cluster, hsms []*state.HSMTx) error {
		type key struct {
			user, service string
			digest        string
		}
		seen := map[key]int{}
		now := c.now()
		for _, h := range hsms {
			toks, err := h.Tokens()
			if err != nil {
				return &TroubleError{Err: err}
			}
			for _, t := range toks {
				if !t.Used.IsZero() || expired(h, &t, now) || isMFAChallenge(&t) {
					continue
				}
				k := key{t.User, t.Service, string(t.Digest)}
				if i, ok := seen[k]; ok {
					out[i].Coverage = coverage(len(cl.HSMs), t.Coverage, out[i].Coverage)
					continue
				}
				left := int(expires(h, &t).Sub(now) / time.Second)
				required := h.Meta.Quorum.Values[t.Service]
				if t.Service == ServiceRegistration {
					required = 1
				}
				seen[k] = len(out)
				out = append(out, TokenView{Username: t.User, Service: t.Service, ApprovalsRequired: Value{required},
					Approvals: Value{len(t.Approvals)}, TimeoutSeconds: Value{left}, Coverage: coverage(len(cl.HSMs), t.Coverage, "full")})
			}
		}
		return nil
	})
	return out, warnings, err
}

func coverage(clusterHSMs, tokenHSMs int, was string) string {
	if tokenHSMs < clusterHSMs || was == "inconsistent" {
		return "inconsistent"
	}
	return "full"
}

// DeleteTokens deletes the caller's tokens (scope user) or every token (scope all).
func (c *Client) DeleteTokens(t Targeting, auth Authenticator, scope string) (*Result, error) {
	if scope != "user" && scope != "all" {
		return nil, fmt.Errorf("--scope %q: want user or all", scope)
	}
	return c.run(op{name: "quorum-delete", perm: policy.QuorumToken, auth: auth, target: t, write: true,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			toks, err := h.Tokens()
			if err != nil {
				return err
			}
			for _, tok := range toks {
				if scope == "all" || tok.User == p.User {
					if err := h.DeleteToken(tok.ID); err != nil {
						return err
					}
				}
			}
			return nil
		}})
}

// QuorumPolicy reads the quorum values and timeouts (from the first
// reachable HSM; hsm-sync reports HSMs that disagree). Anyone may read
// them, so it asks as nobody.
func (c *Client) QuorumPolicy() (state.Quorum, []string, error) {
	return c.quorumPolicy(Nobody{})
}

func (c *Client) quorumPolicy(auth Authenticator) (state.Quorum, []string, error) {
	var q state.Quorum
	var differs []string
	warnings, err := c.read(auth, policy.QuorumPolicyRead, func(cl *state.Cluster, hsms []*state.HSMTx) error {
		q = hsms[0].Meta.Quorum.Clone()
		// One HSM's policy is shown; say so when another enforces a different one.
		first := policyOf(hsms[0])
		for _, h := range hsms[1:] {
			if p := policyOf(h); p != first {
				differs = append(differs, fmt.Sprintf("the quorum policy differs between HSMs (%s: %s; %s: %s); %s's is shown; hsm-sync diff explains the drift and hsm-sync apply sets the strictest",
					hsms[0].ID(), first, h.ID(), p, hsms[0].ID()))
			}
		}
		return nil
	})
	return q, append(warnings, differs...), err
}

// policyChangeNeeds is how many approvals a change of service's quorum
// value needs: CloudHSM allows a change "only when the number of approvers
// is the same or higher than the current quorum minimum value", so
// lowering the user value from 2 needs 2 approvals even while the quorum
// service's own value is 1; the quorum service's value guards every
// change. A timeout change (service "") governs every service's tokens,
// so it needs the highest value in force.
func policyChangeNeeds(h *state.HSMTx, service string) int {
	v := h.Meta.Quorum.Values
	if service == "" {
		return max(v[ServiceUser], v[ServiceQuorum])
	}
	return max(v[service], v[ServiceQuorum])
}

// SetQuorumValue sets a service's quorum value. Changing a value needs a
// quorum-service token with as many approvals as the higher of the value
// being changed and the quorum service's own (policyChangeNeeds); while
// both are 1 no token is needed. A value above the number of admins with a
// registered key is refused: it would lock everyone out.
func (c *Client) SetQuorumValue(t Targeting, auth Authenticator, service string, value int, a *Approval) (*Result, error) {
	if service != ServiceUser && service != ServiceQuorum {
		return nil, fmt.Errorf("--service %q: want user or quorum", service)
	}
	if value < 1 || value > MaxQuorum {
		return nil, fmt.Errorf("--value %d: want 1 (off) to %d", value, MaxQuorum)
	}
	return c.run(op{name: "quorum-set-value", perm: policy.QuorumPolicyWrite, auth: auth, target: t, write: true,
		quorum: func(h *state.HSMTx, _ Principal) (string, int, uint64) {
			return ServiceQuorum, policyChangeNeeds(h, service), 0
		}, approval: a,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			if value > 1 {
				keyring, err := approversOf(h, 0)
				if err != nil {
					return err
				}
				if value > len(keyring) {
					return fmt.Errorf("--value %d is more than the %d admin(s) with a registered quorum key: nobody could approve anything (register keys with hsm-user change-quorum register)", value, len(keyring))
				}
			}
			h.Meta.Quorum.Values[service] = value
			h.Meta.History = state.Stamp(h.Meta.History, tx.Now, h.Meta.Seq+1, h.Meta.Quorum)
			return nil
		}})
}

// SetTimeouts sets the generated and/or approved token timeouts (seconds).
// Tokens already generated keep their expiry. It is quorum-protected like
// a value change: a quorum-service token with as many approvals as the
// highest value in force.
func (c *Client) SetTimeouts(t Targeting, auth Authenticator, generated, approved int, a *Approval) (*Result, error) {
	for _, v := range []int{generated, approved} {
		if v < 0 || v > 86400 {
			return nil, fmt.Errorf("timeout %d: want 1 to 86400 seconds", v)
		}
	}
	return c.run(op{name: "quorum-set-timeout", perm: policy.QuorumPolicyWrite, auth: auth, target: t, write: true,
		quorum: func(h *state.HSMTx, _ Principal) (string, int, uint64) {
			return ServiceQuorum, policyChangeNeeds(h, ""), 0
		}, approval: a,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			if generated > 0 {
				h.Meta.Quorum.Generated = generated
			}
			if approved > 0 {
				h.Meta.Quorum.Approved = approved
			}
			return nil
		}})
}

// RegisterQuorumKey registers the logged-in admin's quorum public key. The
// signed registration token proves the admin holds the private key.
func (c *Client) RegisterQuorumKey(t Targeting, auth Authenticator, pubPath string, pubPEM []byte, tokenPath string, tokenData []byte) (*Result, error) {
	pub, err := keys.LoadPublicKey(pubPath, pubPEM)
	if err != nil {
		return nil, err
	}
	rf, err := quorum.ParseRegistrationFile(tokenPath, tokenData)
	if err != nil {
		return nil, err
	}
	if rf.MFA() {
		return nil, fmt.Errorf("%s: is an MFA token file, not a registration token (hsm-quorum generate --service registration writes one)", tokenPath)
	}
	if err := rf.Verify(pub); err != nil {
		return nil, err
	}
	spki := keys.MarshalPublicKeyPEM(pub)
	return c.run(op{name: "register-quorum-key", perm: policy.RegisterQuorumKey, auth: auth, target: t, write: true,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			var tok *state.Token
			for _, entry := range rf.Tokens {
				recs, err := quorum.DecodeApprovalData(entry.ApprovalData)
				if err != nil {
					return fmt.Errorf("%s: %v", tokenPath, err)
				}
				sum := sha256.Sum256(entry.ApprovalData)
				if tok, err = findToken(h, recs, sum[:]); err != nil {
					return err
				} else if tok != nil {
					break
				}
			}
			switch {
			case tok == nil:
				return fmt.Errorf("no HSM holds a registration token matching %s (generate one with hsm-quorum generate --service registration)", tokenPath)
			case tok.Service != ServiceRegistration:
				return fmt.Errorf("the token in %s is for the %s service, not registration", tokenPath, tok.Service)
			case tok.User != p.User || tok.Session != p.Session:
				return fmt.Errorf("the token in %s was generated by another user or session", tokenPath)
			case !tok.Used.IsZero():
				return fmt.Errorf("the token in %s was already used", tokenPath)
			case expired(h, tok, tx.Now):
				return fmt.Errorf("the token in %s expired", tokenPath)
			}
			u, err := h.User(p.User)
			if err != nil {
				return err
			}
			if u == nil {
				return fmt.Errorf("no user %s", p.User)
			}
			tok.Used = tx.Now
			if err := h.PutToken(tok); err != nil {
				return err
			}
			u.QuorumKey = &state.PublicKey{Fingerprint: keys.Fingerprint(pub), PEM: string(spki)}
			tx.touch(h, u, state.KindRegister)
			return h.PutUser(u)
		}})
}
