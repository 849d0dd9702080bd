// Package syncdiff finds, explains and plans the repair of user drift between
// the HSMs of a cluster, and of token key drift (keys.go, with its rules).
//
// CloudHSM does not synchronise users: a client whose config lists fewer HSMs
// than the cluster has (or that meets an unreachable HSM) changes users on
// some HSMs only. Diff compares every HSM's user table (a Snapshot) and
// returns a Report: which users differ where, and for each one the
// authoritative version with a sentence saying why:
//
//   - a user absent on HSMs that recorded deleting it after the last change
//     of the present records is a partial delete; absent without such a
//     record is a partial create (assumed when deletion records are
//     unavailable, as in captures);
//   - among differing present records the version on the most HSMs wins (a
//     later change that reached fewer HSMs is undone, so one HSM cannot
//     override the cluster), a tie is broken by the latest change time, then
//     sequence number; a remaining tie, or contradictory evidence, is
//     undecidable and nothing is planned for that user;
//   - the lock state is the strictest among the HSMs holding the
//     authoritative record: only an admin's change-password unlocks, so a
//     repair never unlocks an account or lowers its failure count.
//
// Report.Plan turns a report into per-HSM actions (copy a record from a
// source HSM, or delete), never touching unreachable HSMs, and WritePlan
// writes them for cloudhsm_mgmt_util ("cmu"), "cloudhsm-cli" or hsmkit's
// "hsm-user", with passwords as placeholders, never guessed, and every
// value from a capture quoted for the dialect or the step withheld (see
// WritePlan).
//
// Importers read real captures as terminals keep them (command lines,
// other commands' output, a prompt glued to the JSON; see listingOf) and
// the listing itself strictly, errors naming file:line; a leading
// byte-order mark is skipped, and a user a capture lists
// twice on one HSM is kept and reported as drift (undecidable). CMU
// listUsers output is per HSM. cloudhsm-cli "user list" is one merged view
// of every HSM its config lists and cannot say which HSM lacks a user, so
// ImportCLIUserList yields one HSM per file: run once per HSM with a config
// listing only that HSM and Combine the captures to get a plannable
// snapshot; a merged capture's "inconsistent" users (role, lock, coverage,
// MFA or quorum status) are reported as drift on an unknown HSM,
// undecidable until such per-HSM captures exist.
//
// The package is pure: it reads no state, only the io.Readers it is given.
package syncdiff
