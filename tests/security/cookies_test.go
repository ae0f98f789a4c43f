package security

import (
	"net/http"
	"strings"
	"testing"
)

// TestMalformedCookiesAreNoSession covers "Malformed, duplicated, oversized or tampered cookies: 401,
// no panic" and "Denials never set cookies": every Cookie header in testdata/cookies.txt is sent
// through nginx to a protected path and straight to authd's /verify. Lines marked user must
// authenticate as ada (the suite's control); the rest must be exactly "no session".
func TestMalformedCookiesAreNoSession(t *testing.T) {
	s := sharedStack(t)
	corpus := loadCorpus(t, "cookies.txt", true)
	vars := s.vars()
	vars["SESSION"] = s.login(t, "ada", adaPassword)
	c := &rawConn{s: s}
	defer c.close()
	for _, e := range corpus {
		cookie := expand(t, e.text, vars)
		r, err := c.do(s.keepAliveGet("/app/x", "Cookie: "+cookie))
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		if sc := r.Header.Values("Set-Cookie"); r.App == nil && len(sc) > 0 {
			t.Errorf("%s: a denial set cookies: %q", e, sc)
		}
		direct := s.verifyDirect(t, "127.0.0.1", http.Header{"X-Original-Uri": {"/app/x"}, "X-Original-Method": {"GET"}, "Cookie": {cookie}})
		switch e.expect {
		case "user":
			if r.App == nil || r.App.header("Remote-User")[0] != "ada" {
				t.Errorf("%s: got %s, want the app as ada", e, r)
			}
			if direct != http.StatusOK {
				t.Errorf("%s: /verify answered %d, want 200", e, direct)
			}
		case "anon":
			// nginx refuses header lines over 8 KiB itself (400). Go's HTTP server refuses a
			// header value with a control byte other than tab (400) before authd's handler
			// runs; nginx turns that unexpected answer into 503 (the unavailable page), still a deny.
			big := len(cookie) > 8<<10
			ctl := strings.ContainsFunc(cookie, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f })
			switch {
			case r.App != nil:
				t.Errorf("%s: reached the app as %q", e, r.App.header("Remote-User"))
			case r.Status != http.StatusUnauthorized && !(big && r.Status == http.StatusBadRequest) && !(ctl && r.Status == http.StatusServiceUnavailable):
				t.Errorf("%s: got %s, want 401", e, r)
			}
			if direct != http.StatusUnauthorized && !(big && direct == http.StatusRequestHeaderFieldsTooLarge) && !(ctl && direct == http.StatusBadRequest) {
				t.Errorf("%s: /verify answered %d, want 401", e, direct)
			}
		default:
			t.Fatalf("%s: unknown expectation %q", e, e.expect)
		}
	}
	// Several Cookie header lines, as HTTP/2 clients send them: the session in one of them still
	// counts once, and twice is no session.
	one := s.raw(t, "", s.rawGet("/app/x", "Cookie: a=b", "Cookie: "+session(vars["SESSION"])))
	two := s.raw(t, "", s.rawGet("/app/x", "Cookie: "+session(vars["SESSION"]), "Cookie: "+session(vars["SESSION"])))
	if one.App == nil {
		t.Errorf("session in the second of two Cookie lines: got %s, want the app", one)
	}
	if two.App != nil || two.Status != http.StatusUnauthorized {
		t.Errorf("session in two Cookie lines: got %s, want 401", two)
	}
	if log := s.authdLog(t); strings.Contains(log, "panic") {
		t.Errorf("authd logged a panic")
	}
}
