package e2e

import (
	"bytes"
	"fmt"
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

	"github.com/authd/authd/tests/internal/authdtest"
)

// sessionCookieName is authd's cookie over TLS (the __Host- prefix pins it to this origin).
const sessionCookieName = "__Host-authd_session"

// greeting is what the demo app shows the test user, built from the Remote-Name header.
const greeting = "Hello, Ada Lovelace!"

// TestNginxExampleSiteIsValid checks the shipped example site, rendered with the snippets, with
// `nginx -t`; it needs nginx but no browser.
func TestNginxExampleSiteIsValid(t *testing.T) {
	requireE2E(t)
	s := &stack{root: repoRoot(t), dir: t.TempDir(), procs: map[string]*proc{}}
	s.nginxBin = lookTool(t, "NGINX", "nginx", "/usr/sbin/nginx")
	s.httpsPort, s.httpPort, s.authdPort, s.stPort = 8443, 8080, 9091, 8501
	s.staticDir = t.TempDir()
	ngx := filepath.Join(s.dir, "nginx")
	must(t, os.MkdirAll(filepath.Join(ngx, "tmp"), 0o777))
	must(t, os.MkdirAll(filepath.Join(s.dir, "logs"), 0o755))
	must(t, authdtest.WriteCert(filepath.Join(s.dir, "tls")))
	s.renderSite(t, ngx)
	s.nginxConf = filepath.Join(ngx, "nginx.conf")
	must(t, os.WriteFile(s.nginxConf, []byte(fmt.Sprintf(`pid %[1]s/nginx.pid;
events {}
http {
    include /etc/nginx/mime.types;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include site.conf;
}
`, ngx)), 0o644))
	out, err := s.nginxTest(t)
	if err != nil || !strings.Contains(out, "test is successful") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	if strings.Contains(out, "[warn]") {
		t.Errorf("nginx -t warns:\n%s", out)
	}
}

// TestStreamlitBehindAuthd walks the whole story of issue 3 in a real browser: one stack, one
// browser, steps in order (each depends on the state the previous one left).
func TestStreamlitBehindAuthd(t *testing.T) {
	requireE2E(t)
	start := time.Now()
	s := newStack(t, "")
	t.Logf("stack up in %v: https on %d, authd on %d, streamlit on %d", time.Since(start).Round(time.Millisecond), s.httpsPort, s.authdPort, s.stPort)
	b := newBrowser(t, s)
	site := s.origin()
	firstPage := "/?tab=files&x=1"

	step(t, b, "nginx -t passes on the rendered example site", func(t *testing.T) {
		out, err := s.nginxTest(t)
		if err != nil || !strings.Contains(out, "test is successful") {
			t.Fatalf("nginx -t: %v\n%s", err, out)
		}
	})

	step(t, b, "an unauthenticated visit lands on the login form", func(t *testing.T) {
		b.navigate(site + firstPage)
		u := b.waitPath("/authd/login", 15*time.Second)
		if got := u.Query().Get("rd"); got != firstPage {
			t.Errorf("login form's return path: got %q, want %q", got, firstPage)
		}
		b.waitJS("login form", 5*time.Second, `!!document.querySelector('input[autocomplete="current-password"]')`)
		b.screenshot("login-page")
	})

	step(t, b, "a wrong password shows the generic error, the same as an unknown user", func(t *testing.T) {
		var msgs []string
		for _, creds := range [][2]string{{"ada", "not the password at all"}, {"nobody-here", "not the password at all"}} {
			b.login(creds[0], creds[1])
			b.waitJS("error message", 15*time.Second, `!!document.querySelector('[role="alert"]')`)
			msg, err := eval[string](b, `document.querySelector('[role="alert"]').innerText`)
			must(t, err)
			msgs = append(msgs, strings.TrimSpace(msg))
			if p := b.waitPath("/authd/login", 5*time.Second); p.Path != "/authd/login" {
				t.Errorf("after a failed login: at %s", p)
			}
			if c := b.sessionCookie(site); c != "" {
				t.Errorf("a failed login set a session cookie")
			}
		}
		b.screenshot("login-failed")
		if msgs[0] == "" || msgs[0] != msgs[1] {
			t.Errorf("failure messages: wrong password %q, unknown user %q; want one generic message", msgs[0], msgs[1])
		}
		if strings.Contains(strings.ToLower(msgs[0]), "unknown") || strings.Contains(strings.ToLower(msgs[0]), "not found") {
			t.Errorf("failure message reveals whether the user exists: %q", msgs[0])
		}
	})

	step(t, b, "the right password lands on the page first asked for, rendered with a live WebSocket and the user's name", func(t *testing.T) {
		b.login("ada", testPassword)
		u := b.waitPath("/", 15*time.Second)
		if got := u.RequestURI(); got != firstPage {
			t.Errorf("after login: at %q, want %q", got, firstPage)
		}
		b.waitText(greeting, 30*time.Second)
		b.waitText("analysts", 5*time.Second)
		b.waitText("staff", 5*time.Second)
		b.waitText("Sign out", 10*time.Second)
		b.waitText("Remote-User", 10*time.Second)
		b.waitJS("file uploader", 10*time.Second, `!!document.querySelector('input[type="file"]')`)
		var ok bool
		for _, h := range b.handshakes() {
			if strings.HasSuffix(h.url, "/_stcore/stream") && h.status == 101 {
				ok = true
			}
		}
		if !ok {
			t.Errorf("no WebSocket to /_stcore/stream was upgraded (101); saw %+v", b.handshakes())
		}
		b.screenshot("app-after-login")
	})

	step(t, b, "a file upload reaches the app", func(t *testing.T) {
		data := bytes.Repeat([]byte("authd e2e upload\n"), 1000) // 17000 bytes
		f := filepath.Join(s.dir, "hello-upload.txt")
		must(t, os.WriteFile(f, data, 0o644))
		b.do(chromedp.SetUploadFiles(chromedp.CSS(`input[type="file"]`), []string{f}))
		b.waitText(fmt.Sprintf("Received hello-upload.txt: %d bytes", len(data)), 30*time.Second)
	})

	step(t, b, "a reload keeps the session", func(t *testing.T) {
		b.do(chromedp.Reload())
		b.waitText(greeting, 30*time.Second)
		if u, _ := url.Parse(b.location()); u.RequestURI() != firstPage {
			t.Errorf("after reload: at %s", u)
		}
	})

	step(t, b, "identity headers forged by the client never reach the app", func(t *testing.T) {
		b.setExtraHeaders(map[string]string{
			"Remote-User":         "mallory",
			"remote-name":         "Mallory Forged",
			"REMOTE-GROUPS":       "forgedadmins",
			"Remote-Email":        "mallory@evil.example",
			"X-Remote-User":       "mallory",
			"X-Forwarded-User":    "mallory",
			"X-Auth-Request-User": "mallory",
			"X_Remote_User":       "mallory",
			"Remote_User":         "mallory",
			// A header nginx passes unchanged: proves forged headers do reach the handshake.
			"X-E2e-Probe": "probe-reached-app",
		})
		defer b.setExtraHeaders(nil)
		b.do(chromedp.Reload())
		b.waitText(greeting, 30*time.Second)
		b.waitText("probe-reached-app", 10*time.Second)
		page := strings.ToLower(b.text())
		for _, bad := range []string{"mallory", "forgedadmins"} {
			if strings.Contains(page, bad) {
				t.Errorf("the app shows the forged value %q:\n%s", bad, b.text())
			}
		}
		b.screenshot("app-with-forged-headers")
	})

	c := s.client()
	cookie := b.sessionCookie(site)
	if cookie == "" {
		t.Fatal("no session cookie in the browser after login")
	}

	step(t, b, "the WebSocket handshake without a session gets 401, with one it upgrades", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			cookie string
			want   int
		}{
			{"no cookie", "", 401},
			{"bogus cookie", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 401},
			{"session cookie", cookie, 101},
		} {
			resp := s.get(t, c, "/_stcore/stream", tc.cookie, map[string]string{
				"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
				"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": site, "Sec-Fetch-Mode": "websocket",
			})
			if resp.StatusCode != tc.want {
				t.Errorf("%s: handshake got %d, want %d", tc.name, resp.StatusCode, tc.want)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("%s: handshake answered with a redirect to %q", tc.name, loc)
			}
		}
	})

	step(t, b, "without a session: navigations are redirected, fetches get 401", func(t *testing.T) {
		nav := s.get(t, c, "/some/page?q=1", "", map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "text/html"})
		if nav.StatusCode != 302 || nav.Header.Get("Location") != "/authd/login?rd=%2Fsome%2Fpage%3Fq%3D1" {
			t.Errorf("navigation: got %d Location %q, want 302 to /authd/login?rd=%%2Fsome%%2Fpage%%3Fq%%3D1", nav.StatusCode, nav.Header.Get("Location"))
		}
		for _, h := range []map[string]string{
			{"Sec-Fetch-Mode": "cors", "Accept": "*/*"},
			{"Accept": "application/json"},
			{"X-Requested-With": "XMLHttpRequest", "Accept": "text/html"},
		} {
			if r := s.get(t, c, "/_stcore/host-config", "", h); r.StatusCode != 401 {
				t.Errorf("%v: got %d, want 401", h, r.StatusCode)
			}
		}
	})

	step(t, b, "plain HTTP redirects to HTTPS, keeping the path and query", func(t *testing.T) {
		noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(fmt.Sprintf("http://localhost:%d/app/page?x=1", s.httpPort))
		must(t, err)
		resp.Body.Close()
		want := fmt.Sprintf("https://localhost:%d/app/page?x=1", s.httpsPort)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
			t.Errorf("got %d to %q, want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})

	step(t, b, "Streamlit listens on loopback only", func(t *testing.T) {
		addrs := listenAddrs(t, s.stPort)
		if len(addrs) == 0 {
			t.Fatalf("no listening socket found for Streamlit's port %d", s.stPort)
		}
		for _, a := range addrs {
			// 127.0.0.1 in /proc/net/tcp's little-endian hex.
			if a != "0100007F" {
				t.Errorf("Streamlit listens on %s (hex), want only 127.0.0.1", a)
			}
		}
	})

	jsFile := streamlitEntryJS(t, s.staticDir)
	jsWant, err := os.ReadFile(filepath.Join(s.staticDir, "static", "js", jsFile))
	must(t, err)

	step(t, b, "Streamlit's static files need a session", func(t *testing.T) {
		r := s.get(t, c, "/static/js/"+jsFile, "", map[string]string{"Sec-Fetch-Mode": "no-cors", "Accept": "*/*"})
		if r.StatusCode != 401 {
			t.Errorf("static file without a session: got %d, want 401", r.StatusCode)
		}
	})

	step(t, b, "a revoked session sends the open app to the login form, and back after login", func(t *testing.T) {
		b.waitText(greeting, 10*time.Second)
		start := time.Now()
		s.authd(t, "", []string{"session", "revoke"}, "-user", "ada")
		u := b.waitPath("/authd/login", 20*time.Second)
		t.Logf("login form %v after the revocation", time.Since(start).Round(100*time.Millisecond))
		if got := u.Query().Get("rd"); got != firstPage {
			t.Errorf("return path after revocation: got %q, want %q", got, firstPage)
		}
		if r := s.get(t, c, "/", cookie, map[string]string{"Sec-Fetch-Mode": "cors"}); r.StatusCode != 401 {
			t.Errorf("revoked cookie: got %d, want 401", r.StatusCode)
		}
		b.login("ada", testPassword)
		u = b.waitPath("/", 15*time.Second)
		if u.RequestURI() != firstPage {
			t.Errorf("after login again: at %s, want %s", u.RequestURI(), firstPage)
		}
		b.waitText(greeting, 30*time.Second)
		cookie = b.sessionCookie(site)
	})

	step(t, b, "Streamlit's static files are served by nginx itself", func(t *testing.T) {
		// Stop Streamlit: pages (proxied) fail, the bundle (nginx's own alias) still loads.
		s.procs["streamlit"].stop()
		r := s.get(t, c, "/static/js/"+jsFile, cookie, map[string]string{"Sec-Fetch-Mode": "no-cors", "Accept": "*/*"})
		body, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 || !bytes.Equal(body, jsWant) {
			t.Errorf("static file with Streamlit stopped: got %d and %d bytes, want 200 and the %d bytes on disk", r.StatusCode, len(body), len(jsWant))
		}
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "private") {
			t.Errorf("static Cache-Control: got %q, want private, long-lived, immutable", cc)
		}
		if p := s.get(t, c, "/", cookie, map[string]string{"Sec-Fetch-Mode": "navigate"}); p.StatusCode != 502 {
			t.Errorf("page with Streamlit stopped: got %d, want 502 (proxied, so it needs Streamlit)", p.StatusCode)
		}
	})

	step(t, b, "logout returns to the login form and the old cookie then gets 401", func(t *testing.T) {
		b.navigate(site + "/authd/logout")
		b.submitAndWait(`form button[type="submit"]`)
		b.waitPath("/authd/login", 15*time.Second)
		b.waitJS("login form", 5*time.Second, `!!document.querySelector('input[autocomplete="current-password"]')`)
		if c := b.sessionCookie(site); c != "" {
			t.Errorf("the browser still holds a session cookie after logout")
		}
		for _, path := range []string{"/", "/static/js/" + jsFile, "/_stcore/stream"} {
			if r := s.get(t, c, path, cookie, map[string]string{"Sec-Fetch-Mode": "cors"}); r.StatusCode != 401 {
				t.Errorf("old cookie on %s: got %d, want 401", path, r.StatusCode)
			}
		}
		// And straight at authd's verify, as nginx asks it.
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/verify", s.authdPort), nil)
		req.Header.Set("X-Original-URI", "/")
		req.Header.Set("X-Original-Method", "GET")
		req.AddCookie(&http.Cookie{Name: sessionCookieName, Value: cookie})
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("authd /verify with the old cookie: got %d, want 401", resp.StatusCode)
		}
	})

	step(t, b, "with authd down nothing passes", func(t *testing.T) {
		// A fresh session, then authd stops: nginx must deny, not fall open, and say why: 503
		// with the "sign-in service unavailable" page, never nginx's bare 500.
		b.navigate(site + "/")
		b.login("ada", testPassword)
		b.waitPath("/", 15*time.Second)
		live := b.sessionCookie(site)
		if r := s.get(t, c, "/static/js/"+jsFile, live, nil); r.StatusCode != 200 {
			t.Fatalf("control: static file with a live session got %d, want 200", r.StatusCode)
		}
		s.procs["authd"].stop()
		for _, path := range []string{"/", "/static/js/" + jsFile, "/_stcore/stream"} {
			r := s.get(t, c, path, live, map[string]string{"Sec-Fetch-Mode": "navigate"})
			if r.StatusCode != 503 {
				t.Errorf("%s with authd down: got %d, want 503", path, r.StatusCode)
			}
		}
		// What the browser shows: the page, styled by its own stylesheet (authd is not there to
		// serve one), and no app.
		b.navigate(site + "/")
		b.waitText("Sign-in service unavailable", 15*time.Second)
		b.waitJS("the page's stylesheet applied", 5*time.Second,
			`getComputedStyle(document.querySelector("main")).borderRadius === "12px"`)
		if u := b.location(); u != site+"/" {
			t.Errorf("the browser moved to %q, want it to stay on the page it asked for", u)
		}
		b.screenshot("authd-unavailable")
	})
	t.Logf("whole story in %v", time.Since(start).Round(time.Millisecond))
}

// step runs one named part of the story, with the browser reporting to that part; a failed step
// stops the story, since later steps build on its state.
func step(t *testing.T, b *browser, name string, f func(t *testing.T)) {
	t.Helper()
	ok := t.Run(name, func(t *testing.T) {
		parent := b.t
		b.t = t
		defer func() { b.t = parent }()
		f(t)
	})
	if !ok {
		t.FailNow()
	}
}

// get sends one GET to the site with the session cookie (if any) and headers; the body is read by
// the caller or closed at test end.
func (s *stack) get(t testing.TB, c *http.Client, path, cookie string, h map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", s.origin()+path, nil)
	must(t, err)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookieName, Value: cookie})
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// streamlitEntryJS is the name of the entry script that Streamlit's index.html loads.
func streamlitEntryJS(t testing.TB, staticDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(staticDir, "index.html"))
	must(t, err)
	m := regexp.MustCompile(`src="\./static/js/([^"]+\.js)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no entry script in %s/index.html", staticDir)
	}
	return string(m[1])
}

// TestStreamlitUnderPrefix mounts the app at /app/ (server.baseUrlPath) with the example site's
// four Streamlit locations moved under the prefix, as its comment says.
func TestStreamlitUnderPrefix(t *testing.T) {
	requireE2E(t)
	s := newStack(t, "app")
	b := newBrowser(t, s)
	site := s.origin()
	first := "/app/?view=2"

	step(t, b, "login from a page under the prefix returns to it", func(t *testing.T) {
		b.navigate(site + first)
		u := b.waitPath("/authd/login", 15*time.Second)
		if got := u.Query().Get("rd"); got != first {
			t.Errorf("return path: got %q, want %q", got, first)
		}
		b.login("ada", testPassword)
		u = b.waitPath("/app/", 15*time.Second)
		if u.RequestURI() != first {
			t.Errorf("after login: at %q, want %q", u.RequestURI(), first)
		}
		b.waitText(greeting, 30*time.Second)
	})

	step(t, b, "the WebSocket under the prefix is upgraded and uploads work", func(t *testing.T) {
		var ok bool
		for _, h := range b.handshakes() {
			if strings.HasSuffix(h.url, "/app/_stcore/stream") && h.status == 101 {
				ok = true
			}
		}
		if !ok {
			t.Errorf("no WebSocket to /app/_stcore/stream was upgraded; saw %+v", b.handshakes())
		}
		f := filepath.Join(s.dir, "prefix-upload.bin")
		must(t, os.WriteFile(f, bytes.Repeat([]byte{7}, 4096), 0o644))
		b.do(chromedp.SetUploadFiles(chromedp.CSS(`input[type="file"]`), []string{f}))
		b.waitText("Received prefix-upload.bin: 4096 bytes", 30*time.Second)
	})

	step(t, b, "the static bundle under the prefix comes from nginx, behind the login", func(t *testing.T) {
		js := streamlitEntryJS(t, s.staticDir)
		c := s.client()
		if r := s.get(t, c, "/app/static/js/"+js, "", map[string]string{"Sec-Fetch-Mode": "no-cors"}); r.StatusCode != 401 {
			t.Errorf("without a session: got %d, want 401", r.StatusCode)
		}
		cookie := b.sessionCookie(site)
		s.procs["streamlit"].stop()
		r := s.get(t, c, "/app/static/js/"+js, cookie, map[string]string{"Sec-Fetch-Mode": "no-cors"})
		if r.StatusCode != 200 {
			t.Errorf("with a session and Streamlit stopped: got %d, want 200", r.StatusCode)
		}
	})
}

// TestQuickStartLogin checks a stack that supervisor/up.sh brought up, the way its user would:
// open the printed URL, log in as admin with the printed password, see the demo app greet them.
// It runs only when told where: AUTHD_QUICKSTART_URL and AUTHD_QUICKSTART_PASSWORD.
func TestQuickStartLogin(t *testing.T) {
	site, password := os.Getenv("AUTHD_QUICKSTART_URL"), os.Getenv("AUTHD_QUICKSTART_PASSWORD")
	if site == "" || password == "" {
		t.Skip("set AUTHD_QUICKSTART_URL and AUTHD_QUICKSTART_PASSWORD (printed by supervisor/up.sh) to check a quick-start stack")
	}
	site = strings.TrimSuffix(site, "/")
	s := &stack{root: repoRoot(t), dir: t.TempDir()}
	b := newBrowser(t, s)
	step(t, b, "the printed URL leads to the login form", func(t *testing.T) {
		b.navigate(site + "/")
		b.waitPath("/authd/login", 15*time.Second)
	})
	step(t, b, "admin logs in with the printed password and the demo app greets them", func(t *testing.T) {
		b.login("admin", password)
		b.waitPath("/", 15*time.Second)
		b.waitText("Hello, Administrator!", 30*time.Second)
		b.waitText("Sign out", 10*time.Second)
		b.screenshot("quickstart-app")
	})
}

// TestUsersExampleLoads checks that conf/users.example.toml is a valid users file for the built
// authd (its hashes are of passwords nobody knows).
func TestUsersExampleLoads(t *testing.T) {
	requireE2E(t)
	s := &stack{root: repoRoot(t), dir: t.TempDir()}
	s.buildAuthd(t)
	b, err := os.ReadFile(filepath.Join(s.root, "conf", "users.example.toml"))
	must(t, err)
	users := filepath.Join(s.dir, "users.toml")
	must(t, os.WriteFile(users, b, 0o600))
	must(t, os.Mkdir(filepath.Join(s.dir, "data"), 0o700))
	s.authdConf = filepath.Join(s.dir, "authd.toml")
	must(t, os.WriteFile(s.authdConf, []byte(fmt.Sprintf("public_url = \"https://app.example.com\"\ndata_dir = %q\nusers_file = %q\n", filepath.Join(s.dir, "data"), users)), 0o600))
	s.authd(t, "", []string{"check-config"})
	list := s.authd(t, "", []string{"user", "list"})
	for _, want := range []string{"ada", "grace", "Ada Lovelace"} {
		if !strings.Contains(list, want) {
			t.Errorf("user list: want %q in\n%s", want, list)
		}
	}
}
