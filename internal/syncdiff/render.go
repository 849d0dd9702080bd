package syncdiff

import (
	"strconv"
	"strings"
)

// ReportJSON is the report for programs. Field names are stable; lists are
// never null, and stale-config is null only when the client config is unknown.
type ReportJSON struct {
	ClusterID   string           `json:"cluster-id"`
	InSync      bool             `json:"in-sync"`
	UsersInSync bool             `json:"users-in-sync"`
	HSMs        []HSMJSON        `json:"hsms"`
	StaleConfig *StaleConfigJSON `json:"stale-config"`
	Unreachable []string         `json:"unreachable"`
	Users       []UserJSON       `json:"users"`
	Notes       []string         `json:"notes"`
	Policy      *PolicyJSON      `json:"quorum-policy"`
	Keys        *KeysJSON        `json:"keys,omitempty"`
}

// PolicyJSON is a quorum policy that differs between HSMs: the strictest
// one, which the repair sets, and the HSMs that have another.
type PolicyJSON struct {
	Want Policy          `json:"want"`
	HSMs []HSMPolicyJSON `json:"hsms"`
}

// HSMPolicyJSON is one HSM's differing policy.
type HSMPolicyJSON struct {
	HSM    string `json:"hsm"`
	Policy Policy `json:"policy"`
}

// HSMJSON is one HSM of ReportJSON.
type HSMJSON struct {
	ID        string `json:"id"`
	Server    int    `json:"server"`
	IP        string `json:"ip"`
	Reachable bool   `json:"reachable"`
}

// StaleConfigJSON compares the client config with the cluster.
type StaleConfigJSON struct {
	Missing []string `json:"missing"`
	Unknown []string `json:"unknown"`
}

// UserJSON is one differing user.
type UserJSON struct {
	Username    string           `json:"username"`
	Differences []DifferenceJSON `json:"differences"`
	Authority   AuthorityJSON    `json:"authority"`
}

// DifferenceJSON is one difference on one HSM.
type DifferenceJSON struct {
	HSM    string `json:"hsm"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// AuthorityJSON is the decision; source and role are "" unless the decision
// is create or update.
type AuthorityJSON struct {
	Decision string `json:"decision"`
	Source   string `json:"source"`
	Role     string `json:"role"`
	Reason   string `json:"reason"`
}

// JSON returns the report as a ReportJSON value for encoding/json.
func (r Report) JSON() any {
	j := ReportJSON{
		ClusterID: r.ClusterID, InSync: r.InSync(), UsersInSync: r.UsersInSync(),
		HSMs: []HSMJSON{}, Unreachable: nonNil(r.Unreachable), Users: []UserJSON{}, Notes: nonNil(r.Notes),
	}
	for _, h := range r.HSMs {
		j.HSMs = append(j.HSMs, HSMJSON(h))
	}
	if c := r.StaleConfig; c != nil {
		j.StaleConfig = &StaleConfigJSON{Missing: nonNil(c.Missing), Unknown: nonNil(c.Unknown)}
	}
	j.Policy = r.Policy.json()
	j.Keys = r.keysJSON()
	for _, u := range r.Users {
		uj := UserJSON{Username: u.Name, Differences: []DifferenceJSON{}, Authority: AuthorityJSON{
			Decision: string(u.Authority.Decision), Source: u.Authority.Source, Reason: u.Authority.Reason}}
		if u.Authority.Source != "" {
			uj.Authority.Role = u.Authority.Version.Role
		}
		for _, d := range u.Differences {
			uj.Differences = append(uj.Differences, DifferenceJSON{d.HSM, string(d.Kind), d.Detail})
		}
		j.Users = append(j.Users, uj)
	}
	return j
}

// PlanJSON is a plan for programs (hsm-sync plan -o json): the repairs and
// the users left alone as data, and the dialect's script as text. Lists
// are never null; stale-config is null only when the client config is
// unknown.
type PlanJSON struct {
	ClusterID   string           `json:"cluster-id"`
	Dialect     string           `json:"dialect"`
	StaleConfig *StaleConfigJSON `json:"stale-config"`
	Unreachable []string         `json:"unreachable"`
	Actions     []ActionJSON     `json:"actions"`
	Skipped     []SkippedJSON    `json:"skipped"`
	Policy      *PolicyJSON      `json:"quorum-policy"`
	Script      string           `json:"script"`
}

// ActionJSON is one repair on one HSM: copy the user record from source
// (fixing the listed differences), or delete the user; source is "" for a
// delete.
type ActionJSON struct {
	Action   string   `json:"action"`
	Username string   `json:"username"`
	Role     string   `json:"role"`
	Source   string   `json:"source"`
	Target   string   `json:"target"`
	Fixes    []string `json:"fixes"`
	Reason   string   `json:"reason"`
}

// SkippedJSON is a differing user the plan leaves alone, and why.
type SkippedJSON struct {
	Username string `json:"username"`
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
}

// JSON returns the plan as a PlanJSON value, its script in dialect.
func (p Plan) JSON(dialect string) (any, error) {
	var script strings.Builder
	if err := WritePlan(&script, p, dialect); err != nil {
		return nil, err
	}
	j := PlanJSON{ClusterID: p.ClusterID, Dialect: dialect, Unreachable: nonNil(p.Unreachable),
		Actions: []ActionJSON{}, Skipped: []SkippedJSON{}, Script: script.String()}
	if c := p.StaleConfig; c != nil {
		j.StaleConfig = &StaleConfigJSON{Missing: nonNil(c.Missing), Unknown: nonNil(c.Unknown)}
	}
	for _, a := range p.Actions {
		aj := ActionJSON{Action: string(a.Kind), Username: a.User, Role: a.Role, Target: a.Dst.ID, Fixes: []string{}, Reason: a.Reason}
		if a.Kind == ActionCopy {
			aj.Source = a.Src.ID
			for _, k := range a.Fixes {
				aj.Fixes = append(aj.Fixes, string(k))
			}
		}
		j.Actions = append(j.Actions, aj)
	}
	for _, s := range p.Skipped {
		j.Skipped = append(j.Skipped, SkippedJSON{Username: s.User, Decision: string(s.Decision), Reason: s.Reason})
	}
	j.Policy = p.Policy.json()
	return j, nil
}

func (d *PolicyDrift) json() *PolicyJSON {
	if d == nil {
		return nil
	}
	j := &PolicyJSON{Want: d.Want}
	for i, id := range d.HSMs {
		j.HSMs = append(j.HSMs, HSMPolicyJSON{HSM: id, Policy: d.Has[i]})
	}
	return j
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Matrix returns a table for people: one row per differing user, one column
// per HSM (cluster order) and a last column with the decision. Cells read
// ok, missing, deleted, unreachable, present, or the differences of that
// HSM's record: listed×<n> (a capture lists it n times), role:<its role>,
// password≠, locked, failures:<n>, quorum≠, mfa≠, inconsistent:<field>.
func (r Report) Matrix() (header []string, rows [][]string) {
	header = r.matrixHeader("user")
	for _, u := range r.Users {
		row := make([]string, 0, len(header))
		row = append(row, u.Name)
		for _, c := range u.Cells {
			row = append(row, cellText(u, c))
		}
		rows = append(rows, append(row, decisionText(u.Authority.Decision, u.Authority.Source)))
	}
	return header, rows
}

// matrixHeader is a drift table's header: what a row is, one column per
// HSM, the decision.
func (r Report) matrixHeader(row string) []string {
	header := []string{row}
	for _, h := range r.HSMs {
		header = append(header, h.ID)
	}
	return append(header, "decision")
}

// decisionText is a drift table's last cell.
func decisionText(d Decision, source string) string {
	if source != "" {
		return string(d) + " from " + source
	}
	return string(d)
}

func cellText(u UserDiff, c Cell) string {
	switch c.State {
	case StateUnreachable:
		return "unreachable"
	case StateAbsent:
		if c.Tombstone != nil {
			return "deleted"
		}
		return "missing"
	}
	var parts []string
	for _, d := range u.Differences {
		if d.HSM != c.HSM {
			continue
		}
		switch d.Kind {
		case KindDuplicate:
			parts = append(parts, "listed×"+strconv.Itoa(c.Listed))
		case KindRole:
			parts = append(parts, "role:"+c.User.Role)
		case KindPassword:
			parts = append(parts, "password≠")
		case KindLock:
			switch {
			case c.User.Locked:
				parts = append(parts, "locked")
			case u.Authority.Source != "" && u.Authority.Version.Locked:
				parts = append(parts, "unlocked")
			default:
				parts = append(parts, "failures:"+strconv.Itoa(c.User.Failures))
			}
		case KindQuorum:
			parts = append(parts, "quorum≠")
		case KindMFA:
			parts = append(parts, "mfa≠")
		case KindStatus:
			parts = append(parts, "status:"+orNone(c.User.Status))
		case KindUnlocated:
			parts = append(parts, "inconsistent:"+strings.SplitN(d.Detail, " ", 2)[0])
		}
	}
	if len(parts) > 0 {
		return strings.Join(parts, " ")
	}
	if u.Authority.Decision == DecisionCreate || u.Authority.Decision == DecisionUpdate {
		return "ok"
	}
	return "present"
}
