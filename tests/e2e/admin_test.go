package e2e

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestAdminConsole drives the admin console through real nginx with the
// shipped snippets, in headless Chromium: the admin signs in on the way to
// the console, finds and locks a user (whose session ends at once), adds
// and deletes a user (delete asks for the password again and returns to the
// action), and reads it all in the audit log. A non-admin gets 403 through
// nginx; console pages are never cached. Screenshots land in tests/out.
func TestAdminConsole(t *testing.T) {
	requireE2E(t)
	s := newStack(t, "")
	s.authd(t, "root admin password 1\n", []string{"user", "add"}, "-groups", "admin", "-name", "Root Admin", "root")
	time.Sleep(300 * time.Millisecond) // the CLI told the running authd to reload; let it settle
	c := s.client()

	// ada (not an admin) signs in with a plain client through nginx.
	ada := loginHTTP(t, s, c, "ada", testPassword)
	for _, p := range []string{"/authd/admin/", "/authd/admin/audit", "/authd/admin/user?u=root"} {
		r := s.get(t, c, p, ada, nil)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s as ada through nginx: got %d, want 403", p, r.StatusCode)
		}
	}
	if r := s.get(t, c, "/", ada, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("ada's app before the lock: got %d", r.StatusCode)
	}

	b := newBrowser(t, s)
	step(t, b, "sign in on the way to the console", func(t *testing.T) {
		b.navigate(s.origin() + "/authd/admin/")
		b.login("root", "root admin password 1")
		b.waitPath("/authd/admin/", 15*time.Second)
		b.waitText("Ada Lovelace", 5*time.Second)
		b.screenshot("admin-users")
	})
	step(t, b, "console pages are not cached", func(t *testing.T) {
		r := s.get(t, c, "/authd/admin/", b.sessionCookie(s.origin()), nil)
		if r.StatusCode != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("console through nginx: %d, Cache-Control %q; want 200, no-store", r.StatusCode, r.Header.Get("Cache-Control"))
		}
		if !strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("console CSP: %q", r.Header.Get("Content-Security-Policy"))
		}
	})
	step(t, b, "search and lock ada", func(t *testing.T) {
		b.do(chromedp.SendKeys(chromedp.CSS(`#q`), "lovelace"))
		b.submitAndWait(`form[role=search] button`)
		b.waitText("1 users matching", 5*time.Second)
		b.do(chromedp.Click(chromedp.CSS(`a[href*="admin/user?u=ada"]`)))
		b.waitPath("/authd/admin/user", 10*time.Second)
		b.waitText("Sessions", 5*time.Second)
		if strings.Contains(b.text(), "not recorded") {
			t.Error("ada's page shows no last login, but she signed in")
		}
		b.screenshot("admin-user")
		b.submitAndWait(`form input[value=lock] ~ button`)
		b.waitText("User locked", 5*time.Second)
		if r := s.get(t, c, "/", ada, nil); r.StatusCode == http.StatusOK {
			t.Errorf("ada's app after the lock: got %d, want a redirect to login", r.StatusCode)
		}
	})
	step(t, b, "add a user, delete it with re-authentication", func(t *testing.T) {
		b.navigate(s.origin() + "/authd/admin/new")
		b.do(
			chromedp.SendKeys(chromedp.CSS(`#user`), "temp"),
			chromedp.SendKeys(chromedp.CSS(`#password`), "temporary password 1"),
			chromedp.SendKeys(chromedp.CSS(`#groups`), "staff"),
		)
		b.screenshot("admin-add-user")
		b.submitAndWait(`form button[type=submit]`)
		b.waitText("User added", 5*time.Second)
		b.do(chromedp.Click(chromedp.CSS(`input[name=confirm]`)))
		b.submitAndWait(`form input[value=delete] ~ button`)
		b.waitText("needs your password again", 5*time.Second)
		b.screenshot("admin-reauth")
		b.do(chromedp.SendKeys(chromedp.CSS(`#reauth_password`), "root admin password 1"))
		b.submitAndWait(`form button[type=submit]`)
		b.waitText("User deleted", 5*time.Second)
		if strings.Contains(b.text(), "temp@") {
			t.Error("temp still listed")
		}
	})
	step(t, b, "phone width", func(t *testing.T) {
		b.do(chromedp.EmulateViewport(375, 800))
		b.navigate(s.origin() + "/authd/admin/user?u=ada")
		b.waitText("Sessions", 5*time.Second)
		w, err := eval[float64](b, "document.documentElement.scrollWidth")
		if err != nil || w > 375 {
			wide, _ := eval[string](b, `Array.from(document.querySelectorAll("body *")).filter(e => e.getBoundingClientRect().right > 376).slice(0, 8).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right)).join(", ")`)
			t.Errorf("user page at 375px is %v px wide (%v); wider: %s", w, err, wide)
		}
		b.screenshot("admin-user-phone")
		b.do(chromedp.EmulateViewport(1280, 1100))
	})
	step(t, b, "audit log", func(t *testing.T) {
		b.navigate(s.origin() + "/authd/admin/audit")
		b.waitText("user_locked", 5*time.Second)
		text := b.text()
		for _, want := range []string{"user_locked\troot\tada", "user_added\troot\ttemp", "user_deleted\troot\ttemp", "reauth_succeeded\troot", "user_added\tunix:", "admin_denied\tada"} {
			if !strings.Contains(text, want) {
				t.Errorf("audit page lacks %q:\n%s", want, text)
			}
		}
		if !strings.Contains(text, "Sign out") {
			t.Error("audit page lacks the navigation bar")
		}
		b.screenshot("admin-audit")
	})
	if dst := os.Getenv("AUTHD_SCREENSHOTS"); dst != "" {
		for _, n := range []string{"admin-users", "admin-user", "admin-add-user", "admin-reauth", "admin-user-phone", "admin-audit"} {
			data, err := os.ReadFile(filepath.Join(b.out, n+".png"))
			if err == nil {
				_ = os.WriteFile(filepath.Join(dst, n+".png"), data, 0o644)
			}
		}
	}
}

var loginCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginHTTP signs in through nginx with a plain client and returns the session cookie value.
func loginHTTP(t *testing.T, s *stack, c *http.Client, user, pw string) string {
	t.Helper()
	r := s.get(t, c, "/authd/login", "", nil)
	body, _ := io.ReadAll(r.Body)
	m := loginCSRF.FindSubmatch(body)
	if m == nil {
		t.Fatalf("login form: %d without a token", r.StatusCode)
	}
	req, _ := http.NewRequest("POST", s.origin()+"/authd/login", strings.NewReader(url.Values{"username": {user}, "password": {pw}, "csrf": {string(m[1])}, "rd": {"/"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.origin())
	for _, ck := range r.Cookies() {
		req.AddCookie(ck)
	}
	resp, err := c.Do(req)
	must(t, err)
	defer resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookieName {
			return ck.Value
		}
	}
	t.Fatalf("login %s: %d without a session cookie", user, resp.StatusCode)
	return ""
}
