package security

import (
	"crypto/rand"
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSessionCookie covers "Session ID: ≥ 128 bits from crypto/rand, no user data, __Host- name,
// Secure, HttpOnly, SameSite=Lax, Path=/, no Domain. Denials never set cookies."
func TestSessionCookie(t *testing.T) {
	s := sharedStack(t)
	seen := map[string]bool{}
	for range 8 {
		r := s.postLogin(t, "ada", adaPassword, "", "")
		var raw string
		for _, c := range r.Header.Values("Set-Cookie") {
			if strings.HasPrefix(c, cookieName+"=") {
				raw = c
			}
		}
		if raw == "" {
			t.Fatalf("login set no %s cookie: %q", cookieName, r.Header.Values("Set-Cookie"))
		}
		parts := strings.Split(raw, ";")
		value := strings.TrimPrefix(parts[0], cookieName+"=")
		attrs := map[string]string{}
		for _, p := range parts[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			attrs[strings.ToLower(k)] = v
		}
		for _, want := range []string{"secure", "httponly"} {
			if _, ok := attrs[want]; !ok {
				t.Errorf("session cookie %q lacks %s", raw, want)
			}
		}
		if attrs["samesite"] != "Lax" || attrs["path"] != "/" {
			t.Errorf("session cookie %q: want SameSite=Lax and Path=/", raw)
		}
		if _, ok := attrs["domain"]; ok {
			t.Errorf("session cookie %q has a Domain", raw)
		}
		b, err := base64.RawURLEncoding.DecodeString(value)
		if err != nil || len(b) < 16 {
			t.Errorf("session value %q: want at least 128 bits of base64url (got %d bytes, %v)", value, len(b), err)
		}
		if strings.Contains(strings.ToLower(value), "ada") && strings.Contains(string(b), "ada") {
			t.Errorf("session value %q carries the user name", value)
		}
		if seen[value] {
			t.Errorf("session value %q issued twice", value)
		}
		seen[value] = true
	}
	// Denials never set cookies: 401 and 403 through nginx, and /verify itself.
	ada := session(s.login(t, "ada", adaPassword))
	for _, q := range []req{
		{target: "/app/x"},
		{target: "/app/x", header: http.Header{"Accept": {"text/html"}}},
		{target: "/admin/x", cookie: ada},
		{target: "/nothing", cookie: ada},
		{target: "/app/x", cookie: cookieName + "=" + strings.Repeat("A", 43)},
	} {
		r := s.do(t, q)
		if r.Status < 300 || len(r.Header.Values("Set-Cookie")) > 0 {
			t.Errorf("%s with %q: got %s with Set-Cookie %q, want a denial without cookies", q.target, q.cookie, r, r.Header.Values("Set-Cookie"))
		}
	}
}

// TestLoginIssuesFreshSession covers "Login always issues a fresh session ID; a cookie value chosen
// before login never authenticates."
func TestLoginIssuesFreshSession(t *testing.T) {
	s := sharedStack(t)
	var b [32]byte
	rand.Read(b[:])
	planted := base64.RawURLEncoding.EncodeToString(b[:])
	pre, csrf, _ := s.loginForm(t, "")
	r := s.do(t, req{method: "POST", target: "/authd/login", cookie: preName + "=" + pre + "; " + session(planted),
		header: http.Header{"Origin": {s.origin()}}, form: url.Values{"username": {"ada"}, "password": {adaPassword}, "csrf": {csrf}}})
	got := setCookie(r.Header, cookieName)
	if r.Status != http.StatusSeeOther || got == "" || got == planted {
		t.Fatalf("login with a planted cookie: got %s, cookie %q; want 303 with a new session", r, got)
	}
	if r := s.do(t, req{target: "/app/x", cookie: session(planted)}); r.Status != http.StatusUnauthorized {
		t.Errorf("planted cookie after login: got %s, want 401", r)
	}
	// Logging in again while logged in also gives a new ID.
	first := s.login(t, "ada", adaPassword)
	pre, csrf, _ = s.loginForm(t, "")
	r = s.do(t, req{method: "POST", target: "/authd/login", cookie: preName + "=" + pre + "; " + session(first),
		header: http.Header{"Origin": {s.origin()}}, form: url.Values{"username": {"ada"}, "password": {adaPassword}, "csrf": {csrf}}})
	if again := setCookie(r.Header, cookieName); again == "" || again == first {
		t.Errorf("second login: got cookie %q, want a new one (old %q)", again, first)
	}
}

// TestCacheControlNoStore covers "Responses from login, logout and verify carry Cache-Control:
// no-store" (and nginx's login redirect, which carries authd's answer).
func TestCacheControlNoStore(t *testing.T) {
	s := sharedStack(t)
	ada := session(s.login(t, "ada", adaPassword))
	pre, csrf, _ := s.loginForm(t, "")
	origin := http.Header{"Origin": {s.origin()}}
	check := func(what string, r *resp) {
		t.Helper()
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("%s: got %s with Cache-Control %q, want no-store", what, r, cc)
		}
	}
	check("login form", s.do(t, req{target: "/authd/login"}))
	check("login form, logged in", s.do(t, req{target: "/authd/login", cookie: ada}))
	check("failed login", s.do(t, req{method: "POST", target: "/authd/login", cookie: preName + "=" + pre, header: origin,
		form: url.Values{"username": {"ada"}, "password": {"wrong password"}, "csrf": {csrf}}}))
	check("login without CSRF", s.do(t, req{method: "POST", target: "/authd/login", header: origin, form: url.Values{"username": {"ada"}}}))
	check("successful login", s.postLogin(t, "ada", adaPassword, "", ""))
	check("logout form", s.do(t, req{target: "/authd/logout", cookie: ada}))
	check("logout form, anonymous", s.do(t, req{target: "/authd/logout"}))
	check("logout", s.do(t, req{method: "POST", target: "/authd/logout", cookie: ada, header: origin, form: url.Values{}}))
	check("whoami", s.do(t, req{target: "/authd/whoami"}))
	check("401 from verify", s.do(t, req{target: "/app/x"}))
	check("302 to the login form", s.do(t, req{target: "/app/x", header: http.Header{"Accept": {"text/html"}}}))
	for _, c := range []string{"", ada} {
		h := http.Header{"X-Original-Uri": {"/app/x"}, "X-Original-Method": {"GET"}}
		if c != "" {
			h.Set("Cookie", c)
		}
		r := s.rawDirect(t, h)
		check("verify", r)
	}
}

// TestCSRF covers "Login and logout forms carry a token bound to a pre-session; a POST without a
// valid token, or from a cross-site Origin/Sec-Fetch-Site, is refused before any password work" and
// "GET never changes state (no logout by GET). Only form-urlencoded login bodies are accepted."
func TestCSRF(t *testing.T) {
	s := sharedStack(t)
	pre, csrf, _ := s.loginForm(t, "")
	otherPre, otherCSRF, _ := s.loginForm(t, "")
	good := url.Values{"username": {"ada"}, "password": {adaPassword}, "csrf": {csrf}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	origin := http.Header{"Origin": {s.origin()}}
	for _, tc := range []struct {
		name   string
		cookie string
		header http.Header
		form   url.Values
		body   string
	}{
		{"no token", preName + "=" + pre, origin, with("csrf", ""), ""},
		{"token of another pre-session", preName + "=" + pre, origin, with("csrf", otherCSRF), ""},
		{"token without its pre-session", "", origin, good, ""},
		{"pre-session of another token", preName + "=" + otherPre, origin, good, ""},
		{"tampered token", preName + "=" + pre, origin, with("csrf", csrf[:len(csrf)-2]+"AA"), ""},
		{"cross-site Origin", preName + "=" + pre, http.Header{"Origin": {"https://evil.example"}}, good, ""},
		{"look-alike Origin", preName + "=" + pre, http.Header{"Origin": {s.origin() + ".evil.example"}}, good, ""},
		{"http Origin", preName + "=" + pre, http.Header{"Origin": {strings.Replace(s.origin(), "https", "http", 1)}}, good, ""},
		{"null Origin", preName + "=" + pre, http.Header{"Origin": {"null"}}, good, ""},
		{"Sec-Fetch-Site cross-site", preName + "=" + pre, http.Header{"Sec-Fetch-Site": {"cross-site"}}, good, ""},
		{"Sec-Fetch-Site same-site", preName + "=" + pre, http.Header{"Sec-Fetch-Site": {"same-site"}}, good, ""},
		{"JSON body", preName + "=" + pre, http.Header{"Origin": {s.origin()}, "Content-Type": {"application/json"}}, nil,
			`{"username":"ada","password":"` + adaPassword + `","csrf":"` + csrf + `"}`},
		{"multipart body", preName + "=" + pre, http.Header{"Origin": {s.origin()}, "Content-Type": {"multipart/form-data; boundary=x"}}, nil,
			"--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nada\r\n--x\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n" + adaPassword + "\r\n--x\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + csrf + "\r\n--x--\r\n"},
		{"text/plain body", preName + "=" + pre, http.Header{"Origin": {s.origin()}, "Content-Type": {"text/plain"}}, nil, good.Encode()},
		{"credentials in the query", preName + "=" + pre, origin, url.Values{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "/authd/login"
			if tc.name == "credentials in the query" {
				target += "?" + good.Encode()
			}
			q := req{method: "POST", target: target, cookie: tc.cookie, header: tc.header, form: tc.form}
			if tc.body != "" {
				r, err := s.tryBody(q, tc.body)
				if err != nil {
					t.Fatal(err)
				}
				assertRefused(t, r)
				return
			}
			assertRefused(t, s.do(t, q))
		})
	}
	// The control: the same form, correctly bound, signs in.
	r := s.do(t, req{method: "POST", target: "/authd/login", cookie: preName + "=" + pre, header: origin, form: good})
	if r.Status != http.StatusSeeOther || setCookie(r.Header, cookieName) == "" {
		t.Fatalf("control: got %s, want 303 with a session", r)
	}
	ada := session(setCookie(r.Header, cookieName))

	// No logout by GET, nor by a POST without the logout token or from another site.
	r = s.do(t, req{target: "/authd/logout", cookie: ada})
	if r.Status != http.StatusOK {
		t.Fatalf("logout form: got %s", r)
	}
	token := html.UnescapeString(csrfRE.FindStringSubmatch(r.Body)[1])
	for _, q := range []req{
		{target: "/authd/logout?csrf=" + url.QueryEscape(token), cookie: ada},
		{method: "POST", target: "/authd/logout", cookie: ada, header: origin, form: url.Values{}},
		{method: "POST", target: "/authd/logout", cookie: ada, header: origin, form: url.Values{"csrf": {csrf}}},
		{method: "POST", target: "/authd/logout", cookie: ada, header: http.Header{"Origin": {"https://evil.example"}}, form: url.Values{"csrf": {token}}},
		{method: "POST", target: "/authd/logout", cookie: ada, header: http.Header{"Sec-Fetch-Site": {"cross-site"}}, form: url.Values{"csrf": {token}}},
	} {
		s.do(t, q)
		if r := s.do(t, req{target: "/app/x", cookie: ada}); r.App == nil {
			t.Errorf("%s %s (form %v): the session ended, want it kept", q.method, q.target, q.form)
		}
	}
	if r := s.do(t, req{method: "POST", target: "/authd/logout", cookie: ada, header: origin, form: url.Values{"csrf": {token}}}); r.Status != http.StatusSeeOther {
		t.Errorf("control: logout got %s, want 303", r)
	}
	if r := s.do(t, req{target: "/app/x", cookie: ada}); r.Status != http.StatusUnauthorized {
		t.Errorf("control: after logout got %s, want 401", r)
	}
}

func assertRefused(t *testing.T, r *resp) {
	t.Helper()
	if r.Status < 400 || setCookie(r.Header, cookieName) != "" {
		t.Errorf("got %s (session cookie %q), want a refusal without a session", r, setCookie(r.Header, cookieName))
	}
}

// tryBody sends q with a literal body.
func (s *stack) tryBody(q req, body string) (*resp, error) {
	hr, err := http.NewRequest(q.method, s.origin()+q.target, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range q.header {
		hr.Header[k] = vs
	}
	if q.cookie != "" {
		hr.Header.Set("Cookie", q.cookie)
	}
	res, err := s.client("").Do(hr)
	if err != nil {
		return nil, err
	}
	return readResp(res)
}

// TestWebSocketHandshake covers "A WebSocket handshake without a valid session gets 401, not a
// redirect; with one it upgrades."
func TestWebSocketHandshake(t *testing.T) {
	s := sharedStack(t)
	ada := session(s.login(t, "ada", adaPassword))
	ws := []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"Origin: " + s.origin(), "Sec-Fetch-Mode: websocket", "Accept: text/html"}
	if r := s.raw(t, "", s.rawGet("/ws/stream", ws...)); r.Status != http.StatusUnauthorized || r.App != nil {
		t.Errorf("anonymous handshake: got %s, want 401", r)
	}
	if r := s.raw(t, "", s.rawGet("/ws/stream", append(ws, "Cookie: "+cookieName+"="+strings.Repeat("A", 43))...)); r.Status != http.StatusUnauthorized {
		t.Errorf("handshake with an unknown session: got %s, want 401", r)
	}
	r := s.raw(t, "", s.rawGet("/ws/stream", append(ws, "Cookie: "+ada)...))
	if r.Status != http.StatusSwitchingProtocols || r.App == nil {
		t.Fatalf("handshake with a session: got %s, want 101 from the app", r)
	}
	checkIdentity(t, "handshake", r.App, adaIdentity)
}
