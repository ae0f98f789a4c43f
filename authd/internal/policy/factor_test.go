package policy

import (
	"net/netip"
	"testing"
	"time"
)

func TestFactorFor(t *testing.T) {
	office := netip.MustParsePrefix("192.0.2.0/24")
	rs, err := New([]Rule{
		{Path: "/admin", Groups: []string{"admin"}, Factor: Factor{Two: true, MaxAge: 15 * time.Minute}},
		{Path: "/finance", Roles: []string{"office"}, Factor: Factor{Two: true}},
		{Path: "/pub", Access: Public},
		{Path: "/"},
	}, []Network{{Name: "office", Prefixes: []netip.Prefix{office}, Role: "office"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		req  Request
		want Factor
	}{
		{"two-factor rule", Request{Path: "/admin/x", User: "a", Groups: []string{"admin"}}, Factor{Two: true, MaxAge: 15 * time.Minute}},
		{"user outside the office", Request{Path: "/finance", User: "a", IP: netip.MustParseAddr("198.51.100.1")}, Factor{Two: true}},
		{"let in by a network role", Request{Path: "/finance", User: "a", IP: netip.MustParseAddr("192.0.2.9")}, Factor{}},
		{"public", Request{Path: "/pub", User: "a"}, Factor{}},
		{"one-factor rule", Request{Path: "/app", User: "a"}, Factor{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, i := rs.Decide(&tt.req)
			if got := rs.FactorFor(&tt.req, i); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if got := rs.FactorFor(&Request{}, -1); got.Two {
		t.Fatalf("no rule: got %v, want one factor", got)
	}
	if _, err := New([]Rule{{Path: "/", Access: Public, Factor: Factor{Two: true}}}, nil); err == nil {
		t.Fatal("public rule with two factors: got no error")
	}
}
