package server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/idp"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/throttle"
	"github.com/authd/authd/authd/internal/users"
)

// fakeOIDC stands in for idp.OIDC: the protocol itself (signatures,
// discovery, PKCE at the provider) is tested against a real provider in
// tests/e2e. It answers Exchange only with the verifier and nonce of the
// last AuthURL, as a provider and the ID token check would.
type fakeOIDC struct {
	state, nonce, verifier string
	id                     idp.Identity
	err                    error
	headerOnly             bool
}

func (f *fakeOIDC) ID() string          { return "corp" }
func (f *fakeOIDC) DisplayName() string { return "Corp SSO" }
func (f *fakeOIDC) Source() string      { return "oidc:corp" }
func (f *fakeOIDC) HeaderOnly() bool    { return f.headerOnly }
func (f *fakeOIDC) AuthURL(_ context.Context, state, nonce, verifier string) (string, error) {
	f.state, f.nonce, f.verifier = state, nonce, verifier
	return "https://idp.example.net/authorize?state=" + url.QueryEscape(state), nil
}
func (f *fakeOIDC) Exchange(_ context.Context, code, verifier, nonce string) (idp.Identity, error) {
	if code != "good-code" || verifier != f.verifier {
		return idp.Identity{}, idp.ErrExchange
	}
	if nonce != f.nonce {
		return idp.Identity{}, idp.ErrNonce
	}
	return f.id, f.err
}
func (f *fakeOIDC) LogoutURL(after string) string {
	return "https://idp.example.net/logout?post_logout_redirect_uri=" + url.QueryEscape(after)
}

func newOIDCHarness(t *testing.T) (*harness, *fakeOIDC) {
	t.Helper()
	return newOIDCHarnessWith(t, []policy.Rule{{Path: "/"}}, false)
}

// newOIDCHarnessWith is newOIDCHarness with rules and a provider that may
// keep header-only identities.
func newOIDCHarnessWith(t *testing.T, rules []policy.Rule, headerOnly bool) (*harness, *fakeOIDC) {
	t.Helper()
	h := newHarness(t, nil, nil)
	f := &fakeOIDC{id: idp.Identity{Name: "Grace", Email: "grace@example.com", DisplayName: "Grace Hopper",
		Groups: []string{"navy", "bad group"}, Source: "oidc:corp"}, headerOnly: headerOnly}
	rs, err := policy.New(rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	thr := throttle.NewMemory(throttle.Config{AccountFailures: 3, IPFailures: 10, BaseDelay: time.Second, MaxDelay: time.Minute, Window: 15 * time.Minute, MaxEntries: 1000}, h.clock.now)
	o := testOptions()
	o.FormOrigins = []string{"https://idp.example.net"}
	o.AdminGroups, o.Reauth = []string{"admin"}, 5*time.Minute
	srv, err := New(o, Deps{Users: h.users, Sessions: h.store, Throttle: thr, Now: h.clock.now, OIDC: []OIDCProvider{f}}, rs)
	if err != nil {
		t.Fatal(err)
	}
	srv.adminSessions = h.store
	h.srv, h.h = srv, srv.Handler()
	return h, f
}

// start begins a sign-in and returns the flow cookie ("name=value").
func (h *harness) oidcStart(rd string) string {
	h.t.Helper()
	w := h.do(req{target: "/authd/oidc/corp/start?rd=" + url.QueryEscape(rd)})
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "https://idp.example.net/authorize") {
		h.t.Fatalf("start: got %d to %q, want 303 to the provider", w.Code, w.Header().Get("Location"))
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-authd_oidc" {
			if !c.HttpOnly || !c.Secure || c.Path != "/" || c.MaxAge <= 0 {
				h.t.Errorf("flow cookie %+v: want HttpOnly, Secure, Path=/ and a lifetime", c)
			}
			return c.Name + "=" + c.Value
		}
	}
	h.t.Fatal("start set no flow cookie")
	return ""
}

func (h *harness) oidcCallback(cookie, state, code string) *http.Response {
	h.t.Helper()
	hd := map[string]string{"X-Forwarded-For": "203.0.113.9"}
	if cookie != "" {
		hd["Cookie"] = cookie
	}
	return h.do(req{target: "/authd/oidc/corp/callback?state=" + url.QueryEscape(state) + "&code=" + code, headers: hd}).Result()
}

func hasSession(resp *http.Response) bool {
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-authd_session" && c.Value != "" {
			return true
		}
	}
	return false
}

func TestOIDCLoginPageShowsProviders(t *testing.T) {
	h, _ := newOIDCHarness(t)
	w := h.do(req{target: "/authd/login?rd=" + url.QueryEscape("/app?x=1")})
	body := w.Body.String()
	if !strings.Contains(body, `href="/authd/oidc/corp/start?rd=%2fapp%3fx%3d1"`) || !strings.Contains(body, "Sign in with Corp SSO") {
		t.Errorf("login page lacks the provider's button with the return path:\n%s", body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "https://idp.example.net") {
		t.Errorf("CSP %q: the logout form may end at the provider, want its origin in form-action", csp)
	}
}

func TestOIDCSignInCreatesAndUpdatesUser(t *testing.T) {
	h, f := newOIDCHarness(t)
	c := h.oidcStart("/reports")
	resp := h.oidcCallback(c, f.state, "good-code")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/reports" || !hasSession(resp) {
		t.Fatalf("callback: got %d to %q (session %v), want 303 to /reports with a session", resp.StatusCode, resp.Header.Get("Location"), hasSession(resp))
	}
	u, ok := h.users.DB().Lookup("grace")
	if !ok {
		t.Fatal("no user grace after the sign-in")
	}
	if evs, _ := h.srv.Audit().Recent(context.Background(), audit.Filter{User: "grace"}); len(evs) != 1 || evs[0].Event != "login_succeeded" || evs[0].Source != "oidc:corp" {
		t.Errorf("audit: got %+v, want one login_succeeded for grace from oidc:corp", evs)
	}
	if u.Source != "oidc:corp" || u.Hash != "" || u.Email != "grace@example.com" || u.DisplayName != "Grace Hopper" || !slices.Equal(u.Groups, []string{"navy"}) || u.Generation == 0 {
		t.Errorf("user %+v: want source oidc:corp, no hash, the provider's email, name and valid groups, a generation", u.User)
	}
	gen := u.Generation
	var sess string
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-authd_session" {
			sess = ck.Name + "=" + ck.Value
		}
	}
	if v := h.verify("/x", sess); v.Code != 200 || v.Header().Get("Remote-User") != "grace" || v.Header().Get("Remote-Groups") != "navy" {
		t.Errorf("verify: got %d user %q groups %q, want 200 grace navy", v.Code, v.Header().Get("Remote-User"), v.Header().Get("Remote-Groups"))
	}

	// The next sign-in brings the provider's current groups; the record keeps its generation.
	f.id.Groups = []string{"analysts"}
	c = h.oidcStart("/")
	if resp := h.oidcCallback(c, f.state, "good-code"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second sign-in: got %d", resp.StatusCode)
	}
	u, _ = h.users.DB().Lookup("grace")
	if !slices.Equal(u.Groups, []string{"analysts"}) || u.Generation != gen {
		t.Errorf("after the second sign-in: groups %v generation changed %v, want [analysts] and the same generation", u.Groups, u.Generation != gen)
	}

	// An external account has no local password, whatever is typed.
	if w := h.postLogin("grace", "", "/", "203.0.113.7", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("password login as an external user: got %d, want 401", w.Code)
	}

	// Sign-out goes on to the provider's end-session page.
	form := h.do(req{target: "/authd/logout", headers: map[string]string{"Cookie": sess}})
	tok := csrfRE.FindStringSubmatch(form.Body.String())
	if tok == nil {
		t.Fatalf("logout form without csrf token:\n%s", form.Body)
	}
	w := h.do(req{method: "POST", target: "/authd/logout", form: url.Values{"csrf": {tok[1]}},
		headers: map[string]string{"Cookie": sess, "Origin": "https://app.example.com"}})
	if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "https://idp.example.net/logout?post_logout_redirect_uri=https%3A%2F%2Fapp.example.com%2Fauthd%2Flogin") {
		t.Errorf("logout: got %d to %q, want 303 to the provider's logout page", w.Code, loc)
	}
}

func TestOIDCCallbackRefusals(t *testing.T) {
	h, f := newOIDCHarness(t)
	cases := []struct {
		name   string
		mod    func(cookie, state string) (string, string, string) // cookie, state, code
		before func()
		status int
		text   string
	}{
		{"no flow cookie", func(c, s string) (string, string, string) { return "", s, "good-code" }, nil, 400, "expired or was started elsewhere"},
		{"flow cookie changed", func(c, s string) (string, string, string) {
			i := strings.Index(c, "=") + 5
			b := []byte(c)
			b[i] ^= 1
			return string(b), s, "good-code"
		}, nil, 400, "expired or was started elsewhere"},
		{"flow cookie expired", func(c, s string) (string, string, string) { h.clock.add(11 * time.Minute); return c, s, "good-code" }, nil, 400, "expired or was started elsewhere"},
		{"state changed", func(c, s string) (string, string, string) { return c, s + "x", "good-code" }, nil, 400, "does not belong to this sign-in"},
		{"code refused", func(c, s string) (string, string, string) { return c, s, "other-code" }, nil, 401, "Sign-in with Corp SSO failed"},
		{"nonce changed", func(c, s string) (string, string, string) { f.nonce = "other"; return c, s, "good-code" }, nil, 401, "does not belong to this sign-in"},
		{"not allowed", func(c, s string) (string, string, string) { return c, s, "good-code" },
			func() { f.err = idp.ErrDenied }, 403, "Corp SSO account is not allowed"},
		{"provider down", func(c, s string) (string, string, string) { return c, s, "good-code" },
			func() { f.err = idp.ErrProviderDown }, 503, "unavailable right now"},
		{"local account of the same name", func(c, s string) (string, string, string) { return c, s, "good-code" },
			func() { f.id.Name = "alice" }, 403, "belongs to another account"},
		{"invalid user name", func(c, s string) (string, string, string) { return c, s, "good-code" },
			func() { f.id.Name = "bad name!" }, 403, "account name cannot be used"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			saved := *f
			defer func() { f.id, f.err = saved.id, saved.err }()
			if tc.before != nil {
				tc.before()
			}
			c := h.oidcStart("/")
			cookie, state, code := tc.mod(c, f.state)
			resp := h.oidcCallback(cookie, state, code)
			b, _ := io.ReadAll(resp.Body)
			body := string(b)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.text) || hasSession(resp) {
				t.Errorf("got %d (session %v), want %d with %q and no session; page:\n%s", resp.StatusCode, hasSession(resp), tc.status, tc.text, body)
			}
		})
	}
	evs, err := h.srv.Audit().Recent(context.Background(), audit.Filter{Event: "login_failed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(cases) || evs[1].Target != "alice" || evs[1].Source != "oidc:corp" || evs[1].Detail != "account_taken" {
		t.Errorf("audit: got %d login_failed events (newest %+v), want %d, the second newest account_taken for alice from oidc:corp", len(evs), evs[0], len(cases))
	}
	if u, _ := h.users.DB().Lookup("alice"); u.Source != "" || u.Hash == "" {
		t.Errorf("alice after a provider claimed her name: %+v, want the local account unchanged", u.User)
	}
}

func TestOIDCLockedUserRefused(t *testing.T) {
	h, f := newOIDCHarness(t)
	if resp := h.oidcCallback(h.oidcStart("/"), f.state, "good-code"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first sign-in: got %d", resp.StatusCode)
	}
	h.editUsers(func(us []users.User) []users.User {
		for i := range us {
			if us[i].Name == "grace" {
				us[i].Disabled = true
			}
		}
		return us
	})
	resp := h.oidcCallback(h.oidcStart("/"), f.state, "good-code")
	if resp.StatusCode != http.StatusForbidden || hasSession(resp) {
		t.Errorf("locked external user: got %d (session %v), want 403 and no session", resp.StatusCode, hasSession(resp))
	}
	if u, _ := h.users.DB().Lookup("grace"); !u.Disabled {
		t.Errorf("the sign-in unlocked the user")
	}
}
