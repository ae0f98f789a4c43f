package security

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// accessRules is the rule set of the access matrix (issue 5): public, group, network-role,
// network-only and user-only paths, with methods, over clients at several 127.x.y.z addresses.
const accessRules = `
[networks.office]
cidrs = ["127.0.10.0/24"]
role = "office"

[networks.vpn]
cidrs = ["127.0.20.0/24"]

[[rules]]
path = "/public"
allow = "public"

[[rules]]
path = "/admin"
groups = ["admins"]

[[rules]]
path = "/office"
methods = ["GET", "HEAD"]
roles = ["office"]

[[rules]]
path = "/office"
allow = "deny"

[[rules]]
path = "/vpn"
networks = ["vpn"]

[[rules]]
path = "/vpn"
allow = "deny"

[[rules]]
path = "/api"
methods = ["POST"]
users = ["ada"]

[[rules]]
path = "/app"
`

// accessOracle is what accessRules mean, written out independently of authd's policy package:
// the status an API-style client sees (200 when the app answers).
func accessOracle(user string, groups []string, path, method, from string) int {
	ip := netip.MustParseAddr(from)
	in := func(cidr string) bool { return netip.MustParsePrefix(cidr).Contains(ip) }
	under := func(p string) bool { return path == p || strings.HasPrefix(path, p+"/") }
	login := func(ok bool) int {
		switch {
		case user == "":
			return 401
		case ok:
			return 200
		}
		return 403
	}
	isAdmin := false
	for _, g := range groups {
		isAdmin = isAdmin || g == "admins"
	}
	switch {
	case strings.Contains(path+"/", "/../") || strings.Contains(path+"/", "/./"):
		return login(false) // dot segments are refused before any rule, never resolved
	case under("/public"):
		return 200
	case under("/admin"):
		return login(isAdmin)
	case under("/office") && (method == "GET" || method == "HEAD"):
		if in("127.0.10.0/24") {
			return 200
		}
		return login(true)
	case under("/office"):
		return login(false)
	case under("/vpn") && in("127.0.20.0/24"):
		return login(true)
	case under("/vpn"):
		return login(false)
	case under("/api") && method == "POST":
		return login(user == "ada")
	case under("/app"):
		return login(true)
	}
	return login(false) // no rule: default deny
}

func TestAccessMatrixThroughNginx(t *testing.T) {
	s := newStack(t, stackOptions{rules: accessRules, logLevel: "info"})
	type who struct {
		name, cookie string
		groups       []string
	}
	people := []who{
		{name: ""},
		{name: "ada", cookie: session(s.login(t, "ada", adaPassword)), groups: []string{"staff"}},
		{name: "root", cookie: session(s.login(t, "root", rootPassword)), groups: []string{"admins", "staff"}},
	}
	paths := []string{"/public/x", "/admin/x", "/administrator", "/office/x", "/vpn/x", "/api/x", "/app/x", "/other", "/admin?x=/public", "/public/../admin/x"}
	n := 0
	for _, p := range people {
		for _, path := range paths {
			for _, method := range []string{"GET", "POST", "OPTIONS"} {
				for _, from := range []string{"127.0.0.2", "127.0.10.5", "127.0.20.5", "127.3.4.5"} {
					canon, _, _ := strings.Cut(path, "?")
					want := accessOracle(p.name, p.groups, canon, method, from)
					q := req{method: method, target: path, cookie: p.cookie, from: from}
					if path == "/public/../admin/x" {
						r := s.raw(t, from, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: localhost\r\nCookie: %s\r\nConnection: close\r\n\r\n", method, path, p.cookie))
						checkAccess(t, p.name, method, path, from, r, want)
						n++
						continue
					}
					checkAccess(t, p.name, method, path, from, s.do(t, q), want)
					n++
					if p.name == "" && method == "GET" && want == 401 {
						// A page navigation without a session goes to the login form instead.
						q.header = http.Header{"Sec-Fetch-Mode": {"navigate"}, "Accept": {"text/html"}}
						r := s.do(t, q)
						if r.Status != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "/authd/login?rd=") {
							t.Errorf("anonymous navigation %s from %s: got %s, want 302 to the login form", path, from, r)
						}
						n++
					}
				}
			}
		}
	}
	t.Logf("%d requests checked", n)
}

func checkAccess(t *testing.T, user, method, path, from string, r *resp, want int) {
	t.Helper()
	got := r.Status
	if want == 200 && r.App == nil {
		got = -got // answered, but not by the app
	}
	if got != want {
		t.Errorf("%q %s %s from %s: got %s, want %d", user, method, path, from, r, want)
		return
	}
	if want == 200 {
		wantUser := user
		if got := strings.Join(r.App.header("Remote-User"), ","); got != wantUser {
			t.Errorf("%q %s %s from %s: app saw Remote-User %q, want %q", user, method, path, from, got, wantUser)
		}
	}
}

// TestMachineClientsThroughNginx: API tokens and signed requests, sent with curl, signed by authd
// sign and by the Python client in conf/clients.
func TestMachineClientsThroughNginx(t *testing.T) {
	s := newStack(t, stackOptions{rules: accessRules, logLevel: "info"})
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed (tests/run.sh installs it)")
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed (tests/run.sh installs it)")
	}
	// curlStatus sends one request with curl and returns the status and what the app saw.
	curlStatus := func(t *testing.T, method, target string, headers ...string) (int, string) {
		t.Helper()
		args := []string{"-sk", "-o", "-", "-w", "\n%{http_code}", "-X", method}
		for _, h := range headers {
			args = append(args, "-H", h)
		}
		out, err := exec.Command(curl, append(args, s.origin()+target)...).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		body, code, _ := strings.Cut(string(out), "\n")
		if i := strings.LastIndex(string(out), "\n"); i >= 0 {
			body, code = string(out[:i]), string(out[i+1:])
		}
		var status int
		fmt.Sscan(code, &status)
		return status, body
	}

	// mustCLI returns stdout and stderr together: the token is stdout's one line.
	token := strings.Fields(s.mustCLI(t, "", "token", "create", "-user", "ada", "-name", "ci"))[0]
	t.Run("bearer token", func(t *testing.T) {
		if code, body := curlStatus(t, "GET", "/app/x", "Authorization: Bearer "+token); code != 200 || !strings.Contains(body, `"ada"`) {
			t.Fatalf("got %d (%s), want 200 as ada", code, body)
		}
		if code, body := curlStatus(t, "GET", "/app/x", "Authorization: Bearer "+token); code != 200 || strings.Contains(body, token) {
			t.Errorf("the app must not see the token: got %d, body mentions it: %v", code, strings.Contains(body, token))
		}
		if code, _ := curlStatus(t, "GET", "/admin/x", "Authorization: Bearer "+token); code != 403 {
			t.Errorf("token obeys the rules: got %d on /admin, want 403", code)
		}
		if code, _ := curlStatus(t, "GET", "/app/x?access_token="+token); code != 401 {
			t.Errorf("token in the query string: got %d, want 401", code)
		}
		if code, _ := curlStatus(t, "GET", "/app/x", "Authorization: Bearer "+token+"x"); code != 401 {
			t.Errorf("tampered token: got %d, want 401", code)
		}
	})
	t.Run("revoked token", func(t *testing.T) {
		id := strings.Split(token, "_")[2]
		s.mustCLI(t, "", "token", "revoke", id)
		waitFor(t, "the revoked token to be refused", func() bool {
			code, _ := curlStatus(t, "GET", "/app/x", "Authorization: Bearer "+token)
			return code == 401
		})
	})

	keyLine, _, _ := strings.Cut(s.mustCLI(t, "", "key", "create", "-user", "ada", "-name", "nightly"), "\n")
	keyOut := strings.Fields(keyLine)
	if len(keyOut) != 2 {
		t.Fatalf("key create printed %q, want KEY_ID SECRET", keyOut)
	}
	keyID := keyOut[0]
	secretFile := filepath.Join(t.TempDir(), "key.secret")
	must(t, os.WriteFile(secretFile, []byte(keyOut[1]+"\n"), 0o600))
	signWith := func(t *testing.T, tool, method, target string) string {
		t.Helper()
		var cmd *exec.Cmd
		if tool == "python" {
			cmd = exec.Command(python, filepath.Join(s.root, "conf", "clients", "authd_sign.py"), "-key", keyID, "-secret-file", secretFile, "-method", method, s.origin()+target)
		} else {
			cmd = exec.Command(s.bin, "sign", "-key", keyID, "-secret-file", secretFile, "-method", method, s.origin()+target)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s sign: %v", tool, err)
		}
		return strings.TrimSpace(string(out))
	}
	for _, tool := range []string{"authd", "python"} {
		t.Run("signed by "+tool, func(t *testing.T) {
			h := signWith(t, tool, "POST", "/api/items?b=2&a=1")
			if code, body := curlStatus(t, "POST", "/api/items?b=2&a=1", h); code != 200 || !strings.Contains(body, `"ada"`) {
				t.Fatalf("signed POST: got %d (%s), want 200 as ada", code, body)
			}
			if code, _ := curlStatus(t, "POST", "/api/items?b=2&a=1", h); code != 401 {
				t.Errorf("replayed: got %d, want 401", code)
			}
			cases := []struct{ name, method, target string }{
				{"changed method", "PUT", "/api/items?b=2&a=1"},
				{"changed path", "POST", "/api/other?b=2&a=1"},
				{"changed query", "POST", "/api/items?b=3&a=1"},
				{"added query", "POST", "/api/items?b=2&a=1&c=1"},
			}
			for _, c := range cases {
				h := signWith(t, tool, "POST", "/api/items?b=2&a=1")
				if code, _ := curlStatus(t, c.method, c.target, h); code != 401 {
					t.Errorf("%s: got %d, want 401", c.name, code)
				}
			}
		})
	}
	t.Run("stale signature", func(t *testing.T) {
		script := `import sys; sys.path.insert(0, sys.argv[1]); import authd_sign, time
print(authd_sign.sign("GET", sys.argv[2], sys.argv[3], open(sys.argv[4]).read().strip(), ts=int(time.time()) - 600))`
		out, err := exec.Command(python, "-c", script, filepath.Join(s.root, "conf", "clients"), s.origin()+"/app/x", keyID, secretFile).Output()
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := curlStatus(t, "GET", "/app/x", "Authorization: "+strings.TrimSpace(string(out))); code != 401 {
			t.Errorf("10 minutes old: got %d, want 401", code)
		}
	})
	t.Run("machine clients create no sessions", func(t *testing.T) {
		out := s.mustCLI(t, "", "session", "list", "-user", "ada")
		if strings.TrimSpace(out) != "" {
			t.Errorf("sessions for ada after machine requests:\n%s", out)
		}
	})
}
