package security

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestVerifyAnswersOnly200401403 covers "It answers only 200, 401 or 403. Every error path —
// unparsable original URI, store error, panic, malformed cookie — is a deny, never a 2xx": every
// target of testdata/paths.txt and every cookie of testdata/cookies.txt goes to /verify as
// X-Original-URI, with ordinary and odd methods, anonymous and with a session. Header values with
// control bytes are left out: Go's HTTP server refuses them with 400 before authd's handler runs
// (TestMalformedCookiesAreNoSession covers what nginx then does).
func TestVerifyAnswersOnly200401403(t *testing.T) {
	s := sharedStack(t)
	ada := session(s.login(t, "ada", adaPassword))
	vars := s.vars()
	vars["SESSION"] = strings.TrimPrefix(ada, cookieName+"=")
	c := &rawConn{s: s, direct: true}
	defer c.close()
	methods := []string{"GET", "POST", "OPTIONS", "get", "", "G ET", "PROPFIND", strings.Repeat("A", 40), "GET\t"}
	n := 0
	ask := func(what string, lines ...string) {
		t.Helper()
		var b strings.Builder
		b.WriteString("GET /verify HTTP/1.1\r\nHost: 127.0.0.1\r\n")
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
		b.WriteString("\r\n")
		r, err := c.do(b.String())
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		n++
		if r.Status != 200 && r.Status != 401 && r.Status != 403 {
			t.Errorf("%s: /verify answered %d, want 200, 401 or 403", what, r.Status)
		}
		if r.Status == 200 && !strings.Contains(strings.Join(lines, "\n"), ada) {
			if m := r.Header.Get("Remote-User"); m != "" {
				t.Errorf("%s: anonymous 200 with Remote-User %q", what, m)
			}
		}
	}
	ctl := func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f })
	}
	for i, e := range loadCorpus(t, "paths.txt", true) {
		uri := expand(t, e.text, vars)
		if ctl(uri) {
			continue
		}
		m := methods[i%len(methods)]
		ask(fmt.Sprintf("%s %s anonymous", m, e), "X-Original-Uri: "+uri, "X-Original-Method: "+m)
		ask(fmt.Sprintf("%s %s as ada", m, e), "X-Original-Uri: "+uri, "X-Original-Method: "+m, "Cookie: "+ada)
	}
	for _, e := range loadCorpus(t, "cookies.txt", true) {
		cookie := expand(t, e.text, vars)
		if ctl(cookie) || len(cookie) > 8<<10 {
			continue
		}
		ask(e.String(), "X-Original-Uri: /app/x", "X-Original-Method: GET", "Cookie: "+cookie)
		ask(e.String()+" without metadata", "Cookie: "+cookie)
	}
	for _, lines := range [][]string{
		nil,
		{"X-Original-Uri: "},
		{"X-Original-Uri: /app/x"},
		{"X-Original-Method: GET"},
		{"X-Original-Uri: /app/x", "X-Original-Uri: /public/x", "X-Original-Method: GET"},
		{"X-Original-Uri: /public/x", "X-Original-Method: GET", "X-Original-Method: POST"},
		{"X-Original-Uri: https://localhost/public/x", "X-Original-Method: GET"},
		{"X-Original-Uri: *", "X-Original-Method: OPTIONS"},
		{"X-Original-Uri: /public/x", "X-Original-Method: GET", "X-Forwarded-For: garbage"},
		{"X-Original-Uri: /public/x", "X-Original-Method: GET", "X-Forwarded-For: " + strings.Repeat("1.2.3.4, ", 1000)},
		{"X-Original-Uri: /" + strings.Repeat("a", 5000), "X-Original-Method: GET"},
		{"X-Original-Uri: /public/x", "X-Original-Method: GET", "X-Forwarded-Host: " + strings.Repeat("h", 5000)},
		{"X-Original-Uri: /app/x", "X-Original-Method: GET", "Authorization: Bearer " + strings.Repeat("A", 43)},
		{"X-Original-Uri: /app/x", "X-Original-Method: GET", "Authorization: " + strings.Repeat("A", 5000)},
	} {
		ask(fmt.Sprintf("%q", lines), lines...)
	}
	t.Logf("%d /verify requests", n)
	if strings.Contains(s.authdLog(t), "panic") {
		t.Errorf("authd logged a panic")
	}
}

// TestDefaultDeny covers "Default deny: a path that matches no rule, or an empty rule set, is
// refused." (An empty rule set is refused at start: TestConfigRefusals.)
func TestDefaultDeny(t *testing.T) {
	s := sharedStack(t)
	root := session(s.login(t, "root", rootPassword))
	for _, p := range []string{"/", "/nothing", "/index.html", "/apps", "/publicity", "/administrator"} {
		if r := s.do(t, req{target: p}); r.Status != http.StatusUnauthorized {
			t.Errorf("anonymous %s: got %s, want 401", p, r)
		}
		if r := s.do(t, req{target: p, cookie: root}); r.Status != http.StatusForbidden {
			t.Errorf("admin %s: got %s, want 403 (no rule matches)", p, r)
		}
	}
}

// leakRE matches what error pages must never show: stack traces, Go error text, file paths and
// version banners.
var leakRE = regexp.MustCompile(`(?i)goroutine|panic|\.go:\d|runtime\.|/home/|/root/|/tmp/|/usr/|/etc/|/var/|nginx/\d|go1\.\d|authd/v?\d|version|traceback|exception|syscall|errno|dial tcp|connection refused|EOF|invalid character|strconv\.`)

// TestErrorPagesRevealNothing covers "Error pages carry no stack traces, Go error text, paths or
// version banners", from authd and from nginx in front of it.
func TestErrorPagesRevealNothing(t *testing.T) {
	s := sharedStack(t)
	host := fmt.Sprintf("localhost:%d", s.httpsPort)
	pre, csrf, _ := s.loginForm(t, "")
	cookie := preName + "=" + pre
	origin := http.Header{"Origin": {s.origin()}}
	check := func(what string, r *resp) {
		t.Helper()
		if r.Status < 400 {
			t.Errorf("%s: got %s, want an error", what, r)
		}
		if m := leakRE.FindString(r.Body); m != "" {
			t.Errorf("%s: body reveals %q:\n%s", what, m, r.Body)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if m := leakRE.FindString(v); m != "" {
					t.Errorf("%s: header %s: %q reveals %q", what, k, v, m)
				}
			}
		}
		if sv := r.Header.Get("Server"); sv != "" && sv != "nginx" {
			t.Errorf("%s: Server header %q", what, sv)
		}
	}
	check("unknown authd page", s.do(t, req{target: "/authd/nope"}))
	check("wrong method", s.do(t, req{method: "PUT", target: "/authd/login"}))
	check("DELETE logout", s.do(t, req{method: "DELETE", target: "/authd/logout"}))
	check("static traversal", s.raw(t, "", s.rawGet("/authd/static/../../../../etc/passwd")))
	check("static encoded traversal", s.raw(t, "", s.rawGet("/authd/static/..%2f..%2f..%2fetc%2fpasswd")))
	check("login body too large for authd", s.do(t, req{method: "POST", target: "/authd/login", cookie: cookie, header: origin,
		form: map[string][]string{"username": {"ada"}, "password": {strings.Repeat("p", 10000)}, "csrf": {csrf}}}))
	check("login body too large for nginx", s.do(t, req{method: "POST", target: "/authd/login", cookie: cookie, header: origin,
		form: map[string][]string{"username": {"ada"}, "password": {strings.Repeat("p", 20000)}, "csrf": {csrf}}}))
	check("login as JSON", s.do(t, req{method: "POST", target: "/authd/login", cookie: cookie,
		header: http.Header{"Origin": {s.origin()}, "Content-Type": {"application/json"}}, form: map[string][]string{}}))
	check("login with a bad form", s.do(t, req{method: "POST", target: "/authd/login", cookie: cookie, header: origin,
		form: map[string][]string{"username": {"%zz"}}}))
	check("whoami anonymous", s.do(t, req{target: "/authd/whoami"}))
	check("bad request", s.raw(t, "", "GET /app/\x01 HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"))
	check("URI too long", s.raw(t, "", s.rawGet("/app/"+strings.Repeat("a", 20000))))
	check("header too large", s.raw(t, "", s.rawGet("/app/x", "Cookie: "+strings.Repeat("a", 20000))))
	check("verify is internal", s.do(t, req{target: "/_authd/verify"}))
	check("authd 500 through nginx", s.raw(t, "", s.rawGet("/app/x", "Cookie: "+cookieName+"=\x7f")))
	c := &rawConn{s: s, direct: true}
	defer c.close()
	for _, q := range []string{
		"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
		"BREW /verify HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /verify HTTP/1.1\r\nHost: x\r\nCookie: \x7f\r\n\r\n",
		"GET /authd/static/%2e%2e/%2e%2e/login.html HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /authd/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5\r\n\r\na=%zz",
	} {
		r, err := c.do(q)
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		check(fmt.Sprintf("authd directly: %q", q), r)
	}
}
