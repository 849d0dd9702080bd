package syncdiff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hsmkit/hsmkit/internal/policy"
)

// MaxCapture bounds a capture read from a stream: a user list is a few
// KiB per HSM, and a stray pipe from /dev/zero must fail, not fill memory.
const MaxCapture = 16 << 20

// bom is the UTF-8 byte-order mark some Windows editors and PowerShell
// redirections put first in a file; every importer skips it.
var bom = []byte("\xef\xbb\xbf")

// Import reads a capture as a terminal keeps it (see listingOf), sniffing
// its format: cloudhsm-cli "user list" JSON when the capture shows that
// command or the listing starts with '{', else CMU listUsers text.
func Import(name string, data []byte) (Snapshot, error) {
	text, err := readCapture(name, bytes.NewReader(data))
	if err != nil {
		return Snapshot{}, err
	}
	listing, ran, err := listingOf(name, text, isCLIList)
	if err != nil {
		return Snapshot{}, err
	}
	if ran || firstByte(listing) == '{' {
		return importCLI(name, listing)
	}
	return importCMU(name, text)
}

// eachLine calls fn with each line's offset and text (without "\r\n")
// until fn returns false.
func eachLine(data []byte, fn func(off int, line []byte) bool) {
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += off
		}
		if !fn(off, bytes.TrimSuffix(data[off:end], []byte("\r"))) {
			return
		}
		off = end + 1
	}
}

// Combine joins captures (for example one cloudhsm-cli capture per HSM) into
// one snapshot, HSMs in argument order. HSM ids must be unique. When server
// numbers collide (per-HSM captures all say 0) the HSMs are renumbered by
// position.
func Combine(snaps ...Snapshot) (Snapshot, error) {
	var out Snapshot
	if len(snaps) > 0 {
		out.ClusterID = snaps[0].ClusterID
	}
	ids := map[string]bool{}
	servers := map[int]bool{}
	collide := false
	for _, s := range snaps {
		if s.ClusterID != out.ClusterID {
			out.ClusterID = ""
		}
		for _, h := range s.HSMs {
			if ids[h.ID] {
				return Snapshot{}, fmt.Errorf("HSM %q appears in more than one capture", h.ID)
			}
			ids[h.ID] = true
			collide = collide || servers[h.Server]
			servers[h.Server] = true
			out.HSMs = append(out.HSMs, h)
		}
	}
	if collide {
		for i := range out.HSMs {
			out.HSMs[i].Server = i
		}
	}
	return out, nil
}

var (
	reServer = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^Users on server (\d{1,4})\(([^()]*)\):$`) })
	reCount  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^Number of users found:\s*(\d{1,9})$`) })
	cmuCols  = []string{"User", "Id", "User", "Type", "User", "Name", "MofnPubKey", "LoginFailureCnt", "2FA"}
	cmuTypes = map[string]string{
		"PCO": RoleAdmin, "CO": RoleAdmin, "CU": RoleCryptoUser,
		"AU": RoleAppliance, "PRECO": RoleUnactivatedAdmin, "preCO": RoleUnactivatedAdmin,
	}
)

// lockThreshold is the number of login failures that locks an account.
const lockThreshold = 5

// ImportCMUListUsers reads the text output of cloudhsm_mgmt_util's listUsers:
// one "Users on server N(IP):" section per HSM, each with its "Number of
// users found:K" line, the column header and K rows. It is read as a
// terminal keeps it (see listingOf): command lines, other commands' output
// when the listUsers command line is there, blank lines, CRLF and a
// byte-order mark are tolerated; anything else is an error naming
// name:line. A user listed twice on one server is kept twice: Diff reports
// it as drift (KindDuplicate). HSM ids are "server N"; password hashes,
// change times and deletion records are unknown.
func ImportCMUListUsers(name string, r io.Reader) (Snapshot, error) {
	text, err := readCapture(name, r)
	if err != nil {
		return Snapshot{}, err
	}
	return importCMU(name, text)
}

func importCMU(name string, text []byte) (Snapshot, error) {
	listing, _, err := listingOf(name, text, isCMUList)
	if err != nil {
		return Snapshot{}, err
	}
	errf := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...))
	}
	type section struct {
		start, countLine, count int
		header                  bool
		names                   map[string]int
		ids                     map[int]int
	}
	var snap Snapshot
	var cur *section
	seen := map[int]int{} // server → line
	finish := func() error {
		if cur == nil {
			return nil
		}
		h := &snap.HSMs[len(snap.HSMs)-1]
		if cur.count < 0 {
			return errf(cur.start, "server %d has no \"Number of users found\" line", h.Server)
		}
		if len(h.Users) != cur.count {
			return errf(cur.countLine, "server %d: \"Number of users found:%d\" but %d users are listed", h.Server, cur.count, len(h.Users))
		}
		return nil
	}
	n := 0
	cmuLine := func(t string) error {
		if t == "" {
			return nil
		}
		if m := reServer().FindStringSubmatch(t); m != nil {
			if err := finish(); err != nil {
				return err
			}
			srv, _ := strconv.Atoi(m[1])
			if at, ok := seen[srv]; ok {
				return errf(n, "server %d listed twice (first at line %d)", srv, at)
			}
			seen[srv] = n
			if net.ParseIP(m[2]) == nil {
				return errf(n, "server %d: %q is not an IP address", srv, m[2])
			}
			// The id from the number, not the text: "server 00" is server 0,
			// and the plan's "server N" must say it as CMU does.
			snap.HSMs = append(snap.HSMs, HSM{ID: "server " + strconv.Itoa(srv), Server: srv, IP: m[2], Reachable: true, Users: []User{}})
			cur = &section{start: n, count: -1, names: map[string]int{}, ids: map[int]int{}}
			return nil
		}
		if cur == nil && strings.HasPrefix(t, "Command:") {
			return errf(n, "key_mgmt_util's listUsers merges every HSM into one list, so it cannot show drift; capture cloudhsm_mgmt_util's listUsers")
		}
		if cur == nil {
			return errf(n, "expected \"Users on server N(IP):\", found %q", trunc(t))
		}
		h := &snap.HSMs[len(snap.HSMs)-1]
		if m := reCount().FindStringSubmatch(t); m != nil {
			if cur.count >= 0 {
				return errf(n, "server %d: second \"Number of users found\" line (first at line %d)", h.Server, cur.countLine)
			}
			cur.count, _ = strconv.Atoi(m[1])
			cur.countLine = n
			return nil
		}
		f := strings.Fields(t)
		if slices.Equal(f, cmuCols) {
			if cur.count < 0 || cur.header {
				return errf(n, "server %d: unexpected column header", h.Server)
			}
			cur.header = true
			return nil
		}
		if cur.count < 0 {
			return errf(n, "server %d: expected \"Number of users found:N\", found %q", h.Server, trunc(t))
		}
		if !cur.header {
			return errf(n, "server %d: expected the column header (User Id, User Type, User Name, MofnPubKey, LoginFailureCnt, 2FA), found %q", h.Server, trunc(t))
		}
		u, err := cmuRow(f)
		if err != nil {
			return errf(n, "server %d: %v", h.Server, err)
		}
		// The same name twice is drift Diff reports; one id for two
		// names is a capture that cannot be read.
		if at, ok := cur.ids[u.ID]; ok && cur.names[u.Name] != at {
			return errf(n, "server %d: user id %d listed twice for different users (first at line %d)", h.Server, u.ID, at)
		}
		if _, ok := cur.names[u.Name]; !ok {
			cur.names[u.Name] = n
		}
		if _, ok := cur.ids[u.ID]; !ok {
			cur.ids[u.ID] = n
		}
		h.Users = append(h.Users, u)
		return nil
	}
	var bad error
	eachLine(listing, func(_ int, line []byte) bool {
		n++
		bad = cmuLine(strings.TrimSpace(string(line)))
		return bad == nil
	})
	if bad != nil {
		return Snapshot{}, bad
	}
	if err := finish(); err != nil {
		return Snapshot{}, err
	}
	if len(snap.HSMs) == 0 {
		return Snapshot{}, errf(max(n, 1), "no \"Users on server N(IP):\" section: not a CMU listUsers capture")
	}
	return snap, nil
}

func cmuRow(f []string) (User, error) {
	if len(f) != 6 {
		return User{}, fmt.Errorf("want 6 columns (User Id, User Type, User Name, MofnPubKey, LoginFailureCnt, 2FA), found %d", len(f))
	}
	var u User
	id, err := strconv.Atoi(f[0])
	if err != nil || id <= 0 {
		return User{}, fmt.Errorf("user id %q is not a positive number", trunc(f[0]))
	}
	u.ID = id
	role, ok := cmuTypes[f[1]]
	if !ok {
		return User{}, fmt.Errorf("unknown user type %q (want PCO, CO, CU, AU or PRECO)", trunc(f[1]))
	}
	u.Role = role
	if u.Name, err = policy.NormalizeUsername(f[2]); err != nil {
		return User{}, err
	}
	q, err := yesNo("MofnPubKey", f[3])
	if err != nil {
		return User{}, err
	}
	if q {
		u.QuorumKey = "registered"
	}
	fails, err := strconv.Atoi(f[4])
	if err != nil || fails < 0 {
		return User{}, fmt.Errorf("LoginFailureCnt %q is not a count", trunc(f[4]))
	}
	u.Failures, u.Locked = fails, fails >= lockThreshold
	mfa, err := yesNo("2FA", f[5])
	if err != nil {
		return User{}, err
	}
	if mfa {
		u.MFA = "registered"
	}
	return u, nil
}

func yesNo(col, s string) (bool, error) {
	switch s {
	case "YES":
		return true, nil
	case "NO":
		return false, nil
	}
	return false, fmt.Errorf("%s %q: want YES or NO", col, trunc(s))
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

type cliEnvelope struct {
	ErrorCode *int            `json:"error_code"`
	Data      json.RawMessage `json:"data"`
	Username  *string         `json:"username"` // only in one user's entry, copied alone
}

type cliUser struct {
	Username *string       `json:"username"`
	Role     *string       `json:"role"`
	Locked   *string       `json:"locked"`
	MFA      []cliStrategy `json:"mfa"`
	Quorum   []cliStrategy `json:"quorum"`
	Coverage *string       `json:"cluster-coverage"`
}

type cliStrategy struct {
	Strategy string `json:"strategy"`
	Status   string `json:"status"`
}

// ImportCLIUserList reads the JSON of "cloudhsm-cli user list" as a
// terminal keeps it (see listingOf): the prompt or shell line that ran it,
// even glued to the JSON, other commands and their output, a trailing
// prompt, CRLF and a byte-order mark. The result is one HSM whose id is
// the file's base name without extension: cloudhsm-cli merges every HSM
// its config lists into one view, so a single capture is either one HSM
// (the operator ran it with a config listing only that HSM) or the merged
// cluster. A user listed twice is kept twice: Diff reports it as drift
// (KindDuplicate). A value the view marks "inconsistent" (role, locked,
// cluster-coverage, an MFA or quorum status) goes to User.Drift, which
// Diff reports as drift on an unknown HSM, undecidable. Combine one
// capture per HSM to get a per-HSM snapshot that Diff can plan from.
// Password hashes, failure counts, change times and deletion records are
// unknown; a registered quorum key shows as "registered", MFA as its
// strategies.
func ImportCLIUserList(name string, r io.Reader) (Snapshot, error) {
	text, err := readCapture(name, r)
	if err != nil {
		return Snapshot{}, err
	}
	listing, _, err := listingOf(name, text, isCLIList)
	if err != nil {
		return Snapshot{}, err
	}
	return importCLI(name, listing)
}

// importCLI reads a listing whose offsets are the file's.
func importCLI(name string, data []byte) (Snapshot, error) {
	errf := func(off int64, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, lineAt(data, off), fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var env cliEnvelope
	if err := dec.Decode(&env); err != nil {
		return Snapshot{}, jsonErr(errf, err, int64(len(data)))
	}
	if start := int64(len(data) - len(bytes.TrimLeft(data, " \t\r\n"))); env.ErrorCode == nil && env.Username != nil {
		return Snapshot{}, errf(start, "one user's entry, not the whole output of user list: capture the command's whole output")
	} else if env.ErrorCode == nil {
		return Snapshot{}, errf(start, "no \"error_code\": not a cloudhsm-cli user list capture")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Snapshot{}, errf(dec.InputOffset(), "unexpected data after the JSON document")
	}
	dataOff := keyOffset(data, 0, "data")
	if *env.ErrorCode != 0 {
		return Snapshot{}, errf(dataOff, "the capture is a failed command (error_code %d): %s", *env.ErrorCode, trunc(string(env.Data)))
	}
	var d struct {
		Users *[]json.RawMessage `json:"users"`
	}
	if len(env.Data) == 0 || env.Data[0] != '{' {
		return Snapshot{}, errf(dataOff, "\"data\" is not an object with a \"users\" list")
	}
	if err := json.Unmarshal(env.Data, &d); err != nil || d.Users == nil {
		return Snapshot{}, errf(dataOff, "\"data\" has no \"users\" list")
	}
	h := HSM{ID: strings.TrimSuffix(filepath.Base(name), filepath.Ext(name)), Reachable: true, Users: []User{}}
	from := 0
	for _, raw := range *d.Users {
		pos := from
		if i := bytes.Index(data[from:], raw); i >= 0 {
			pos = from + i
			from = pos + len(raw)
		}
		at := func(key string) int64 { return keyOffset(data, pos, key) }
		var cu cliUser
		if err := json.Unmarshal(raw, &cu); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return Snapshot{}, errf(int64(pos)+te.Offset, "user field %q has the wrong type", te.Field)
			}
			return Snapshot{}, errf(int64(pos), "user entry: %v", err)
		}
		u, key, err := cliToUser(cu)
		if err != nil {
			return Snapshot{}, errf(at(key), "%v", err)
		}
		h.Users = append(h.Users, u)
	}
	return Snapshot{HSMs: []HSM{h}}, nil
}

// cliToUser validates one entry; on error it also names the offending key.
func cliToUser(cu cliUser) (User, string, error) {
	var u User
	switch {
	case cu.Username == nil:
		return u, "", errors.New("user entry has no \"username\"")
	}
	var err error
	if u.Name, err = policy.NormalizeUsername(*cu.Username); err != nil {
		return u, "username", err
	}
	if cu.Role == nil {
		return u, "username", fmt.Errorf("user %s has no \"role\"", u.Name)
	}
	switch u.Role = *cu.Role; u.Role {
	case RoleAdmin, RoleCryptoUser, RoleAppliance, RoleUnactivatedAdmin:
	case "crypto_user":
		// An AWS guide prints this spelling (docs/design.md, "Captures").
		u.Role = RoleCryptoUser
	case RoleInconsistent:
		u.Drift = append(u.Drift, "role")
	default:
		return u, "role", fmt.Errorf("user %s: unknown role %q (want admin, crypto-user, unactivated-admin, internal(APPLIANCE_USER) or inconsistent)", u.Name, trunc(*cu.Role))
	}
	switch {
	case cu.Coverage == nil:
		return u, "username", fmt.Errorf("user %s has no \"cluster-coverage\"", u.Name)
	case *cu.Coverage == "inconsistent":
		u.Drift = append(u.Drift, "cluster-coverage")
	case *cu.Coverage != "full":
		return u, "cluster-coverage", fmt.Errorf("user %s: cluster-coverage %q: want full or inconsistent", u.Name, trunc(*cu.Coverage))
	}
	switch {
	case cu.Locked == nil:
		return u, "username", fmt.Errorf("user %s has no \"locked\"", u.Name)
	case *cu.Locked == "true":
		u.Locked = true
	case *cu.Locked == "inconsistent":
		u.Drift = append(u.Drift, "locked")
	case *cu.Locked != "false":
		return u, "locked", fmt.Errorf("user %s: locked %q: want true, false or inconsistent", u.Name, trunc(*cu.Locked))
	}
	mfa, mixed, err := strategies(cu.MFA)
	if err != nil {
		return u, "mfa", fmt.Errorf("user %s: mfa: %v", u.Name, err)
	}
	u.MFA = mfa
	if mixed {
		u.Drift = append(u.Drift, "mfa")
	}
	q, mixed, err := strategies(cu.Quorum)
	if err != nil {
		return u, "quorum", fmt.Errorf("user %s: quorum: %v", u.Name, err)
	}
	if q != "" {
		u.QuorumKey = "registered"
	}
	if mixed {
		u.Drift = append(u.Drift, "quorum")
	}
	return u, "", nil
}

// strategies joins the strategies of an "mfa" or "quorum" list, and says
// whether the view marks any of them inconsistent: registered on some
// HSMs only, or differently.
func strategies(ss []cliStrategy) (joined string, inconsistent bool, err error) {
	var out []string
	for _, s := range ss {
		if s.Strategy == "" {
			return "", false, errors.New("entry has no \"strategy\"")
		}
		switch s.Status {
		case "enabled":
		case RoleInconsistent:
			inconsistent = true
		default:
			return "", false, fmt.Errorf("%s: status %q: want enabled or inconsistent", trunc(s.Strategy), trunc(s.Status))
		}
		out = append(out, s.Strategy)
	}
	sort.Strings(out)
	return strings.Join(out, ","), inconsistent, nil
}

func jsonErr(errf func(int64, string, ...any) error, err error, end int64) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return errf(se.Offset, "malformed JSON: %v", se)
	case errors.As(err, &te):
		return errf(te.Offset, "%q has the wrong type (want %s)", te.Field, te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errf(end, "truncated JSON: the document ends early")
	}
	return errf(0, "%v", err)
}

// keyOffset finds "key" at or after from; from when absent.
func keyOffset(data []byte, from int, key string) int64 {
	if from < 0 || from > len(data) {
		return 0
	}
	if i := bytes.Index(data[from:], []byte(`"`+key+`"`)); i >= 0 {
		return int64(from + i)
	}
	return int64(from)
}

func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return 1 + bytes.Count(data[:off], []byte("\n"))
}
