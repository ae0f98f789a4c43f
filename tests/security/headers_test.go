package security

import (
	"net/http"
	"strings"
	"testing"
)

// identityNames are the headers the protect snippet sets from authd's answer.
var identityNames = map[string]string{ // name → which of authd's values it carries
	"Remote-User": "user", "Remote-Groups": "groups", "Remote-Email": "email", "Remote-Name": "name",
	"X-Remote-User": "user", "X-Auth-Request-User": "user", "X-Auth-Request-Email": "email",
	"X-Auth-Request-Groups": "groups", "X-Auth-Request-Preferred-Username": "user", "X-Forwarded-User": "user",
	"X-Forwarded-Email": "email", "X-Forwarded-Groups": "groups", "X-Forwarded-Preferred-Username": "user",
	"X-Webauth-User": "user", "Remote-Auth-Level": "level",
}

var adaIdentity = map[string]string{"user": "ada", "groups": "staff", "email": "ada@example.com", "name": "User ada", "level": "1"}

// spoofed lists every header that reached the app carrying the client's spoofed value.
func spoofed(a *appSeen) []string {
	var out []string
	for k, vs := range a.Headers {
		for _, v := range vs {
			if strings.Contains(v, spoof) {
				out = append(out, k+": "+v)
			}
		}
	}
	return out
}

// checkIdentity asserts the app got each identity header exactly once with authd's value for the
// user (want nil: anonymous, no identity header at all) and no spoofed value anywhere.
func checkIdentity(t *testing.T, what string, a *appSeen, want map[string]string) {
	t.Helper()
	if s := spoofed(a); len(s) > 0 {
		t.Errorf("%s: the client's value reached the app: %v", what, s)
	}
	for name, field := range identityNames {
		got := a.header(name)
		switch {
		case want == nil && len(got) > 0:
			t.Errorf("%s: anonymous request reached the app with %s: %q", what, name, got)
		case want != nil && (len(got) != 1 || got[0] != want[field]):
			t.Errorf("%s: %s: got %q, want exactly [%q]", what, name, got, want[field])
		}
	}
}

// TestIdentityHeadersOnlyFromAuthd covers "Identity headers reach the app exactly once, from authd,
// in every location; client copies — including underscore and case variants such as X_Remote_User
// — are removed. Anonymous (public) paths get empty identity headers." Every name in
// testdata/identity-headers.txt is sent with a spoofed value on a public path, a protected path and
// a WebSocket handshake (the Streamlit stream location).
func TestIdentityHeadersOnlyFromAuthd(t *testing.T) {
	s := sharedStack(t)
	corpus := loadCorpus(t, "identity-headers.txt", false)
	ada := session(s.login(t, "ada", adaPassword))
	vars := s.vars()
	anon, user := &rawConn{s: s}, &rawConn{s: s}
	defer anon.close()
	defer user.close()
	for _, e := range corpus {
		line := expand(t, e.text, vars) + ": " + spoof
		valid := !strings.ContainsAny(expand(t, e.text, vars), " \t")

		r, err := anon.do(s.keepAliveGet("/public/x", line))
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		switch {
		case r.App != nil:
			checkIdentity(t, "public path: "+e.String(), r.App, nil)
		case valid:
			t.Errorf("public path: %s: got %s, want the app", e, r)
		}

		if r, err = user.do(s.keepAliveGet("/app/x", line, "Cookie: "+ada)); err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		switch {
		case r.App != nil:
			checkIdentity(t, "protected path: "+e.String(), r.App, adaIdentity)
		case valid:
			t.Errorf("protected path: %s: got %s, want the app", e, r)
		}

		r = s.raw(t, "", s.rawGet("/ws/stream", line, "Cookie: "+ada, "Upgrade: websocket", "Connection: Upgrade",
			"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="))
		switch {
		case r.App != nil:
			checkIdentity(t, "WebSocket handshake: "+e.String(), r.App, adaIdentity)
		case valid:
			t.Errorf("WebSocket handshake: %s: got %s, want 101 from the app", e, r)
		}
	}
}

// TestForwardedHeadersDecideNothing covers "authd takes original URI, method, scheme, host and
// client IP only from trusted proxies", "A client-sent X-Real-IP / X-Forwarded-For never decides an
// IP rule" and "No magic bypass: no User-Agent, health-check path or header opens a protected path".
// The client connects from 127.0.0.2; /office is open to 127.0.0.5 only. Every line of
// testdata/bypass-headers.txt is sent to each protected path; none may reach the app.
func TestForwardedHeadersDecideNothing(t *testing.T) {
	s := sharedStack(t)
	// The rule works: from the office address the path opens without a login, from elsewhere not.
	if r := s.do(t, req{target: "/office/x", from: "127.0.0.5"}); r.App == nil {
		t.Fatalf("control: from the office network got %s, want the app", r)
	}
	if r := s.do(t, req{target: "/office/x", from: "127.0.0.2"}); r.Status != http.StatusUnauthorized {
		t.Fatalf("control: from outside the office network got %s, want 401", r)
	}
	corpus := loadCorpus(t, "bypass-headers.txt", false)
	vars := s.vars()
	c := &rawConn{s: s, from: "127.0.0.2"}
	defer c.close()
	n := 0
	for _, e := range corpus {
		line := expand(t, e.text, vars)
		for _, target := range []string{"/office/x", "/admin/x", "/app/x", "/nothing", "/_authd/verify"} {
			r, err := c.do(s.keepAliveGet(target, line))
			if err != nil {
				t.Fatalf("%s %s: %v", target, e, err)
			}
			n++
			if r.App != nil || r.Status < 300 {
				t.Errorf("%s with %s: got %s, want no access", target, e, r)
			}
		}
	}
	t.Logf("%d requests with %d header lines", n, len(corpus))
}

// TestVerifyTrustsOnlyTrustedProxies covers the same lines at authd's own listener: forwarded
// headers from a peer that is not a trusted proxy are ignored (the request is unknown: 401), and
// behind a load balancer the client IP is the rightmost untrusted X-Forwarded-For hop.
func TestVerifyTrustsOnlyTrustedProxies(t *testing.T) {
	s := sharedStack(t)
	public := http.Header{"X-Original-Uri": {"/public/x"}, "X-Original-Method": {"GET"}, "X-Forwarded-Host": {"localhost"}}
	if got := s.verifyDirect(t, "127.0.0.1", public); got != http.StatusOK {
		t.Fatalf("control: from the trusted proxy got %d, want 200", got)
	}
	for _, from := range []string{"127.0.0.3", "127.0.0.5"} {
		if got := s.verifyDirect(t, from, public); got != http.StatusUnauthorized {
			t.Errorf("forged original URI from untrusted %s: got %d, want 401", from, got)
		}
	}
	office := func(xff ...string) http.Header {
		return http.Header{"X-Original-Uri": {"/office/x"}, "X-Original-Method": {"GET"}, "X-Forwarded-For": xff}
	}
	for _, tt := range []struct {
		xff  []string
		want int
	}{
		{[]string{"127.0.0.5"}, 200},
		{[]string{"10.1.1.1, 127.0.0.5"}, 200},
		{[]string{"127.0.0.5, 10.1.1.1"}, 401},
		{[]string{"127.0.0.5", "10.1.1.1"}, 401},
		{[]string{"127.0.0.5, 10.1.1.1, 127.0.0.1"}, 401},
		{[]string{"10.1.1.1, 127.0.0.5, 127.0.0.1"}, 200},
		{[]string{"127.0.0.5, garbage"}, 401},
		{[]string{"127.0.0.5, "}, 401},
		{[]string{"127.0.0.5 10.1.1.1"}, 401},
		{nil, 401},
	} {
		if got := s.verifyDirect(t, "127.0.0.1", office(tt.xff...)); got != tt.want {
			t.Errorf("X-Forwarded-For %q via the trusted proxy: got %d, want %d", tt.xff, got, tt.want)
		}
	}
	// From an untrusted peer the office address in X-Forwarded-For counts for nothing.
	if got := s.verifyDirect(t, "127.0.0.3", office("127.0.0.5")); got != http.StatusUnauthorized {
		t.Errorf("X-Forwarded-For from an untrusted peer: got %d, want 401", got)
	}
	// Nor does a valid session turn an untrusted peer's forged URI into an allow.
	h := office("127.0.0.5")
	h.Set("X-Original-Uri", "/app/x")
	h.Set("Cookie", session(s.login(t, "ada", adaPassword)))
	if got := s.verifyDirect(t, "127.0.0.3", h); got == http.StatusOK {
		t.Errorf("session with a forged URI from an untrusted peer: got 200, want a deny")
	}
}

// TestAbsoluteURLsFromPublicURLOnly covers "Absolute URLs are built only from configured public
// URLs, never from the Host header": with Host and X-Forwarded-Host naming another site, nothing
// authd or nginx answers names it.
func TestAbsoluteURLsFromPublicURLOnly(t *testing.T) {
	s := sharedStack(t)
	ada := session(s.login(t, "ada", adaPassword))
	for _, hosts := range [][]string{{"Host: evil.example"}, {"Host: evil.example:443"}, {"X-Forwarded-Host: evil.example"}, {"Host: localhost", "X-Forwarded-Host: evil.example"}} {
		for _, q := range []struct {
			target string
			lines  []string
		}{
			{"/app/x", []string{"Accept: text/html"}},
			{"/app/x", []string{"Sec-Fetch-Mode: navigate"}},
			{"/authd/login", nil},
			{"/authd/login?rd=/app/x", []string{"Cookie: " + ada}},
			{"/authd/logout", []string{"Cookie: " + ada}},
			{"/authd/whoami", []string{"Cookie: " + ada}},
			{"/authd/static/style.css", nil},
			{"/authd/nope", nil},
		} {
			var b strings.Builder
			b.WriteString("GET " + q.target + " HTTP/1.1\r\n")
			for _, l := range append(append([]string{}, hosts...), q.lines...) {
				b.WriteString(l + "\r\n")
			}
			if !strings.HasPrefix(hosts[0], "Host:") {
				b.WriteString("Host: localhost\r\n")
			}
			b.WriteString("Connection: close\r\n\r\n")
			r := s.raw(t, "", b.String())
			for k, vs := range r.Header {
				for _, v := range vs {
					if strings.Contains(v, "evil.example") {
						t.Errorf("%s with %v: response header %s: %q names the Host", q.target, hosts, k, v)
					}
				}
			}
			if strings.Contains(r.Body, "evil.example") && r.App == nil {
				t.Errorf("%s with %v: the body names the Host", q.target, hosts)
			}
		}
	}
}
