package security

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// safeLocation reports whether a Location keeps the browser on this site or sends it to an
// explicitly allowed origin: a path with one leading slash, or https://localhost:PORT or
// https://allowed.example.com, with nothing a browser would repair (controls, spaces, backslashes,
// non-ASCII, userinfo).
func (s *stack) safeLocation(loc string) bool {
	if loc == "" {
		return false
	}
	for i := 0; i < len(loc); i++ {
		if c := loc[i]; c <= 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	if loc[0] == '/' {
		return len(loc) == 1 || loc[1] != '/'
	}
	u, err := url.Parse(loc)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.User != nil || u.Opaque != "" {
		return false
	}
	host := strings.ToLower(u.Host)
	switch host {
	case strings.TrimPrefix(s.origin(), "https://"), "allowed.example.com", "allowed.example.com:443":
	default:
		return false
	}
	return strings.HasPrefix(strings.ToLower(loc), "https://"+host)
}

// checkLocation applies a redirect corpus expectation to a Location.
func (s *stack) checkLocation(t *testing.T, what string, e entry, payload, loc string) {
	t.Helper()
	if !s.safeLocation(loc) {
		t.Errorf("%s: %s: Location %q leaves the site", what, e, loc)
		return
	}
	switch e.expect {
	case "default":
		if loc != "/" {
			t.Errorf("%s: %s: got Location %q, want the default landing path \"/\"", what, e, loc)
		}
	case "keep":
		if loc != payload {
			t.Errorf("%s: %s: got Location %q, want the return path kept unchanged", what, e, loc)
		}
	case "safe":
	default:
		t.Fatalf("%s: unknown expectation %q", e, e.expect)
	}
}

// TestRedirectsOneValidator covers "Redirects": one validator serves every redirect (after login,
// already logged in, logout); a relative path on this site or an explicitly configured origin is
// accepted, everything else in testdata/redirects.txt falls back to the default landing path; the
// return path survives the login form and is HTML-escaped where it is echoed. Each payload also
// checks "Logout deletes the session server-side; replaying the old cookie gets 401".
func TestRedirectsOneValidator(t *testing.T) {
	s := sharedStack(t)
	corpus := loadCorpus(t, "redirects.txt", true)
	t.Logf("%d redirect payloads", len(corpus))
	pre, csrf, _ := s.loginForm(t, "")
	origin := http.Header{"Origin": {s.origin()}}
	vars := s.vars()

	work := make(chan entry)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				payload := expand(t, e.text, vars)
				s.redirectCase(t, e, payload, pre, csrf, origin)
			}
		}()
	}
	for _, e := range corpus {
		work <- e
	}
	close(work)
	wg.Wait()
}

func (s *stack) redirectCase(t *testing.T, e entry, payload, pre, csrf string, origin http.Header) {
	// After login: the hidden rd field of the form.
	form := url.Values{"username": {"ada"}, "password": {adaPassword}, "csrf": {csrf}, "rd": {payload}}
	r, err := s.try(req{method: "POST", target: "/authd/login", form: form, cookie: preName + "=" + pre, header: origin})
	if err != nil {
		t.Errorf("login POST: %s: %v", e, err)
		return
	}
	if r.Status == http.StatusRequestEntityTooLarge && len(form.Encode()) > 8<<10 {
		return // "oversized bodies are refused": the login form is at most 8 KiB
	}
	sess := setCookie(r.Header, cookieName)
	if r.Status != http.StatusSeeOther || sess == "" {
		t.Errorf("login POST: %s: got %s, want 303 with a session", e, r)
		return
	}
	s.checkLocation(t, "after login", e, payload, r.Header.Get("Location"))

	// Already logged in: GET /authd/login?rd=…
	q := "/authd/login?rd=" + url.QueryEscape(payload)
	if r, err = s.try(req{target: q, cookie: session(sess)}); err != nil {
		t.Errorf("logged-in GET: %s: %v", e, err)
	} else if r.Status == http.StatusRequestURITooLong && len(q) > 4000 {
		// nginx refuses the long request line before authd sees it.
	} else if r.Status != http.StatusSeeOther {
		t.Errorf("logged-in GET: %s: got %s, want 303", e, r)
	} else {
		s.checkLocation(t, "already logged in", e, payload, r.Header.Get("Location"))
	}

	// Anonymous GET: the form echoes rd, escaped, and hands it back unchanged.
	if r, err = s.try(req{target: q}); err != nil {
		t.Errorf("login form: %s: %v", e, err)
	} else if r.Status == http.StatusRequestURITooLong && len(q) > 4000 {
	} else if r.Status != http.StatusOK {
		t.Errorf("login form: %s: got %s, want 200", e, r)
	} else {
		m := rdRE.FindStringSubmatch(r.Body)
		switch {
		case m == nil:
			t.Errorf("login form: %s: no rd field", e)
		case utf8.ValidString(payload) && !strings.ContainsRune(payload, 0) && html.UnescapeString(m[1]) != payload:
			t.Errorf("login form: %s: rd field %q does not carry the return path back", e, m[1])
		}
		if strings.ContainsAny(payload, `<>"'`) && strings.Contains(r.Body, payload) {
			t.Errorf("login form: %s: the return path is echoed unescaped", e)
		}
	}

	// Logout: its redirect is fixed, whatever rd says; afterwards the old cookie is dead.
	r, err = s.try(req{target: "/authd/logout", cookie: session(sess)})
	if err != nil || r.Status != http.StatusOK {
		t.Errorf("logout form: %s: got %v %v, want 200", e, r, err)
		return
	}
	m := csrfRE.FindStringSubmatch(r.Body)
	if m == nil {
		t.Errorf("logout form without a CSRF token")
		return
	}
	form = url.Values{"csrf": {html.UnescapeString(m[1])}, "rd": {payload}}
	if r, err = s.try(req{method: "POST", target: "/authd/logout", form: form, cookie: session(sess), header: origin}); err != nil {
		t.Errorf("logout: %s: %v", e, err)
		return
	}
	if loc := r.Header.Get("Location"); r.Status != http.StatusSeeOther || loc != "/authd/login?signed_out=1" {
		t.Errorf("logout: %s: got %s, want 303 to /authd/login?signed_out=1", e, r)
	}
	if r, err = s.try(req{target: "/app/after-logout", cookie: session(sess)}); err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("replayed cookie after logout: %s: got %v %v, want 401", e, r, err)
	}
}
