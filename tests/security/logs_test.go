package security

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func canary(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// TestLogsHoldNoSecrets covers "Passwords, cookies, tokens, secrets and Redis passwords never appear
// in any log at any level" and "One JSON record per event, user input escaped and length-capped, in
// fields only" and "Every login success and failure, throttle, logout, revocation, access denial and
// reload is logged with UTC time, trusted client IP and canonical username". authd runs at debug
// level; every secret the run handles is a canary searched for in authd's whole log afterwards.
func TestLogsHoldNoSecrets(t *testing.T) {
	redisPW := canary("CANARYredis")
	t.Setenv("AUTHD_SEC_REDIS_PW", redisPW)
	s := newStack(t, stackOptions{tables: throttleTables + "\n[redis]\npassword_env = \"AUTHD_SEC_REDIS_PW\"\n"})
	var secrets []string
	keep := func(what string, v ...string) {
		for _, x := range v {
			if len(x) < 8 {
				t.Fatalf("%s: canary %q too short to search for", what, x)
			}
			secrets = append(secrets, what+"\x00"+x)
		}
	}
	keep("redis password", redisPW)
	const from = "127.0.0.77"

	// Passwords: wrong ones, an unknown user's, new ones set through the CLI, a right one.
	wrong, unknown, carolPW, carolPW2 := canary("CANARYwrong"), canary("CANARYunknown"), canary("CANARYnew"), canary("CANARYchanged")
	keep("password", wrong, unknown, carolPW, carolPW2, adaPassword, rootPassword, disPassword)
	s.loginAs(t, "ada", wrong, from)
	s.loginAs(t, "nobody", unknown, from)
	s.loginAs(t, "dis", disPassword, from)
	s.mustCLI(t, carolPW+"\n", "user", "add", "carol")
	waitFor(t, "carol", func() bool { return usersHas(t, s, "carol") })
	var carol string
	waitFor(t, "carol's login", func() bool {
		r := s.loginAs(t, "carol", carolPW, from)
		carol = setCookie(r.Header, cookieName)
		return carol != ""
	})
	s.mustCLI(t, carolPW2+"\n", "user", "passwd", "carol")

	// Cookies: real sessions, pre-sessions and CSRF tokens, and planted garbage.
	ada := s.login(t, "ada", adaPassword)
	pre, csrf, _ := s.loginForm(t, "")
	planted := canary("CANARYcookie")
	planted += strings.Repeat("A", 43-len(planted))
	keep("cookie", ada, carol, pre, csrf, planted)
	s.do(t, req{target: "/app/x", cookie: session(ada), from: from})
	s.do(t, req{target: "/app/x", cookie: session(planted), from: from})
	s.do(t, req{target: "/admin/x", cookie: session(ada), from: from})
	s.do(t, req{target: "/app/x", cookie: session(ada) + "; " + session(planted), from: from})
	s.do(t, req{target: "/app/x", cookie: cookieName + "=" + planted + "x", from: from})

	// API tokens and signing secrets, good and bad.
	token := strings.TrimSpace(s.cliOut(t, "", "token", "create", "-user", "ada", "-name", "ci"))
	keyLine := strings.Fields(s.cliOut(t, "", "key", "create", "-user", "ada", "-name", "signer"))
	if token == "" || len(keyLine) != 2 {
		t.Fatalf("token create printed %q, key create %q", token, keyLine)
	}
	keyID, keySecret := keyLine[0], keyLine[1]
	badToken := canary("authd_tok_0000000000000000_CANARY")
	keep("token", token, badToken, keySecret)
	secretFile := filepath.Join(s.dir, "key.secret")
	must(t, os.WriteFile(secretFile, []byte(keySecret+"\n"), 0o600))
	waitFor(t, "token accepted", func() bool {
		return s.do(t, req{target: "/app/x", header: http.Header{"Authorization": {"Bearer " + token}}, from: from}).App != nil
	})
	s.do(t, req{target: "/app/x", header: http.Header{"Authorization": {"Bearer " + badToken}}, from: from})
	s.do(t, req{target: "/app/x", header: http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("ada:"+wrong))}}, from: from})
	out, err := exec.Command(s.bin, "sign", "-key", keyID, "-secret-file", secretFile, s.origin()+"/app/signed").Output()
	must(t, err)
	signed := strings.TrimSpace(string(out))
	name, value, ok := strings.Cut(signed, ": ")
	if !ok {
		t.Fatalf("sign printed %q", signed)
	}
	s.do(t, req{target: "/app/signed", header: http.Header{name: {value}}, from: from})
	s.do(t, req{target: "/app/signed", header: http.Header{name: {value}}, from: from}) // a replay
	s.do(t, req{target: "/app/other", header: http.Header{name: {value}}, from: from})  // another path
	s.do(t, req{target: "/app/x", header: http.Header{"Authorization": {"AUTHD2-HMAC-SHA256 KeyId=" + keyID + ", Signature=" + keySecret}}, from: from})

	// Throttle, logout, revocation, reload; hostile user input.
	for i := range 8 {
		s.loginAs(t, fmt.Sprintf("spray%d", i), wrong, "127.0.0.78")
	}
	s.loginAs(t, "root", wrong, "127.0.0.78")
	hostile := "evil\n{\"level\":\"error\",\"msg\":\"forged\"}\u2028" + strings.Repeat("x", 3000)
	s.loginAs(t, hostile, wrong, from)
	s.do(t, req{target: "/app/" + url.PathEscape(hostile), from: from})
	r := s.do(t, req{target: "/authd/logout", cookie: session(ada)})
	lt := csrfRE.FindStringSubmatch(r.Body)
	s.do(t, req{method: "POST", target: "/authd/logout", cookie: session(ada), from: from, header: http.Header{"Origin": {s.origin()}}, form: url.Values{"csrf": {lt[1]}}})
	s.mustCLI(t, "", "session", "revoke", "-user", "carol")
	s.proc("authd").signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	s.proc("authd").stop()

	secret, err := os.ReadFile(filepath.Join(s.dataDir, "secret"))
	must(t, err)
	keep("CSRF secret", hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret),
		base64.RawStdEncoding.EncodeToString(secret))

	log := s.authdLog(t)
	for _, sec := range secrets {
		what, v, _ := strings.Cut(sec, "\x00")
		if strings.Contains(log, v) || len(v) > 24 && strings.Contains(log, v[:24]) {
			t.Errorf("a %s appears in authd's log: %.16q…", what, v)
		}
	}

	// One JSON record per line, UTC times, fixed messages, capped fields.
	events := map[string][]map[string]any{}
	for i, line := range strings.Split(strings.TrimRight(log, "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line %d is not one JSON record: %.120q", i+1, line)
			continue
		}
		ts, _ := rec["time"].(string)
		if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || tm.Location() != time.UTC {
			t.Errorf("log line %d: time %q is not UTC RFC 3339", i+1, ts)
		}
		msg, _ := rec["msg"].(string)
		if strings.Contains(msg, "evil") || strings.Contains(msg, "forged") || strings.Contains(msg, "xxxx") {
			t.Errorf("log line %d: user input in the message: %.80q", i+1, msg)
		}
		for k, v := range rec {
			if sv, ok := v.(string); ok && len(sv) > 600 && k != "error" {
				t.Errorf("log line %d: field %s is %d bytes long, want it capped", i+1, k, len(sv))
			}
		}
		if ev, _ := rec["event"].(string); ev != "" {
			events[ev] = append(events[ev], rec)
		}
	}
	has := func(event string, match func(map[string]any) bool) {
		t.Helper()
		for _, rec := range events[event] {
			if match(rec) {
				return
			}
		}
		t.Errorf("no %s record with the expected fields; have %d %s records: %v", event, len(events[event]), event, events[event])
	}
	field := func(rec map[string]any, k string) string { v, _ := rec[k].(string); return v }
	is := func(kv ...string) func(map[string]any) bool {
		return func(rec map[string]any) bool {
			for i := 0; i < len(kv); i += 2 {
				if field(rec, kv[i]) != kv[i+1] {
					return false
				}
			}
			return true
		}
	}
	has("login_succeeded", is("user", "carol", "client_ip", from))
	has("login_failed", is("user", "ada", "client_ip", from, "reason", "bad_password"))
	has("login_failed", is("user", "nobody", "client_ip", from, "reason", "unknown_user"))
	has("login_failed", is("user", "dis", "client_ip", from, "reason", "disabled"))
	has("login_failed", is("user", "root", "client_ip", "127.0.0.78", "reason", "throttled_ip"))
	has("logout", is("user", "ada", "client_ip", from))
	has("access_denied", is("user", "ada", "client_ip", from))
	has("sessions_revoked", is("user", "carol"))
	has("reload", func(map[string]any) bool { return true })
}
