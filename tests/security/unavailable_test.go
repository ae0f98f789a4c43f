package security

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unavailableTitle is what the branded page says; nginx's own error pages never say it.
const unavailableTitle = "Sign-in service unavailable"

// TestAuthdDownUnavailablePage covers issue 14's "when authd cannot answer, nginx shows a branded
// sign-in service unavailable page, never nginx's bare 500": with authd stopped, and with authd
// hung (verify times out), every request to a protected location gets 503 with Retry-After and
// never the app; page navigations get the branded page, WebSocket handshakes, fetch/XHR and API
// clients a short text and no redirect. With authd back, 401 and 403 behave exactly as before.
func TestAuthdDownUnavailablePage(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	ada := session(s.login(t, "ada", adaPassword))
	if r := s.do(t, req{target: "/app/x", cookie: ada}); r.App == nil {
		t.Fatalf("control: ada on /app/x with authd up: got %s, want the app", r)
	}
	shipped, err := os.ReadFile(filepath.Join(s.root, "nginx", "html", "unavailable.html"))
	must(t, err)

	navigate := http.Header{"Sec-Fetch-Mode": {"navigate"}, "Accept": {"text/html,application/xhtml+xml,*/*;q=0.8"}}
	ws := []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}
	type tc struct {
		name string
		page bool // the branded HTML page, else the one-line text
		do   func() *resp
	}
	cases := []tc{
		{"anonymous page navigation", true, func() *resp { return s.do(t, req{target: "/app/x", header: navigate}) }},
		{"page navigation with a session", true, func() *resp { return s.do(t, req{target: "/app/x?a=1", header: navigate, cookie: ada}) }},
		{"navigation to a path no rule matches", true, func() *resp { return s.do(t, req{target: "/nowhere", header: navigate, cookie: ada}) }},
		{"old browser without Sec-Fetch-Mode", true, func() *resp { return s.do(t, req{target: "/app/x", header: http.Header{"Accept": {"text/html"}}}) }},
		{"form POST navigation", true, func() *resp {
			return s.do(t, req{method: "POST", target: "/app/form", header: navigate, cookie: ada, form: map[string][]string{"a": {"b"}}})
		}},
		{"HEAD navigation", true, func() *resp { return s.do(t, req{method: "HEAD", target: "/app/x", header: navigate}) }},
		{"fetch/XHR", false, func() *resp {
			return s.do(t, req{target: "/app/api", cookie: ada, header: http.Header{"Sec-Fetch-Mode": {"cors"}, "Accept": {"application/json"}}})
		}},
		{"XMLHttpRequest", false, func() *resp {
			return s.do(t, req{target: "/app/api", cookie: ada, header: http.Header{"X-Requested-With": {"XMLHttpRequest"}, "Accept": {"text/html"}}})
		}},
		{"API client with a bearer token", false, func() *resp {
			return s.do(t, req{target: "/app/api", header: http.Header{"Authorization": {"Bearer authd_tok_x"}, "Accept": {"text/html"}}})
		}},
		{"the login form", true, func() *resp { return s.do(t, req{target: "/authd/login?rd=/app/x", header: navigate}) }},
		{"posting the login form", true, func() *resp {
			return s.do(t, req{method: "POST", target: "/authd/login", header: navigate, form: map[string][]string{"username": {"ada"}}})
		}},
		{"whoami from the page's script", false, func() *resp {
			return s.do(t, req{target: "/authd/whoami", cookie: ada, header: http.Header{"Sec-Fetch-Mode": {"cors"}, "Accept": {"application/json"}}})
		}},
		{"WebSocket handshake", false, func() *resp {
			return s.raw(t, "", s.rawGet("/ws/stream", append([]string{"Cookie: " + ada, "Sec-Fetch-Mode: websocket"}, ws...)...))
		}},
	}
	check := func(t *testing.T, c tc, r *resp) {
		t.Helper()
		if r.App != nil || r.Header.Get("X-Echo-App") != "" {
			t.Fatalf("got %s: the app answered while authd could not", r)
		}
		if r.Status != http.StatusServiceUnavailable {
			t.Errorf("got %s, want 503", r)
		}
		if loc := r.Header.Get("Location"); loc != "" {
			t.Errorf("Location %q, want no redirect", loc)
		}
		if ra := r.Header.Get("Retry-After"); ra == "" {
			t.Errorf("no Retry-After")
		}
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		for _, bare := range []string{"Internal Server Error", "<center>", "Service Temporarily Unavailable"} {
			if strings.Contains(r.Body, bare) {
				t.Errorf("body holds nginx's own error text %q:\n%s", bare, r.Body)
			}
		}
		if m := leakRE.FindString(r.Body); m != "" {
			t.Errorf("body reveals %q:\n%s", m, r.Body)
		}
		ct := r.Header.Get("Content-Type")
		switch {
		case c.name == "HEAD navigation":
			if !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q, want text/html", ct)
			}
		case c.page:
			if !strings.HasPrefix(ct, "text/html") || r.Body != string(shipped) {
				t.Errorf("Content-Type %q, body:\n%s\nwant text/html and the shipped nginx/html/unavailable.html", ct, r.Body)
			}
			csp := r.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
				t.Errorf("Content-Security-Policy %q, want default-src 'none' and nothing unsafe", csp)
			}
		default:
			if !strings.HasPrefix(ct, "text/plain") || !strings.Contains(r.Body, "sign-in service unavailable") || strings.Contains(r.Body, "<") {
				t.Errorf("Content-Type %q, body %q: want the one-line text", ct, r.Body)
			}
		}
	}

	s.proc("authd").stop()
	for _, c := range cases {
		t.Run("authd stopped/"+c.name, func(t *testing.T) { check(t, c, c.do()) })
	}
	// The page's stylesheet loads while authd is down; the page itself has no public URL.
	if r := s.do(t, req{target: "/_authd/unavailable.css"}); r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") {
		t.Errorf("the page's stylesheet: got %s, Content-Type %q, want 200 text/css", r, r.Header.Get("Content-Type"))
	}
	for _, internal := range []string{"/_authd/unavailable", "/_authd/unavailable.txt"} {
		if r := s.do(t, req{target: internal, header: navigate}); r.Status != http.StatusNotFound {
			t.Errorf("the page's internal location %s from outside: got %s, want 404", internal, r)
		}
	}

	// The page's file missing (snippets copied without it): still 503 and no app, as text.
	page := filepath.Join(s.dir, "nginx", "html", "unavailable.html")
	must(t, os.Rename(page, page+".away"))
	t.Run("page file missing", func(t *testing.T) { check(t, tc{name: "page file missing"}, cases[0].do()) })
	must(t, os.Rename(page+".away", page))

	// Hung, not gone: nginx gives up on verify after proxy_read_timeout (5 s) with the same page.
	must(t, s.startAuthd("authd"))
	p := s.proc("authd")
	p.signal(syscall.SIGSTOP)
	start := time.Now()
	check(t, cases[1], cases[1].do())
	p.signal(syscall.SIGCONT)
	t.Logf("hung authd: the page after %v", time.Since(start).Round(100*time.Millisecond))

	// Back up: 401 and 403 are answered exactly as before.
	if r := s.do(t, req{target: "/app/x", header: navigate}); r.Status != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "/authd/login") {
		t.Errorf("anonymous navigation with authd back: got %s, want 302 to the login form", r)
	}
	if r := s.do(t, req{target: "/app/x", header: http.Header{"Sec-Fetch-Mode": {"cors"}}}); r.Status != http.StatusUnauthorized {
		t.Errorf("anonymous fetch with authd back: got %s, want 401", r)
	}
	if r := s.do(t, req{target: "/admin/x", header: navigate, cookie: ada}); r.Status != http.StatusForbidden || strings.Contains(r.Body, unavailableTitle) {
		t.Errorf("ada on /admin with authd back: got %s, want 403 without the unavailable page", r)
	}
	if r := s.do(t, req{target: "/app/x", header: navigate, cookie: ada}); r.App == nil {
		t.Errorf("ada with authd back: got %s, want the app", r)
	}
}
