package security

import (
	"net/http"
	"strings"
	"testing"
)

// lbRules grant a role to the internal network (127.0.0.0/8, where the load balancer and nginx
// live too), deny /lab to the 10.0.0.0/8 lab network and open it to everyone else, and leave /app
// to any login.
const lbRules = `
[networks.internal]
cidrs = ["127.0.0.0/8"]
role = "internal"

[networks.lab]
cidrs = ["10.0.0.0/8"]

[[rules]]
path = "/internal"
roles = ["internal"]

[[rules]]
path = "/lab"
networks = ["lab"]
allow = "deny"

[[rules]]
path = "/lab"
allow = "public"

[[rules]]
path = "/app"
`

// lbAddr is the load balancer in front of nginx: it connects from here and hands nginx the client
// address in X-Forwarded-For; authd trusts it as well as nginx (127.0.0.1).
const lbAddr = "127.0.0.7"

// TestClientAddressBehindLoadBalancer covers "behind a load balancer the client IP is the
// rightmost untrusted hop" for hops that are not one plain IP: a client address that a trusted
// proxy hands on with a port, in brackets, with a zone, a trailing comma, empty or garbage must
// never become the load balancer's own address (which here carries the internal role). Such a
// request gets no network role, opens no network rule, and is caught by the rule that denies the
// lab network. IPv4-mapped addresses match as the IPv4 address they carry. The shipped snippets
// run unchanged; nginx appends the balancer's address to its X-Forwarded-For.
func TestClientAddressBehindLoadBalancer(t *testing.T) {
	s := newStack(t, stackOptions{rules: lbRules, logLevel: "info", trustedProxies: []string{"127.0.0.1/32", lbAddr + "/32"}})
	ada := session(s.login(t, "ada", adaPassword))
	// get sends GET target from the balancer with the given header lines and reports the status,
	// or 200 only when the app answered.
	get := func(t *testing.T, target, cookie string, lines ...string) int {
		t.Helper()
		if cookie != "" {
			lines = append(lines, "Cookie: "+cookie)
		}
		r := s.raw(t, lbAddr, s.rawGet(target, lines...))
		if r.Status == http.StatusOK && r.App == nil {
			t.Fatalf("%s: 200 from something other than the app", target)
		}
		return r.Status
	}
	xff := func(v string) string { return "X-Forwarded-For: " + v }

	t.Run("controls", func(t *testing.T) {
		for _, c := range []struct {
			line, target string
			want         int
		}{
			{xff("203.0.113.7"), "/internal/x", 401},
			{xff("203.0.113.7"), "/lab/x", 200},
			{xff("127.0.0.9"), "/internal/x", 200},
			{xff("10.1.2.3"), "/lab/x", 401},
			{xff("10.1.2.3"), "/internal/x", 401},
			// Spoofed hops left of the one the balancer vouches for count for nothing.
			{xff("127.0.0.9, 10.1.2.3"), "/internal/x", 401},
			{xff("garbage, 203.0.113.7"), "/lab/x", 200},
			// IPv4-mapped addresses are read as IPv4: the lab's deny rule catches one, the internal
			// role admits one.
			{xff("::ffff:10.1.2.3"), "/lab/x", 401},
			{xff("::ffff:127.0.0.9"), "/internal/x", 200},
			// nginx sets X-Real-IP itself: a client's copy is replaced, whatever it holds.
			{xff("203.0.113.7") + "\r\nX-Real-IP: garbage", "/lab/x", 200},
			{xff("10.1.2.3") + "\r\nX-Real-IP: 127.0.0.9", "/internal/x", 401},
		} {
			if got := get(t, c.target, "", c.line); got != c.want {
				t.Errorf("%q %s: got %d, want %d", c.line, c.target, got, c.want)
			}
		}
	})

	bad := []string{
		xff("10.1.2.3:443"), xff("[2001:db8::1]"), xff("[2001:db8::1]:443"), xff("fe80::1%eth0"),
		xff("10.1.2.3,"), xff(""), xff("garbage"), xff("unknown"), xff("10.1.2.3 10.1.2.4"),
		xff("203.0.113.7") + "\r\n" + xff("10.1.2.3:443"),
	}
	for _, line := range bad {
		t.Run(strings.ReplaceAll(line, "\r\n", " | "), func(t *testing.T) {
			// Before, each of these read as the balancer itself: the internal role opened
			// /internal and the lab's deny rule let /lab through.
			if got := get(t, "/internal/x", "", line); got != http.StatusUnauthorized {
				t.Errorf("/internal without a login: got %d, want 401 (no role for an unknown address)", got)
			}
			if got := get(t, "/lab/x", "", line); got != http.StatusUnauthorized {
				t.Errorf("/lab without a login: got %d, want 401 (the deny rule catches an unknown address)", got)
			}
			if got := get(t, "/lab/x", ada, line); got != http.StatusForbidden {
				t.Errorf("/lab as ada: got %d, want 403", got)
			}
			if got := get(t, "/app/x", ada, line); got != http.StatusOK {
				t.Errorf("/app as ada: got %d, want the app (rules without networks are unaffected)", got)
			}
		})
	}
	// The operator sees why: the denial is logged with an unknown client address, not the balancer's.
	log := s.authdLog(t)
	if !strings.Contains(log, `"event":"access_denied"`) || !strings.Contains(log, `"client_ip":"unknown"`) {
		t.Errorf("authd log has no access_denied record with client_ip unknown:\n%s", tail(s.logs+"/authd.log", 10))
	}
	if strings.Contains(log, `"client_ip":"`+lbAddr+`"`) {
		t.Errorf("authd logged the balancer's own address as a client:\n%s", tail(s.logs+"/authd.log", 10))
	}
}

// TestClientAddressFromXRealIP: X-Real-IP, read only from a trusted proxy and only when it sends
// no X-Forwarded-For (a proxy set up to send X-Real-IP alone), at authd's own listener (the
// shipped snippets always send both headers and overwrite any client copy). Anything but one plain
// IP, a repeated header, or a trusted proxy that names no client at all is an unknown address,
// never the proxy's own (127.0.0.1, here in the internal network).
func TestClientAddressFromXRealIP(t *testing.T) {
	s := newStack(t, stackOptions{rules: lbRules, logLevel: "info"})
	verify := func(path string, extra http.Header) int {
		h := http.Header{"X-Original-Uri": {path}, "X-Original-Method": {"GET"}}
		for k, v := range extra {
			h[k] = v
		}
		return s.verifyDirect(t, "127.0.0.1", h)
	}
	for _, c := range []struct {
		name string
		h    http.Header
		path string
		want int
	}{
		{"internal client", http.Header{"X-Real-Ip": {"127.0.0.9"}}, "/internal/x", 200},
		{"outside client", http.Header{"X-Real-Ip": {"203.0.113.7"}}, "/internal/x", 401},
		{"outside client on the lab path", http.Header{"X-Real-Ip": {"203.0.113.7"}}, "/lab/x", 200},
		{"lab client", http.Header{"X-Real-Ip": {"10.1.2.3"}}, "/lab/x", 401},
		{"mapped lab client", http.Header{"X-Real-Ip": {"::ffff:10.1.2.3"}}, "/lab/x", 401},
	} {
		if got := verify(c.path, c.h); got != c.want {
			t.Errorf("control %s: got %d, want %d", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		name string
		h    http.Header
	}{
		{"with port", http.Header{"X-Real-Ip": {"203.0.113.7:80"}}},
		{"bracketed", http.Header{"X-Real-Ip": {"[::1]"}}},
		{"bracketed with port", http.Header{"X-Real-Ip": {"[::1]:80"}}},
		{"zoned", http.Header{"X-Real-Ip": {"fe80::1%eth0"}}},
		{"trailing comma", http.Header{"X-Real-Ip": {"203.0.113.7,"}}},
		{"empty", http.Header{"X-Real-Ip": {""}}},
		{"garbage", http.Header{"X-Real-Ip": {"garbage"}}},
		{"two headers", http.Header{"X-Real-Ip": {"203.0.113.7", "203.0.113.8"}}},
		{"bad beside a good X-Forwarded-For", http.Header{"X-Real-Ip": {"garbage"}, "X-Forwarded-For": {"203.0.113.7"}}},
		{"no client named", nil},
	} {
		if got := verify("/internal/x", c.h); got != http.StatusUnauthorized {
			t.Errorf("%s: /internal got %d, want 401 (no role for an unknown address)", c.name, got)
		}
		if got := verify("/lab/x", c.h); got != http.StatusUnauthorized {
			t.Errorf("%s: /lab got %d, want 401 (the deny rule catches an unknown address)", c.name, got)
		}
	}
}
