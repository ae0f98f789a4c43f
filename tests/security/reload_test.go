package security

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authd/authd/tests/internal/authdtest"
)

// logRecords parses authd's JSON log.
func (s *stack) logRecords(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(s.authdLog(t), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

func (s *stack) countLog(t testing.TB, field, value string) int {
	t.Helper()
	n := 0
	for _, r := range s.logRecords(t) {
		if r[field] == value {
			n++
		}
	}
	return n
}

// hup sends SIGHUP and waits until the log shows the reload's outcome.
func (s *stack) hup(t testing.TB) {
	t.Helper()
	outcomes := func() int { return s.countLog(t, "msg", "reloaded") + s.countLog(t, "event", "reload_failed") }
	before := outcomes()
	s.proc("authd").signal(syscall.SIGHUP)
	waitFor(t, "the reload's outcome in the log", func() bool { return outcomes() > before })
}

// TestReloadAppliesSettings covers "SIGHUP applies every setting that can change safely and logs a
// warning naming each changed setting that needs a restart; nothing changes silently", through
// nginx: a shorter idle timeout ends an idle session, a stricter throttle holds the next login,
// a new rule denies, and a new listen address is named in a warning while authd serves on.
func TestReloadAppliesSettings(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	ada := session(s.login(t, "ada", adaPassword))
	if n := s.countLog(t, "msg", "access allowed"); n != 0 {
		t.Fatalf("debug lines at level info: %d", n)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	newPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	conf := readFile(t, s.conf)
	conf = regexp.MustCompile(`(?m)^listen = .*$`).ReplaceAllString(conf, `listen = "127.0.0.1:`+strconv.Itoa(newPort)+`"`)
	conf = strings.Replace(conf, `level = "info"`, `level = "debug"`, 1)
	conf = strings.Replace(conf, "[log]", `[session]
idle_timeout = "2s"
touch_interval = "1s"

[throttle]
account_failures = 1
base_delay = "1m"

[log]`, 1)
	conf = strings.Replace(conf, "[[rules]]", "[[rules]]\npath = \"/app/blocked\"\nallow = \"deny\"\n\n[[rules]]", 1)
	must(t, os.WriteFile(s.conf, []byte(conf), 0o600))
	s.hup(t)
	if n := s.countLog(t, "event", "reload_failed"); n != 0 {
		t.Fatalf("reload failed:\n%s", s.authdLog(t))
	}
	var restart []string
	for _, r := range s.logRecords(t) {
		if r["msg"] == "setting changed but needs a restart" && r["level"] == "warn" {
			restart = append(restart, fmt.Sprint(r["key"]))
		}
	}
	if strings.Join(restart, ",") != "listen" {
		t.Errorf("restart warnings name %q, want [listen]", restart)
	}

	if r := s.do(t, req{target: "/app/blocked/x", cookie: ada}); r.Status != http.StatusForbidden {
		t.Errorf("new deny rule: got %s, want 403", r)
	}
	if r := s.do(t, req{target: "/app/x", cookie: ada}); r.App == nil {
		t.Errorf("ada on /app after the reload, on the old port: got %s, want the app", r)
	}
	// The line reaches the log file after the answer: wait for it.
	waitFor(t, "a debug line after log.level = debug", func() bool { return s.countLog(t, "msg", "access allowed") > 0 })
	s.loginAs(t, "root", "not the password", "")
	if r := s.loginAs(t, "root", rootPassword, ""); r.Status == http.StatusSeeOther {
		t.Errorf("root logged in right after a failure under account_failures = 1, base_delay = 1m")
	}
	time.Sleep(3 * time.Second)
	if s.alive(t, ada) {
		t.Errorf("ada's session alive after 3s idle under idle_timeout = 2s")
	}
}

// TestGroupNobodyHoldsWarns covers "A change to users never stops authd from starting or
// reloading: removing the last member of a group that a rule names makes that rule match nobody,
// with a warning from check-config and the reload log."
func TestGroupNobodyHoldsWarns(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	root := session(s.login(t, "root", rootPassword))
	if r := s.do(t, req{target: "/admin/x", cookie: root}); r.App == nil {
		t.Fatalf("control: root on /admin got %s", r)
	}
	s.mustCLI(t, "", "user", "set", "-groups", "staff", "root") // root was the last of the admins
	s.hup(t)
	if n := s.countLog(t, "event", "reload_failed"); n != 0 {
		t.Fatalf("reload failed after the group lost its last member:\n%s", s.authdLog(t))
	}
	const warning = `rules[1].groups[0]: no user is in group "admins"`
	warned := 0
	for _, r := range s.logRecords(t) {
		if w, _ := r["warning"].(string); r["level"] == "warn" && strings.HasPrefix(w, warning) {
			warned++
		}
	}
	if warned == 0 {
		t.Errorf("no warning %q in the log", warning)
	}
	for name, c := range map[string]string{"root": root, "ada": session(s.login(t, "ada", adaPassword))} {
		if r := s.do(t, req{target: "/admin/x", cookie: c}); r.Status != http.StatusForbidden {
			t.Errorf("%s on /admin: got %s, want 403", name, r)
		}
	}
	cmd := exec.Command(s.bin, "check-config", "-config", s.conf)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stderr.String(), "warning: "+warning) {
		t.Errorf("check-config: %v, stdout %q, stderr %q; want exit 0 and the warning on stderr", err, stdout.String(), stderr.String())
	}
	s.proc("authd").stop()
	must(t, s.startAuthd("authd"))
	if r := s.do(t, req{target: "/admin/x", cookie: root}); r.Status != http.StatusForbidden {
		t.Errorf("root on /admin after a restart: got %s, want 403", r)
	}
}

// TestRevokeTakesAnySpelling covers "session revoke -user NAME takes the name in any spelling login
// accepts; revoking an existing user's sessions never silently reports 0".
func TestRevokeTakesAnySpelling(t *testing.T) {
	s := newStack(t, stackOptions{})
	a1, a2 := session(s.login(t, "ada", adaPassword)), session(s.login(t, "ADA", adaPassword))
	out := s.mustCLI(t, "", "session", "revoke", "-user", " Ada ")
	if !strings.Contains(out, "revoked 2 sessions for ada") {
		t.Errorf("revoke -user ' Ada ': got %q, want 2 sessions of ada", out)
	}
	for _, c := range []string{a1, a2} {
		if s.alive(t, c) {
			t.Errorf("ada's session alive after revoke -user ' Ada '")
		}
	}
	if out, err := s.cli("", "session", "revoke", "-user", "adda"); err == nil || !strings.Contains(out, `no user "adda"`) {
		t.Errorf("revoke of an unknown user: %v %q, want an error naming it", err, out)
	}
}

// TestVersionStamped covers "authd version prints the real version and commit; /metrics carries
// it": the suites' build stamps the checkout's commit.
func TestVersionStamped(t *testing.T) {
	s := sharedStack(t)
	commit := authdtest.Commit()
	if commit == "" {
		t.Skip("not a git checkout")
	}
	out, err := runAuthd(s.bin, "version")
	if err != nil || !strings.Contains(out, "(commit "+commit+",") {
		t.Errorf("authd version: %v %q, want commit %s", err, out, commit)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.authdPort))
	must(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	must(t, err)
	if !strings.Contains(string(b), `commit="`+commit+`"`) {
		t.Errorf("/metrics lacks authd_build_info with commit %s", commit)
	}
}
