package syncdiff

import (
	"bufio"
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

	"github.com/hsmkit/hsmkit/internal/fileio"
	"github.com/hsmkit/hsmkit/internal/policy"
)

// MaxCapture bounds a capture read from a stream: a user list is a few
// KiB per HSM, and a stray pipe from /dev/zero must fail, not fill memory.
const MaxCapture = 16 << 20

// bom is the UTF-8 byte-order mark some Windows editors and PowerShell
// redirections put first in a file; every importer skips it.
var bom = []byte("\xef\xbb\xbf")

// Import reads a capture, sniffing its format: cloudhsm-cli "user list" JSON
// when the first non-blank byte is '{', else CMU listUsers text. A leading
// UTF-8 byte-order mark is skipped.
func Import(name string, data []byte) (Snapshot, error) {
	if startsWithJSON(bytes.TrimPrefix(data, bom)) {
		return ImportCLIUserList(name, bytes.NewReader(data))
	}
	return ImportCMUListUsers(name, bytes.NewReader(data))
}

// startsWithJSON says whether the first line that is neither blank nor a
// cloudhsm-cli prompt starts with '{'. It reads only up to that line.
func startsWithJSON(data []byte) bool {
	isJSON := false
	eachLine(data, func(_ int, line []byte) bool {
		t := bytes.TrimLeft(line, " \t")
		if len(t) == 0 || cliPrompt().Match(line) {
			return true
		}
		isJSON = t[0] == '{'
		return false
	})
	return isJSON
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

// cliPrompt is cloudhsm-cli's prompt line, as a terminal capture keeps it:
// "aws-cloudhsm > user list", "aws-cloudhsm>user list", "aws-cloudhsm >".
var cliPrompt = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[ \t]*aws-cloudhsm[ \t]?>[^\n]*$`) })

// blankCLIPrompts returns data with cloudhsm-cli prompt lines turned to
// spaces, so the JSON around them parses and every offset, line number
// included, stays where it was. No line of JSON can start with the prompt.
func blankCLIPrompts(data []byte) []byte {
	out, copied := data, false
	eachLine(data, func(off int, line []byte) bool {
		if cliPrompt().Match(line) {
			if !copied {
				out, copied = bytes.Clone(data), true
			}
			for i := off; i < off+len(line); i++ {
				out[i] = ' '
			}
		}
		return true
	})
	return out
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
	rePrompt = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(aws-cloudhsm|server\s?\d{1,4})\s?>\s*(listUsers)?$`)
	})
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
// users found:K" line, the column header and K rows. Prompt lines, blank
// lines, CRLF and a leading UTF-8 byte-order mark are tolerated; anything
// else is an error naming name:line. A user listed twice on one server is
// kept twice: Diff reports it as drift (KindDuplicate). HSM ids are
// "server N"; password hashes, change times and deletion records are
// unknown.
func ImportCMUListUsers(name string, r io.Reader) (Snapshot, error) {
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
	br := bufio.NewReader(r)
	if p, _ := br.Peek(len(bom)); bytes.Equal(p, bom) {
		_, _ = br.Discard(len(bom))
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		t := strings.TrimSpace(sc.Text())
		if t == "" || rePrompt().MatchString(t) {
			continue
		}
		if m := reServer().FindStringSubmatch(t); m != nil {
			if err := finish(); err != nil {
				return Snapshot{}, err
			}
			srv, _ := strconv.Atoi(m[1])
			if at, ok := seen[srv]; ok {
				return Snapshot{}, errf(n, "server %d listed twice (first at line %d)", srv, at)
			}
			seen[srv] = n
			if net.ParseIP(m[2]) == nil {
				return Snapshot{}, errf(n, "server %d: %q is not an IP address", srv, m[2])
			}
			// The id from the number, not the text: "server 00" is server 0,
			// and the plan's "server N" must say it as CMU does.
			snap.HSMs = append(snap.HSMs, HSM{ID: "server " + strconv.Itoa(srv), Server: srv, IP: m[2], Reachable: true, Users: []User{}})
			cur = &section{start: n, count: -1, names: map[string]int{}, ids: map[int]int{}}
			continue
		}
		if cur == nil {
			return Snapshot{}, errf(n, "expected \"Users on server N(IP):\", found %q", trunc(t))
		}
		h := &snap.HSMs[len(snap.HSMs)-1]
		if m := reCount().FindStringSubmatch(t); m != nil {
			if cur.count >= 0 {
				return Snapshot{}, errf(n, "server %d: second \"Number of users found\" line (first at line %d)", h.Server, cur.countLine)
			}
			cur.count, _ = strconv.Atoi(m[1])
			cur.countLine = n
			continue
		}
		f := strings.Fields(t)
		if slices.Equal(f, cmuCols) {
			if cur.count < 0 || cur.header {
				return Snapshot{}, errf(n, "server %d: unexpected column header", h.Server)
			}
			cur.header = true
			continue
		}
		if cur.count < 0 {
			return Snapshot{}, errf(n, "server %d: expected \"Number of users found:N\", found %q", h.Server, trunc(t))
		}
		if !cur.header {
			return Snapshot{}, errf(n, "server %d: expected the column header (User Id, User Type, User Name, MofnPubKey, LoginFailureCnt, 2FA), found %q", h.Server, trunc(t))
		}
		u, err := cmuRow(f)
		if err != nil {
			return Snapshot{}, errf(n, "server %d: %v", h.Server, err)
		}
		// The same name twice is drift Diff reports; one id for two
		// names is a capture that cannot be read.
		if at, ok := cur.ids[u.ID]; ok && cur.names[u.Name] != at {
			return Snapshot{}, errf(n, "server %d: user id %d listed twice for different users (first at line %d)", h.Server, u.ID, at)
		}
		if _, ok := cur.names[u.Name]; !ok {
			cur.names[u.Name] = n
		}
		if _, ok := cur.ids[u.ID]; !ok {
			cur.ids[u.ID] = n
		}
		h.Users = append(h.Users, u)
	}
	if err := sc.Err(); err != nil {
		return Snapshot{}, errf(n+1, "%v", err)
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

// ImportCLIUserList reads the JSON of "cloudhsm-cli user list", with or
// without the prompt line a terminal capture keeps. The result is
// one HSM whose id is the file's base name without extension: cloudhsm-cli
// merges every HSM its config lists into one view, so a single capture is
// either one HSM (the operator ran it with a config listing only that HSM)
// or the merged cluster. A leading UTF-8 byte-order mark is skipped. A
// user listed twice is kept twice: Diff reports it as drift
// (KindDuplicate). Users it marks "cluster-coverage": "inconsistent"
// or "locked": "inconsistent" carry User.Drift, which Diff reports as drift
// on an unknown HSM, undecidable. Combine one capture per HSM to get a
// per-HSM snapshot that Diff can plan from. Password hashes, failure
// counts, change times and deletion records are unknown; a registered
// quorum key shows as "registered", MFA as its strategies.
func ImportCLIUserList(name string, r io.Reader) (Snapshot, error) {
	data, err := fileio.ReadAll(r, MaxCapture, name)
	if err != nil {
		return Snapshot{}, err
	}
	data = blankCLIPrompts(bytes.TrimPrefix(data, bom))
	errf := func(off int64, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, lineAt(data, off), fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var env cliEnvelope
	if err := dec.Decode(&env); err != nil {
		return Snapshot{}, jsonErr(errf, err, int64(len(data)))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Snapshot{}, errf(dec.InputOffset(), "unexpected data after the JSON document")
	}
	if env.ErrorCode == nil {
		return Snapshot{}, errf(0, "no \"error_code\": not a cloudhsm-cli user list capture")
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
	switch {
	case cu.Role == nil:
		return u, "username", fmt.Errorf("user %s has no \"role\"", u.Name)
	case *cu.Role != RoleAdmin && *cu.Role != RoleCryptoUser && *cu.Role != RoleAppliance && *cu.Role != RoleUnactivatedAdmin:
		return u, "role", fmt.Errorf("user %s: unknown role %q (want admin, crypto-user, unactivated-admin or internal(APPLIANCE_USER))", u.Name, trunc(*cu.Role))
	}
	u.Role = *cu.Role
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
	if u.MFA, err = strategies(cu.MFA); err != nil {
		return u, "mfa", fmt.Errorf("user %s: mfa: %v", u.Name, err)
	}
	q, err := strategies(cu.Quorum)
	if err != nil {
		return u, "quorum", fmt.Errorf("user %s: quorum: %v", u.Name, err)
	}
	if q != "" {
		u.QuorumKey = "registered"
	}
	return u, "", nil
}

func strategies(ss []cliStrategy) (string, error) {
	var out []string
	for _, s := range ss {
		if s.Strategy == "" {
			return "", errors.New("entry has no \"strategy\"")
		}
		out = append(out, s.Strategy)
	}
	sort.Strings(out)
	return strings.Join(out, ","), nil
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
