package main

import (
	"runtime/debug"
	"testing"
)

func TestBuildOf(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "false"},
	}}
	dirty := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "true"},
	}}
	bare := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}
	for _, tt := range []struct {
		name         string
		bi           *debug.BuildInfo
		xv, xc       string
		wantV, wantC string
	}{
		{"vcs stamped module version", stamped, "", "", "v1.4.0", "0123456789abcdef"},
		{"modified tree", dirty, "", "", "devel", "0123456789abcdef-dirty"},
		{"ldflags win", stamped, "v2.0.0", "feedface", "v2.0.0", "feedface"},
		{"nothing recorded", bare, "", "", "devel", "unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := buildOf(tt.bi, true, tt.xv, tt.xc)
			if b.Version != tt.wantV || b.Commit != tt.wantC || b.Go != "go1.26.0" {
				t.Errorf("got %+v, want version %q commit %q go go1.26.0", b, tt.wantV, tt.wantC)
			}
		})
	}
}
