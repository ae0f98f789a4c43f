package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// oidcIdP is the test OpenID Connect provider (tests/oidcprovider) running
// for one stack.
type oidcIdP struct {
	issuer string
	log    string
}

const (
	idpGracePassword = "grace's provider password"
	idpSecret        = "authd-test-client-secret"
)

// withOIDCProvider builds and starts tests/oidcprovider on a loopback port
// and configures authd with four providers that share it: "test" (the
// real thing, email domain example.com only), "wrongaud" (its ID tokens
// name another audience), "expired" (its ID tokens are born expired) and
// "headeronly" (create_users = false: no user records).
func withOIDCProvider(t *testing.T, idp *oidcIdP) func(s *stack) {
	return func(s *stack) {
		bin := filepath.Join(s.dir, "oidcprovider")
		build := exec.Command("go", "build", "-o", bin, "./tests/oidcprovider")
		build.Dir = s.root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the test OIDC provider: %v\n%s", err, out)
		}
		port := freePort(t)
		idp.issuer = fmt.Sprintf("http://127.0.0.1:%d", port)
		cb := func(id string) []string { return []string{s.origin() + "/authd/oidc/" + id + "/callback"} }
		after := []string{s.origin() + "/authd/login?signed_out=1"}
		cfg := map[string]any{
			"listen": fmt.Sprintf("127.0.0.1:%d", port), "issuer": idp.issuer,
			"clients": []map[string]any{
				{"id": "authd", "secret": idpSecret, "redirect_uris": cb("test"), "post_logout_uris": after},
				{"id": "authd-wrongaud", "secret": idpSecret, "redirect_uris": cb("wrongaud"), "audience": []string{"some-other-app"}},
				{"id": "authd-expired", "secret": idpSecret, "redirect_uris": cb("expired"), "id_token_lifetime": "-10m"},
				{"id": "authd-headeronly", "secret": idpSecret, "redirect_uris": cb("headeronly"), "post_logout_uris": after},
			},
			"users": []map[string]any{
				{"username": "grace", "password": idpGracePassword, "first": "Grace", "last": "Hopper",
					"email": "grace@example.com", "email_verified": true, "groups": []string{"analysts", "navy"}},
				{"username": "mallory", "password": idpGracePassword, "first": "Mal", "last": "Lory",
					"email": "mallory@evil.test", "email_verified": true, "groups": []string{"analysts"}},
				// The stack's local user's name: the provider must not take the account over.
				{"username": "ada", "password": idpGracePassword, "first": "Not", "last": "Ada",
					"email": "ada@example.com", "email_verified": true},
				// Signs in through "headeronly": authd keeps no record of her.
				{"username": "dora", "password": idpGracePassword, "first": "Dora", "last": "Partner",
					"email": "dora@partner.example", "email_verified": true, "groups": []string{"sales", "partners"}},
			},
		}
		b, _ := json.Marshal(cfg)
		conf := filepath.Join(s.dir, "oidcprovider.json")
		must(t, os.WriteFile(conf, b, 0o600))
		secret := filepath.Join(s.dir, "oidc-secret")
		must(t, os.WriteFile(secret, []byte(idpSecret+"\n"), 0o600))
		s.start(t, "oidcprovider", exec.Command(bin, "-config", conf))
		idp.log = filepath.Join(s.dir, "logs", "oidcprovider.log")
		t.Cleanup(func() {
			s.procs["oidcprovider"].stop()
			if t.Failed() {
				t.Logf("---- oidcprovider log (tail) ----\n%s", tail(idp.log, 40))
			}
		})
		waitHTTP(t, idp.issuer+"/.well-known/openid-configuration", 200, 15*time.Second)
		for _, p := range []struct{ id, client, extra string }{
			{"test", "authd", `allowed_email_domains = ["example.com"]` + "\n"},
			{"wrongaud", "authd-wrongaud", ""},
			{"expired", "authd-expired", ""},
			{"headeronly", "authd-headeronly", "create_users = false\n"},
		} {
			s.opts.authdTOML += fmt.Sprintf(`
[[oidc]]
id = %q
issuer = %q
client_id = %q
client_secret_file = %q
scopes = ["profile", "email", "groups"]
display_name = "Test IdP %s"
%s`, p.id, idp.issuer, p.client, secret, p.id, p.extra)
		}
	}
}

// TestOIDCSignInThroughNginx drives the whole flow in Chromium: the login
// page's button, the provider's own login page, and back to the Streamlit
// app as the provider's user with the provider's groups; then sign-out,
// which ends the session at the provider too.
func TestOIDCSignInThroughNginx(t *testing.T) {
	requireE2E(t)
	var idp oidcIdP
	s := newStackOpts(t, "", stackOpts{beforeAuthd: withOIDCProvider(t, &idp)})
	b := newBrowser(t, s)
	site := s.origin()

	step(t, b, "the login page offers the provider", func(t *testing.T) {
		b.navigate(site + "/?from=oidc")
		b.waitPath("/authd/login", 15*time.Second)
		b.waitText("Sign in with Test IdP test", 5*time.Second)
		b.screenshot("oidc-login-page")
		// On a 375px phone the buttons fit without sideways scrolling.
		b.do(chromedp.EmulateViewport(375, 812))
		if w, err := eval[int](b, `document.documentElement.scrollWidth`); err != nil || w > 375 {
			t.Errorf("login page with provider buttons at 375px: %dpx wide (%v), want at most 375", w, err)
		}
		b.screenshot("oidc-login-page-375")
		b.do(chromedp.EmulateViewport(1280, 1100))
	})

	step(t, b, "the button leads to the provider's login page", func(t *testing.T) {
		b.submitAndWait(`a.provider[href*="/oidc/test/start"]`)
		u := b.waitPath("/login/username", 15*time.Second)
		if got := u.Scheme + "://" + u.Host; got != idp.issuer {
			t.Fatalf("provider login page at %s, want the provider %s", u, idp.issuer)
		}
	})

	step(t, b, "signing in at the provider lands in the app as the provider's user with its groups", func(t *testing.T) {
		b.do(
			chromedp.SendKeys(chromedp.CSS(`#username`), "grace"),
			chromedp.SendKeys(chromedp.CSS(`#password`), idpGracePassword),
		)
		b.submitAndWait(`#provider-submit`)
		u := b.waitPath("/", 20*time.Second)
		if got := u.RequestURI(); got != "/?from=oidc" {
			t.Errorf("after sign-in: at %q, want the page first asked for, /?from=oidc", got)
		}
		b.waitText("Hello, Grace Hopper!", 30*time.Second)
		b.waitText("Signed in as grace (grace@example.com)", 10*time.Second)
		b.waitText("navy", 5*time.Second)
		// The headers table loads last (a lazily loaded component): slow on a busy machine.
		b.waitText("Remote-Groups", 30*time.Second)
		// The headers table: nginx passed authd's Remote-Groups to the app.
		b.waitJS("Remote-Groups row", 10*time.Second, `[...document.querySelectorAll("tr")].some(r => r.innerText.includes("Remote-Groups") && r.innerText.includes("analysts,navy"))`)
		b.screenshot("oidc-app-after-login")
		if b.sessionCookie(site) == "" {
			t.Errorf("no session cookie after the OIDC sign-in")
		}
	})

	step(t, b, "authd created the user with its source", func(t *testing.T) {
		out := s.authd(t, "", []string{"explain"}, "-user", "grace", "-path", "/")
		if !strings.Contains(out, "from oidc:test") || !strings.Contains(out, "analysts") {
			t.Errorf("authd explain -user grace:\n%s\nwant \"from oidc:test\" and the groups", out)
		}
		b, err := os.ReadFile(filepath.Join(s.dir, "users.toml"))
		must(t, err)
		if !strings.Contains(string(b), `source = "oidc:test"`) {
			t.Errorf("users file has no record with source oidc:test:\n%s", b)
		}
	})

	step(t, b, "signing out ends the session here and at the provider", func(t *testing.T) {
		b.navigate(site + "/authd/logout")
		b.waitText("You are signed in as", 10*time.Second)
		b.submitAndWait(`form button[type="submit"]`)
		u := b.waitPath("/authd/login", 15*time.Second)
		if u.Query().Get("signed_out") != "1" {
			t.Errorf("after sign-out: at %s, want the login page with signed_out=1", u)
		}
		if !strings.Contains(readFile(t, idp.log), "/end_session") {
			t.Errorf("the provider's end_session endpoint was never called")
		}
		if c := b.sessionCookie(site); c != "" {
			t.Errorf("session cookie still set after sign-out")
		}
		b.navigate(site + "/")
		b.waitPath("/authd/login", 15*time.Second)
	})
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}

// oidcClient walks the sign-in with an HTTP client through nginx, one
// redirect at a time, so a test can change what an attacker could.
type oidcClient struct {
	t    *testing.T
	s    *stack
	c    *http.Client
	site string
}

func newOIDCClient(t *testing.T, s *stack) *oidcClient {
	jar, err := cookiejar.New(nil)
	must(t, err)
	c := s.client()
	c.Jar = jar
	return &oidcClient{t: t, s: s, c: c, site: s.origin()}
}

func (o *oidcClient) get(u string) *http.Response {
	o.t.Helper()
	resp, err := o.c.Get(u)
	must(o.t, err)
	return resp
}

func location(t testing.TB, resp *http.Response) string {
	t.Helper()
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("%s: status %d, no Location", resp.Request.URL, resp.StatusCode)
	}
	return loc.String()
}

// toCallback starts a sign-in with provider id, lets edit change the
// provider's authorization URL, signs in at the provider as user, and
// returns the callback URL the provider sends the browser to.
func (o *oidcClient) toCallback(id, user string, edit func(u *url.URL)) *url.URL {
	o.t.Helper()
	auth, err := url.Parse(location(o.t, o.get(o.site+"/authd/oidc/"+id+"/start?rd=/")))
	must(o.t, err)
	if q := auth.Query(); q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || q.Get("nonce") == "" {
		o.t.Fatalf("authorization URL %s lacks PKCE S256, state or nonce", auth)
	}
	if edit != nil {
		edit(auth)
	}
	login, err := url.Parse(location(o.t, o.get(auth.String())))
	must(o.t, err)
	login = auth.ResolveReference(login)
	resp, err := o.c.PostForm(auth.Scheme+"://"+auth.Host+"/login/username", url.Values{
		"id": {login.Query().Get("authRequestID")}, "username": {user}, "password": {idpGracePassword}})
	must(o.t, err)
	next, err := url.Parse(location(o.t, resp))
	must(o.t, err)
	next = auth.ResolveReference(next)
	// The provider's callback step, then the redirect to authd's callback.
	cb, err := url.Parse(location(o.t, o.get(next.String())))
	must(o.t, err)
	if !strings.HasPrefix(cb.String(), o.site+"/authd/oidc/"+id+"/callback") {
		o.t.Fatalf("provider sent the browser to %s, want authd's callback", cb)
	}
	return cb
}

// callback follows cb and returns the status and the page's text.
func (o *oidcClient) callback(cb *url.URL) (int, string) {
	o.t.Helper()
	resp := o.get(cb.String())
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// signedIn reports whether the client's cookies open the app.
func (o *oidcClient) signedIn() bool {
	o.t.Helper()
	resp := o.get(o.site + "/authd/whoami")
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestOIDCRefusals sends the answers an attacker or a broken provider
// could produce through nginx to authd's callback: each is refused with a
// page that says so, and no session.
func TestOIDCRefusals(t *testing.T) {
	requireE2E(t)
	var idp oidcIdP
	s := newStackOpts(t, "", stackOpts{beforeAuthd: withOIDCProvider(t, &idp)})

	cases := []struct {
		name, provider, user string
		editAuth             func(u *url.URL) // the authorization request, before the provider sees it
		editCallback         func(u *url.URL) // the answer, before authd sees it
		newBrowser           bool             // the callback arrives in a browser that did not start the flow
		status               int
		message              string
	}{
		{name: "tampered state", provider: "test", user: "grace",
			editCallback: func(u *url.URL) { setQuery(u, "state", "attacker-chosen-state") },
			status:       400, message: "does not belong to this sign-in"},
		{name: "tampered nonce", provider: "test", user: "grace",
			editAuth: func(u *url.URL) { setQuery(u, "nonce", "attacker-chosen-nonce") },
			status:   401, message: "does not belong to this sign-in"},
		{name: "callback in another browser (login CSRF)", provider: "test", user: "grace", newBrowser: true,
			status: 400, message: "expired or was started elsewhere"},
		{name: "wrong audience", provider: "wrongaud", user: "grace",
			status: 401, message: "Sign-in with Test IdP wrongaud failed"},
		{name: "expired ID token", provider: "expired", user: "grace",
			status: 401, message: "Sign-in with Test IdP expired failed"},
		{name: "disallowed email domain", provider: "test", user: "mallory",
			status: 403, message: "account is not allowed to sign in here"},
		{name: "name of a local account", provider: "test", user: "ada",
			status: 403, message: "belongs to another account here"},
		{name: "header-only identity with a local account's name", provider: "headeronly", user: "ada",
			status: 403, message: "belongs to another account here"},
		{name: "replayed callback", provider: "test", user: "grace",
			status: 0}, // checked below
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newOIDCClient(t, s)
			cb := o.toCallback(tc.provider, tc.user, tc.editAuth)
			if tc.status == 0 {
				// The first use signs in; the same answer again (its flow cookie spent) is refused.
				if code, body := o.callback(cb); code != http.StatusSeeOther || !o.signedIn() {
					t.Fatalf("first use of the callback: status %d, want a signed-in session\n%s", code, body)
				}
				// The same answer again in the same browser: its flow cookie is spent.
				if code, body := o.callback(cb); code != 400 || !strings.Contains(body, "expired or was started elsewhere") {
					t.Errorf("replayed callback: status %d, want 400 and no session\n%s", code, body)
				}
				return
			}
			if tc.editCallback != nil {
				tc.editCallback(cb)
			}
			if tc.newBrowser {
				o = newOIDCClient(t, s)
			}
			code, body := o.callback(cb)
			if code != tc.status || !strings.Contains(body, tc.message) {
				t.Errorf("got status %d, want %d with %q; page:\n%s", code, tc.status, tc.message, body)
			}
			if !strings.Contains(body, `role="alert"`) || !strings.Contains(body, "<form") {
				t.Errorf("refusal is not the login page with an error:\n%s", body)
			}
			if o.signedIn() {
				t.Errorf("a session exists after the refusal")
			}
		})
	}
	if out := readFile(t, filepath.Join(s.dir, "logs", "authd.log")); !strings.Contains(out, `"reason":"account_taken"`) {
		t.Errorf("authd logged no account_taken refusal")
	}
	users := readFile(t, filepath.Join(s.dir, "users.toml"))
	if strings.Contains(users, "mallory") {
		t.Errorf("a refused identity was written to the users file:\n%s", users)
	}
}

func setQuery(u *url.URL, k, v string) {
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
}

// TestOIDCProviderDown: a provider that cannot be reached when authd starts
// leaves authd serving, local accounts signing in, and its button answering
// with a page that says it is unavailable (no session, no redirect to it).
func TestOIDCProviderDown(t *testing.T) {
	requireE2E(t)
	dead := freePort(t) // nothing listens here
	s := newStackOpts(t, "", stackOpts{authdTOML: fmt.Sprintf(`
[[oidc]]
id = "down"
issuer = "http://127.0.0.1:%d"
client_id = "authd"
display_name = "Down IdP"
`, dead)})
	if !strings.Contains(readFile(t, filepath.Join(s.dir, "logs", "authd.log")), "oidc provider unavailable") {
		t.Errorf("authd did not log the unreachable provider at start")
	}
	o := newOIDCClient(t, s)
	resp := o.get(o.site + "/authd/oidc/down/start?rd=/")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "Sign-in with Down IdP is unavailable right now") {
		t.Errorf("start with the provider down: got %d, want 503 with the unavailable message\n%s", resp.StatusCode, body)
	}

	// The local account still signs in.
	resp = o.get(o.site + "/authd/login")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("login form without csrf token:\n%s", body)
	}
	req, err := http.NewRequest("POST", o.site+"/authd/login", strings.NewReader(url.Values{
		"username": {"ada"}, "password": {testPassword}, "csrf": {string(m[1])}, "rd": {"/"}}.Encode()))
	must(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", o.site)
	resp, err = o.c.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !o.signedIn() {
		t.Errorf("local login with the provider down: got %d (signed in %v), want 303 and a session", resp.StatusCode, o.signedIn())
	}
}

// TestOIDCHeaderOnlyThroughNginx: a provider with create_users = false.
// Its user signs in in Chromium and reaches the Streamlit app with the
// provider's identity and groups, group rules apply to her, and authd
// keeps no user record: the session alone carries her, "authd session
// list" shows it and "authd session revoke -user" ends it.
func TestOIDCHeaderOnlyThroughNginx(t *testing.T) {
	requireE2E(t)
	var idp oidcIdP
	s := newStackOpts(t, "", stackOpts{beforeAuthd: withOIDCProvider(t, &idp), authdTOML: `
[[rules]]
path = "/ops"
groups = ["ops"]

[[rules]]
path = "/"
groups = ["sales", "staff"]

[admin]
groups = ["staff"]
`})
	b := newBrowser(t, s)
	site := s.origin()

	step(t, b, "the header-only provider's user reaches the app with its identity and groups", func(t *testing.T) {
		b.navigate(site + "/?from=partner")
		b.waitPath("/authd/login", 15*time.Second)
		b.waitText("Sign in with Test IdP headeronly", 5*time.Second)
		b.submitAndWait(`a.provider[href*="/oidc/headeronly/start"]`)
		b.waitPath("/login/username", 15*time.Second)
		b.do(
			chromedp.SendKeys(chromedp.CSS(`#username`), "dora"),
			chromedp.SendKeys(chromedp.CSS(`#password`), idpGracePassword),
		)
		b.submitAndWait(`#provider-submit`)
		u := b.waitPath("/", 20*time.Second)
		if got := u.RequestURI(); got != "/?from=partner" {
			t.Errorf("after sign-in: at %q, want /?from=partner", got)
		}
		b.waitText("Hello, Dora Partner!", 30*time.Second)
		b.waitText("Signed in as dora (dora@partner.example)", 10*time.Second)
		b.waitText("Remote-Groups", 30*time.Second)
		b.waitJS("Remote-Groups row", 10*time.Second, `[...document.querySelectorAll("tr")].some(r => r.innerText.includes("Remote-Groups") && r.innerText.includes("partners,sales"))`)
		b.screenshot("oidc-headeronly-app")
	})

	step(t, b, "group rules apply to the session's groups", func(t *testing.T) {
		cookie := b.sessionCookie(site)
		if cookie == "" {
			t.Fatal("no session cookie")
		}
		if r := s.get(t, s.client(), "/ops/", cookie, nil); r.StatusCode != http.StatusForbidden {
			t.Errorf("/ops/ (group ops) for dora: got %d, want 403", r.StatusCode)
		}
	})

	step(t, b, "authd keeps no user record; the session list shows the identity", func(t *testing.T) {
		if out := s.authd(t, "", []string{"user", "list"}); strings.Contains(out, "dora") {
			t.Errorf("authd user list shows dora:\n%s", out)
		}
		if users := readFile(t, filepath.Join(s.dir, "users.toml")); strings.Contains(users, "dora") {
			t.Errorf("the users file holds dora:\n%s", users)
		}
		if out := s.authd(t, "", []string{"session", "list"}); !strings.Contains(out, "dora (oidc:headeronly, header-only)") {
			t.Errorf("authd session list:\n%s\nwant dora's session marked header-only from oidc:headeronly", out)
		}
	})

	admin := newBrowser(t, s)
	step(t, admin, "the admin console lists the header-only sign-in", func(t *testing.T) {
		admin.navigate(site + "/authd/admin/headeronly")
		admin.waitPath("/authd/login", 15*time.Second)
		admin.login("ada", testPassword)
		admin.waitPath("/authd/admin/headeronly", 15*time.Second)
		admin.waitText("Header-only sign-ins", 10*time.Second)
		admin.waitJS("dora's row", 10*time.Second, `[...document.querySelectorAll("tr")].some(r => r.innerText.includes("dora") && r.innerText.includes("oidc:headeronly") && r.innerText.includes("partners, sales"))`)
		admin.do(chromedp.EmulateViewport(375, 812))
		admin.screenshot("oidc-headeronly-console-375")
		admin.do(chromedp.EmulateViewport(1280, 1100))
	})

	step(t, b, "session revoke -user ends the header-only session", func(t *testing.T) {
		if out := s.authd(t, "", []string{"session", "revoke"}, "-user", "dora"); !strings.Contains(out, "revoked 1 sessions for dora") {
			t.Errorf("authd session revoke -user dora: %q, want 1 session revoked", out)
		}
		b.navigate(site + "/")
		b.waitPath("/authd/login", 15*time.Second)
		admin.navigate(site + "/authd/admin/headeronly")
		admin.waitText("No header-only sessions.", 10*time.Second)
	})
}
