package security

import (
	"net/http"
	"strings"
	"testing"
)

// TestDotSegmentsRefusedThroughNginx covers "Paths that nginx and authd could read differently are
// denied rather than guessed" for dot segments: nginx resolves them only for its own location
// matching, hands authd $request_uri as the client wrote it, and passes it to the app unresolved,
// so a rule must not guess how the app will read it. Each request line is sent byte for byte; none
// reaches the app, and the answer is the one every refused path gets — 401 without a login, 403
// with one — even where resolving would have landed on a path the user may see.
func TestDotSegmentsRefusedThroughNginx(t *testing.T) {
	s := sharedStack(t)
	ada := session(s.login(t, "ada", adaPassword))
	root := session(s.login(t, "root", rootPassword))
	send := func(target, cookie string) *resp {
		var lines []string
		if cookie != "" {
			lines = append(lines, "Cookie: "+cookie)
		}
		return s.raw(t, "", s.rawGet(target, lines...))
	}
	// Controls: the same users reach the same places without dot segments.
	for _, c := range []struct{ target, cookie string }{
		{"/public/x", ""}, {"/app/x", ada}, {"/admin/y", root}, {"/app/.hidden/x", ada}, {"/app/.../x", ada},
	} {
		if r := send(c.target, c.cookie); r.App == nil {
			t.Fatalf("control %s: got %s, want the app", c.target, r)
		}
	}
	for _, c := range []struct {
		name, target, cookie string
		want                 int
	}{
		{"inside a public path", "/public/./x", "", 401},
		{"trailing dot dot on a public path", "/public/x/..", "", 401},
		{"trailing dot on a public path", "/public/x/.", "", 401},
		{"leading dot", "/./public/x", "", 401},
		{"out of public into admin", "/public/../admin/x", "", 401},
		{"out of public into admin, as an admin", "/public/../admin/x", root, 403},
		{"inside admin, as an admin", "/admin/x/../y", root, 403},
		{"dot inside app", "/app/./x", ada, 403},
		{"trailing dot dot inside app", "/app/x/..", ada, 403},
		{"trailing dot on app", "/app/.", ada, 403},
		{"trailing dot dot and slash", "/app/x/../", ada, 403},
		{"leading dot, app", "/./app/x", ada, 403},
		{"merged slashes then dot dot", "/app/x//../y", ada, 403},
		{"dot dot before a query", "/app/x/..?y=1", ada, 403},
		{"encoded dot", "/app/%2e/x", ada, 403},
		{"encoded dot dot, upper case", "/app/x/%2E%2E/y", ada, 403},
		{"mixed dot and encoded dot", "/app/x/.%2E/y", ada, 403},
		{"mixed encoded dot and dot", "/app/x/%2e./y", ada, 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := send(c.target, c.cookie)
			if r.App != nil || r.Status != c.want {
				t.Errorf("%s: got %s, want %d and the app not reached", c.target, r, c.want)
			}
		})
	}
	// What the shipped snippets hand authd is the unresolved original URI: the denial names it.
	log := s.authdLog(t)
	if !strings.Contains(log, `"path":"/admin/x/../y"`) || !strings.Contains(log, `"request_valid":false`) {
		t.Errorf("authd log has no denial of the unresolved /admin/x/../y:\n%s", tail(s.logs+"/authd.log", 10))
	}
	// A page navigation without a login is sent to the login form, as for any refused path.
	r := s.raw(t, "", s.rawGet("/public/./x", "Sec-Fetch-Mode: navigate", "Accept: text/html"))
	if r.Status != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "/authd/login") {
		t.Errorf("anonymous navigation to /public/./x: got %s, want 302 to the login form", r)
	}
}
