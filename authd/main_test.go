package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authd/authd/authd/internal/hasher"
)

// binary is the authd built once for the tests in this package.
var binary string

func TestMain(m *testing.M) {
	// Main.Open in these tests starts this test binary as its hashing child.
	if len(os.Args) > 1 && os.Args[1] == hasherCommand {
		if err := hasher.Serve(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "authd-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "authd")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build authd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stack is one authd configuration in a temp dir, driven through the CLI.
type stack struct {
	t      testing.TB
	dir    string
	config string
	addr   string
	proc   *exec.Cmd
	logs   *syncBuffer
	client *http.Client
}

// syncBuffer collects a child process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newStack(t testing.TB, extra string) *stack {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`listen = %q
public_url = "https://app.example.com"
data_dir = %q
users_file = %q
%s`, addr, filepath.Join(dir, "data"), filepath.Join(dir, "users.toml"), extra)
	path := filepath.Join(dir, "authd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, dir: dir, config: path, addr: addr,
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	t.Cleanup(func() { s.stop(syscall.SIGKILL) })
	return s
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cli runs an authd subcommand with stdin and returns stdout, stderr, exit code.
func (s *stack) cli(stdin string, args ...string) (string, string, int) {
	s.t.Helper()
	cmd := exec.Command(binary, append(args, "-config", s.config)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func (s *stack) mustCLI(stdin string, args ...string) string {
	s.t.Helper()
	out, errs, code := s.cli(stdin, args...)
	if code != 0 {
		s.t.Fatalf("authd %v: exit %d: %s", args, code, errs)
	}
	return out
}

func (s *stack) start() {
	s.t.Helper()
	s.logs = &syncBuffer{}
	s.proc = exec.Command(binary, "serve", "-config", s.config)
	s.proc.Stdout, s.proc.Stderr = s.logs, s.logs
	if err := s.proc.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + s.addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("authd did not become ready:\n%s", s.logs)
}

func (s *stack) stop(sig syscall.Signal) {
	if s.proc == nil || s.proc.Process == nil {
		return
	}
	_ = s.proc.Process.Signal(sig)
	_ = s.proc.Wait()
	s.proc = nil
}

func (s *stack) verify(cookie string) *http.Response {
	s.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.addr+"/verify", nil)
	req.Header.Set("X-Original-URI", "/app/page?x=1")
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// page GETs a public page and returns its body and the cookies it set.
func (s *stack) page(path, cookie string) (string, []*http.Cookie) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.addr+path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.Cookies()
}

func (s *stack) post(path, cookie string, form url.Values) *http.Response {
	s.t.Helper()
	req, _ := http.NewRequest("POST", "http://"+s.addr+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Cookie", cookie)
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// login runs the browser's flow: form, CSRF token, POST; it returns the
// session cookie ("name=value") or "" and the response.
func (s *stack) login(user, pw, rd string) (string, *http.Response) {
	s.t.Helper()
	body, cookies := s.page("/authd/login?rd="+url.QueryEscape(rd), "")
	m := csrfField.FindStringSubmatch(body)
	if m == nil || len(cookies) == 0 {
		s.t.Fatalf("login form has no csrf token or pre-session cookie:\n%s", body)
	}
	pre := cookies[0].Name + "=" + cookies[0].Value
	resp := s.post("/authd/login", pre, url.Values{"username": {user}, "password": {pw}, "rd": {rd}, "csrf": {m[1]}})
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-authd_session" && c.Value != "" {
			return c.Name + "=" + c.Value, resp
		}
	}
	return "", resp
}

func TestStory(t *testing.T) {
	s := newStack(t, "")
	out := s.mustCLI("first password 123\n", "user", "add", "-groups", "staff", "-name", "Alice Liddell", "alice")
	if out != "user alice added\n" {
		t.Errorf("user add printed %q", out)
	}
	if fi, err := os.Stat(filepath.Join(s.dir, "users.toml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file: %v, mode %v; want 0600", err, fi.Mode())
	}
	s.start()

	if r := s.verify(""); r.StatusCode != 401 {
		t.Fatalf("verify without session: got %d, want 401", r.StatusCode)
	}
	if _, r := s.login("alice", "wrong password 1", "/app/"); r.StatusCode != 401 {
		t.Fatalf("wrong password: got %d, want 401", r.StatusCode)
	}
	cookie, r := s.login("alice", "first password 123", "/app/page?x=1")
	if cookie == "" || r.StatusCode != 303 || r.Header.Get("Location") != "/app/page?x=1" {
		t.Fatalf("login: got %d to %q with cookie %v", r.StatusCode, r.Header.Get("Location"), cookie != "")
	}
	r = s.verify(cookie)
	if r.StatusCode != 200 || r.Header.Get("Remote-User") != "alice" || r.Header.Get("Remote-Name") != "Alice Liddell" {
		t.Fatalf("verify with session: got %d user %q", r.StatusCode, r.Header.Get("Remote-User"))
	}

	// A second authd on the same data directory must refuse at once.
	other := newStack(t, "")
	cfg, _ := os.ReadFile(s.config)
	cfg = bytes.Replace(cfg, []byte(s.addr), []byte(other.addr), 1)
	os.WriteFile(other.config, cfg, 0o600)
	start := time.Now()
	_, errs, code := other.cli("", "serve")
	if code != 1 || !strings.Contains(errs, "in use by another authd") || time.Since(start) > 5*time.Second {
		t.Errorf("second authd: exit %d after %v: %s", code, time.Since(start), errs)
	}

	s.stop(syscall.SIGKILL)
	s.start()
	if r := s.verify(cookie); r.StatusCode != 200 {
		t.Fatalf("verify after kill -9 and restart: got %d, want 200", r.StatusCode)
	}
	if out := s.mustCLI("", "session", "list", "-user", "alice"); !strings.Contains(out, "alice") {
		t.Errorf("session list: %q", out)
	}

	s.mustCLI("second password 456\n", "user", "passwd", "alice")
	if r := s.verify(cookie); r.StatusCode != 401 {
		t.Fatalf("verify after password change: got %d, want 401", r.StatusCode)
	}
	if c, _ := s.login("alice", "first password 123", "/"); c != "" {
		t.Fatal("old password still logs in")
	}
	cookie2, _ := s.login("alice", "second password 456", "/")
	if r := s.verify(cookie2); r.StatusCode != 200 {
		t.Fatalf("verify after new login: got %d", r.StatusCode)
	}
	body, _ := s.page("/authd/logout", cookie2)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("logout page without token:\n%s", body)
	}
	if r := s.post("/authd/logout", cookie2, url.Values{"csrf": {m[1]}}); r.StatusCode != 303 {
		t.Fatalf("logout: got %d", r.StatusCode)
	}
	if r := s.verify(cookie2); r.StatusCode != 401 {
		t.Fatalf("old cookie after logout: got %d, want 401", r.StatusCode)
	}

	s.stop(syscall.SIGTERM)
	for _, line := range strings.Split(strings.TrimSpace(s.logs.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
	for _, secret := range []string{"first password 123", "second password 456", strings.TrimPrefix(cookie, "__Host-authd_session="), strings.TrimPrefix(cookie2, "__Host-authd_session=")} {
		if strings.Contains(s.logs.String(), secret) {
			t.Errorf("logs contain a secret: %.8s…", secret)
		}
	}
	for _, event := range []string{`"event":"login_failed"`, `"event":"login_succeeded"`, `"event":"logout"`, `"msg":"shutting down"`} {
		if !strings.Contains(s.logs.String(), event) {
			t.Errorf("logs lack %s", event)
		}
	}
}

func TestCLI(t *testing.T) {
	s := newStack(t, "")
	tests := []struct {
		name     string
		stdin    string
		args     []string
		code     int
		contains string
	}{
		{"short password", "short\n", []string{"user", "add", "bob"}, 1, "at least 8"},
		{"common password", "password123\n", []string{"user", "add", "bob"}, 1, "common"},
		{"no password", "", []string{"user", "add", "bob"}, 1, "no password"},
		{"bad name", "long enough pw 1\n", []string{"user", "add", "bad name!"}, 1, "user name"},
		{"add", "long enough pw 1\n", []string{"user", "add", "-groups", "a,b", "Bob"}, 0, "user bob added"},
		{"add twice", "long enough pw 1\n", []string{"user", "add", "bob"}, 1, "exists"},
		{"lock", "", []string{"user", "lock", "bob"}, 0, "locked"},
		{"list", "", []string{"user", "list"}, 0, "bob  locked  a,b"},
		{"unlock", "", []string{"user", "unlock", "bob"}, 0, "unlocked"},
		{"passwd unknown", "long enough pw 1\n", []string{"user", "passwd", "nobody"}, 1, "no user nobody"},
		{"del", "", []string{"user", "del", "bob"}, 0, "deleted"},
		{"unknown command", "", []string{"frobnicate"}, 2, "unknown command"},
		{"revoke without target", "", []string{"session", "revoke"}, 2, "exactly one"},
		{"revoke all offline", "", []string{"session", "revoke", "-all"}, 0, "revoked 0 sessions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := s.cli(tt.stdin, tt.args...)
			if code != tt.code || !strings.Contains(out+errs, tt.contains) {
				t.Errorf("exit %d, output %q; want exit %d containing %q", code, out+errs, tt.code, tt.contains)
			}
		})
	}
}

func TestImportHtpasswd(t *testing.T) {
	s := newStack(t, "")
	hash, err := bcrypt.GenerateFromPassword([]byte("imported pass 1"), 10)
	if err != nil {
		t.Fatal(err)
	}
	ht := filepath.Join(s.dir, "htpasswd")
	os.WriteFile(ht, []byte("carol:"+string(hash)+"\n"), 0o600)
	if out := s.mustCLI("", "user", "import-htpasswd", ht); !strings.Contains(out, "imported 1 users") {
		t.Errorf("import printed %q", out)
	}
	s.start()
	if c, r := s.login("carol", "imported pass 1", "/"); c == "" {
		t.Fatalf("bcrypt login failed: %d", r.StatusCode)
	}
	users, _ := os.ReadFile(filepath.Join(s.dir, "users.toml"))
	deadline := time.Now().Add(3 * time.Second)
	for !bytes.Contains(users, []byte("$argon2id$")) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		users, _ = os.ReadFile(filepath.Join(s.dir, "users.toml"))
	}
	if !bytes.Contains(users, []byte("$argon2id$")) {
		t.Error("bcrypt hash not upgraded to argon2id after login")
	}
}

func TestConfigErrors(t *testing.T) {
	s := newStack(t, `
[session]
idle_timeout = "24h"
[cookie]
nmae = "x"
`)
	_, errs, code := s.cli("", "check-config")
	if code != 1 {
		t.Fatalf("check-config on a bad config: exit %d, want 1", code)
	}
	for _, want := range []string{"session.idle_timeout", "cookie.nmae"} {
		if !strings.Contains(errs, want) {
			t.Errorf("error lacks %s:\n%s", want, errs)
		}
	}
	_, errs, code = s.cli("", "serve")
	if code != 1 || !strings.Contains(errs, "session.idle_timeout") {
		t.Errorf("serve on a bad config: exit %d: %s", code, errs)
	}
}

func TestBrokenUsersFile(t *testing.T) {
	s := newStack(t, "")
	s.mustCLI("long enough pw 1\n", "user", "add", "bob")
	s.start()
	good, _ := s.login("bob", "long enough pw 1", "/")
	users := filepath.Join(s.dir, "users.toml")
	secretHash := "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="
	os.WriteFile(users, []byte("[[users]]\nname = \"bob\"\nhash = \""+secretHash+"\"\n"), 0o600)
	_ = s.proc.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if r := s.verify(good); r.StatusCode != 200 {
		t.Errorf("after a broken reload the last good users must stay: got %d", r.StatusCode)
	}
	if !strings.Contains(s.logs.String(), "reload_failed") {
		t.Error("broken reload not logged")
	}
	s.stop(syscall.SIGTERM)
	_, errs, code := s.cli("", "serve")
	if code != 1 || !strings.Contains(errs, "bob") || !strings.Contains(errs, "line") || strings.Contains(errs, "W6ph5Mm5") {
		t.Errorf("start with broken users file: exit %d: %s", code, errs)
	}
	if strings.Contains(s.logs.String(), "W6ph5Mm5") {
		t.Error("logs print the hash")
	}
}

func TestExplain(t *testing.T) {
	s := newStack(t, `
[networks]
office = { cidrs = ["192.0.2.0/24"], role = "office" }

[[rules]]
path = "/admin"
groups = ["admin"]

[[rules]]
path = "/dashboard"
methods = ["GET"]
roles = ["office"]

[[rules]]
path = "/lab"
networks = ["10.0.0.0/8"]
allow = "deny"

[[rules]]
host = "kiosk.example.com"
path = "/kiosk"
allow = "public"

[[rules]]
path = "/"
`)
	s.mustCLI("long enough pw 1\n", "user", "add", "-groups", "admin", "alice")
	s.mustCLI("long enough pw 1\n", "user", "add", "bob")
	s.mustCLI("", "user", "lock", "bob")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"member", []string{"-user", "alice", "-path", "/admin/x"}, "decision: allow (200) by rules[0]"},
		{"anonymous", []string{"-path", "/admin"}, "decision: login required (401) by rules[0]"},
		{"office role", []string{"-path", "/dashboard?x=/admin", "-ip", "192.0.2.9"}, "client 192.0.2.9 carries role office"},
		{"office role wrong method", []string{"-path", "/dashboard", "-ip", "192.0.2.9", "-method", "POST"}, "method POST is not one of GET"},
		{"locked user", []string{"-user", "bob", "-path", "/"}, "user bob is locked"},
		{"unknown user", []string{"-user", "carol", "-path", "/"}, "no user carol"},
		{"two readings", []string{"-user", "alice", "-path", "/admin%2fx"}, "decision: deny (403): path"},
		{"dot segment", []string{"-user", "alice", "-path", "/admin/x/.."}, `decision: deny (403): path "/admin/x/.." can be read two ways`},
		{"mapped address", []string{"-path", "/dashboard", "-ip", "::ffff:192.0.2.9"}, "client 192.0.2.9 carries role office"},
		{"address with port", []string{"-path", "/dashboard", "-ip", "192.0.2.9:80"}, "decision: login required (401) by rules[1]"},
		{"zoned address", []string{"-path", "/dashboard", "-ip", "fe80::1%eth0"}, `"fe80::1%eth0", which is not one plain IP`},
		{"no address", []string{"-path", "/dashboard"}, "from an unknown address"},
		{"unknown address caught by a deny rule", []string{"-user", "alice", "-path", "/lab", "-ip", "garbage"}, "decision: deny (403) by rules[2]"},
		// Hosts are read as verify reads X-Forwarded-Host.
		{"host with port and case", []string{"-path", "/kiosk", "-host", "Kiosk.Example.com:443"}, "decision: allow (200) by rules[3]"},
		{"Kelvin sign is not k", []string{"-path", "/kiosk", "-host", "\u212aIOSK.example.com"}, "decision: login required (401) by rules[4]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := s.mustCLI("", append([]string{"explain"}, tt.args...)...)
			if !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestLockedNoticeSurvivesRestart checks that the login page still says why
// a session ended after authd is killed and restarted: the embedded store's
// tombstones are on disk.
func TestLockedNoticeSurvivesRestart(t *testing.T) {
	s := newStack(t, "")
	s.mustCLI("first password 123\n", "user", "add", "alice")
	s.start()
	cookie, _ := s.login("alice", "first password 123", "/")
	if cookie == "" {
		t.Fatal("login: no session cookie")
	}
	s.mustCLI("", "user", "lock", "alice")
	if r := s.verify(cookie); r.StatusCode != 401 {
		t.Fatalf("verify after lock: got %d, want 401", r.StatusCode)
	}
	const notice = "Your account has been locked."
	s.stop(syscall.SIGKILL)
	s.start()
	if body, _ := s.page("/authd/login", cookie); !strings.Contains(body, notice) {
		t.Fatalf("login page with the locked user's cookie after kill -9 and restart lacks %q:\n%s", notice, body)
	}
}
