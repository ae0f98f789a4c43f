package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version and commit may be set at build time with
// -ldflags "-X main.version=v1.2.3 -X main.commit=abc123"; they win over
// what the Go toolchain recorded. Empty means "ask the build info".
var (
	version string
	commit  string
)

// build describes the running binary.
type build struct {
	Version, Commit, Go string
}

// buildOf resolves the binary's version and commit: the -X values when set,
// else the main module's version and the VCS revision that go build stamps
// (a clone built with -buildvcs; not a git worktree, whose .git is a file,
// nor a build with GOFLAGS=-buildvcs=false), else "devel" and "unknown".
func buildOf(bi *debug.BuildInfo, ok bool, xVersion, xCommit string) build {
	b := build{Version: xVersion, Commit: xCommit, Go: runtime.Version()}
	var rev string
	modified := false
	if ok {
		b.Go = bi.GoVersion
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if b.Commit == "" && rev != "" {
		b.Commit = rev
		if modified {
			b.Commit += "-dirty"
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

func currentBuild() build {
	bi, ok := debug.ReadBuildInfo()
	return buildOf(bi, ok, version, commit)
}

func (b build) String() string {
	return fmt.Sprintf("authd %s (commit %s, %s)", b.Version, b.Commit, b.Go)
}

func cmdVersion(args []string, stdout io.Writer) error {
	if len(args) != 0 {
		return usagef("version takes no arguments")
	}
	fmt.Fprintln(stdout, currentBuild())
	return nil
}
