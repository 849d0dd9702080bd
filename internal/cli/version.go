package cli

import (
	"runtime/debug"
	"strings"
)

// Version describes the running binary from the build information the
// Go toolchain embeds: the module version ("(devel)" for a build from a
// checkout), and the VCS revision, commit time and modified flag when the
// build recorded them (go build in a git checkout does; go test does not).
func Version() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi)
}

// versionOf formats build info as one line, so a script can log it whole:
//
//	v1.2.0
//	(devel) revision 3f2a9c1d0b7e 2026-05-01T10:00:00Z modified
func versionOf(bi *debug.BuildInfo) string {
	v := "(devel)"
	if bi != nil && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	if bi == nil {
		return v
	}
	parts := []string{v}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		parts = append(parts, "revision", rev[:min(len(rev), 12)])
	}
	if t := settings["vcs.time"]; t != "" {
		parts = append(parts, t)
	}
	if settings["vcs.modified"] == "true" {
		parts = append(parts, "modified")
	}
	if bi.GoVersion != "" {
		parts = append(parts, "("+bi.GoVersion+")")
	}
	return strings.Join(parts, " ")
}
