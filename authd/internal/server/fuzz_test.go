package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/authd/authd/authd/internal/policy"
)

// redirectSeeds are a spread of testdata/redirects.txt in tests/security: the forms browsers
// forgive and validators get wrong.
var redirectSeeds = []string{
	"/", "/app/x?y=1#z", "//evil.com", "///evil.com", "/\\evil.com", "\\/evil.com", "/\t/evil.com", "/\r\n/evil.com",
	"https:evil.com", "https:/evil.com", "https://evil.com", "HTTPS://app.example.com/x", "https://app.example.com@evil.com/",
	"https://app.example.com.evil.com/", "https://app.example.com:444/", "http://app.example.com/", "https://other.example.com/a",
	"https://other.example.com:443/", "javascript:alert(1)", "java\tscript:alert(1)", " https://evil.com", "/%2F%2Fevil.com",
	"/authd/login", "https://app.example.com/authd/logout", "\u2215\u2215evil.com", "https://app.example.com%2F@evil.com",
	"//app.example.com", "https:\\\\evil.com", "/.//evil.com", "https://[::1]/", "https://app.example.com\\@evil.com",
	"https://APP.EXAMPLE.COM:443/x", "data:text/html,x", "?x=//evil.com", "#//evil.com", "x:/evil.com",
}

// FuzzSafeRedirect checks the one redirect validator's promise whatever it is given: the default,
// or a path with a single leading slash and nothing a browser would repair (controls, spaces,
// backslashes, non-ASCII), never the login or logout page, or an absolute https URL on an allowed
// origin without userinfo. A browser resolving the answer against a page of the site never leaves
// the allowed origins.
func FuzzSafeRedirect(f *testing.F) {
	h := newHarness(f, nil, nil)
	for _, s := range redirectSeeds {
		f.Add(s)
	}
	allowed := map[string]bool{"app.example.com": true, "other.example.com": true}
	base, _ := url.Parse("https://app.example.com/some/page")
	f.Fuzz(func(t *testing.T, rd string) {
		const def = "/default"
		out := h.srv.cur.Load().safeRedirect(rd, def)
		if out == def {
			return
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c <= 0x20 || c >= 0x7f || c == '\\' {
				t.Fatalf("safeRedirect(%q) = %q: byte %#x a browser would repair", rd, out, c)
			}
		}
		u, err := url.Parse(out)
		if err != nil {
			t.Fatalf("safeRedirect(%q) = %q: does not parse: %v", rd, out, err)
		}
		if strings.HasPrefix(out, "/") {
			if strings.HasPrefix(out, "//") {
				t.Fatalf("safeRedirect(%q) = %q: scheme-relative", rd, out)
			}
			if out != rd {
				t.Fatalf("safeRedirect(%q) = %q: a path must be returned unchanged", rd, out)
			}
		} else if u.Scheme != "https" && !strings.EqualFold(u.Scheme, "https") || u.User != nil || !allowed[strings.ToLower(u.Hostname())] ||
			(u.Port() != "" && u.Port() != "443") || u.Opaque != "" {
			t.Fatalf("safeRedirect(%q) = %q: not an allowed origin", rd, out)
		}
		if p := u.Path; strings.HasPrefix(p, "/authd/login") || strings.HasPrefix(p, "/authd/logout") {
			t.Fatalf("safeRedirect(%q) = %q: back into the login pages", rd, out)
		}
		if r := base.ResolveReference(u); !allowed[strings.ToLower(r.Hostname())] || r.User != nil {
			t.Fatalf("safeRedirect(%q) = %q: a browser would go to %q", rd, out, r.Host)
		}
	})
}

// FuzzCookieValue checks cookieValue against a plain reading of the Cookie header lines: the
// cookie counts only when its exact name appears exactly once across all lines, and its value is
// the text after the first "=", the pair trimmed of surrounding white space.
func FuzzCookieValue(f *testing.F) {
	const name = "__Host-authd_session"
	for _, s := range []string{
		name + "=" + strings.Repeat("A", 43), "a=b; " + name + "=v; c=d", name + "=a; " + name + "=b", name + "=", name,
		" " + name + " = v ", name + "=v;" + name + "=v", "__host-authd_session=v", name + "_1=v", ";;;=;", name + "=a=b",
		name + "=\"v\"", "\t" + name + "=v\t",
	} {
		f.Add(s, "")
		f.Add("x=y", s)
	}
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		h := http.Header{"Cookie": {line1, line2}}
		got, ok := cookieValue(h, name)
		var vals []string
		for _, line := range []string{line1, line2} {
			for _, part := range strings.Split(line, ";") {
				part = strings.Trim(part, " \t\r\n") // textproto's ASCII white space
				if k, v, found := strings.Cut(part, "="); found && k == name {
					vals = append(vals, v)
				}
			}
		}
		wantOK := len(vals) == 1
		if ok != wantOK || ok && got != vals[0] {
			t.Fatalf("cookieValue(%q, %q) = %q, %v; want %v (values %q)", line1, line2, got, ok, wantOK, vals)
		}
	})
}

// TestCookieValueAllocatesNothing: an attacker's huge or numerous cookies cost no allocation.
func TestCookieValueAllocatesNothing(t *testing.T) {
	h := http.Header{"Cookie": {strings.Repeat("a=b; ", 3000) + "__Host-authd_session=" + strings.Repeat("A", 43), strings.Repeat("__Host-authd_session_9=x;", 500)}}
	if n := testing.AllocsPerRun(20, func() { cookieValue(h, "__Host-authd_session") }); n != 0 {
		t.Errorf("cookieValue allocated %v times, want 0", n)
	}
}

// FuzzVerify drives the verify handler with any original URI, method, cookie and forwarded-for
// value: it answers only 200, 401 or 403, never panics, and an anonymous 200 happens only for a
// canonical path under the public rule.
func FuzzVerify(f *testing.F) {
	h := newHarness(f, []policy.Rule{
		{Path: "/public", Access: policy.Public},
		{Path: "/admin", Groups: []string{"admin"}},
		{Path: "/app"},
	}, nil)
	session := h.login("bob")
	for _, s := range []string{"/public/x", "/public/../admin", "/public/..;/admin", "/admin?x=/public", "/public%2f..%2fadmin", "/app", "*",
		"https://x/public", "/public#/../admin", "/%2e%2e/public", "", "/public/\x00"} {
		f.Add(s, "GET", "", "203.0.113.7")
		f.Add(s, "OPTIONS", session, "")
	}
	f.Fuzz(func(t *testing.T, uri, method, cookie, xff string) {
		r := httptest.NewRequest("GET", "/verify", nil)
		r.RemoteAddr = "127.0.0.1:40000"
		r.Header["X-Original-Uri"] = []string{uri}
		r.Header["X-Original-Method"] = []string{method}
		r.Header["X-Forwarded-For"] = []string{xff}
		if cookie != "" {
			r.Header["Cookie"] = []string{cookie}
		}
		w := httptest.NewRecorder()
		h.h.ServeHTTP(w, r)
		switch w.Code {
		case 200, 401, 403:
		default:
			t.Fatalf("verify(%q, %q, %q) answered %d", uri, method, cookie, w.Code)
		}
		if w.Code == 200 && w.Header().Get("Remote-User") == "" {
			p, ok := policy.Canonical(uri)
			if !ok || !policy.HasPrefix(p, "/public") {
				t.Fatalf("anonymous 200 for %q (canonical %q, %v)", uri, p, ok)
			}
		}
	})
}
