package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logRecords parses the running authd's JSON log lines.
func (s *stack) logRecords() []map[string]any {
	s.t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(s.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

func (s *stack) countLog(field, value string) int {
	n := 0
	for _, r := range s.logRecords() {
		if r[field] == value {
			n++
		}
	}
	return n
}

// writeConfig replaces the stack's config, keeping its data dir and users file.
func (s *stack) writeConfig(listen, extra string) {
	s.t.Helper()
	cfg := fmt.Sprintf("listen = %q\npublic_url = \"https://app.example.com\"\ndata_dir = %q\nusers_file = %q\n%s",
		listen, filepath.Join(s.dir, "data"), filepath.Join(s.dir, "users.toml"), extra)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// hup sends SIGHUP and waits for the reload's outcome in the log.
func (s *stack) hup() {
	s.t.Helper()
	before := s.countLog("msg", "reloaded") + s.countLog("event", "reload_failed")
	_ = s.proc.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for s.countLog("msg", "reloaded")+s.countLog("event", "reload_failed") == before {
		if time.Now().After(deadline) {
			s.t.Fatalf("no reload in the log after SIGHUP:\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *stack) verifyPath(uri, cookie string) int {
	s.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.addr+"/verify", nil)
	req.Header.Set("X-Original-URI", uri)
	req.Header.Set("X-Original-Method", "GET")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

const reloadRules = `
[[rules]]
path = "/admin"
groups = ["admins"]

[[rules]]
path = "/"
`

// TestReloadAppliesSettings: SIGHUP applies session timeouts, throttle,
// log level, login page settings and rules at once, and names each changed
// setting that needs a restart (listen) in a warning while serving on.
func TestReloadAppliesSettings(t *testing.T) {
	s := newStack(t, "")
	const pw = "long enough pw 1"
	s.mustCLI(pw+"\n", "user", "add", "-groups", "admins", "alice")
	s.mustCLI(pw+"\n", "user", "add", "bob")
	s.writeConfig(s.addr, "[log]\nlevel = \"info\"\n"+reloadRules)
	s.start()
	a, _ := s.login("alice", pw, "/")
	if a == "" {
		t.Fatal("login failed")
	}
	s.verifyPath("/x", a)
	if n := s.countLog("msg", "access allowed"); n != 0 {
		t.Fatalf("debug lines at level info: %d", n)
	}

	s.writeConfig(freeAddr(t), `login_title = "Reloaded portal"

[session]
idle_timeout = "2s"
touch_interval = "1s"

[throttle]
account_failures = 1
base_delay = "1m"

[log]
level = "debug"

[[rules]]
path = "/blocked"
allow = "deny"
`+reloadRules)
	s.hup()

	var reloaded map[string]any
	var restart []string
	for _, r := range s.logRecords() {
		switch r["msg"] {
		case "config reloaded":
			reloaded = r
		case "setting changed but needs a restart":
			restart = append(restart, fmt.Sprint(r["key"]))
			if r["level"] != "warn" {
				t.Errorf("restart notice at level %v, want warn", r["level"])
			}
		}
	}
	if n := s.countLog("event", "reload_failed"); n != 0 {
		t.Fatalf("reload failed:\n%s", s.logs)
	}
	if !slices.Equal(restart, []string{"listen"}) {
		t.Errorf("restart warnings name %q, want [listen]", restart)
	}
	applied := fmt.Sprint(reloaded["applied"])
	for _, k := range []string{"login_title", "session.idle_timeout", "session.touch_interval", "throttle.account_failures", "throttle.base_delay", "log.level", "rules"} {
		if !strings.Contains(applied, k) {
			t.Errorf("config reloaded lists applied %s, want %s in it", applied, k)
		}
	}

	// Still on the old address (listen needs a restart), with the new settings.
	if got := s.verifyPath("/blocked/x", a); got != http.StatusForbidden {
		t.Errorf("new deny rule: got %d, want 403", got)
	}
	if got := s.verifyPath("/x", a); got != http.StatusOK {
		t.Errorf("alice on /x: got %d, want 200", got)
	}
	// The line reaches the test through a pipe after the answer: wait for it.
	for deadline := time.Now().Add(5 * time.Second); s.countLog("msg", "access allowed") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("no debug line after log.level = debug")
			break
		}
	}
	if body, _ := s.page("/authd/login", ""); !strings.Contains(body, "Reloaded portal") {
		t.Errorf("login page does not show the new title")
	}
	s.login("bob", "wrong password 1", "/")
	if c, _ := s.login("bob", pw, "/"); c != "" {
		t.Errorf("bob logged in right after a failure under account_failures = 1, base_delay = 1m")
	}
	time.Sleep(2500 * time.Millisecond)
	if got := s.verifyPath("/x", a); got != http.StatusUnauthorized {
		t.Errorf("alice idle 2.5s under idle_timeout = 2s: got %d, want 401", got)
	}
}

// TestGroupLosesLastMember: taking the last member out of a group a rule
// names neither stops a reload nor check-config nor a start; both warn,
// naming the rule, and the rule admits nobody.
func TestGroupLosesLastMember(t *testing.T) {
	s := newStack(t, "")
	const pw = "long enough pw 1"
	s.mustCLI(pw+"\n", "user", "add", "-groups", "admins", "alice")
	s.writeConfig(s.addr, reloadRules)
	s.start()
	a, _ := s.login("alice", pw, "/")
	if got := s.verifyPath("/admin/x", a); got != http.StatusOK {
		t.Fatalf("alice on /admin before: got %d, want 200", got)
	}

	s.mustCLI("", "user", "set", "-groups", "staff", "alice")
	s.hup()
	if n := s.countLog("event", "reload_failed"); n != 0 {
		t.Fatalf("reload failed after the group lost its last member:\n%s", s.logs)
	}
	warned := false
	for _, r := range s.logRecords() {
		if w, _ := r["warning"].(string); r["level"] == "warn" && strings.HasPrefix(w, `rules[0].groups[0]: no user is in group "admins"`) {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning naming rules[0].groups[0] in the log:\n%s", s.logs)
	}
	a, _ = s.login("alice", pw, "/")
	if got := s.verifyPath("/admin/x", a); got != http.StatusForbidden {
		t.Errorf("alice on /admin after: got %d, want 403", got)
	}
	if got := s.verifyPath("/x", a); got != http.StatusOK {
		t.Errorf("alice on /x after: got %d, want 200", got)
	}

	out, errs, code := s.cli("", "check-config")
	if code != 0 || !strings.Contains(out, "ok") || !strings.Contains(errs, `warning: rules[0].groups[0]: no user is in group "admins"`) {
		t.Errorf("check-config: exit %d, stdout %q, stderr %q; want exit 0, ok, and the warning on stderr", code, out, errs)
	}
	s.stop(syscall.SIGTERM)
	s.start() // and it starts
}
