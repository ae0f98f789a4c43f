package security

import (
	"net/http"
	"path"
	"strings"
	"sync"
	"testing"
)

// appView is how a lenient app could read a path it receives: escapes decoded repeatedly,
// backslashes as slashes, ";" parameters dropped, case folded, trailing dots and spaces trimmed,
// dot segments resolved. Whatever nginx passes on, a request the rules refused for /admin must not
// read as /admin here either.
func appView(uri string) string {
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	for range 3 {
		uri = lenientUnescape(uri)
	}
	uri = strings.ReplaceAll(uri, "\\", "/")
	segs := strings.Split(uri, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			s = s[:j]
		}
		if j := strings.IndexByte(s, 0); j >= 0 {
			s = s[:j]
		}
		if s != "." && s != ".." {
			s = strings.TrimRight(s, ". \t")
		}
		segs[i] = strings.ToLower(s)
	}
	return path.Clean("/" + strings.Join(segs, "/"))
}

func lenientUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func under(p, prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }

// TestPathsRulesMatchTheCanonicalPath covers "Paths and rules": default deny (a path that matches no
// rule is refused); rules match the canonical path, never the query or fragment (/admin?x=/public is
// an admin request, /administrator does not match /admin); paths nginx and authd could read
// differently (encoded slashes or dots, backslashes, control bytes) are denied. Every target in
// testdata/paths.txt is sent byte for byte by an anonymous client, ada (no admin rights) and root
// (admins); beyond each line's expectation, no anonymous request reaches the app outside /public
// and none of ada's reaches anything an app could read as /admin.
func TestPathsRulesMatchTheCanonicalPath(t *testing.T) {
	s := sharedStack(t)
	corpus := loadCorpus(t, "paths.txt", true)
	t.Logf("%d path tricks × 3 clients", len(corpus))
	users := []struct{ name, cookie string }{
		{"anonymous", ""},
		{"ada", session(s.login(t, "ada", adaPassword))},
		{"root", session(s.login(t, "root", rootPassword))},
	}
	vars := s.vars()
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &rawConn{s: s}
			defer c.close()
			var lines []string
			if u.cookie != "" {
				lines = append(lines, "Cookie: "+u.cookie)
			}
			for _, e := range corpus {
				target := expand(t, e.text, vars)
				r, err := c.do(s.keepAliveGet(target, lines...))
				if err != nil {
					t.Errorf("%s: %s: %v", u.name, e, err)
					continue
				}
				checkPath(t, u.name, e, r)
			}
		}()
	}
	wg.Wait()
}

func checkPath(t *testing.T, user string, e entry, r *resp) {
	t.Helper()
	reached := r.App != nil
	if reached {
		v := appView(r.App.URI)
		switch {
		case user == "anonymous" && !under(v, "/public"):
			t.Errorf("%s: %s: reached the app as %q (reads as %q) without a login", user, e, r.App.URI, v)
		case user == "ada" && under(v, "/admin"):
			t.Errorf("%s: %s: reached the app as %q (reads as %q) without admin rights", user, e, r.App.URI, v)
		}
	}
	if r.Status >= 200 && r.Status < 300 && !reached {
		t.Errorf("%s: %s: got %s from something other than the app", user, e, r)
	}
	login := r.Status == http.StatusUnauthorized || r.Status == http.StatusFound
	want := ""
	switch e.expect {
	case "public":
		if !reached {
			want = "the app"
		}
	case "admin":
		switch {
		case user == "anonymous" && !login:
			want = "login (401)"
		case user == "ada" && r.Status != http.StatusForbidden:
			want = "403"
		case user == "root" && !reached:
			want = "the app"
		}
	case "app":
		switch {
		case user == "anonymous" && !login:
			want = "login (401)"
		case user != "anonymous" && !reached:
			want = "the app"
		}
	case "deny":
		if reached {
			want = "no access"
		}
	default:
		t.Fatalf("%s: unknown expectation %q", e, e.expect)
	}
	if want != "" {
		t.Errorf("%s: %s (%s): got %s, want %s", user, e, e.expect, r, want)
	}
}
