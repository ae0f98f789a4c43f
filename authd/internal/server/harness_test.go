package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/throttle"
	"github.com/authd/authd/authd/internal/users"
)

// Cheap hashing keeps tests fast; cost is not what they check.
var testParams = users.Params{MemoryKiB: 64, Time: 1, Threads: 1}

const testPassword = "correct horse battery"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t     testing.TB
	srv   *Server
	h     http.Handler
	users *users.File
	store *session.Embedded
	path  string
	clock *clock
}

func testOptions() Options {
	return Options{
		PublicURL: "https://app.example.com", Prefix: "/authd/", CookieName: "__Host-authd_session",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		LoginTitle:     "Sign in", DefaultRedirect: "/",
		RedirectHosts: []string{"https://other.example.com"},
		Idle:          30 * time.Minute, Lifetime: 12 * time.Hour, RememberIdle: 7 * 24 * time.Hour, RememberLifetime: 30 * 24 * time.Hour,
		TouchInterval: time.Minute,
		HashParams:    testParams, HashLimits: users.DefaultLimits(),
		MaxHashing: 2, MaxHashQueue: 8, HashQueueTimeout: time.Second,
		Secret: []byte("0123456789abcdef0123456789abcdef"),
	}
}

func newHarness(t testing.TB, rules []policy.Rule, mod func(*Options), networks ...policy.Network) *harness {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "users.toml")
	err := users.Edit(path, users.DefaultLimits(), func([]users.User) ([]users.User, error) {
		return []users.User{
			{Name: "alice", Hash: mustHash(t, testPassword), Groups: []string{"admin", "staff"}, Email: "alice@example.com", DisplayName: "Alice Liddell", Generation: 1},
			{Name: "bob", Hash: mustHash(t, testPassword), Groups: []string{"staff"}, Generation: 2},
			{Name: "mallory", Hash: mustHash(t, testPassword), Disabled: true, Generation: 3},
		}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	uf, err := users.OpenFile(path, users.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	store, err := session.OpenEmbedded(filepath.Join(dir, "data"), c.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if rules == nil {
		rules = []policy.Rule{{Path: "/"}}
	}
	rs, err := policy.New(rules, networks)
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions()
	if mod != nil {
		mod(&o)
	}
	thr := throttle.NewMemory(throttle.Config{AccountFailures: 3, IPFailures: 10, BaseDelay: time.Second, MaxDelay: time.Minute, Window: 15 * time.Minute, MaxEntries: 1000}, c.now)
	srv, err := New(o, Deps{Users: uf, Sessions: store, Throttle: thr, Now: c.now}, rs)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, srv: srv, h: srv.Handler(), users: uf, store: store, path: path, clock: c}
}

func mustHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := users.Hash(pw, testParams)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// req is one request as nginx would forward it from a client.
type req struct {
	method, target string
	headers        map[string]string
	form           url.Values
	remote         string // peer address; default a trusted nginx on loopback
}

func (h *harness) do(r req) *httptest.ResponseRecorder {
	h.t.Helper()
	var body *strings.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	} else {
		body = strings.NewReader("")
	}
	if r.method == "" {
		r.method = "GET"
	}
	hr := httptest.NewRequest(r.method, r.target, body)
	hr.RemoteAddr = "127.0.0.1:40000"
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	if r.form != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, hr)
	return w
}

func (h *harness) verify(uri, cookie string) *httptest.ResponseRecorder {
	h.t.Helper()
	hd := map[string]string{"X-Original-URI": uri, "X-Original-Method": "GET", "X-Forwarded-For": "203.0.113.7"}
	if cookie != "" {
		hd["Cookie"] = cookie
	}
	return h.do(req{target: "/verify", headers: hd})
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginForm fetches the form and returns the pre-session cookie and CSRF token.
func (h *harness) loginForm(rd string) (pre, token string) {
	h.t.Helper()
	w := h.do(req{target: "/authd/login?rd=" + url.QueryEscape(rd)})
	if w.Code != http.StatusOK {
		h.t.Fatalf("login form: got %d, want 200", w.Code)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-authd_pre" {
			pre = c.Name + "=" + c.Value
		}
	}
	m := csrfRE.FindStringSubmatch(w.Body.String())
	if pre == "" || m == nil {
		h.t.Fatalf("login form without pre-session cookie or csrf token")
	}
	return pre, m[1]
}

func (h *harness) postLogin(user, pw, rd, ip string, extra map[string]string) *httptest.ResponseRecorder {
	h.t.Helper()
	pre, tok := h.loginForm(rd)
	hd := map[string]string{"Cookie": pre, "Origin": "https://app.example.com", "Sec-Fetch-Site": "same-origin", "X-Forwarded-For": ip}
	for k, v := range extra {
		hd[k] = v
	}
	return h.do(req{method: "POST", target: "/authd/login", headers: hd,
		form: url.Values{"username": {user}, "password": {pw}, "rd": {rd}, "csrf": {tok}}})
}

// login logs in and returns "name=value" of the session cookie.
func (h *harness) login(user string) string {
	h.t.Helper()
	w := h.postLogin(user, testPassword, "/", "203.0.113.7", nil)
	if w.Code != http.StatusSeeOther {
		h.t.Fatalf("login %s: got %d, want 303; body %s", user, w.Code, w.Body)
	}
	return sessionCookie(h.t, w)
}

func sessionCookie(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-authd_session" && c.Value != "" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("no session cookie in %v", w.Header()["Set-Cookie"])
	return ""
}

func (h *harness) editUsers(fn func([]users.User) []users.User) {
	h.t.Helper()
	if err := users.Edit(h.path, users.DefaultLimits(), func(l []users.User) ([]users.User, error) { return fn(l), nil }); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.users.Reload(); err != nil {
		h.t.Fatal(err)
	}
}

func bcryptHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), 10)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}
