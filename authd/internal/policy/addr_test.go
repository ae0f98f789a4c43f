package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClientAddr(t *testing.T) {
	tests := []struct {
		in, want string // want "" for unknown
	}{
		{"203.0.113.7", "203.0.113.7"},
		{" 203.0.113.7\t", "203.0.113.7"},
		{"2001:db8::1", "2001:db8::1"},
		{"::1", "::1"},
		{"::ffff:10.0.0.1", "10.0.0.1"},
		{"::ffff:a00:1", "10.0.0.1"},
		{"1.2.3.4:80", ""},
		{"[::1]", ""},
		{"[::1]:80", ""},
		{"fe80::1%eth0", ""},
		{"fe80::1%25eth0", ""},
		{"1.2.3.4,", ""},
		{"1.2.3.4, 5.6.7.8", ""},
		{"1.2.3.4 5.6.7.8", ""},
		{"", ""},
		{"  ", ""},
		{"garbage", ""},
		{"unix:", ""},
		{"unknown", ""},
		{"010.0.0.1", ""},
		{"1.2.3", ""},
		{"10.0.0.0/8", ""},
		{"1.2.3.4\x00", ""},
		{"1.2.3.4\r\n", ""},
		{"\n1.2.3.4", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := ClientAddr(tt.in)
			gotS := ""
			if got.IsValid() {
				gotS = got.String()
			}
			if gotS != tt.want {
				t.Errorf("ClientAddr(%q) = %q, want %q", tt.in, gotS, tt.want)
			}
		})
	}
}

// TestDecideUnknownAddress: a request whose client address is unknown or not
// a plain IP is in no network that allows or grants a role, and in every
// network of a rule that denies.
func TestDecideUnknownAddress(t *testing.T) {
	rs, err := New([]Rule{
		{Path: "/blocked", Networks: pfx("10.0.0.0/8"), Access: Denied},
		{Path: "/blocked", Access: Public},
		{Path: "/public-office", Networks: pfx("192.0.2.0/24"), Access: Public},
		{Path: "/public-office", Access: Denied},
		{Path: "/office", Roles: []string{"office"}},
		{Path: "/internal", Networks: pfx("10.0.0.0/8", "::/0")},
		{Path: "/internal", Access: Denied},
		{Path: "/", Access: Public},
	}, []Network{{Name: "office", Prefixes: pfx("192.0.2.0/24", "::/0", "0.0.0.0/0"), Role: "office"}})
	if err != nil {
		t.Fatal(err)
	}
	unknown := []struct {
		name string
		ip   netip.Addr
	}{
		{"zero", netip.Addr{}},
		{"zoned", netip.MustParseAddr("fe80::1%eth0")},
		{"zoned mapped", netip.MustParseAddr("::ffff:10.0.0.1%eth0")},
	}
	for _, u := range unknown {
		for _, user := range []string{"", "bob"} {
			tests := []struct {
				path string
				want Decision
				rule int
			}{
				{"/blocked/x", Deny, 0},
				{"/public-office", Deny, 3},
				{"/office", Deny, 4},
				{"/internal", Deny, 6},
				{"/other", Allow, 7},
			}
			for _, tt := range tests {
				t.Run(u.name+" "+user+" "+tt.path, func(t *testing.T) {
					want := tt.want
					if want == Deny && user == "" {
						want = Login
					}
					if tt.path == "/office" && user != "" {
						want = Allow // a login passes; the role is what an unknown address never gets
					}
					req := &Request{Method: "GET", Path: tt.path, IP: u.ip, User: user}
					got, rule := rs.Decide(req)
					if got != want || rule != tt.rule {
						t.Errorf("got %v by rule %d; want %v by rule %d", got, rule, want, tt.rule)
					}
					if _, ed, er := rs.Explain(req); ed != got || er != rule {
						t.Errorf("Explain disagrees: %v by %d", ed, er)
					}
					if roles := rs.Roles(u.ip); len(roles) != 0 {
						t.Errorf("Roles = %v, want none", roles)
					}
				})
			}
		}
	}
	// A usable address still decides as before; a mapped one as its IPv4 address.
	for _, tt := range []struct {
		ip   string
		path string
		want Decision
		rule int
	}{
		{"10.1.2.3", "/blocked", Login, 0},
		{"::ffff:10.1.2.3", "/blocked", Login, 0},
		{"203.0.113.1", "/blocked", Allow, 1},
		{"::ffff:192.0.2.9", "/public-office", Allow, 2},
		{"203.0.113.1", "/public-office", Login, 3},
		{"::ffff:203.0.113.1", "/office", Allow, 4},
	} {
		t.Run("known "+tt.ip+" "+tt.path, func(t *testing.T) {
			got, rule := rs.Decide(&Request{Method: "GET", Path: tt.path, IP: netip.MustParseAddr(tt.ip)})
			if got != tt.want || rule != tt.rule {
				t.Errorf("got %v by rule %d; want %v by rule %d", got, rule, tt.want, tt.rule)
			}
		})
	}
}

func TestExplainUnknownAddress(t *testing.T) {
	rs, err := New([]Rule{{Path: "/", Networks: pfx("10.0.0.0/8"), Access: Denied}, {Path: "/"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps, d, i := rs.Explain(&Request{Method: "GET", Path: "/x", User: "bob"})
	if d != Deny || i != 0 || !steps[0].Matched {
		t.Fatalf("got %v by %d, want deny by rule 0", d, i)
	}
	if want := "the client address is unknown"; !strings.Contains(steps[0].Why, want) {
		t.Errorf("reason %q lacks %q", steps[0].Why, want)
	}
}

func TestNewRejectsMappedNetworks(t *testing.T) {
	for _, p := range []string{"::ffff:10.0.0.0/104", "::ffff:192.0.2.1/128", "::ffff:0:0/96"} {
		if _, err := New([]Rule{{Path: "/", Networks: pfx(p)}}, nil); err == nil {
			t.Errorf("rule network %s: got nil error, want one", p)
		}
		if _, err := New([]Rule{{Path: "/"}}, []Network{{Name: "n", Prefixes: pfx(p)}}); err == nil {
			t.Errorf("[networks] %s: got nil error, want one", p)
		}
	}
	if _, err := New([]Rule{{Path: "/", Networks: pfx("::/0", "::ffff:0:0/95", "10.0.0.0/8")}}, nil); err != nil {
		t.Errorf("plain IPv6 and IPv4 ranges: %v", err)
	}
}
