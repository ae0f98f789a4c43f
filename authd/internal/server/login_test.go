package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authd/authd/authd/internal/hasher"
	"github.com/authd/authd/authd/internal/users"
)

func TestLoginForm(t *testing.T) {
	h := newHarness(t, nil, nil)
	w := h.do(req{target: "/authd/login?rd=" + url.QueryEscape(`/app/"><script>x</script>`)})
	body := w.Body.String()
	for _, want := range []string{
		`<label for="username">`, `<label for="password">`, `autocomplete="username"`, `autocomplete="current-password"`,
		`name="remember"`, `name="csrf"`, `name="viewport"`, `action="/authd/login"`, `href="/authd/static/style.css"`,
		`value="/app/&#34;&gt;&lt;script&gt;x&lt;/script&gt;"`, "<title>Sign in</title>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("form lacks %s", want)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Error("return path echoed unescaped")
	}
	for _, hd := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if w.Header().Get(hd) == "" {
			t.Errorf("missing %s", hd)
		}
	}
	// With "no-referrer" browsers post the form with "Origin: null", which the CSRF check refuses.
	if got := w.Header().Get("Referrer-Policy"); got != "same-origin" {
		t.Errorf("Referrer-Policy = %q, want same-origin", got)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestStaticCSS(t *testing.T) {
	h := newHarness(t, nil, nil)
	w := h.do(req{target: "/authd/static/style.css"})
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") {
		t.Errorf("got %d %q, want 200 text/css", w.Code, w.Header().Get("Content-Type"))
	}
	if w := h.do(req{target: "/authd/static/"}); w.Code != 404 {
		t.Errorf("directory listing: got %d, want 404", w.Code)
	}
}

func TestLoginSuccess(t *testing.T) {
	h := newHarness(t, nil, nil)
	w := h.postLogin("alice", testPassword, "/app/page?x=1", "203.0.113.7", nil)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("got %d, want 303", w.Code)
	}
	if got := w.Header().Get("Location"); got != "/app/page?x=1" {
		t.Errorf("Location = %q, want /app/page?x=1", got)
	}
	var sc *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-authd_session" {
			sc = c
		}
	}
	if sc == nil {
		t.Fatal("no session cookie")
	}
	if !sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.Domain != "" || sc.MaxAge != 0 {
		t.Errorf("cookie attributes wrong: %+v", sc)
	}
	if len(sc.Value) != 43 {
		t.Errorf("cookie value length %d, want 43 (256 bits)", len(sc.Value))
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestRememberMe(t *testing.T) {
	h := newHarness(t, nil, nil)
	pre, tok := h.loginForm("/")
	w := h.do(req{method: "POST", target: "/authd/login", headers: map[string]string{"Cookie": pre},
		form: url.Values{"username": {"bob"}, "password": {testPassword}, "csrf": {tok}, "remember": {"1"}}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("got %d, want 303", w.Code)
	}
	c := sessionCookie(t, w)
	for _, ck := range w.Result().Cookies() {
		if ck.Name == "__Host-authd_session" && ck.MaxAge != int((30*24*time.Hour).Seconds()) {
			t.Errorf("Max-Age = %d, want 30 days", ck.MaxAge)
		}
	}
	h.clock.add(13 * time.Hour) // past a normal session's lifetime and idle timeout
	if w := h.verify("/", c); w.Code != 200 {
		t.Errorf("remembered session after 13h: got %d, want 200", w.Code)
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	h := newHarness(t, nil, nil)
	tokenRE := regexp.MustCompile(`value="[^"]*"`)
	shape := func(w *http.Response, body string) string {
		return w.Status + "|" + tokenRE.ReplaceAllString(body, "")
	}
	var first string
	for i, c := range []struct{ user, pw string }{
		{"alice", "wrong password"},
		{"nosuchuser", "wrong password"},
		{"mallory", testPassword}, // disabled
		{"bad name!", "whatever"},
	} {
		w := h.postLogin(c.user, c.pw, "/", "203.0.113.50", nil)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("%s: got %d, want 401", c.user, w.Code)
		}
		if !strings.Contains(w.Body.String(), "Incorrect username or password.") {
			t.Errorf("%s: generic message missing", c.user)
		}
		if sc := w.Header()["Set-Cookie"]; strings.Contains(strings.Join(sc, ";"), "authd_session=") {
			t.Errorf("%s: failure set a session cookie", c.user)
		}
		s := shape(w.Result(), w.Body.String())
		if i == 0 {
			first = s
		} else if s != first {
			t.Errorf("%s: response differs from a wrong password:\n%s\nvs\n%s", c.user, s, first)
		}
	}
}

func TestLoginRefusedBeforePasswordWork(t *testing.T) {
	h := newHarness(t, nil, nil)
	pre, tok := h.loginForm("/")
	good := url.Values{"username": {"alice"}, "password": {testPassword}, "csrf": {tok}}
	tests := []struct {
		name    string
		headers map[string]string
		form    url.Values
		ctype   string
		want    int
	}{
		{"no csrf token", map[string]string{"Cookie": pre}, url.Values{"username": {"alice"}, "password": {testPassword}}, "", 403},
		{"token without pre-session", nil, good, "", 403},
		{"token for another pre-session", map[string]string{"Cookie": "__Host-authd_pre=" + strings.Repeat("B", 43)}, good, "", 403},
		{"cross-site origin", map[string]string{"Cookie": pre, "Origin": "https://evil.example"}, good, "", 403},
		{"null origin", map[string]string{"Cookie": pre, "Origin": "null"}, good, "", 403},
		{"cross-site fetch", map[string]string{"Cookie": pre, "Sec-Fetch-Site": "cross-site"}, good, "", 403},
		{"same-site fetch", map[string]string{"Cookie": pre, "Sec-Fetch-Site": "same-site"}, good, "", 403},
		{"json body", map[string]string{"Cookie": pre}, good, "application/json", 415},
		{"multipart body", map[string]string{"Cookie": pre}, good, "multipart/form-data; boundary=x", 415},
		{"oversized body", map[string]string{"Cookie": pre}, url.Values{"username": {"alice"}, "password": {strings.Repeat("x", 20000)}, "csrf": {tok}}, "", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req{method: "POST", target: "/authd/login", headers: tt.headers, form: tt.form}
			if tt.ctype != "" {
				if r.headers == nil {
					r.headers = map[string]string{}
				}
				r.headers["Content-Type"] = tt.ctype
			}
			w := h.do(r)
			if w.Code != tt.want {
				t.Errorf("got %d, want %d", w.Code, tt.want)
			}
			if strings.Contains(strings.Join(w.Header()["Set-Cookie"], ";"), "authd_session=") {
				t.Error("refused login set a session cookie")
			}
		})
	}
}

func TestLoginGetDoesNotLogIn(t *testing.T) {
	h := newHarness(t, nil, nil)
	w := h.do(req{target: "/authd/login?username=alice&password=" + url.QueryEscape(testPassword)})
	if strings.Contains(strings.Join(w.Header()["Set-Cookie"], ";"), "authd_session=") {
		t.Error("GET login with credentials in the query set a session")
	}
}

func TestSessionFixation(t *testing.T) {
	h := newHarness(t, nil, nil)
	planted := "__Host-authd_session=" + strings.Repeat("Q", 43)
	pre, tok := h.loginForm("/")
	w := h.do(req{method: "POST", target: "/authd/login", headers: map[string]string{"Cookie": pre + "; " + planted},
		form: url.Values{"username": {"alice"}, "password": {testPassword}, "csrf": {tok}}})
	got := sessionCookie(t, w)
	if got == planted {
		t.Fatal("login kept the planted session id")
	}
	if w := h.verify("/", planted); w.Code != 401 {
		t.Errorf("planted cookie after login: got %d, want 401", w.Code)
	}
}

func TestAlreadyLoggedInRedirects(t *testing.T) {
	h := newHarness(t, nil, nil)
	c := h.login("bob")
	tests := []struct{ rd, want string }{
		{"/app/", "/app/"},
		{"//evil.example/", "/"},
		{"https://other.example.com/x", "https://other.example.com/x"},
	}
	for _, tt := range tests {
		w := h.do(req{target: "/authd/login?rd=" + url.QueryEscape(tt.rd), headers: map[string]string{"Cookie": c}})
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tt.want {
			t.Errorf("rd %q: got %d %q, want 303 %q", tt.rd, w.Code, w.Header().Get("Location"), tt.want)
		}
	}
}

func TestLogout(t *testing.T) {
	h := newHarness(t, nil, nil)
	c := h.login("bob")
	w := h.do(req{target: "/authd/logout", headers: map[string]string{"Cookie": c}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "Sign out") {
		t.Fatalf("confirm page: got %d", w.Code)
	}
	if v := h.verify("/", c); v.Code != 200 {
		t.Fatalf("GET logout ended the session: got %d", v.Code)
	}
	tok := csrfRE.FindStringSubmatch(w.Body.String())[1]

	if w := h.do(req{method: "POST", target: "/authd/logout", headers: map[string]string{"Cookie": c}, form: url.Values{"csrf": {"nope"}}}); w.Code != 403 {
		t.Errorf("bad token: got %d, want 403", w.Code)
	}
	if w := h.do(req{method: "POST", target: "/authd/logout", headers: map[string]string{"Cookie": c, "Origin": "https://evil.example"}, form: url.Values{"csrf": {tok}}}); w.Code != 403 {
		t.Errorf("cross-site: got %d, want 403", w.Code)
	}
	w = h.do(req{method: "POST", target: "/authd/logout", headers: map[string]string{"Cookie": c}, form: url.Values{"csrf": {tok}}})
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/authd/login") {
		t.Fatalf("logout: got %d %q", w.Code, w.Header().Get("Location"))
	}
	if !strings.Contains(strings.Join(w.Header()["Set-Cookie"], ";"), "Max-Age=0") {
		t.Error("logout did not clear the cookie")
	}
	if v := h.verify("/", c); v.Code != 401 {
		t.Errorf("old cookie after logout: got %d, want 401", v.Code)
	}
}

func TestWhoami(t *testing.T) {
	h := newHarness(t, nil, nil)
	w := h.do(req{target: "/authd/whoami"})
	if w.Code != 401 || !strings.Contains(w.Body.String(), `"unauthenticated"`) {
		t.Errorf("anonymous: got %d %s", w.Code, w.Body)
	}
	w = h.do(req{target: "/authd/whoami", headers: map[string]string{"Cookie": h.login("alice")}})
	for _, want := range []string{`"user":"alice"`, `"groups":["admin","staff"]`, `"name":"Alice Liddell"`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("whoami lacks %s: %s", want, w.Body)
		}
	}
}

func TestThrottling(t *testing.T) {
	h := newHarness(t, nil, nil) // 3 free failures per account and IP
	attacker, victim := "203.0.113.66", "198.51.100.20"
	for i := 0; i < 3; i++ {
		if w := h.postLogin("bob", "wrong password", "/", attacker, nil); w.Code != 401 {
			t.Fatalf("failure %d: got %d, want 401", i, w.Code)
		}
	}
	w := h.postLogin("bob", testPassword, "/", attacker, nil)
	if w.Code != 401 {
		t.Errorf("throttled account with the right password: got %d, want 401", w.Code)
	}
	if w := h.postLogin("bob", testPassword, "/", victim, nil); w.Code != http.StatusSeeOther {
		t.Errorf("same account from another IP: got %d, want 303", w.Code)
	}
	h.clock.add(2 * time.Second)
	if w := h.postLogin("bob", testPassword, "/", attacker, nil); w.Code != http.StatusSeeOther {
		t.Errorf("after the delay: got %d, want 303", w.Code)
	}
}

func TestThrottlingSpray(t *testing.T) {
	h := newHarness(t, nil, nil) // 10 free failures per IP
	ip := "203.0.113.99"
	for i := 0; i < 10; i++ {
		h.postLogin("user"+string(rune('a'+i)), "wrong password", "/", ip, nil)
	}
	w := h.postLogin("alice", testPassword, "/", ip, nil)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("spraying IP: got %d, Retry-After %q; want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
}

// TestThrottlingUnknownAddress: failures from client addresses a trusted
// proxy could not name as one plain IP all count against one "unknown"
// bucket, never against the proxy's own address, so they neither escape the
// per-IP limit nor lock out clients on the proxy's host.
func TestThrottlingUnknownAddress(t *testing.T) {
	h := newHarness(t, nil, nil) // 10 free failures per IP
	bad := []string{"garbage", "203.0.113.5:443", "", "[2001:db8::1]", "fe80::1%eth0", "203.0.113.5,"}
	for i := 0; i < 10; i++ {
		h.postLogin("user"+string(rune('a'+i)), "wrong password", "/", bad[i%len(bad)], nil)
	}
	if w := h.postLogin("alice", testPassword, "/", "203.0.113.6:443", nil); w.Code != http.StatusTooManyRequests {
		t.Errorf("unknown address after 10 failures: got %d, want 429", w.Code)
	}
	if w := h.postLogin("alice", testPassword, "/", "127.0.0.1", nil); w.Code != http.StatusSeeOther {
		t.Errorf("client on the proxy's own address: got %d, want 303 (its bucket is not the unknown one)", w.Code)
	}
}

func TestBcryptUpgradedOnLogin(t *testing.T) {
	h := newHarness(t, nil, nil)
	bc := bcryptHash(t, "bcrypt password 1")
	h.editUsers(func(l []users.User) []users.User {
		return append(l, users.User{Name: "carol", Hash: bc, Generation: 9})
	})
	w := h.postLogin("carol", "bcrypt password 1", "/", "203.0.113.7", nil)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("bcrypt login: got %d, want 303", w.Code)
	}
	c := sessionCookie(t, w)
	u, _ := h.users.DB().Lookup("carol")
	if !strings.HasPrefix(u.Hash, "$argon2id$") {
		t.Errorf("hash not upgraded: %.10s…", u.Hash)
	}
	if w := h.verify("/", c); w.Code != 200 {
		t.Errorf("session from the upgrading login: got %d, want 200", w.Code)
	}
	long := strings.Repeat("p", 72)
	h.editUsers(func(l []users.User) []users.User {
		return append(l, users.User{Name: "dave", Hash: bcryptHash(t, long), Generation: 10})
	})
	if w := h.postLogin("dave", long+"extra", "/", "203.0.113.8", nil); w.Code != 401 {
		t.Errorf("password longer than 72 bytes matched its bcrypt prefix: got %d, want 401", w.Code)
	}
}

func TestRedirectValidator(t *testing.T) {
	h := newHarness(t, nil, nil)
	tests := []struct{ rd, want string }{
		{"/app/", "/app/"},
		{"/app/?a=1&b=%2F", "/app/?a=1&b=%2F"},
		{"https://app.example.com/x", "https://app.example.com/x"},
		{"https://app.example.com:443/x", "https://app.example.com:443/x"},
		{"https://other.example.com/y?q=1", "https://other.example.com/y?q=1"},
		{"", "/"},
		{"//evil.example", "/"},
		{"///evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"https:evil.example", "/"},
		{"https:/evil.example", "/"},
		{"http://app.example.com/x", "/"},
		{"https://app.example.com.evil.example/", "/"},
		{"https://evil.example/https://app.example.com", "/"},
		{"https://app.example.com@evil.example/", "/"},
		{"https://user:pw@app.example.com/", "/"},
		{"https://app.example.com:8443/", "/"},
		{"javascript:alert(1)", "/"},
		{"JaVaScRiPt:alert(1)", "/"},
		{"data:text/html,x", "/"},
		{"/app\r\nSet-Cookie: x=1", "/"},
		{"https://аpp.example.com/", "/"},
		{"app/relative", "/"},
		{"/authd/login?rd=/x", "/"},
		{"/authd/logout", "/"},
		{" /app", "/"},
		{"/" + strings.Repeat("a", 3000), "/"},
	}
	for _, tt := range tests {
		t.Run(tt.rd, func(t *testing.T) {
			if got := h.srv.cur.Load().safeRedirect(tt.rd, "/"); got != tt.want {
				t.Errorf("safeRedirect(%q) = %q, want %q", tt.rd, got, tt.want)
			}
		})
	}
}

func TestLoginOverloadAnswers503(t *testing.T) {
	h := newHarness(t, nil, func(o *Options) { o.MaxHashing = 1; o.MaxHashQueue = 0 })
	h.srv.cur.Load().gate.slots <- struct{}{} // all hashing slots busy
	defer func() { <-h.srv.cur.Load().gate.slots }()
	w := h.postLogin("alice", testPassword, "/", "203.0.113.7", nil)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("got %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
}

// TestLoginBeyondTheQueueIsRefusedBeforeTheForm: with every slot taken and the queue full, a
// login is refused before its form is read: even one with a forged CSRF token gets the 503 (not
// the 403 a read form would give), and nothing is counted against the account.
func TestLoginBeyondTheQueueIsRefusedBeforeTheForm(t *testing.T) {
	h := newHarness(t, nil, func(o *Options) { o.MaxHashing = 1; o.MaxHashQueue = 0 })
	h.srv.cur.Load().gate.slots <- struct{}{}
	pre, _ := h.loginForm("/")
	hd := map[string]string{"Cookie": pre, "Origin": "https://app.example.com", "Sec-Fetch-Site": "same-origin", "X-Forwarded-For": "203.0.113.9"}
	for range 5 {
		w := h.do(req{method: "POST", target: "/authd/login", headers: hd,
			form: url.Values{"username": {"alice"}, "password": {"guess"}, "rd": {"/"}, "csrf": {"forged"}}})
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("login beyond the queue: got %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
		}
	}
	<-h.srv.cur.Load().gate.slots
	// The account throttle allows 3 failures: none of the refused attempts counted.
	if w := h.postLogin("alice", testPassword, "/", "203.0.113.9", nil); w.Code != http.StatusSeeOther {
		t.Fatalf("login once the gate is free: got %d, want 303", w.Code)
	}
}

// unavailableHasher is a hashing child that cannot run anything.
type unavailableHasher struct{}

func (unavailableHasher) Verify(context.Context, string, string, users.Params, users.Limits) (bool, bool, error) {
	return false, false, fmt.Errorf("test: %w", hasher.ErrUnavailable)
}
func (unavailableHasher) Dummy(context.Context, string, users.Params) error {
	return fmt.Errorf("test: %w", hasher.ErrUnavailable)
}
func (unavailableHasher) Hash(context.Context, string, users.Params) (string, error) {
	return "", fmt.Errorf("test: %w", hasher.ErrUnavailable)
}

// TestLoginWithoutHasherIsBusy: when the hashing child cannot run a hash, a known user with the
// right password, a known user with a wrong one and an unknown user all get the same 503; none is
// let in and none is told "wrong password".
func TestLoginWithoutHasherIsBusy(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.srv.hash = unavailableHasher{}
	for i, tc := range []struct{ user, pw string }{{"alice", testPassword}, {"alice", "wrong"}, {"nobody", "wrong"}} {
		w := h.postLogin(tc.user, tc.pw, "/", fmt.Sprintf("203.0.113.%d", 20+i), nil)
		if w.Code != http.StatusServiceUnavailable || sessionCookieValue(w) != "" {
			t.Errorf("%s/%s: got %d (session cookie %q), want 503 and no session", tc.user, tc.pw, w.Code, sessionCookieValue(w))
		}
	}
}

func sessionCookieValue(w *httptest.ResponseRecorder) string {
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-authd_session" {
			return c.Value
		}
	}
	return ""
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, nil, func(o *Options) { o.Build = BuildInfo{Version: "v1.2.3", Commit: "abc123", Go: "go1.26.0"} })
	c := h.login("alice")
	h.verify("/", c)
	h.verify("/", "")
	h.postLogin("alice", "wrong password", "/", "203.0.113.1", nil)
	h.srv.ReloadDone(true)
	h.srv.ReloadDone(false)
	h.srv.ReloadDone(true)
	body := h.do(req{target: "/metrics"}).Body.String()
	// Prometheus sorts label names, so build_info reads commit, go, version.
	for _, want := range []string{
		`authd_verify_requests_total{code="200"} 1`, `authd_verify_requests_total{code="401"} 1`,
		`authd_verify_requests_total{code="403"} 0`,
		`authd_logins_total{outcome="success"} 1`, `authd_logins_total{outcome="bad_password"} 1`,
		`authd_logins_total{outcome="unknown_user"} 0`,
		`authd_sessions_active 1`, `authd_sessions_created_total 1`, `authd_verify_duration_seconds_count 2`,
		`authd_build_info{commit="abc123",go="go1.26.0",version="v1.2.3"} 1`,
		`authd_reloads_total{result="ok"} 2`, `authd_reloads_total{result="failed"} 1`,
		`authd_login_throttled_total{scope="ip"} 0`, `authd_store_errors_total 0`,
		"go_goroutines ", "go_memstats_heap_alloc_bytes ", "process_resident_memory_bytes ", "process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if problems, err := testutil.GatherAndLint(h.srv.metrics.reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", err, problems)
	}
}

func TestWhoamiActivity(t *testing.T) {
	h := newHarness(t, nil, nil)
	c := h.login("bob")
	whoami := func(q string) int {
		return h.do(req{target: "/authd/whoami" + q, headers: map[string]string{"Cookie": c}}).Code
	}
	h.clock.add(20 * time.Minute)
	whoami("") // a poll is not activity
	h.clock.add(11 * time.Minute)
	if got := whoami(""); got != 401 {
		t.Fatalf("polling kept an idle session alive: got %d, want 401", got)
	}
	c = h.login("bob")
	h.clock.add(20 * time.Minute)
	whoami("?active=1")
	h.clock.add(20 * time.Minute)
	if got := whoami(""); got != 200 {
		t.Errorf("activity did not extend the idle timeout: got %d, want 200", got)
	}
	h.clock.add(13 * time.Hour)
	whoami("?active=1")
	if got := whoami(""); got != 401 {
		t.Errorf("activity extended the absolute lifetime: got %d, want 401", got)
	}
}

// TestConcurrentGuessesStayWithinBudget fires 50 wrong passwords for one
// account at once: the throttle must reserve each attempt before its hash, so
// no more passwords are checked than the account's budget (3 in the harness),
// however the requests interleave. Before reservations, every request passed
// the check before any failure was counted and all 50 were hashed.
func TestConcurrentGuessesStayWithinBudget(t *testing.T) {
	tests := []struct {
		name  string
		users []string
	}{
		{"one account", []string{"alice"}},
		{"unknown account", []string{"nosuchuser"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, func(o *Options) { o.MaxHashing = 4; o.MaxHashQueue = 64; o.HashQueueTimeout = 10 * time.Second })
			pre, tok := h.loginForm("/")
			const n = 50
			codes := make([]int, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					w := h.do(req{method: "POST", target: "/authd/login",
						headers: map[string]string{"Cookie": pre, "Origin": "https://app.example.com", "X-Forwarded-For": "203.0.113.80"},
						form:    url.Values{"username": {tt.users[i%len(tt.users)]}, "password": {"wrong password"}, "csrf": {tok}}})
					codes[i] = w.Code
				})
			}
			close(start)
			wg.Wait()
			for i, c := range codes {
				if c != http.StatusUnauthorized {
					t.Errorf("attempt %d: got %d, want 401", i, c)
				}
			}
			if got := testutil.ToFloat64(h.srv.metrics.passwordChecks); got > 3 {
				t.Errorf("password checks for %d concurrent guesses: got %v, want at most 3 (the account budget)", n, got)
			}
		})
	}
}

// TestFailuresPaddedToTheSlowestHash: with an imported bcrypt user beside the harness's cheap
// argon2id users, every kind of failed password login (unknown user, wrong password, disabled,
// throttled account) is answered no sooner than the floor, which lies above a bcrypt check.
// Without the floor an unknown user's dummy hash at the test parameters answers in well under a
// millisecond. The floor can drop by at most an eighth while a request runs (one cost's moving
// average taking in a faster verification), hence the 0.85.
func TestFailuresPaddedToTheSlowestHash(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.editUsers(func(l []users.User) []users.User {
		return append(l, users.User{Name: "carol", Hash: bcryptHash(t, "bcrypt password 1"), Generation: 9})
	})
	// The reload added a cost; the first login after it starts the floor's measurement.
	h.postLogin("carol", "wrong password", "/", "203.0.113.40", nil)
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.pace.value() < 5*time.Millisecond && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for range 3 { // trip bob's account from .45
		h.postLogin("bob", "wrong password", "/", "203.0.113.45", nil)
	}
	tests := []struct {
		name, user, pw, ip string
	}{
		{"unknown user", "nosuchuser", "wrong password", "203.0.113.41"},
		{"wrong password", "alice", "wrong password", "203.0.113.42"},
		{"bcrypt user", "carol", "wrong password", "203.0.113.43"},
		{"disabled", "mallory", testPassword, "203.0.113.44"},
		{"throttled account", "bob", testPassword, "203.0.113.45"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			floor := h.srv.pace.value()
			start := time.Now()
			w := h.postLogin(tt.user, tt.pw, "/", tt.ip, nil)
			took := time.Since(start)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("got %d, want 401", w.Code)
			}
			if took < floor*85/100 {
				t.Errorf("answered after %v, want at least the floor %v", took, floor)
			}
		})
	}
	if carol := h.srv.pace.value(); carol < 5*time.Millisecond {
		t.Errorf("floor with a bcrypt cost-10 user: got %v, want above 5ms (a bcrypt-10 check takes ~50ms)", carol)
	}
}
