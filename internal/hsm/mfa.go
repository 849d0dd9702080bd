package hsm

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/keys"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/quorum"
	"github.com/hsmkit/hsmkit/internal/state"
)

// Token-sign MFA (docs/design.md, "MFA"). An HSM issues a challenge, a
// 32-byte digest only it can match; the user signs it offline with the MFA
// private key (hsm-sign, or openssl pkeyutl -pkeyopt digest:sha256); the
// HSM checks the signature against the registered key and spends the
// challenge. Challenges are kept as tokens of two services of their own,
// so they expire, are purged and are listed in dumps like quorum tokens.
const (
	serviceMFALogin    = "mfa-login"
	serviceMFARegister = "mfa-register"
)

// isMFAChallenge says whether t is an MFA challenge rather than a quorum
// token: hsm-quorum list does not show them.
func isMFAChallenge(t *state.Token) bool {
	return t.Service == serviceMFALogin || t.Service == serviceMFARegister
}

// StrategyTokenSign is the one MFA strategy: cloudhsm-cli's token-sign.
const StrategyTokenSign = "token-sign"

// MFAToken is a token-sign MFA file handed to the engine: its path, for
// messages, and its contents. The engine parses it.
type MFAToken struct {
	Path string
	Data []byte
}

// parse reads the file strictly; a bad file changes nothing.
func (m *MFAToken) parse() (*quorum.RegistrationFile, error) {
	rf, err := quorum.ParseRegistrationFile(m.Path, m.Data)
	if err != nil {
		return nil, err
	}
	if !rf.MFA() {
		return nil, fmt.Errorf("%s: is a quorum key registration token, not an MFA token file (hsm-user change-mfa token-sign --token FILE writes one)", m.Path)
	}
	return rf, nil
}

// MFARequiredError refuses a login without its second factor.
type MFARequiredError struct{ User string }

func (e *MFARequiredError) Error() string {
	return fmt.Sprintf("login failed: %s has MFA (token-sign): a login needs a signed MFA token; a one-shot login (HSM_PIN) cannot carry one", e.User)
}

// Hint gives the two steps.
func (e *MFARequiredError) Hint() string {
	return "hsm-user login --mfa-token FILE writes the tokens; sign them (hsm-sign sign --key KEY --username " + e.User + " -o FILE FILE) and run the same login again"
}

// mfaLogin is the second factor a login carries: begin asks for fresh
// challenges, otherwise file answers them.
type mfaLogin struct {
	begin bool
	path  string
	file  *quorum.RegistrationFile
}

// checkMFA is the second factor of a login on h, after the password: a
// user with MFA must answer a challenge of this HSM; one without must not
// offer a file.
func (tx *Tx) checkMFA(h *state.HSMTx, user string, m *mfaLogin) error {
	u, err := h.User(user)
	if err != nil || u == nil {
		return err
	}
	switch {
	case u.MFA == nil && m != nil:
		return fmt.Errorf("%s has no MFA registered on %s: log in without an MFA token", user, h.ID())
	case u.MFA == nil || m != nil && m.begin:
		return nil
	case m == nil:
		return &MFARequiredError{User: user}
	}
	pub, err := keys.LoadPublicKey(user+"'s MFA key", []byte(u.MFA.PEM))
	if err != nil {
		return &TroubleError{Err: fmt.Errorf("%s: %v", h.ID(), err)}
	}
	return tx.redeemMFA(h, m.path, m.file, serviceMFALogin, pub, func(t *state.Token) error {
		if t.User != user {
			return fmt.Errorf("the MFA token in %s was issued to %s, not %s", m.path, t.User, user)
		}
		return nil
	})
}

// mfaDigest is a challenge: SHA-256 over a domain-separated record of
// the purpose, the HSM, the user, the token's id, the time and a nonce.
// Its prefix can never be a quorum record (whose first two bytes are the
// record version, 1), so a signature over a challenge approves no quorum
// token and the reverse.
func mfaDigest(tx *Tx, h *state.HSMTx, service, user string, id uint32) []byte {
	var b bytes.Buffer
	b.WriteString("hsmkit-mfa\x00" + service + "\x00" + h.ID() + "\x00" + user + "\x00")
	b.Write(binary.BigEndian.AppendUint32(nil, id))
	b.Write(binary.BigEndian.AppendUint64(nil, uint64(tx.Now.Unix())))
	var nonce [32]byte
	tx.Rand.Read(nonce[:])
	b.Write(nonce[:])
	sum := sha256.Sum256(b.Bytes())
	return sum[:]
}

// issueMFA makes a fresh challenge on h, voiding the pending ones of the
// same service, caller, session and target: a lost file costs nothing but
// a new one, and an HSM keeps one challenge per request.
func (tx *Tx) issueMFA(h *state.HSMTx, t state.Token) ([]byte, error) {
	live, err := purge(h, tx.Now)
	if err != nil {
		return nil, err
	}
	for _, old := range live {
		if old.Service == t.Service && old.User == t.User && old.Session == t.Session && old.Target == t.Target && old.Used.IsZero() {
			if err := h.DeleteToken(old.ID); err != nil {
				return nil, err
			}
		}
	}
	h.Meta.NextTokenID++
	t.ID = h.Meta.NextTokenID
	t.Created = tx.Now
	t.Expires = tx.Now.Add(time.Duration(h.Meta.Quorum.Generated) * time.Second)
	t.Digest = mfaDigest(tx, h, t.Service, t.User, t.ID)
	return t.Digest, h.PutToken(&t)
}

// writeMFAFile writes the unsigned file, one entry per HSM in target
// order, before the HSMs commit their challenges.
func writeMFAFile(path string, digests [][]byte) error {
	return fileio.WriteFile(path, quorum.NewMFAFile(digests).Marshal(), 0o644)
}

// redeemMFA finds h's challenge among the file's entries and spends it:
// it must be of service, pass match, be unused and unexpired, and its
// entry must carry a signature by pub's private key.
func (tx *Tx) redeemMFA(h *state.HSMTx, path string, rf *quorum.RegistrationFile, service string, pub *rsa.PublicKey, match func(*state.Token) error) error {
	toks, err := h.Tokens()
	if err != nil {
		return err
	}
	var tok *state.Token
	var entry quorum.RegistrationToken
	for _, e := range rf.Tokens {
		for i := range toks {
			if toks[i].Service == service && bytes.Equal(toks[i].Digest, e.Unsigned) {
				tok, entry = &toks[i], e
			}
		}
	}
	switch {
	case tok == nil:
		return fmt.Errorf("%s holds no MFA token this HSM issued for it (never issued here, replaced by a newer one, expired, or altered): ask for new tokens", path)
	case !tok.Used.IsZero():
		return fmt.Errorf("the MFA token in %s was already used at %s; a token is good for one operation: ask for new tokens", path, tok.Used.Format(time.RFC3339))
	case expired(h, tok, tx.Now):
		return fmt.Errorf("the MFA token in %s expired at %s: ask for new tokens", path, expires(h, tok).Format(time.RFC3339))
	case entry.Signed == nil:
		return fmt.Errorf("the MFA token in %s is not signed (hsm-sign sign --key KEY --username USER -o FILE FILE)", path)
	}
	if err := match(tok); err != nil {
		return err
	}
	if keys.Verify(pub, entry.Unsigned, entry.Signed) != nil {
		return fmt.Errorf("the MFA token in %s: %v against the registered MFA key: it was signed with another private key", path, quorum.ErrBadSignature)
	}
	tok.Used = tx.Now
	return h.PutToken(tok)
}

// BeginMFALogin is the first step of a token-sign MFA login. The password
// is checked on every target HSM as a login's is (a wrong one counts
// toward lockout); each HSM then issues a challenge for the user, and the
// unsigned token file is written to tokenPath, one entry per HSM, in
// cloudhsm-cli's form. The user signs every entry with the MFA private key
// and completes the login with LoginMFA. Nothing is logged in yet. A user
// without MFA is refused.
func (c *Client) BeginMFALogin(t Targeting, user string, role policy.Role, pw, tokenPath string) (*Result, error) {
	user, err := policy.NormalizeUsername(user)
	if err != nil {
		return nil, err
	}
	var digests [][]byte
	return c.run(op{name: "mfa-login-begin", perm: policy.Login, target: t, write: true,
		auth: &PIN{User: user, Password: pw, Role: role, mfa: &mfaLogin{begin: true}},
		// The authenticator refused a user without MFA (checkMFA).
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			d, err := tx.issueMFA(h, state.Token{User: user, Service: serviceMFALogin, Coverage: len(tx.targets)})
			digests = append(digests, d)
			return err
		},
		beforeCommit: func(tx *Tx) error { return writeMFAFile(tokenPath, digests) }})
}

// LoginMFA completes a token-sign MFA login: the password again and the
// token file BeginMFALogin wrote, every entry signed with the user's MFA
// private key. Each HSM checks its own entry against its challenge and
// the key it holds, spends the challenge (a token logs in once), and
// opens the session as Login does.
func (c *Client) LoginMFA(t Targeting, sessionPath, user string, role policy.Role, pw string, signed MFAToken) (*SessionFile, *Result, error) {
	rf, err := signed.parse()
	if err != nil {
		return nil, nil, err
	}
	return c.login(t, sessionPath, user, role, pw, &mfaLogin{path: signed.Path, file: rf}, nil)
}

// ChangeMFARequest is one user change-mfa token-sign.
type ChangeMFARequest struct {
	Username string
	Role     policy.Role
	// Password is the user's new password: change-mfa always sets one
	// (cloudhsm-cli's --change-password, else its prompt).
	Password string
	// Deregister removes the MFA key (if any). Otherwise PublicKey (PEM,
	// RSA-2048; PublicKeyPath names it in messages) is registered, or
	// replaces the registered one, and Signed must be the file
	// BeginMFARegistration wrote, every entry signed with its private key.
	Deregister    bool
	PublicKeyPath string
	PublicKey     []byte
	Signed        *MFAToken
	// ChangeQuorum sets the quorum key along with the MFA key (removes it,
	// with Deregister). Without it, registering a key other than the
	// user's quorum key is refused: MFA and quorum share one key.
	ChangeQuorum bool
	// Approval is a user-service token, needed when an admin changes
	// another user's MFA while the user quorum value is above 1.
	Approval *Approval
}

// mfaPerm is the permission of a change to user's keys: one's own, or,
// as an admin, anyone's.
func mfaPerm(user string) func(p Principal) policy.Op {
	return func(p Principal) policy.Op {
		if isSelf(p, user) {
			return policy.ChangeOwnMFA
		}
		return policy.ChangeAnyMFA
	}
}

// isSelf says whether p acts on its own account: a logged-in user, not an
// unauthenticated caller naming it.
func isSelf(p Principal, user string) bool {
	return p.User == user && p.Role != policy.Unauthenticated
}

// BeginMFARegistration is the first step of registering (or rotating) a
// user's MFA key: each target HSM issues a challenge bound to the caller,
// its session and the user, and the unsigned token file is written to
// tokenPath. The caller signs every entry with the new MFA private key and
// completes with ChangeMFA. One's own key, or as an admin anyone's.
func (c *Client) BeginMFARegistration(t Targeting, auth Authenticator, user string, role policy.Role, tokenPath string) (*Result, error) {
	user, err := policy.NormalizeUsername(user)
	if err != nil {
		return nil, err
	}
	var digests [][]byte
	return c.run(op{name: "mfa-register-begin", permFor: mfaPerm(user), auth: auth, target: t, write: true,
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			if _, err := mfaTarget(h, user, role); err != nil {
				return err
			}
			d, err := tx.issueMFA(h, state.Token{User: p.User, Session: p.Session, Target: user, Service: serviceMFARegister, Coverage: len(tx.targets)})
			digests = append(digests, d)
			return err
		},
		beforeCommit: func(tx *Tx) error { return writeMFAFile(tokenPath, digests) }})
}

// mfaTarget is the user whose keys a change-mfa changes.
func mfaTarget(h *state.HSMTx, user string, role policy.Role) (*state.User, error) {
	u, err := h.User(user)
	switch {
	case err != nil:
		return nil, err
	case u == nil:
		return nil, fmt.Errorf("no user %s", user)
	case policy.Role(u.Role) != role || role != policy.Admin && role != policy.CryptoUser:
		return nil, fmt.Errorf("user %s is a %s, not a %s", user, u.Role, role)
	}
	return u, nil
}

// ChangeMFA registers, rotates or deregisters a user's token-sign MFA key
// on every target HSM, and sets the user's new password (cloudhsm-cli's
// user change-mfa token-sign). One's own, or as an admin anyone's (with the
// user service's approval when its quorum value is above 1, and never
// while that user is logged in). MFA and quorum share one key
// (docs/design.md, "MFA").
func (c *Client) ChangeMFA(t Targeting, auth Authenticator, r ChangeMFARequest) (*Result, error) {
	user, err := policy.NormalizeUsername(r.Username)
	if err != nil {
		return nil, err
	}
	if err := policy.CheckPassword(r.Password); err != nil {
		return nil, err
	}
	var key *state.PublicKey
	var pub *rsa.PublicKey
	var rf *quorum.RegistrationFile
	if !r.Deregister {
		if r.Signed == nil || r.PublicKey == nil {
			return nil, errors.New("registering an MFA key needs the public key and the signed token file")
		}
		if pub, err = keys.LoadPublicKey(r.PublicKeyPath, r.PublicKey); err != nil {
			return nil, err
		}
		if rf, err = r.Signed.parse(); err != nil {
			return nil, err
		}
		// Every entry, before anything is locked: a file signed with
		// another key is refused whole.
		if err := rf.Verify(pub); err != nil {
			return nil, err
		}
		key = &state.PublicKey{Fingerprint: keys.Fingerprint(pub), PEM: string(keys.MarshalPublicKeyPEM(pub))}
	}
	var hash *state.Hash
	return c.run(op{name: "change-mfa", permFor: mfaPerm(user), auth: auth, target: t, write: true,
		quorum: userServiceUnlessSelf(user), approval: r.Approval,
		prepare: func() error { hash = hashPassword(c.Cluster, user, r.Password); return nil },
		each: func(tx *Tx, h *state.HSMTx, p Principal) error {
			u, err := mfaTarget(h, user, r.Role)
			if err != nil {
				return err
			}
			self := isSelf(p, user)
			if in, err := loggedIn(h, user); err != nil {
				return err
			} else if in && !self {
				return fmt.Errorf("user %s is logged in; it must log out before an admin changes its MFA (and so its password)", user)
			}
			if r.Deregister {
				u.MFA = nil
				if r.ChangeQuorum {
					u.QuorumKey = nil
				}
			} else {
				err := tx.redeemMFA(h, r.Signed.Path, rf, serviceMFARegister, pub, func(tok *state.Token) error {
					if tok.User != p.User || tok.Session != p.Session || tok.Target != user {
						return fmt.Errorf("the MFA token in %s was issued to another caller, session or user: ask for new tokens (hsm-user change-mfa token-sign --token FILE)", r.Signed.Path)
					}
					return nil
				})
				if err != nil {
					return err
				}
				switch {
				case r.ChangeQuorum || u.QuorumKey == nil:
					u.QuorumKey = key
				case u.QuorumKey.Fingerprint != key.Fingerprint:
					return fmt.Errorf("%s's quorum key is another key than %s: MFA and quorum share one key; register the same key, or pass --change-quorum to replace both", user, r.PublicKeyPath)
				}
				u.MFA = key
			}
			u.Hash, u.Failures = hash, 0
			kind := state.KindMFA
			if self {
				kind = state.KindSelfMFA
			}
			tx.touch(h, u, kind)
			if err := h.PutUser(u); err != nil {
				return err
			}
			if r.Deregister && r.ChangeQuorum {
				// Rolled back on a refusal: nothing is written.
				if err := approversKept(h); err != nil {
					return fmt.Errorf("removing %s's quorum key %w", user, err)
				}
			}
			return nil
		}})
}
