package policy

import (
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
		{"/a/./b", "/a/b", true},
		{"/a/b/../c", "/a/c", true},
		{"/a/b/..", "/a/", true},
		{"/a/b/", "/a/b/", true},
		{"/.hidden", "/.hidden", true},
		{"/file.txt", "/file.txt", true},
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

func TestDecide(t *testing.T) {
	rs, err := New([]Rule{
		{Path: "/health", Access: Public},
		{Path: "/admin", Groups: []string{"admin"}},
		{Path: "/reports", Users: []string{"carol"}, Groups: []string{"finance"}},
		{Path: "/blocked", Access: Denied},
		{Path: "/app"},
	})
	if err != nil {
		t.Fatal(err)
	}
	anon := Identity{}
	alice := Identity{User: "alice", Groups: []string{"admin", "staff"}}
	bob := Identity{User: "bob", Groups: []string{"staff"}}
	carol := Identity{User: "carol"}
	tests := []struct {
		name string
		path string
		id   Identity
		want Decision
		rule int
	}{
		{"public anonymous", "/health", anon, Allow, 0},
		{"public logged in", "/health", bob, Allow, 0},
		{"admin anonymous", "/admin", anon, Login, 1},
		{"admin member", "/admin/users", alice, Allow, 1},
		{"admin non-member", "/admin", bob, Deny, 1},
		{"administrator is not admin", "/administrator", bob, Deny, -1},
		{"user grant", "/reports/q1", carol, Allow, 2},
		{"group grant miss", "/reports", bob, Deny, 2},
		{"deny rule", "/blocked", alice, Deny, 3},
		{"deny rule anonymous", "/blocked", anon, Login, 3},
		{"authenticated", "/app/x", bob, Allow, 4},
		{"no match anonymous", "/other", anon, Login, -1},
		{"no match user", "/other", alice, Deny, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rule := rs.Decide(tt.path, tt.id)
			if got != tt.want || rule != tt.rule {
				t.Errorf("Decide(%q, %v) = %v, rule %d; want %v, rule %d", tt.path, tt.id.User, got, rule, tt.want, tt.rule)
			}
		})
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
		{"groups on public", []Rule{{Path: "/", Access: Public, Groups: []string{"x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.rules); err == nil {
				t.Error("got nil error, want one")
			}
		})
	}
}
