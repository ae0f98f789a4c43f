package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/authd/authd/authd/internal/server"
	"github.com/authd/authd/authd/internal/session"
)

// TestSessionRevokeSpellings: session list|revoke -user take any spelling
// login accepts, through a running authd's admin socket and offline; an
// unknown name is an error, never a quiet "0".
func TestSessionRevokeSpellings(t *testing.T) {
	s := newStack(t, "")
	const pw = "long enough pw 1"
	s.mustCLI(pw+"\n", "user", "add", "alice")
	s.mustCLI(pw+"\n", "user", "add", "bob")
	s.start()
	a1, _ := s.login("alice", pw, "/")
	a2, _ := s.login("Alice", pw, "/")
	b, _ := s.login("bob", pw, "/")
	if a1 == "" || a2 == "" || b == "" {
		t.Fatal("login failed")
	}

	for _, tt := range []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"list in another spelling", []string{"session", "list", "-user", " ALICE "}, 0, "alice"},
		{"list unknown", []string{"session", "list", "-user", "alcie"}, 1, `no user "alcie"`},
		{"revoke unknown", []string{"session", "revoke", "-user", "alcie"}, 1, `no user "alcie"`},
		{"revoke impossible name", []string{"session", "revoke", "-user", "al ice"}, 1, "-user: username"},
		{"revoke in another spelling", []string{"session", "revoke", "-user", "ALICE"}, 0, "revoked 2 sessions for alice"},
		{"revoke again", []string{"session", "revoke", "-user", "alice"}, 0, "revoked 0 sessions for alice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := s.cli("", tt.args...)
			if code != tt.code || !strings.Contains(out+errs, tt.contains) {
				t.Errorf("exit %d, output %q; want exit %d containing %q", code, out+errs, tt.code, tt.contains)
			}
		})
	}
	for _, c := range []string{a1, a2} {
		if got := s.verify(c).StatusCode; got != http.StatusUnauthorized {
			t.Errorf("alice's session after revoke: got %d, want 401", got)
		}
	}
	if got := s.verify(b).StatusCode; got != http.StatusOK {
		t.Errorf("bob's session: got %d, want 200", got)
	}

	s.stop(syscall.SIGTERM)
	if out := s.mustCLI("", "session", "revoke", "-user", "Bob"); !strings.Contains(out, "revoked 1 sessions for bob") {
		t.Errorf("offline revoke -user Bob: got %q, want 1 session of bob", out)
	}
	if _, errs, code := s.cli("", "session", "revoke", "-user", "ghost"); code != 1 || !strings.Contains(errs, `no user "ghost"`) {
		t.Errorf("offline revoke of an unknown user: exit %d %q, want exit 1 naming the user", code, errs)
	}
}

// TestSessionRevokeSpellingsRedis: the same with the Redis store, where the
// CLI talks to Redis directly; and a reloaded throttle applies there too.
func TestSessionRevokeSpellingsRedis(t *testing.T) {
	rd := startTestRedis(t)
	s := redisStack(t, rd)
	const pw = "long enough pw 1"
	s.mustCLI(pw+"\n", "user", "add", "alice")
	s.start()
	a1, _ := s.login("alice", pw, "/")
	a2, _ := s.login("ALICE", pw, "/")
	if out := s.mustCLI("", "session", "revoke", "-user", " Alice "); !strings.Contains(out, "revoked 2 sessions for alice") {
		t.Errorf("revoke -user ' Alice ': got %q, want 2 sessions of alice", out)
	}
	for _, c := range []string{a1, a2} {
		if got := s.verify(c).StatusCode; got != http.StatusUnauthorized {
			t.Errorf("alice's session after revoke: got %d, want 401", got)
		}
	}
	if _, errs, code := s.cli("", "session", "revoke", "-user", "alcie"); code != 1 || !strings.Contains(errs, `no user "alcie" in redis`) {
		t.Errorf("revoke of an unknown user: exit %d %q, want exit 1 naming the user", code, errs)
	}

	s.writeConfig(s.addr, "store = \"redis\"\n[redis]\naddrs = [\""+rd.addr()+"\"]\nkey_prefix = \"story:\"\n[throttle]\naccount_failures = 1\nbase_delay = \"1m\"\n")
	s.hup()
	s.login("alice", "wrong password 1", "/")
	if c, _ := s.login("alice", pw, "/"); c != "" {
		t.Errorf("alice logged in right after a failure under a reloaded account_failures = 1, base_delay = 1m")
	}
}

// TestSessionListUserAgentIsInert: the user agent is the browser's to choose
// and goes to an operator's terminal in `authd session list`. Terminal
// controls (C1 CSI), bidi overrides and tabs (which would shift the
// columns) are printed as U+FFFD; ordinary text is kept.
func TestSessionListUserAgentIsInert(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	list := []server.SessionInfo{{ID: "abcd", User: "ada", Created: t0, LastSeen: t0, Expires: t0, IP: "192.0.2.1",
		UserAgent: "Mozilla/5.0 (X11) \u009b31mred\u202egnp.exe\tx"}}
	var b strings.Builder
	if err := printSessions(list, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, r := range strings.TrimSuffix(out, "\n") {
		if r != ' ' && !unicode.IsGraphic(r) || r == '\u202e' {
			t.Errorf("listing holds %U: %q", r, out)
		}
	}
	if !strings.Contains(out, "Mozilla/5.0 (X11) ") || len(strings.Fields(out)) != 9 {
		t.Errorf("listing %q: want the agent's text kept, in one column", out)
	}
}

// TestSessionHeaderOnly: a header-only identity (no user record) shows in
// "session list" with its provider, and "session revoke -user" ends its
// sessions; a name with neither record nor session is still an error.
func TestSessionHeaderOnly(t *testing.T) {
	s := newStack(t, "")
	s.mustCLI("long enough pw 1\n", "user", "add", "alice")
	st, err := session.OpenEmbedded(filepath.Join(s.dir, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	_, k, _ := session.New()
	if err := st.Create(context.Background(), k, session.Session{User: "dora", Created: now, LastSeen: now,
		Expires: now.Add(time.Hour), Idle: time.Hour, IP: "192.0.2.4",
		External: &session.External{Source: "oidc:partners", Groups: []string{"staff"}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if out := s.mustCLI("", "session", "list"); !strings.Contains(out, "dora (oidc:partners, header-only)") {
		t.Errorf("session list: got %q, want dora's session marked header-only from oidc:partners", out)
	}
	if out := s.mustCLI("", "session", "list", "-user", "Dora"); !strings.Contains(out, "dora (oidc:partners") {
		t.Errorf("session list -user Dora: got %q, want dora's session", out)
	}
	if out := s.mustCLI("", "session", "revoke", "-user", "dora"); !strings.Contains(out, "revoked 1 sessions for dora") {
		t.Errorf("session revoke -user dora: got %q, want 1 session", out)
	}
	for _, args := range [][]string{{"session", "revoke", "-user", "dora"}, {"session", "list", "-user", "dora"}} {
		if _, errs, code := s.cli("", args...); code != 1 || !strings.Contains(errs, `no user "dora"`) {
			t.Errorf("%v once dora has no session: exit %d %q, want exit 1 naming the user", args, code, errs)
		}
	}
}
