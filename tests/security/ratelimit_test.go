package security

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestLoginRateLimitPerAddress: the shipped snippets' per-address limit on login POSTs (5 a second,
// burst 10). A client hammering the login form from one address gets nginx's 429 with Retry-After
// once its burst is spent, while that same address still gets the form (GET) and its session still
// reaches the app (verify is not limited); another address signs in as usual; and once the bucket
// has drained the hammering address can sign in again.
func TestLoginRateLimitPerAddress(t *testing.T) {
	s := newStack(t, stackOptions{})
	const hammer, other = "127.0.0.71", "127.0.0.72"
	ada := session(s.login(t, "ada", adaPassword))

	// Form POSTs with a stale CSRF token: authd answers them at once (403), no hashing, so 30 of
	// them leave one address well within a second.
	pre, csrf, _ := s.loginForm(t, "")
	post := req{method: "POST", target: "/authd/login", from: hammer, cookie: preName + "=" + pre,
		header: http.Header{"Origin": {s.origin()}},
		form:   url.Values{"username": {"ada"}, "password": {"wrong"}, "csrf": {csrf + "x"}}}
	codes := map[int]int{}
	var limited *resp
	start := time.Now()
	for range 30 {
		r := s.do(t, post)
		codes[r.Status]++
		if r.Status == http.StatusTooManyRequests && limited == nil {
			limited = r
		}
	}
	took := time.Since(start)
	t.Logf("30 login POSTs from one address in %v: %v", took, codes)
	if took > 1500*time.Millisecond {
		t.Skipf("30 POSTs took %v on this machine; the limit (5/s, burst 10) cannot be told apart", took)
	}
	if codes[http.StatusForbidden] < 10 || codes[http.StatusForbidden] > 18 {
		t.Errorf("authd answered %d of 30 rapid POSTs, want the burst of 10 plus a few (5 a second)", codes[http.StatusForbidden])
	}
	if limited == nil {
		t.Fatalf("no 429 among 30 rapid login POSTs from one address: %v", codes)
	}
	if got := limited.Header.Get("Retry-After"); got != "1" {
		t.Errorf("nginx's 429: Retry-After %q, want \"1\"", got)
	}
	if !strings.Contains(limited.Body, "too many sign-in attempts from this address") {
		t.Errorf("nginx's 429 body %q, want the one-line explanation", limited.Body)
	}
	if limited.Header.Get("Cache-Control") != "no-store" || limited.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("nginx's 429 headers %v, want Cache-Control no-store and nosniff", limited.Header)
	}

	// Still limited: the form itself and verify are not counted.
	if r := s.do(t, req{target: "/authd/login", from: hammer}); r.Status != http.StatusOK {
		t.Errorf("GET the login form from the limited address: got %s, want 200", r)
	}
	if r := s.do(t, req{target: "/app/x", cookie: ada, from: hammer}); r.App == nil {
		t.Errorf("a session from the limited address: got %s, want the app", r)
	}
	// Another address is not affected.
	if r := s.postLogin(t, "ada", adaPassword, "", other); r.Status != http.StatusSeeOther {
		t.Errorf("login from another address: got %s, want 303", r)
	}
	// 10 at 5 a second: the bucket is empty again after 2 s.
	time.Sleep(2500 * time.Millisecond)
	if r := s.postLogin(t, "ada", adaPassword, "", hammer); r.Status != http.StatusSeeOther {
		t.Errorf("login from the once-limited address after 2.5 s: got %s, want 303", r)
	}
}
