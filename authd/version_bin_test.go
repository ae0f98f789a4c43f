package main

import (
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersionReported: authd version, --version and -version print the
// version and commit set with -ldflags, and the ready log line and /metrics
// carry the same.
func TestVersionReported(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "authd")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7 -X main.commit=0123abcd", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	want := "authd v9.8.7 (commit 0123abcd, " + runtime.Version() + ")\n"
	for _, arg := range []string{"version", "--version", "-version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil || string(out) != want {
			t.Errorf("authd %s: got %q (%v), want %q", arg, out, err, want)
		}
	}

	s := newStack(t, "")
	s.mustCLI("long enough pw 1\n", "user", "add", "alice")
	saved := binary
	binary = bin
	defer func() { binary = saved }()
	s.start()
	ready := false
	for _, r := range s.logRecords() {
		if r["msg"] == "authd ready" && r["version"] == "v9.8.7" && r["commit"] == "0123abcd" && r["go"] == runtime.Version() {
			ready = true
		}
	}
	if !ready {
		t.Errorf("ready line lacks version, commit or go:\n%s", s.logs)
	}
	resp, err := http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	line := `authd_build_info{commit="0123abcd",go="` + runtime.Version() + `",version="v9.8.7"} 1`
	if !strings.Contains(string(body), line) {
		t.Errorf("/metrics lacks %s", line)
	}
}
