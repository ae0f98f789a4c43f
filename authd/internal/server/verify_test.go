package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/users"
)

func TestVerify(t *testing.T) {
	h := newHarness(t, []policy.Rule{
		{Path: "/health", Access: policy.Public},
		{Path: "/admin", Groups: []string{"admin"}},
		{Path: "/"},
	}, nil)
	alice := h.login("alice")
	bob := h.login("bob")
	aliceVal := strings.TrimPrefix(alice, "__Host-authd_session=")

	tests := []struct {
		name    string
		uri     string
		cookie  string
		want    int
		user    string
		loginRD string
	}{
		{"no cookie", "/app/", "", 401, "", "/authd/login?rd=%2Fapp%2F"},
		{"no cookie keeps query in return path", "/app/?a=1&b=2", "", 401, "", "/authd/login?rd=%2Fapp%2F%3Fa%3D1%26b%3D2"},
		{"valid session", "/app/", alice, 200, "alice", ""},
		{"admin member", "/admin/x", alice, 200, "alice", ""},
		{"admin non-member", "/admin/x", bob, 403, "", ""},
		{"query cannot smuggle a public path", "/admin?x=/health", bob, 403, "", ""},
		{"administrator is not /admin", "/administrator", bob, 200, "bob", ""},
		{"dot segments refused, not resolved", "/health/../admin", bob, 403, "", ""},
		{"dot segment out of a denied prefix refused", "/admin/../app/", bob, 403, "", ""},
		{"dot segment refused for a member too", "/admin/./x", alice, 403, "", ""},
		{"trailing dot dot refused", "/app/x/..", alice, 403, "", ""},
		{"trailing dot refused", "/app/.", alice, 403, "", ""},
		{"leading dot refused", "/./app/", alice, 403, "", ""},
		{"mixed encoded dots refused", "/app/.%2E/app/", alice, 403, "", ""},
		{"dot segment on a public path needs a login", "/health/./x", "", 401, "", ""},
		{"encoded slash denied", "/admin%2fx", alice, 403, "", ""},
		{"public without session", "/health", "", 200, "", ""},
		{"garbage cookie", "/app/", "__Host-authd_session=garbage", 401, "", "/authd/login?rd=%2Fapp%2F"},
		{"empty cookie", "/app/", "__Host-authd_session=", 401, "", "/authd/login?rd=%2Fapp%2F"},
		{"oversized cookie", "/app/", "__Host-authd_session=" + strings.Repeat("A", 8000), 401, "", "/authd/login?rd=%2Fapp%2F"},
		{"tampered cookie", "/app/", "__Host-authd_session=" + flip(aliceVal), 401, "", "/authd/login?rd=%2Fapp%2F"},
		{"duplicated cookie", "/app/", alice + "; " + alice, 401, "", "/authd/login?rd=%2Fapp%2F"},
		{"duplicated cookie, one bad", "/app/", alice + "; __Host-authd_session=x", 401, "", "/authd/login?rd=%2Fapp%2F"},
		{"cookie without prefix", "/app/", "authd_session=" + aliceVal, 401, "", "/authd/login?rd=%2Fapp%2F"},
		{"unparsable uri, session", "http://x/app", alice, 403, "", ""},
		{"unparsable uri, no session", "/a\x01b", "", 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := h.verify(tt.uri, tt.cookie)
			if w.Code != tt.want {
				t.Fatalf("got %d, want %d", w.Code, tt.want)
			}
			if got := w.Header().Get("Remote-User"); got != tt.user {
				t.Errorf("Remote-User = %q, want %q", got, tt.user)
			}
			if got := w.Header().Get("X-Authd-Login"); got != tt.loginRD {
				t.Errorf("X-Authd-Login = %q, want %q", got, tt.loginRD)
			}
			if got := w.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if sc := w.Header()["Set-Cookie"]; len(sc) > 0 {
				t.Errorf("verify set cookies: %v", sc)
			}
		})
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return string(b)
}

func TestVerifyIdentityHeaders(t *testing.T) {
	h := newHarness(t, nil, nil)
	w := h.verify("/", h.login("alice"))
	want := map[string]string{"Remote-User": "alice", "Remote-Groups": "admin,staff", "Remote-Email": "alice@example.com", "Remote-Name": "Alice Liddell"}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestVerifyTrustsMetadataOnlyFromProxies(t *testing.T) {
	h := newHarness(t, []policy.Rule{{Path: "/public", Access: policy.Public}, {Path: "/"}}, nil)
	cookie := h.login("bob")
	tests := []struct {
		name, remote, uri, cookie string
		want                      int
	}{
		{"trusted proxy, public path", "127.0.0.1:1", "/public", "", 200},
		{"untrusted peer claims public path", "198.51.100.9:1", "/public", "", 401},
		{"untrusted peer with session", "198.51.100.9:1", "/x", cookie, 403},
		{"ipv6 loopback trusted", "[::1]:1", "/public", "", 200},
		{"v4-mapped loopback trusted", "[::ffff:127.0.0.1]:1", "/public", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hd := map[string]string{"X-Original-URI": tt.uri, "X-Original-Method": "GET"}
			if tt.cookie != "" {
				hd["Cookie"] = tt.cookie
			}
			w := h.do(req{target: "/verify", remote: tt.remote, headers: hd})
			if w.Code != tt.want {
				t.Errorf("got %d, want %d", w.Code, tt.want)
			}
		})
	}
}

func TestVerifyMissingMetadataDenies(t *testing.T) {
	h := newHarness(t, []policy.Rule{{Path: "/", Access: policy.Public}}, nil)
	cookie := h.login("bob")
	tests := []struct {
		name    string
		headers map[string]string
	}{
		{"no original uri", map[string]string{"X-Original-Method": "GET"}},
		{"no original method", map[string]string{"X-Original-URI": "/"}},
		{"lower-case method", map[string]string{"X-Original-URI": "/", "X-Original-Method": "get"}},
		{"garbage method", map[string]string{"X-Original-URI": "/", "X-Original-Method": "G E T"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w := h.do(req{target: "/verify", headers: tt.headers}); w.Code != 401 {
				t.Errorf("without session: got %d, want 401", w.Code)
			}
			hd := map[string]string{"Cookie": cookie}
			for k, v := range tt.headers {
				hd[k] = v
			}
			if w := h.do(req{target: "/verify", headers: hd}); w.Code != 403 {
				t.Errorf("with session: got %d, want 403", w.Code)
			}
		})
	}
}

func TestVerifyRulesSeeHostMethodAndClient(t *testing.T) {
	office := policy.Network{Name: "office", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Role: "office"}
	h := newHarness(t, []policy.Rule{
		{Host: "admin.example.com", Path: "/", Groups: []string{"admin"}},
		{Path: "/dash", Methods: []string{"GET"}, Roles: []string{"office"}},
		{Host: "kiosk.example.com", Path: "/", Access: policy.Public},
		{Path: "/"},
	}, nil, office)
	bob := h.login("bob")
	tests := []struct {
		name, host, method, xff, cookie string
		path                            string
		want                            int
	}{
		{"admin host refuses bob", "Admin.Example.com:443", "GET", "203.0.113.1", bob, "/", 403},
		{"other host admits bob", "app.example.com", "GET", "203.0.113.1", bob, "/", 200},
		{"office without login", "app.example.com", "GET", "192.0.2.7", "", "/dash", 200},
		{"office POST needs login", "app.example.com", "POST", "192.0.2.7", "", "/dash", 401},
		{"spoofed office address on the left", "app.example.com", "GET", "192.0.2.7, 203.0.113.1", "", "/dash", 401},
		{"outside office", "app.example.com", "GET", "203.0.113.1", "", "/dash", 401},
		{"public host in upper case", "KIOSK.Example.com", "GET", "203.0.113.1", "", "/", 200},
		// nginx passes non-ASCII bytes in Host through; only ASCII letters fold.
		{"Kelvin sign is not k", "\u212Aiosk.example.com", "GET", "203.0.113.1", "", "/", 401},
		{"Kelvin sign with upper case", "\u212AIOSK.EXAMPLE.COM", "GET", "203.0.113.1", "", "/", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hd := map[string]string{"X-Original-URI": tt.path, "X-Original-Method": tt.method, "X-Forwarded-Host": tt.host, "X-Forwarded-For": tt.xff}
			if tt.cookie != "" {
				hd["Cookie"] = tt.cookie
			}
			if w := h.do(req{target: "/verify", headers: hd}); w.Code != tt.want {
				t.Errorf("got %d, want %d", w.Code, tt.want)
			}
		})
	}
}

func TestVerifyEmptyIdentityOnPublicPath(t *testing.T) {
	h := newHarness(t, []policy.Rule{{Path: "/", Access: policy.Public}}, nil)
	w := h.do(req{target: "/verify", headers: map[string]string{"X-Original-URI": "/", "X-Original-Method": "GET", "Remote-User": "admin"}})
	if w.Code != 200 || w.Header().Get("Remote-User") != "" {
		t.Errorf("got %d with Remote-User %q, want 200 and none", w.Code, w.Header().Get("Remote-User"))
	}
}

func TestSessionTimeouts(t *testing.T) {
	h := newHarness(t, nil, nil)
	t.Run("idle timeout", func(t *testing.T) {
		c := h.login("bob")
		h.clock.add(29 * time.Minute)
		if w := h.verify("/", c); w.Code != 200 {
			t.Fatalf("before idle timeout: got %d, want 200", w.Code)
		}
		h.clock.add(29 * time.Minute) // activity above moved last-seen
		if w := h.verify("/", c); w.Code != 200 {
			t.Fatalf("activity should extend idle: got %d, want 200", w.Code)
		}
		h.clock.add(31 * time.Minute)
		if w := h.verify("/", c); w.Code != 401 {
			t.Fatalf("after idle timeout: got %d, want 401", w.Code)
		}
	})
	t.Run("activity never extends the absolute lifetime", func(t *testing.T) {
		c := h.login("bob")
		for i := 0; i < 25; i++ { // 25 × 29 min > 12 h
			h.clock.add(29 * time.Minute)
			w := h.verify("/", c)
			if i < 24 && w.Code != 200 {
				t.Fatalf("step %d: got %d, want 200", i, w.Code)
			}
			if i == 24 && w.Code != 401 {
				t.Fatalf("past lifetime: got %d, want 401", w.Code)
			}
		}
	})
}

func TestCredentialChangesEndSessions(t *testing.T) {
	tests := []struct {
		name string
		edit func(u *users.User)
	}{
		{"password change", func(u *users.User) { u.Hash = mustHash(t, "another password 1") }},
		{"lock", func(u *users.User) { u.Disabled = true }},
		{"generation bump", func(u *users.User) { u.Generation++ }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			c := h.login("bob")
			other := h.login("alice")
			h.editUsers(func(l []users.User) []users.User {
				for i := range l {
					if l[i].Name == "bob" {
						tt.edit(&l[i])
					}
				}
				return l
			})
			if w := h.verify("/", c); w.Code != 401 {
				t.Errorf("bob after change: got %d, want 401", w.Code)
			}
			if w := h.verify("/", other); w.Code != 200 {
				t.Errorf("alice unaffected: got %d, want 200", w.Code)
			}
		})
	}
	t.Run("delete", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		c := h.login("bob")
		h.editUsers(func(l []users.User) []users.User {
			out := l[:0]
			for _, u := range l {
				if u.Name != "bob" {
					out = append(out, u)
				}
			}
			return out
		})
		if w := h.verify("/", c); w.Code != 401 {
			t.Errorf("got %d, want 401", w.Code)
		}
	})
	t.Run("group change applies at next request", func(t *testing.T) {
		h := newHarness(t, []policy.Rule{{Path: "/admin", Groups: []string{"admin"}}, {Path: "/"}}, nil)
		c := h.login("bob")
		if w := h.verify("/admin", c); w.Code != 403 {
			t.Fatalf("before: got %d, want 403", w.Code)
		}
		h.editUsers(func(l []users.User) []users.User {
			for i := range l {
				if l[i].Name == "bob" {
					l[i].Groups = append(l[i].Groups, "admin")
				}
			}
			return l
		})
		if w := h.verify("/admin", c); w.Code != 200 {
			t.Errorf("after: got %d, want 200", w.Code)
		}
	})
}

func TestCookieValue(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		want   string
		ok     bool
	}{
		{"single", []string{"a=1; s=v"}, "v", true},
		{"spaces", []string{"a=1;   s=v  "}, "v", true},
		{"absent", []string{"a=1"}, "", false},
		{"prefix name", []string{"ss=v"}, "", false},
		{"twice in one header", []string{"s=v; s=w"}, "", false},
		{"twice across headers", []string{"s=v", "s=w"}, "", false},
		{"no headers", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cookieValue(http.Header{"Cookie": tt.header}, "s")
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestClientIP: behind a trusted proxy the client is the rightmost untrusted
// X-Forwarded-For hop (or X-Real-IP without one). Anything that is not one
// plain IP where the client's address should be makes the client unknown
// ("") and never falls back to a proxy's own address.
func TestClientIP(t *testing.T) {
	h := newHarness(t, nil, nil)
	tests := []struct {
		name, remote string
		xff, xri     []string // nil: header absent
		want         string   // "" for unknown
	}{
		{"direct untrusted peer ignores xff", "198.51.100.1:5", []string{"10.0.0.1"}, nil, "198.51.100.1"},
		{"direct untrusted peer ignores x-real-ip", "198.51.100.1:5", nil, []string{"10.0.0.1"}, "198.51.100.1"},
		{"direct untrusted peer ignores garbage", "198.51.100.1:5", []string{"garbage"}, []string{"[::1]:80"}, "198.51.100.1"},
		{"direct mapped peer unmapped", "[::ffff:198.51.100.1]:5", nil, nil, "198.51.100.1"},
		{"direct zoned peer unknown", "[fe80::1%eth0]:5", nil, nil, ""},
		{"zoned peer is never trusted", "[fe80::1%lo]:5", []string{"10.0.0.1"}, nil, ""},
		{"unparsable peer unknown", "nonsense", []string{"10.0.0.1"}, nil, ""},
		{"trusted proxy, one hop", "127.0.0.1:5", []string{"203.0.113.5"}, nil, "203.0.113.5"},
		{"mapped trusted proxy", "[::ffff:127.0.0.1]:5", []string{"203.0.113.5"}, nil, "203.0.113.5"},
		{"spoofed left entries ignored", "127.0.0.1:5", []string{"1.2.3.4, 203.0.113.5"}, nil, "203.0.113.5"},
		{"garbage left of the client ignored", "127.0.0.1:5", []string{"garbage, [::1]:80, 203.0.113.5"}, nil, "203.0.113.5"},
		{"trusted hops skipped", "127.0.0.1:5", []string{"203.0.113.5, 127.0.0.2"}, nil, "203.0.113.5"},
		{"several headers", "127.0.0.1:5", []string{"1.1.1.1", "203.0.113.5"}, nil, "203.0.113.5"},
		{"several headers, client in the first", "127.0.0.1:5", []string{"203.0.113.5", "127.0.0.2"}, nil, "203.0.113.5"},
		{"all hops trusted: the leftmost", "127.0.0.1:5", []string{"127.0.0.3, 127.0.0.2"}, nil, "127.0.0.3"},
		{"spaces and tabs around hops", "127.0.0.1:5", []string{" 1.1.1.1 ,\t203.0.113.5\t"}, nil, "203.0.113.5"},
		{"v4-mapped unmapped", "127.0.0.1:5", []string{"::ffff:203.0.113.5"}, nil, "203.0.113.5"},
		{"v4-mapped trusted hop skipped", "127.0.0.1:5", []string{"203.0.113.5, ::ffff:127.0.0.2"}, nil, "203.0.113.5"},
		{"ipv6 client", "[::1]:5", []string{"2001:db8::1"}, nil, "2001:db8::1"},
		{"x-real-ip alone", "127.0.0.1:5", nil, []string{"203.0.113.5"}, "203.0.113.5"},
		{"x-real-ip mapped", "127.0.0.1:5", nil, []string{"::ffff:10.0.0.1"}, "10.0.0.1"},
		{"xff decides over a valid x-real-ip", "127.0.0.1:5", []string{"203.0.113.5"}, []string{"127.0.0.1"}, "203.0.113.5"},
		{"unix socket peer reads xff", "@", []string{"203.0.113.5"}, nil, "203.0.113.5"},
		{"unix socket peer reads x-real-ip", "", nil, []string{"203.0.113.5"}, "203.0.113.5"},
		{"unix socket peer, no headers", "@", nil, nil, ""},
		{"trusted proxy names no client", "127.0.0.1:5", nil, nil, ""},
		{"unix socket nginx: $remote_addr is unix:", "@", []string{"unix:"}, []string{"unix:"}, ""},
	}
	// Every way a hop can fail to be one plain IP, in every position that
	// decides: alone, as the rightmost hop, behind a trusted hop, in a later
	// header line, and as X-Real-IP.
	for _, bad := range []string{"1.2.3.4:80", "[::1]", "[::1]:80", "fe80::1%eth0", "", " ", "garbage", "unknown", "1.2.3.4 5.6.7.8", "010.0.0.1", "_hidden"} {
		tests = append(tests, []struct {
			name, remote string
			xff, xri     []string
			want         string
		}{
			{"xff " + bad, "127.0.0.1:5", []string{bad}, nil, ""},
			{"xff client, " + bad, "127.0.0.1:5", []string{"203.0.113.5, " + bad}, nil, ""},
			{"xff " + bad + ", trusted hop", "127.0.0.1:5", []string{bad + ", 127.0.0.2"}, nil, ""},
			{"xff client then line " + bad, "127.0.0.1:5", []string{"203.0.113.5", bad}, nil, ""},
			{"xff " + bad + " line, trusted line", "127.0.0.1:5", []string{bad, "127.0.0.2"}, nil, ""},
			{"x-real-ip " + bad, "127.0.0.1:5", nil, []string{bad}, ""},
			{"x-real-ip " + bad + " beside a good xff", "127.0.0.1:5", []string{"203.0.113.5"}, []string{bad}, ""},
		}...)
	}
	tests = append(tests, []struct {
		name, remote string
		xff, xri     []string
		want         string
	}{
		{"xff trailing comma", "127.0.0.1:5", []string{"203.0.113.5,"}, nil, ""},
		{"xff trailing comma behind trusted", "127.0.0.1:5", []string{"203.0.113.5, 127.0.0.2,"}, nil, ""},
		{"xff empty element", "127.0.0.1:5", []string{"203.0.113.5,,127.0.0.2"}, nil, ""},
		{"x-real-ip trailing comma", "127.0.0.1:5", nil, []string{"203.0.113.5,"}, ""},
		{"x-real-ip list", "127.0.0.1:5", nil, []string{"203.0.113.5, 10.0.0.1"}, ""},
		{"x-real-ip twice", "127.0.0.1:5", nil, []string{"203.0.113.5", "203.0.113.5"}, ""},
		{"x-real-ip twice beside xff", "127.0.0.1:5", []string{"203.0.113.5"}, []string{"203.0.113.5", "10.0.0.1"}, ""},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != nil {
				r.Header["X-Forwarded-For"] = tt.xff
			}
			if tt.xri != nil {
				r.Header["X-Real-Ip"] = tt.xri
			}
			got := h.srv.cur.Load().clientIP(r)
			gotS := ""
			if got.IsValid() {
				gotS = got.String()
			}
			if gotS != tt.want {
				t.Errorf("got %q, want %q", gotS, tt.want)
			}
		})
	}
}

// TestVerifyUnknownClientAddress: through verify, a client address that is
// not one plain IP opens no network rule and no role, and is caught by every
// network rule that denies, even when the trusted proxy itself sits in the
// networks.
func TestVerifyUnknownClientAddress(t *testing.T) {
	local := policy.Network{Name: "local", Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, Role: "local"}
	h := newHarness(t, []policy.Rule{
		{Path: "/blocked", Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Access: policy.Denied},
		{Path: "/blocked", Access: policy.Public},
		{Path: "/local", Roles: []string{"local"}},
		{Path: "/lan", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Access: policy.Public},
		{Path: "/lan", Access: policy.Denied},
		{Path: "/"},
	}, nil, local)
	bob := h.login("bob")
	send := func(t *testing.T, path, cookie string, remote string, hd map[string][]string) int {
		t.Helper()
		r := httptest.NewRequest("GET", "/verify", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Original-URI", path)
		r.Header.Set("X-Original-Method", "GET")
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		for k, v := range hd {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		h.h.ServeHTTP(w, r)
		return w.Code
	}
	// Controls: a readable address decides as configured.
	for _, c := range []struct {
		path, cookie, xff string
		want              int
	}{
		{"/blocked", "", "10.1.2.3", 401},
		{"/blocked", "", "::ffff:10.1.2.3", 401},
		{"/blocked", bob, "10.1.2.3", 403},
		{"/blocked", "", "203.0.113.7", 200},
		{"/local", "", "127.0.0.9", 200},
		{"/local", "", "203.0.113.7", 401},
		{"/lan", "", "127.0.0.9", 200},
		{"/lan", "", "203.0.113.7", 401},
	} {
		if got := send(t, c.path, c.cookie, "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {c.xff}}); got != c.want {
			t.Fatalf("control %s from %s: got %d, want %d", c.path, c.xff, got, c.want)
		}
	}
	unknown := []struct {
		name, remote string
		hd           map[string][]string
	}{
		{"xff with port", "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {"10.1.2.3:80"}}},
		{"xff bracketed", "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {"[::1]"}}},
		{"xff bracketed with port", "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {"[::1]:80"}}},
		{"xff zoned", "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {"fe80::1%eth0"}}},
		{"xff zoned mapped", "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {"::ffff:10.1.2.3%eth0"}}},
		{"xff trailing comma", "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {"203.0.113.7,"}}},
		{"xff empty", "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {""}}},
		{"xff garbage", "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {"garbage"}}},
		{"xff garbage behind a trusted hop", "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {"garbage, 127.0.0.2"}}},
		{"x-real-ip with port", "127.0.0.1:40000", map[string][]string{"X-Real-Ip": {"10.1.2.3:80"}}},
		{"x-real-ip garbage beside a good xff", "127.0.0.1:40000", map[string][]string{"X-Forwarded-For": {"203.0.113.7"}, "X-Real-Ip": {"garbage"}}},
		{"x-real-ip twice", "127.0.0.1:40000", map[string][]string{"X-Real-Ip": {"203.0.113.7", "10.1.2.3"}}},
		{"no client named", "127.0.0.1:40000", nil},
		{"unix socket, no client named", "@", nil},
		{"zoned peer", "[fe80::1%lo]:40000", nil},
	}
	for _, u := range unknown {
		t.Run(u.name, func(t *testing.T) {
			for _, c := range []struct {
				path, cookie string
				want         int
			}{
				{"/blocked", "", 401}, // the deny rule for 10.0.0.0/8 catches it
				{"/blocked", bob, 403},
				{"/local", "", 401}, // no role, though the proxy is in the local network
				{"/local", bob, 200},
				{"/lan", "", 401}, // the public rule for the proxy's network does not open
				{"/lan", bob, 403},
				{"/other", bob, 200},
			} {
				if u.remote == "[fe80::1%lo]:40000" {
					// An untrusted peer's original URI is not believed at all.
					if c.path != "/other" {
						continue
					}
					c.want = 403
				}
				if got := send(t, c.path, c.cookie, u.remote, u.hd); got != c.want {
					t.Errorf("%s (logged in: %v): got %d, want %d", c.path, c.cookie != "", got, c.want)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	h := newHarness(b, nil, nil)
	hit := h.login("alice")
	cases := []struct{ name, cookie string }{
		{"hit", hit},
		{"miss", "__Host-authd_session=" + strings.Repeat("A", 43)},
		{"malformed", "__Host-authd_session=%%%garbage"},
		{"none", ""},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r, _ := http.NewRequest("GET", "/verify", nil)
			r.RemoteAddr = "127.0.0.1:40000"
			r.Header.Set("X-Original-URI", "/app/static/main.js")
			r.Header.Set("X-Original-Method", "GET")
			r.Header.Set("X-Forwarded-For", "203.0.113.7")
			if c.cookie != "" {
				r.Header.Set("Cookie", c.cookie)
			}
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.h.ServeHTTP(w, r)
			}
		})
	}
}

type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(c int)           { d.code = c }

func TestVerifyHitDoesNotAllocate(t *testing.T) {
	h := newHarness(t, nil, nil)
	c := h.login("alice")
	r, _ := http.NewRequest("GET", "/verify", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("X-Original-URI", "/app/static/main.js")
	r.Header.Set("X-Original-Method", "GET")
	r.Header.Set("Cookie", c)
	w := &discard{h: http.Header{}}
	h.h.ServeHTTP(w, r) // builds the identity cache
	allocs := testing.AllocsPerRun(200, func() {
		clear(w.h)
		h.h.ServeHTTP(w, r)
	})
	if w.code != 200 || allocs != 0 {
		t.Errorf("got %d with %v allocs, want 200 with 0", w.code, allocs)
	}
}
