package kms

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/hsmkit/hsmkit/internal/cloudhsmv2"
	"github.com/hsmkit/hsmkit/internal/hsm"
	"github.com/hsmkit/hsmkit/internal/policy"
	"github.com/hsmkit/hsmkit/internal/state"
	"github.com/hsmkit/hsmkit/internal/syncdiff"
)

// The doctor (docs/design.md, "The KMS custom key store", the doctor):
// before a connect, every cause behind every ConnectionErrorCode, checked
// on the simulated cluster or on captures of a real one, each finding
// with the fix the KMS guide documents.

// Finding statuses.
const (
	StatusOK   = "OK"
	StatusWarn = "WARN" // the connect succeeds, but something will fail later
	StatusFail = "FAIL" // the connect would fail
	StatusSkip = "NOT CHECKED"
)

// Finding is one check's result.
type Finding struct {
	Check  string `json:"Check"`
	Status string `json:"Status"`
	Code   string `json:"Code,omitempty"` // the ConnectionErrorCode or exception it would cause
	Detail string `json:"Detail"`
	Fix    string `json:"Fix,omitempty"`
}

// Diagnosis is the doctor's report.
type Diagnosis struct {
	CustomKeyStoreID  string    `json:"CustomKeyStoreId,omitempty"`
	ConnectionState   string    `json:"ConnectionState,omitempty"`
	CloudHsmClusterID string    `json:"CloudHsmClusterId,omitempty"`
	Findings          []Finding `json:"Findings"`
}

// Failed says whether some finding would make the connect fail.
func (d Diagnosis) Failed() bool {
	return slices.ContainsFunc(d.Findings, func(f Finding) bool { return f.Status == StatusFail })
}

// Fixes are the documented fixes, by ConnectionErrorCode (the KMS guide's
// "How to fix a connection failure"), in hsmkit's commands.
var Fixes = map[string]string{
	CodeClusterNotFound:  "create a cluster from a recent backup of the original (hsm-sim init --from-backup FILE), then disconnect, update-custom-key-store --cloud-hsm-cluster-id NEW (with -c the new cluster's config), connect",
	CodeInsufficientHSMs: "add an HSM to the cluster (hsm-sim add-hsm, or start a stopped one), then connect; a FAILED store is disconnected first",
	CodeFreeAddresses:    "free an address in each of the cluster's private subnets (one is needed, two are better), or create a cluster from a backup with new subnets and update the store's cluster id; then disconnect and connect",
	CodeInternal:         "retry: disconnect, then connect",
	CodeInvalidCredentials: "set kmsuser's password in the cluster if needed (cloudhsm-cli user change-password --username kmsuser --role crypto-user, as an admin), " +
		"then update-custom-key-store --key-store-password with it, and connect",
	CodeNetwork:        "usually transient: disconnect, wait, connect",
	CodeSubnetNotFound: "create a cluster from a recent backup with subnets that exist and update the store's cluster id (update-custom-key-store --cloud-hsm-cluster-id), then connect",
	CodeUserLockedOut:  "disconnect, change kmsuser's password as an admin (cloudhsm-cli user change-password --username kmsuser --role crypto-user), update-custom-key-store --key-store-password, connect",
	CodeUserLoggedIn:   "log kmsuser out of the cluster (the session that logged in: hsm-user logout, or quit its cloudhsm-cli); if its password was changed, update-custom-key-store --key-store-password; then connect",
	CodeUserNotFound:   "create kmsuser, a crypto user (cloudhsm-cli user create --username kmsuser --role crypto-user), update-custom-key-store --key-store-password with its password, connect",
}

type report struct{ d *Diagnosis }

// addFix records a finding whose fix is its own, not its code's.
func (r report) addFix(check, status, code, detail, fix string) {
	r.d.Findings = append(r.d.Findings, Finding{Check: check, Status: status, Code: code, Detail: detail, Fix: fix})
}

func (r report) add(check, status, code, detail string) {
	f := Finding{Check: check, Status: status, Code: code, Detail: detail}
	if status == StatusFail || status == StatusWarn {
		f.Fix = Fixes[code]
	}
	r.d.Findings = append(r.d.Findings, f)
}

// Doctor checks a key store's cluster as the next connect would meet it.
func (s *Service) Doctor(id string) (Diagnosis, error) {
	const op = "Doctor"
	var diag Diagnosis
	err := s.run(func(d *db) (bool, error) {
		ks, err := s.find(d, op, id)
		if err != nil {
			return false, err
		}
		diag = Diagnosis{CustomKeyStoreID: ks.ID, ConnectionState: ks.State, CloudHsmClusterID: ks.ClusterID}
		r := report{&diag}
		switch ks.State {
		case Failed:
			r.addFix("connection state", StatusFail, ks.ErrorCode, "the store is FAILED ("+ks.ErrorCode+"): a connect is refused until it is disconnected; the checks below show what the next connect would meet", "disconnect-custom-key-store first, fix what the checks below find, then connect")
		case Connected:
			r.add("connection state", StatusOK, "", "the store is CONNECTED; the checks below show what a reconnect would meet")
		default:
			r.add("connection state", StatusOK, "", "the store is "+ks.State)
		}
		cl, err := s.openStore(ks)
		if err != nil {
			r.add("cluster", StatusFail, CodeClusterNotFound, fmt.Sprintf("cluster %s cannot be found: %v", ks.ClusterID, err))
			return false, nil
		}
		desc, err := cl.DescribeCluster()
		if err != nil {
			r.add("cluster", StatusFail, CodeClusterNotFound, fmt.Sprintf("cluster %s cannot be described: %v", ks.ClusterID, err))
			return false, nil
		}
		r.add("cluster", StatusOK, "", fmt.Sprintf("cluster %s is found through %s", desc.ID, ks.Config))
		clusterChecks(r, desc.State, desc.HSMs)
		faults := desc.Faults
		for _, fc := range faultCodes {
			if slices.Contains(faults, fc.fault) {
				r.add("network", StatusFail, fc.code, "the simulator's fault "+fc.fault+" is set (hsm-sim fault clear "+fc.fault+" lifts it)")
			}
		}
		if !slices.ContainsFunc(faultCodes, func(fc struct{ fault, code string }) bool { return slices.Contains(faults, fc.fault) }) {
			r.add("network", StatusOK, "", "no network or subnet fault is set")
		}
		if slices.Contains(faults, hsm.FaultHoldConnect) {
			r.addFix("network", StatusWarn, "", "the fault hold-connect is set: a connect stays CONNECTING until it is cleared", "hsm-sim fault clear hold-connect")
		}
		// A password KMS cannot open fails every connect (INTERNAL_ERROR);
		// the checks of kmsuser still run, without the password's.
		pw, err := s.Acct.unseal(ks.ID, ks.Password)
		if err != nil {
			r.addFix("password", StatusFail, CodeInternal, "KMS cannot open the key store's password: "+err.Error(), "put the account's root.key back, or disconnect, set kmsuser's password as an admin (cloudhsm-cli user change-password --username kmsuser --role crypto-user) and update-custom-key-store --key-store-password with it, then connect")
			pw = ""
		}
		recs, err := cl.InspectUser(KMSUser, pw)
		if err != nil {
			return false, err
		}
		own := ""
		if sf, err := hsm.LoadSession(s.Acct.sessionPath(ks.ID)); err == nil && sf != nil {
			own = sf.ID
		}
		kmsuserChecks(r, recs, own, true)
		return false, nil
	})
	return diag, err
}

// clusterChecks are the cluster's own: active, HSMs, zones.
func clusterChecks(r report, st string, hsms []state.HSMInfo) {
	if st != state.Active {
		r.addFix("cluster state", StatusFail, ExcClusterNotActive, "the cluster is "+st+", not ACTIVE: a connect is refused at once", "initialize the cluster (hsm-sim csr, sign it, hsm-sim initialize) and activate it (cloudhsm-cli cluster activate)")
	} else {
		r.add("cluster state", StatusOK, "", "the cluster is ACTIVE")
	}
	running, zones := 0, map[string]bool{}
	var stopped []string
	for _, h := range hsms {
		if h.Status == state.Running {
			running++
			zones[h.AZ] = true
		} else {
			stopped = append(stopped, h.ID)
		}
	}
	switch {
	case running == 0:
		r.add("HSMs", StatusFail, CodeInsufficientHSMs, fmt.Sprintf("no HSM is active (%d in the cluster); a connect needs one", len(hsms)))
	case len(zones) < 2:
		r.addFix("HSMs", StatusWarn, ExcClusterInvalidConfig, fmt.Sprintf("%d active HSM(s) in %d Availability Zone: the connect succeeds, but create-key needs active HSMs in two zones", running, len(zones)), "add an HSM in another Availability Zone (hsm-sim add-hsm --az ZONE)")
	default:
		r.add("HSMs", StatusOK, "", fmt.Sprintf("%d active HSM(s) in %d Availability Zones", running, len(zones)))
	}
	if len(stopped) > 0 {
		r.addFix("HSMs", StatusWarn, "", strings.Join(stopped, ", ")+" unreachable: a connect now rotates kmsuser's password without "+pronoun(len(stopped))+", and the key store cannot log in there until it is repaired", "start "+pronoun(len(stopped))+" before connecting (hsm-sim start ID), or repair kmsuser there afterwards (hsm-sync apply)")
	}
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// kmsuserChecks are kmsuser's, HSM by HSM: present, a crypto user, no
// MFA, not locked, not logged in (but by KMS itself), the password KMS
// holds.
func kmsuserChecks(r report, recs []hsm.UserRecord, own string, live bool) {
	var reach, present, wrongRole, mfa, lockedOn, loggedOn, pwOK, pwBad []string
	for _, u := range recs {
		if !u.Reachable {
			continue
		}
		reach = append(reach, u.HSM)
		if !u.Present {
			continue
		}
		present = append(present, u.HSM)
		if u.Role != string(policy.CryptoUser) {
			wrongRole = append(wrongRole, u.HSM+" ("+u.Role+")")
		}
		if u.MFA {
			mfa = append(mfa, u.HSM)
		}
		if u.Locked {
			lockedOn = append(lockedOn, u.HSM)
		}
		if slices.ContainsFunc(u.Sessions, func(id string) bool { return id != own }) {
			loggedOn = append(loggedOn, u.HSM)
		}
		switch {
		case u.PasswordOK == nil:
		case *u.PasswordOK:
			pwOK = append(pwOK, u.HSM)
		default:
			pwBad = append(pwBad, u.HSM)
		}
	}
	list := func(s []string) string { return strings.Join(s, ", ") }
	switch {
	case len(reach) == 0:
		r.add("kmsuser", StatusSkip, "", "no HSM is reachable to read kmsuser from")
		return
	case len(present) == 0:
		r.add("kmsuser", StatusFail, CodeUserNotFound, "no HSM holds kmsuser")
		return
	case len(wrongRole) > 0:
		r.add("kmsuser", StatusFail, CodeUserNotFound, "kmsuser is not a crypto user on "+list(wrongRole))
		return
	case len(present) < len(reach):
		r.addFix("kmsuser", StatusWarn, CodeUserNotFound, "kmsuser is missing on "+list(missing(reach, present))+": the key store cannot log in there", "repair the user tables (hsm-sync diff, then hsm-sync apply)")
	default:
		r.add("kmsuser", StatusOK, "", "kmsuser is a crypto user on every reachable HSM")
	}
	if len(mfa) > 0 {
		r.addFix("MFA", StatusFail, CodeInvalidCredentials, "kmsuser has MFA registered on "+list(mfa)+": KMS cannot log in as a user with MFA", "delete kmsuser and create it again without MFA (MFA cannot be undone for it), then update-custom-key-store --key-store-password")
	} else {
		r.add("MFA", StatusOK, "", "kmsuser has no MFA")
	}
	switch {
	case len(lockedOn) == len(present):
		r.add("lockout", StatusFail, CodeUserLockedOut, "kmsuser is locked on "+list(lockedOn)+" after too many failed logins")
	case len(lockedOn) > 0:
		r.add("lockout", StatusWarn, CodeUserLockedOut, "kmsuser is locked on "+list(lockedOn)+": the key store cannot log in there")
	default:
		r.add("lockout", StatusOK, "", "kmsuser is not locked")
	}
	switch {
	case !live:
		r.add("sessions", StatusSkip, "", "who is logged in is not in captures")
	case len(loggedOn) > 0:
		r.add("sessions", StatusFail, CodeUserLoggedIn, "kmsuser is logged in on "+list(loggedOn)+" by someone other than the key store: KMS cannot log in and rotate its password")
	default:
		r.add("sessions", StatusOK, "", "kmsuser is not logged in but by the key store")
	}
	switch {
	case len(pwOK) == 0 && len(pwBad) > 0:
		r.add("password", StatusFail, CodeInvalidCredentials, "the key store's password is not kmsuser's on any HSM ("+list(pwBad)+")")
	case len(pwBad) > 0:
		r.addFix("password", StatusWarn, CodeInvalidCredentials, "the key store's password is kmsuser's on "+list(pwOK)+" but not on "+list(pwBad)+
			" (a connect that rotated it while those were unreachable leaves this): the key store cannot log in there, and each connect counts a failed login there",
			"repair kmsuser's records (hsm-sync diff explains it, hsm-sync apply copies the rotated password), then disconnect and connect")
	case len(pwOK) > 0:
		r.add("password", StatusOK, "", "the key store's password is kmsuser's on every HSM that holds it")
	}
}

func missing(all, have []string) []string {
	var out []string
	for _, a := range all {
		if !slices.Contains(have, a) {
			out = append(out, a)
		}
	}
	return out
}

// Capture is one file given to the doctor with --from.
type Capture struct {
	Name string
	Data []byte
}

// DoctorCaptures checks what captures of a real cluster show: a
// describe-clusters output (the cluster, its state, HSMs and zones) and
// user lists (kmsuser on each HSM). Passwords, sessions and the network
// are not in captures; those checks say so. clusterID, when known (the
// store's), is the cluster looked for.
func DoctorCaptures(clusterID string, files []Capture) (Diagnosis, error) {
	diag := Diagnosis{CloudHsmClusterID: clusterID}
	r := report{&diag}
	var snaps []syncdiff.Snapshot
	var clusters *cloudhsmv2.DescribeClustersOutput
	for _, f := range files {
		if bytes.Contains(f.Data, []byte(`"Clusters"`)) {
			out, err := cloudhsmv2.Parse(f.Name, f.Data)
			if err != nil {
				return diag, err
			}
			if clusters != nil {
				return diag, fmt.Errorf("%s: a second describe-clusters capture; give one", f.Name)
			}
			clusters = out
			continue
		}
		s, err := syncdiff.Import(f.Name, f.Data)
		if err != nil {
			return diag, err
		}
		snaps = append(snaps, s)
	}
	if clusters != nil {
		var c *cloudhsmv2.Cluster
		for i := range clusters.Clusters {
			if clusterID == "" || clusters.Clusters[i].ClusterId == clusterID {
				c = &clusters.Clusters[i]
				break
			}
		}
		if c == nil {
			r.add("cluster", StatusFail, CodeClusterNotFound, "the describe-clusters capture has no cluster "+clusterID)
		} else {
			diag.CloudHsmClusterID = c.ClusterId
			r.add("cluster", StatusOK, "", "cluster "+c.ClusterId+" is in the capture")
			var hsms []state.HSMInfo
			for _, h := range c.Hsms {
				st := state.Stopped
				if h.State == cloudhsmv2.HsmActive {
					st = state.Running
				}
				hsms = append(hsms, state.HSMInfo{ID: h.HsmId, AZ: h.AvailabilityZone, Status: st})
			}
			clusterChecks(r, c.State, hsms)
		}
	} else {
		r.add("cluster", StatusSkip, "", "no describe-clusters capture (aws cloudhsmv2 describe-clusters) was given")
	}
	r.add("network", StatusSkip, "", "network, subnet and KMS-side causes are not in captures")
	if len(snaps) == 0 {
		r.add("kmsuser", StatusSkip, "", "no user list capture (cloudhsm-cli user list, CMU listUsers) was given")
		return diag, nil
	}
	snap, err := syncdiff.Combine(snaps...)
	if err != nil {
		return diag, err
	}
	var recs []hsm.UserRecord
	for _, h := range snap.HSMs {
		rec := hsm.UserRecord{HSM: h.ID, Reachable: true}
		for _, u := range h.Users {
			if u.Name != KMSUser {
				continue
			}
			rec.Present, rec.Role, rec.Locked, rec.MFA, rec.Failures = true, u.Role, u.Locked, u.MFA != "", u.Failures
			if len(u.Drift) > 0 {
				r.addFix("kmsuser", StatusWarn, "", "the merged user list marks kmsuser's "+strings.Join(u.Drift, " and ")+" inconsistent: capture each HSM to know which differs", "hsm-sync diff --from with one capture per HSM")
			}
		}
		recs = append(recs, rec)
	}
	kmsuserChecks(r, recs, "", false)
	r.add("password", StatusSkip, "", "the key store's password cannot be checked against a capture")
	return diag, nil
}
