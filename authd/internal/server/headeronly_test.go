package server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/users"
)

func cookieOf(resp *http.Response) string {
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-authd_session" && c.Value != "" {
			return c.Name + "=" + c.Value
		}
	}
	return ""
}

// headerOnlyRules: /navy for group navy, /army for group army, the rest
// for anyone signed in.
func headerOnlyRules() []policy.Rule {
	return []policy.Rule{{Path: "/navy", Groups: []string{"navy"}}, {Path: "/army", Groups: []string{"army"}}, {Path: "/"}}
}

// headerOnlySignIn signs grace in through the header-only provider and
// returns her session cookie.
func headerOnlySignIn(t *testing.T, h *harness, f *fakeOIDC) string {
	t.Helper()
	resp := h.oidcCallback(h.oidcStart("/navy/"), f.state, "good-code")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/navy/" || !hasSession(resp) {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("header-only sign-in: got %d to %q (session %v), want 303 to /navy/ with a session\n%s", resp.StatusCode, resp.Header.Get("Location"), hasSession(resp), b)
	}
	return cookieOf(resp)
}

func TestHeaderOnlySignIn(t *testing.T) {
	h, f := newOIDCHarnessWith(t, headerOnlyRules(), true)
	f.id.Groups = []string{"navy", "bad group", "staff", "navy"}
	c := headerOnlySignIn(t, h, f)
	if _, ok := h.users.DB().Lookup("grace"); ok {
		t.Fatal("a header-only sign-in created a user record")
	}
	v := h.verify("/navy/ship", c)
	hd := v.Header()
	if v.Code != 200 || hd.Get("Remote-User") != "grace" || hd.Get("Remote-Groups") != "navy,staff" ||
		hd.Get("Remote-Email") != "grace@example.com" || hd.Get("Remote-Name") != "Grace Hopper" {
		t.Errorf("verify /navy/ship: got %d user %q groups %q email %q name %q, want 200 grace navy,staff grace@example.com Grace Hopper",
			v.Code, hd.Get("Remote-User"), hd.Get("Remote-Groups"), hd.Get("Remote-Email"), hd.Get("Remote-Name"))
	}
	if v := h.verify("/army/base", c); v.Code != http.StatusForbidden {
		t.Errorf("verify /army/base (not in army): got %d, want 403", v.Code)
	}
	if v := h.verify("/other", c); v.Code != 200 || v.Header().Get("Remote-User") != "grace" {
		t.Errorf("verify /other: got %d as %q, want 200 as grace", v.Code, v.Header().Get("Remote-User"))
	}
	sess, err := h.store.List(context.Background(), "grace")
	if err != nil || len(sess) != 1 || sess[0].Session.External == nil || sess[0].Session.External.Source != "oidc:corp" {
		t.Fatalf("sessions of grace: got %+v, %v; want one carrying the identity from oidc:corp", sess, err)
	}

	// Groups are fixed at sign-in: the provider's change shows at the next one.
	f.id.Groups = []string{"army"}
	if v := h.verify("/navy/ship", c); v.Code != 200 {
		t.Errorf("verify after the provider changed groups: got %d, want 200 (groups fixed at sign-in)", v.Code)
	}
	c2 := headerOnlySignIn(t, h, f)
	if v := h.verify("/army/base", c2); v.Code != 200 || v.Header().Get("Remote-Groups") != "army" {
		t.Errorf("second sign-in: got %d groups %q, want 200 army", v.Code, v.Header().Get("Remote-Groups"))
	}

	// whoami answers from the session.
	w := h.do(req{target: "/authd/whoami", headers: map[string]string{"Cookie": c}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"grace"`) || !strings.Contains(w.Body.String(), "Grace Hopper") {
		t.Errorf("whoami: got %d %s, want grace's identity", w.Code, w.Body)
	}

	// The account and second factor pages have no record to work on.
	w = h.do(req{target: "/authd/account/mfa", headers: map[string]string{"Cookie": c}})
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "Corp SSO") || !strings.Contains(w.Body.String(), "keeps no account") {
		t.Errorf("account page: got %d, want 403 saying Corp SSO manages the account\n%s", w.Code, w.Body)
	}

	// Revoking the name's sessions ends them.
	if n, err := h.store.DeleteUser(context.Background(), "grace"); err != nil || n != 2 {
		t.Fatalf("DeleteUser(grace): got %d, %v; want 2", n, err)
	}
	if v := h.verify("/other", c); v.Code != http.StatusUnauthorized {
		t.Errorf("verify after revoke: got %d, want 401", v.Code)
	}
}

func TestHeaderOnlySignOutGoesToProvider(t *testing.T) {
	h, f := newOIDCHarnessWith(t, headerOnlyRules(), true)
	c := headerOnlySignIn(t, h, f)
	form := h.do(req{target: "/authd/logout", headers: map[string]string{"Cookie": c}})
	tok := csrfRE.FindStringSubmatch(form.Body.String())
	if tok == nil {
		t.Fatalf("logout form without csrf token:\n%s", form.Body)
	}
	w := h.do(req{method: "POST", target: "/authd/logout", form: url.Values{"csrf": {tok[1]}},
		headers: map[string]string{"Cookie": c, "Origin": "https://app.example.com"}})
	if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "https://idp.example.net/logout") {
		t.Errorf("logout: got %d to %q, want 303 to the provider's logout page", w.Code, loc)
	}
	if v := h.verify("/other", c); v.Code != http.StatusUnauthorized {
		t.Errorf("verify after logout: got %d, want 401", v.Code)
	}
}

func TestHeaderOnlyNameClash(t *testing.T) {
	h, f := newOIDCHarnessWith(t, headerOnlyRules(), true)
	// A local account's name is refused, as with create_users = true.
	f.id.Name = "alice"
	resp := h.oidcCallback(h.oidcStart("/"), f.state, "good-code")
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || hasSession(resp) || !strings.Contains(string(b), "belongs to another account") {
		t.Errorf("header-only sign-in as alice: got %d (session %v), want 403 and no session\n%s", resp.StatusCode, hasSession(resp), b)
	}
	if u, _ := h.users.DB().Lookup("alice"); u.Source != "" || u.Hash == "" {
		t.Errorf("alice after the refused sign-in: %+v, want the local account unchanged", u.User)
	}

	// A record of the same name made after the sign-in ends the session:
	// it never gets that account's rights.
	f.id.Name = "grace"
	c := headerOnlySignIn(t, h, f)
	h.editUsers(func(us []users.User) []users.User {
		return append(us, users.User{Name: "grace", Hash: mustHash(t, testPassword), Groups: []string{"army"}, Generation: 7})
	})
	if v := h.verify("/army/base", c); v.Code != http.StatusUnauthorized {
		t.Errorf("header-only session once a local grace exists: got %d as %q, want 401", v.Code, v.Header().Get("Remote-User"))
	}
	if n, _ := h.store.List(context.Background(), "grace"); len(n) != 0 {
		t.Errorf("sessions of grace: got %d, want the header-only one deleted", len(n))
	}
}

func TestHeaderOnlySessionEndsWhenProviderStopsKeepingThem(t *testing.T) {
	h, f := newOIDCHarnessWith(t, headerOnlyRules(), true)
	c := headerOnlySignIn(t, h, f)
	f.headerOnly = false // as after a restart with create_users = true
	if v := h.verify("/other", c); v.Code != http.StatusUnauthorized {
		t.Errorf("header-only session after the provider switched to records: got %d, want 401", v.Code)
	}
}

// TestHeaderOnlyConsole: the console lists header-only sign-ins (there is
// no user page for them) and signs one out; a header-only identity in the
// admin group gets no console.
func TestHeaderOnlyConsole(t *testing.T) {
	h, f := newOIDCHarnessWith(t, headerOnlyRules(), true)
	c := &consoleHarness{harness: h, creds: &fakeCredentials{}}
	f.id.Groups = []string{"navy", "admin"}
	grace := headerOnlySignIn(t, h, f)
	if w := c.get(grace, "/authd/admin/"); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "keeps no account") {
		t.Errorf("console for a header-only identity in group admin: got %d, want 403\n%s", w.Code, w.Body)
	}
	alice := h.login("alice")
	w := c.get(alice, "/authd/admin/headeronly")
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, "<td>grace</td><td>oidc:corp</td><td>Grace Hopper</td><td>admin, navy</td><td>1</td>") {
		t.Fatalf("header-only list: got %d, want grace from oidc:corp with her groups and 1 session\n%s", w.Code, body)
	}
	if strings.Contains(body, "<td>alice</td>") {
		t.Errorf("header-only list shows alice, a local user")
	}
	w = c.post(alice, form("csrf", c.csrf(alice), "op", "revoke_all", "user", "grace"))
	if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || loc != "/authd/admin/headeronly?done=headeronly_revoked" {
		t.Fatalf("sign grace out: got %d to %q, want 303 back to the header-only list", w.Code, loc)
	}
	if v := h.verify("/other", grace); v.Code != http.StatusUnauthorized {
		t.Errorf("grace after the console signed her out: got %d, want 401", v.Code)
	}
	if w := c.get(alice, "/authd/admin/headeronly?done=headeronly_revoked"); !strings.Contains(w.Body.String(), "No header-only sessions.") || !strings.Contains(w.Body.String(), "Signed out") {
		t.Errorf("header-only list after sign-out:\n%s", w.Body)
	}
}
