package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/audit"
)

// apiDo sends a JSON request as a same-origin script would, through nginx.
func (h *harness) apiDo(method, path, body string, headers map[string]string) *httptest.ResponseRecorder {
	h.t.Helper()
	hr := httptest.NewRequest(method, path, strings.NewReader(body))
	hr.RemoteAddr = "127.0.0.1:40000"
	hr.Header.Set("X-Forwarded-For", "203.0.113.7")
	if method == "POST" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			hr.Header.Del(k)
			continue
		}
		hr.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, hr)
	return w
}

func apiBody(t testing.TB, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type: got %q, want application/json (body %s)", ct, w.Body)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	return m
}

func TestAPILoginMeLogout(t *testing.T) {
	h := newHarness(t, nil, nil)
	w := h.apiDo("POST", "/authd/api/login", `{"username": "Alice", "password": "`+testPassword+`", "remember": true}`, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("login: got %d, want 200; body %s", w.Code, w.Body)
	}
	id := apiBody(t, w)
	if id["user"] != "alice" || id["name"] != "Alice Liddell" || id["email"] != "alice@example.com" || id["remember"] != true {
		t.Errorf("identity: got %v", id)
	}
	if g, _ := id["groups"].([]any); len(g) != 2 || g[0] != "admin" {
		t.Errorf("groups: got %v, want [admin staff]", id["groups"])
	}
	cookie := sessionCookie(t, w)
	var maxAge int
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-authd_session" {
			maxAge = c.MaxAge
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("cookie attributes: got %+v", c)
			}
		}
	}
	if maxAge != int((30 * 24 * time.Hour).Seconds()) {
		t.Errorf("remember: cookie Max-Age %d, want 30 days", maxAge)
	}
	if w := h.verify("/app", cookie); w.Code != http.StatusOK {
		t.Fatalf("verify with the API's cookie: got %d, want 200", w.Code)
	}

	w = h.apiDo("GET", "/authd/api/me", "", map[string]string{"Cookie": cookie})
	if m := apiBody(t, w); w.Code != 200 || m["user"] != "alice" {
		t.Errorf("me: got %d %v, want 200 alice", w.Code, m)
	}
	w = h.apiDo("GET", "/authd/api/me", "", nil)
	if m := apiBody(t, w); w.Code != 401 || m["error"] != "unauthenticated" {
		t.Errorf("me without cookie: got %d %v, want 401 unauthenticated", w.Code, m)
	}

	w = h.apiDo("POST", "/authd/api/logout", "", map[string]string{"Cookie": cookie})
	if m := apiBody(t, w); w.Code != 200 || m["signed_out"] != true {
		t.Fatalf("logout: got %d %v, want 200 signed_out true", w.Code, m)
	}
	if !strings.Contains(strings.Join(w.Header()["Set-Cookie"], "\n"), "__Host-authd_session=;") {
		t.Errorf("logout does not clear the cookie: %v", w.Header()["Set-Cookie"])
	}
	if w := h.verify("/app", cookie); w.Code != http.StatusUnauthorized {
		t.Errorf("verify after API logout: got %d, want 401", w.Code)
	}
	w = h.apiDo("POST", "/authd/api/logout", "{}", map[string]string{"Cookie": cookie})
	if m := apiBody(t, w); w.Code != 200 || m["signed_out"] != false {
		t.Errorf("second logout: got %d %v, want 200 signed_out false", w.Code, m)
	}
}

func TestAPILoginErrors(t *testing.T) {
	good := `{"username": "alice", "password": "` + testPassword + `"}`
	tests := []struct {
		name    string
		body    string
		headers map[string]string
		code    int
		errCode string
	}{
		{"wrong password", `{"username": "alice", "password": "nope"}`, nil, 401, "invalid_credentials"},
		{"unknown user", `{"username": "nobody", "password": "nope"}`, nil, 401, "invalid_credentials"},
		{"locked user", `{"username": "mallory", "password": "` + testPassword + `"}`, nil, 401, "invalid_credentials"},
		{"form content type", good, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "bad_request"},
		{"text/plain (a no-preflight cross-site fetch)", good, map[string]string{"Content-Type": "text/plain"}, 415, "bad_request"},
		{"no content type", good, map[string]string{"Content-Type": ""}, 415, "bad_request"},
		{"cross-site origin", good, map[string]string{"Origin": "https://evil.example"}, 403, "cross_site"},
		{"cross-site fetch metadata", good, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "cross_site"},
		{"same-site but other origin", good, map[string]string{"Sec-Fetch-Site": "same-site"}, 403, "cross_site"},
		{"not JSON", `username=alice`, nil, 400, "bad_request"},
		{"unknown field", `{"username": "alice", "password": "x", "admin": true}`, nil, 400, "bad_request"},
		{"missing password", `{"username": "alice"}`, nil, 400, "bad_request"},
		{"wrong type", `{"username": "alice", "password": 12}`, nil, 400, "bad_request"},
		{"two objects", good + good, nil, 400, "bad_request"},
		{"too large", `{"username": "alice", "password": "` + strings.Repeat("x", 9000) + `"}`, nil, 400, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			w := h.apiDo("POST", "/authd/api/login", tt.body, tt.headers)
			m := apiBody(t, w)
			if w.Code != tt.code || m["error"] != tt.errCode {
				t.Fatalf("got %d %v, want %d %s", w.Code, m, tt.code, tt.errCode)
			}
			if len(w.Result().Cookies()) != 0 {
				t.Errorf("a refused login set cookies: %v", w.Header()["Set-Cookie"])
			}
		})
	}
	t.Run("same-origin browser fetch is accepted", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		w := h.apiDo("POST", "/authd/api/login", good, map[string]string{"Origin": "https://app.example.com", "Sec-Fetch-Site": "same-origin"})
		if w.Code != 200 {
			t.Fatalf("got %d %s, want 200", w.Code, w.Body)
		}
	})
	t.Run("cross-site logout is refused", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		cookie := h.login("alice")
		w := h.apiDo("POST", "/authd/api/logout", "", map[string]string{"Cookie": cookie, "Origin": "https://evil.example"})
		if m := apiBody(t, w); w.Code != 403 || m["error"] != "cross_site" {
			t.Fatalf("got %d %v, want 403 cross_site", w.Code, m)
		}
		w = h.apiDo("POST", "/authd/api/logout", "", map[string]string{"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
		if w.Code != 415 {
			t.Fatalf("form-encoded logout: got %d, want 415", w.Code)
		}
		if w := h.verify("/app", cookie); w.Code != 200 {
			t.Fatalf("session after refused logouts: got %d, want 200 (still signed in)", w.Code)
		}
	})
	t.Run("no CORS preflight answer", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		w := h.apiDo("OPTIONS", "/authd/api/login", "", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
		if w.Code/100 == 2 || w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight: got %d with %v, want no CORS grant", w.Code, w.Header())
		}
	})
}

// TestAPILoginSharesThrottling: the JSON endpoint and the form count against
// the same throttle, so a script cannot guess past the form's limits.
func TestAPILoginSharesThrottling(t *testing.T) {
	h := newHarness(t, nil, nil) // 3 free failures per account, 10 per IP
	for i := 0; i < 3; i++ {
		h.postLogin("bob", "wrong password", "/", "203.0.113.7", nil)
	}
	w := h.apiDo("POST", "/authd/api/login", `{"username": "bob", "password": "`+testPassword+`"}`, nil)
	if m := apiBody(t, w); w.Code != 401 || m["error"] != "invalid_credentials" {
		t.Errorf("throttled account, right password: got %d %v, want 401 invalid_credentials (indistinguishable)", w.Code, m)
	}
	for i := 0; i < 10; i++ {
		h.apiDo("POST", "/authd/api/login", `{"username": "spray`+string(rune('a'+i))+`", "password": "x"}`, nil)
	}
	w = h.apiDo("POST", "/authd/api/login", `{"username": "alice", "password": "`+testPassword+`"}`, nil)
	m := apiBody(t, w)
	if w.Code != 429 || m["error"] != "throttled" || w.Header().Get("Retry-After") == "" {
		t.Errorf("spraying IP: got %d %v Retry-After %q, want 429 throttled with Retry-After", w.Code, m, w.Header().Get("Retry-After"))
	}
	if w := h.postLogin("alice", testPassword, "/", "203.0.113.7", nil); w.Code != 429 {
		t.Errorf("the form from the same IP: got %d, want 429", w.Code)
	}
}

func TestAPILoginBusy(t *testing.T) {
	h := newHarness(t, nil, func(o *Options) { o.MaxHashing = 1; o.MaxHashQueue = 0 })
	h.srv.cur.Load().gate.slots <- struct{}{}
	defer func() { <-h.srv.cur.Load().gate.slots }()
	w := h.apiDo("POST", "/authd/api/login", `{"username": "alice", "password": "`+testPassword+`"}`, nil)
	if m := apiBody(t, w); w.Code != 503 || m["error"] != "unavailable" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d %v, want 503 unavailable with Retry-After", w.Code, m)
	}
}

// TestAPILoginPadded: a failed JSON login takes the failure floor, like the form.
func TestAPILoginPadded(t *testing.T) {
	h := newHarness(t, nil, nil)
	floor := h.srv.pace.value()
	if floor <= 0 {
		t.Fatalf("failure floor %v: want a positive floor to measure against", floor)
	}
	start := time.Now()
	h.apiDo("POST", "/authd/api/login", `{"username": "nobody", "password": "x"}`, nil)
	took := time.Since(start)
	// The pacer learns from the check this request made, so the floor in
	// force when it answered may be a little lower than the one read before.
	floor = min(floor, h.srv.pace.value())
	if took < floor {
		t.Fatalf("unknown user answered in %v, want at least the floor %v", took, floor)
	}
}

// TestAPIAudit: JSON logins and logouts are audit events like the form's,
// marked with their source.
func TestAPIAudit(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.apiDo("POST", "/authd/api/login", `{"username": "bob", "password": "nope"}`, nil)
	w := h.apiDo("POST", "/authd/api/login", `{"username": "alice", "password": "`+testPassword+`"}`, nil)
	h.apiDo("POST", "/authd/api/logout", "", map[string]string{"Cookie": sessionCookie(t, w)})
	h.postLogin("bob", "nope", "/", "198.51.100.9", nil)
	evs, err := h.srv.Audit().Recent(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Event+" "+e.Actor+e.Target+" "+e.Source+" "+e.IP)
	}
	want := []string{
		"login_failed bob web 198.51.100.9",
		"logout alice api 203.0.113.7",
		"login_succeeded alice api 203.0.113.7",
		"login_failed bob api 203.0.113.7",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit events:\n%s\nwant (newest first):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAPILoginDirectoryUser: a directory (LDAP) user signs in through the
// JSON endpoint by the same check as the form, with the directory's own
// answers as JSON codes.
func TestAPILoginDirectoryUser(t *testing.T) {
	h, d := newDirHarness(t)
	w := h.apiDo("POST", "/authd/api/login", `{"username": "dora", "password": "`+dirPassword+`"}`, nil)
	if m := apiBody(t, w); w.Code != 200 || m["user"] != "dora" || m["email"] != "dora@example.com" {
		t.Fatalf("directory user: got %d %v, want 200 dora", w.Code, m)
	}
	w = h.apiDo("POST", "/authd/api/login", `{"username": "olga", "password": "`+dirPassword+`"}`, nil)
	if m := apiBody(t, w); w.Code != 403 || m["error"] != "not_allowed" {
		t.Errorf("not allowed: got %d %v, want 403 not_allowed", w.Code, m)
	}
	w = h.apiDo("POST", "/authd/api/login", `{"username": "dora", "password": "nope"}`, nil)
	if m := apiBody(t, w); w.Code != 401 || m["error"] != "invalid_credentials" {
		t.Errorf("wrong password: got %d %v, want 401 invalid_credentials", w.Code, m)
	}
	d.setDown(true)
	w = h.apiDo("POST", "/authd/api/login", `{"username": "dora", "password": "`+dirPassword+`"}`, nil)
	if m := apiBody(t, w); w.Code != 503 || m["error"] != "unavailable" || w.Header().Get("Retry-After") == "" {
		t.Errorf("directory down: got %d %v, want 503 unavailable with Retry-After", w.Code, m)
	}
	evs, _ := h.srv.Audit().Recent(context.Background(), audit.Filter{Event: "login_succeeded"})
	if len(evs) != 1 || evs[0].Source != "ldap" || !strings.Contains(evs[0].Detail, "via api") {
		t.Errorf("audit: got %+v, want one ldap login via api", evs)
	}
}

// TestAPILoginSecondFactorRequired: a user who must prove a second factor
// gets a password-only session from api/login, and is told so; verify
// still refuses a two-factor path with it.
func TestAPILoginSecondFactorRequired(t *testing.T) {
	h := newHarness(t, nil, func(o *Options) { o.MFA.RequiredGroups = []string{"staff"} })
	withMFA(t, h)
	w := h.apiDo("POST", "/authd/api/login", `{"username": "bob", "password": "`+testPassword+`"}`, nil)
	m := apiBody(t, w)
	if w.Code != 200 || m["second_factor"] != "required" || !strings.Contains(fmt.Sprint(m["step_up"]), "/authd/mfa/step-up") {
		t.Fatalf("got %d %v, want 200 with second_factor required and a step_up URL", w.Code, m)
	}
	if v := h.verify("/app", sessionCookie(t, w)); v.Code != 401 {
		t.Errorf("verify with the password-only session on a required-group path: got %d, want 401", v.Code)
	}
	h2 := newHarness(t, nil, nil)
	w = h2.apiDo("POST", "/authd/api/login", `{"username": "bob", "password": "`+testPassword+`"}`, nil)
	if m := apiBody(t, w); m["second_factor"] != nil {
		t.Errorf("no second factor needed: got %v", m)
	}
}
