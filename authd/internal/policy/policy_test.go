package policy

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true},
		{"/app/page", "/app/page", true},
		{"/app/page?x=/admin", "/app/page", true},
		{"/admin?x=/public", "/admin", true},
		{"/a//b", "/a/b", true},
		{"//admin", "/admin", true},
		{"/a/b/", "/a/b/", true},
		{"/.hidden", "/.hidden", true},
		{"/..hidden", "/..hidden", true},
		{"/a/.../b", "/a/.../b", true},
		{"/a/b./c", "/a/b./c", true},
		{"/file.txt", "/file.txt", true},
		{"/a/./b", "", false},
		{"/a/b/../c", "", false},
		{"/a/b/..", "", false},
		{"/a/b/.", "", false},
		{"/a/b/./", "", false},
		{"/a/b/../", "", false},
		{"/.", "", false},
		{"/./", "", false},
		{"/./admin", "", false},
		{"/../", "", false},
		{"//./admin", "", false},
		{"/a//../admin", "", false},
		{"/public/../admin", "", false},
		{"/public/./../admin?x=1", "", false},
		{"/a/b/..?x=/public", "", false},
		{"/a/%2e/b", "", false},
		{"/a/%2E%2e/b", "", false},
		{"/a/.%2E/b", "", false},
		{"/a/%2e./b", "", false},
		{"/a/%2e", "", false},
		{"/%2e/admin", "", false},
		{"/caf%C3%A9", "/café", true},
		{"/a%20b", "/a b", true},
		{"/..", "", false},
		{"/../admin", "", false},
		{"/a/../../admin", "", false},
		{"/a%2fb", "", false},
		{"/a%2Fb", "", false},
		{"/a%5cb", "", false},
		{"/%2e%2e/admin", "", false},
		{"/a/%2E/b", "", false},
		{"/a%252fb", "", false},
		{"/a%", "", false},
		{"/a%zz", "", false},
		{"/a%0ab", "", false},
		{"/a%00", "", false},
		{"/a\\b", "", false},
		{"/a\tb", "", false},
		{"/a\x7fb", "", false},
		{"/a#frag", "", false},
		{"/public/..;/admin", "", false},
		{"/public/.;/admin", "", false},
		{"/public/..;x=1/admin", "", false},
		{"/public/..%3b/admin", "", false},
		{"/app/a;b/c", "", false},
		{"/admin;jsessionid=1/x", "", false},
		{"/app/...;/c", "", false},
		{"/app/a%3bb", "", false},
		{"", "", false},
		{"admin", "", false},
		{"http://evil/admin", "", false},
		{"/" + strings.Repeat("a", 5000), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := Canonical(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Canonical(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCanonicalCleanPathDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { Canonical("/app/static/js/main.js?v=1") })
	if allocs != 0 {
		t.Errorf("allocs = %v, want 0", allocs)
	}
}

func TestHasPrefix(t *testing.T) {
	tests := []struct {
		path, prefix string
		want         bool
	}{
		{"/admin", "/admin", true},
		{"/admin/", "/admin", true},
		{"/admin/x", "/admin", true},
		{"/administrator", "/admin", false},
		{"/adm", "/admin", false},
		{"/x", "/", true},
		{"/admin/x", "/admin/", true},
	}
	for _, tt := range tests {
		if got := HasPrefix(tt.path, tt.prefix); got != tt.want {
			t.Errorf("HasPrefix(%q, %q) = %v, want %v", tt.path, tt.prefix, got, tt.want)
		}
	}
}

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func testRules(t testing.TB) *Rules {
	t.Helper()
	rs, err := New([]Rule{
		{Path: "/health", Access: Public},
		{Path: "/api", Methods: []string{"OPTIONS"}, Access: Public},
		{Host: "admin.example.com", Path: "/", Groups: []string{"admin"}},
		{Path: "/admin", Groups: []string{"admin"}},
		{Path: "/reports", Users: []string{"carol"}, Groups: []string{"finance"}},
		{Path: "/blocked", Access: Denied},
		{Path: "/dashboard", Methods: []string{"GET", "HEAD"}, Roles: []string{"office"}},
		{Path: "/dashboard", Access: Denied},
		{Path: "/internal", Networks: pfx("10.0.0.0/8", "2001:db8::/32")},
		{Path: "/internal", Access: Denied},
		{Host: "*.apps.example.com", Path: "/"},
		{Path: "/app"},
	}, []Network{
		{Name: "office", Prefixes: pfx("192.0.2.0/24", "2001:db8:1::/48"), Role: "office"},
		{Name: "vpn", Prefixes: pfx("10.0.0.0/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestDecide(t *testing.T) {
	rs := testRules(t)
	anon := Request{}
	alice := Request{User: "alice", Groups: []string{"admin", "staff"}}
	bob := Request{User: "bob", Groups: []string{"staff"}}
	carol := Request{User: "carol"}
	ip := netip.MustParseAddr
	with := func(r Request, host, method, path, addr string) *Request {
		r.Host, r.Method, r.Path = host, method, path
		if addr != "" {
			r.IP = ip(addr)
		}
		return &r
	}
	tests := []struct {
		name string
		req  *Request
		want Decision
		rule int
	}{
		{"public anonymous", with(anon, "app.example.com", "GET", "/health", ""), Allow, 0},
		{"public logged in", with(bob, "app.example.com", "GET", "/health", ""), Allow, 0},
		{"public prefix is whole segment", with(anon, "app.example.com", "GET", "/healthz", ""), Login, -1},
		{"options public only where a rule says", with(anon, "app.example.com", "OPTIONS", "/api/x", ""), Allow, 1},
		{"options elsewhere needs login", with(anon, "app.example.com", "OPTIONS", "/app/x", ""), Login, 11},
		{"lower-case method does not match", with(anon, "app.example.com", "options", "/api/x", ""), Login, -1},
		{"admin host member", with(alice, "admin.example.com", "GET", "/anything", ""), Allow, 2},
		{"admin host non-member", with(bob, "admin.example.com", "GET", "/app", ""), Deny, 2},
		{"admin host anonymous", with(anon, "admin.example.com", "GET", "/", ""), Login, 2},
		{"admin path member", with(alice, "app.example.com", "GET", "/admin/users", ""), Allow, 3},
		{"admin path non-member", with(bob, "app.example.com", "GET", "/admin", ""), Deny, 3},
		{"administrator is not admin", with(bob, "app.example.com", "GET", "/administrator", ""), Deny, -1},
		{"user grant", with(carol, "app.example.com", "GET", "/reports/q1", ""), Allow, 4},
		{"group grant miss", with(bob, "app.example.com", "GET", "/reports", ""), Deny, 4},
		{"deny rule", with(alice, "app.example.com", "GET", "/blocked", ""), Deny, 5},
		{"deny rule anonymous", with(anon, "app.example.com", "GET", "/blocked", ""), Login, 5},
		{"office role without login", with(anon, "app.example.com", "GET", "/dashboard", "192.0.2.44"), Allow, 6},
		{"office role ipv6", with(anon, "app.example.com", "GET", "/dashboard", "2001:db8:1::9"), Allow, 6},
		{"office role v4-mapped", with(anon, "app.example.com", "HEAD", "/dashboard", "::ffff:192.0.2.44"), Allow, 6},
		{"office role cannot POST", with(anon, "app.example.com", "POST", "/dashboard", "192.0.2.44"), Login, 7},
		{"outside office needs login", with(anon, "app.example.com", "GET", "/dashboard", "198.51.100.1"), Login, 6},
		{"outside office a logged-in user passes", with(bob, "app.example.com", "GET", "/dashboard", "198.51.100.1"), Allow, 6},
		{"network and login", with(bob, "app.example.com", "GET", "/internal/x", "10.1.2.3"), Allow, 8},
		{"network without login", with(anon, "app.example.com", "GET", "/internal/x", "10.1.2.3"), Login, 8},
		{"login outside network", with(bob, "app.example.com", "GET", "/internal/x", "198.51.100.1"), Deny, 9},
		{"network ipv6", with(bob, "app.example.com", "GET", "/internal", "2001:db8:ffff::1"), Allow, 8},
		{"no address never matches a network", with(bob, "app.example.com", "GET", "/internal", ""), Deny, 9},
		{"wildcard host", with(bob, "x.apps.example.com", "GET", "/", ""), Allow, 10},
		{"wildcard host is not the apex", with(bob, "apps.example.com", "GET", "/", ""), Deny, -1},
		{"wildcard host suffix trick", with(bob, "evilapps.example.com", "GET", "/", ""), Deny, -1},
		{"authenticated", with(bob, "app.example.com", "GET", "/app/x", ""), Allow, 11},
		{"no match anonymous", with(anon, "app.example.com", "GET", "/other", ""), Login, -1},
		{"no match user", with(alice, "app.example.com", "GET", "/other", ""), Deny, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rule := rs.Decide(tt.req)
			if got != tt.want || rule != tt.rule {
				t.Errorf("got %v by rule %d; want %v by rule %d", got, rule, tt.want, tt.rule)
			}
			steps, ed, er := rs.Explain(tt.req)
			if ed != got || er != rule {
				t.Errorf("Explain disagrees: %v by %d", ed, er)
			}
			if rule >= 0 && (len(steps) != rule+1 || !steps[rule].Matched) {
				t.Errorf("Explain steps = %+v", steps)
			}
		})
	}
}

// TestGroupNobodyHolds: a rule whose only group has lost its last member
// admits nobody; it must never read as "no groups, so anyone logged in".
func TestGroupNobodyHolds(t *testing.T) {
	rs, err := New([]Rule{{Path: "/admin", Groups: []string{"admins"}}, {Path: "/"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []Request{
		{User: "alice", Groups: []string{"staff"}},
		{User: "bob"},
		{User: "admins"},
	} {
		req.Path = "/admin/x"
		if got, rule := rs.Decide(&req); got != Deny || rule != 0 {
			t.Errorf("%s: got %v by rule %d, want %v by rule 0", req.User, got, rule, Deny)
		}
	}
	if got, _ := rs.Decide(&Request{Path: "/admin"}); got != Login {
		t.Errorf("anonymous: got %v, want %v", got, Login)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
	}{
		{"empty", nil},
		{"relative path", []Rule{{Path: "admin"}}},
		{"dot segment", []Rule{{Path: "/a/../b"}}},
		{"dot segment at the end", []Rule{{Path: "/a/."}}},
		{"groups on public", []Rule{{Path: "/", Access: Public, Groups: []string{"x"}}}},
		{"roles on deny", []Rule{{Path: "/", Access: Denied, Roles: []string{"office"}}}},
		{"unknown role", []Rule{{Path: "/", Roles: []string{"nobody"}}}},
		{"lower-case method", []Rule{{Path: "/", Methods: []string{"get"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.rules, nil); err == nil {
				t.Error("got nil error, want one")
			}
		})
	}
}

func TestExplainWording(t *testing.T) {
	rs := testRules(t)
	steps, d, _ := rs.Explain(&Request{Host: "app.example.com", Method: "GET", Path: "/admin/x", User: "bob", Groups: []string{"staff"}})
	if d != Deny {
		t.Fatalf("got %v, want deny", d)
	}
	last := steps[len(steps)-1]
	for _, want := range []string{"bob", "staff", "not in its users, groups or roles"} {
		if !strings.Contains(last.Why, want) {
			t.Errorf("reason %q lacks %q", last.Why, want)
		}
	}
	if !strings.Contains(steps[0].Why, "not under /health") {
		t.Errorf("first step: %q", steps[0].Why)
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	rs := testRules(t)
	req := &Request{Host: "app.example.com", Method: "GET", Path: "/dashboard", IP: netip.MustParseAddr("192.0.2.1")}
	if a := testing.AllocsPerRun(100, func() { rs.Decide(req) }); a != 0 {
		t.Errorf("allocs = %v, want 0", a)
	}
}

func BenchmarkDecide100Rules(b *testing.B) {
	var rules []Rule
	for i := 0; i < 99; i++ {
		rules = append(rules, Rule{Path: fmt.Sprintf("/app%d", i), Groups: []string{"g" + fmt.Sprint(i)}, Methods: []string{"GET"}})
	}
	rules = append(rules, Rule{Path: "/"})
	rs, err := New(rules, nil)
	if err != nil {
		b.Fatal(err)
	}
	req := &Request{Host: "app.example.com", Method: "GET", Path: "/static/js/main.js", User: "bob", Groups: []string{"staff"}}
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := rs.Decide(req); d != Allow {
			b.Fatal(d)
		}
	}
}

// FuzzCanonical checks that canonicalisation never panics, yields a clean
// absolute path, is idempotent, refuses every input with a dot segment
// (literal or encoded), and so keeps the first segment.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/a/../b", "/%2e%2e/", "/a%2fb", "//x", "/a/./b/", "/a?b=../c", "/caf%C3%A9", "/..", "/a/b/../../..", "/%", "/a\\b",
		"/a/.", "/a/..", "/./a", "/a/.%2E/b", "/...", "/a/..b/c", "/.a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := Canonical(in)
		if !ok {
			return
		}
		if !strings.HasPrefix(out, "/") || strings.Contains(out, "//") || strings.Contains(out, "\\") {
			t.Fatalf("Canonical(%q) = %q: not clean", in, out)
		}
		for _, seg := range strings.Split(out, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("Canonical(%q) = %q: dot segment left", in, out)
			}
		}
		if strings.ContainsAny(out, "?#%") {
			t.Fatalf("Canonical(%q) = %q: query, fragment or escape left", in, out)
		}
		if again, ok := Canonical(out); !ok || again != out {
			t.Fatalf("not idempotent: %q → %q → %q (%v)", in, out, again, ok)
		}
		// Dot segments are refused, not resolved: an accepted input has none,
		// literal or encoded, and so keeps its first segment.
		raw, _, _ := strings.Cut(in, "?")
		for _, seg := range strings.Split(raw, "/") {
			if dec, err := url.PathUnescape(seg); err == nil && (dec == "." || dec == "..") {
				t.Fatalf("Canonical(%q) = %q: accepted dot segment %q", in, out, seg)
			}
		}
		if first := firstSegment(strings.TrimLeft(raw, "/")); first != "" && !strings.Contains(first, "%") && firstSegment(strings.TrimLeft(out, "/")) != first {
			t.Fatalf("Canonical(%q) = %q moved out of /%s", in, out, first)
		}
	})
}

func firstSegment(p string) string {
	s, _, _ := strings.Cut(p, "/")
	return s
}
