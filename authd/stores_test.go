package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testRedis is a redis-server with append-only persistence in a temp dir.
type testRedis struct {
	t    testing.TB
	dir  string
	port int
	proc *exec.Cmd
}

// startTestRedis starts redis-server, or skips the test when it is not
// installed (tests/run.sh installs it).
func startTestRedis(t testing.TB) *testRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH (tests/run.sh installs it); skipping the Redis store")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &testRedis{t: t, dir: t.TempDir(), port: ln.Addr().(*net.TCPAddr).Port}
	ln.Close()
	r.start()
	t.Cleanup(func() { r.stop(syscall.SIGKILL) })
	return r
}

func (r *testRedis) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

func (r *testRedis) start() {
	r.t.Helper()
	r.proc = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.proc.Start(); err != nil {
		r.t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", r.addr()); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatal("redis-server did not start")
		}
	}
}

func (r *testRedis) stop(sig syscall.Signal) {
	if r.proc == nil {
		return
	}
	_ = r.proc.Process.Signal(sig)
	_ = r.proc.Wait()
	r.proc = nil
}

func redisStack(t *testing.T, r *testRedis) *stack {
	return newStack(t, fmt.Sprintf("store = \"redis\"\n[redis]\naddrs = [%q]\nkey_prefix = \"story:\"\n", r.addr()))
}

// TestRedisTwoInstances drives two authd processes sharing one Redis.
func TestRedisTwoInstances(t *testing.T) {
	rd := startTestRedis(t)
	a, b := redisStack(t, rd), redisStack(t, rd)

	a.mustCLI("first password 123\n", "user", "add", "-groups", "staff", "alice")
	if out := b.mustCLI("", "user", "list"); !strings.Contains(out, "alice") || !strings.Contains(out, "staff") {
		t.Fatalf("user list on b: got %q", out)
	}
	a.start()
	b.start()

	cookie, r := a.login("alice", "first password 123", "/app/")
	if cookie == "" {
		t.Fatalf("login on a: got %d and no cookie", r.StatusCode)
	}
	for name, s := range map[string]*stack{"a": a, "b": b} {
		if r := s.verify(cookie); r.StatusCode != 200 || r.Header.Get("Remote-Groups") != "staff" {
			t.Fatalf("verify on %s: got %d groups %q, want 200 staff", name, r.StatusCode, r.Header.Get("Remote-Groups"))
		}
	}
	if out := b.mustCLI("", "session", "list", "-user", "alice"); !strings.Contains(out, "alice") {
		t.Fatalf("session list on b: got %q", out)
	}
	if out := b.mustCLI("", "check-config"); !strings.Contains(out, "ok (1 users)") {
		t.Fatalf("check-config: got %q", out)
	}
	// A login form from a, posted to b (a balancer may do that).
	body, cookies := a.page("/authd/login", "")
	m := csrfField.FindStringSubmatch(body)
	resp := b.post("/authd/login", cookies[0].Name+"="+cookies[0].Value,
		url.Values{"username": {"alice"}, "password": {"first password 123"}, "rd": {"/"}, "csrf": {m[1]}})
	if resp.StatusCode != 303 {
		t.Fatalf("form from a posted to b: got %d, want 303", resp.StatusCode)
	}

	// Group change on a applies on b at the next request.
	a.mustCLI("", "user", "set", "-groups", "staff,admins", "alice")
	if r := b.verify(cookie); r.StatusCode != 200 || r.Header.Get("Remote-Groups") != "staff,admins" {
		t.Fatalf("verify on b after group change: got %d groups %q", r.StatusCode, r.Header.Get("Remote-Groups"))
	}

	// Revoke through a's CLI while b is hammered: no 200 after it returned.
	hammer(t, b, cookie, func() { a.mustCLI("", "session", "revoke", "-user", "alice") })

	// Password change: the old cookie dies on b, the old password on b too.
	cookie, _ = b.login("alice", "first password 123", "/")
	a.mustCLI("second password 456\n", "user", "passwd", "alice")
	if r := b.verify(cookie); r.StatusCode != 401 {
		t.Fatalf("verify on b after passwd on a: got %d, want 401", r.StatusCode)
	}
	if c, _ := b.login("alice", "first password 123", "/"); c != "" {
		t.Fatal("old password logs in on b")
	}
	cookie, _ = b.login("alice", "second password 456", "/")
	if r := a.verify(cookie); r.StatusCode != 200 {
		t.Fatalf("new password's session on a: got %d", r.StatusCode)
	}

	// Lock on b: a refuses at once, and refuses the password.
	hammer(t, a, cookie, func() { b.mustCLI("", "user", "lock", "alice") })
	if c, _ := a.login("alice", "second password 456", "/"); c != "" {
		t.Fatal("locked user logs in on a")
	}
	b.mustCLI("", "user", "unlock", "alice")
	cookie, _ = a.login("alice", "second password 456", "/")

	// Logout on a: b refuses the cookie at once.
	body, _ = a.page("/authd/logout", cookie)
	m = csrfField.FindStringSubmatch(body)
	hammer(t, b, cookie, func() {
		if r := a.post("/authd/logout", cookie, url.Values{"csrf": {m[1]}}); r.StatusCode != 303 {
			t.Errorf("logout on a: got %d", r.StatusCode)
		}
	})

	// Redis stopped: verify denies fast, login is 503, /readyz 503; both
	// recover on their own, and the session survived thanks to AOF.
	cookie, _ = a.login("alice", "second password 456", "/")
	rd.stop(syscall.SIGTERM)
	start := time.Now()
	if r := b.verify(cookie); r.StatusCode != 401 {
		t.Fatalf("verify with redis down: got %d, want 401", r.StatusCode)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("verify with redis down took %v, want under 1s", took)
	}
	if _, r := a.login("alice", "second password 456", "/"); r.StatusCode != 503 {
		t.Fatalf("login with redis down: got %d, want 503", r.StatusCode)
	}
	if r, err := http.Get("http://" + a.addr + "/readyz"); err != nil || r.StatusCode != 503 {
		t.Fatalf("readyz with redis down: got %v, %v, want 503", r, err)
	}
	rd.start()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r := b.verify(cookie); r.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("verify on b did not recover after redis came back")
		}
	}
	if c, _ := a.login("alice", "second password 456", "/"); c == "" {
		t.Fatal("login on a did not recover after redis came back")
	}

	// Import back to a file, and from a file into another prefix.
	a.mustCLI("", "user", "import", "-from", "redis", "-to", "file")
	f, err := os.ReadFile(filepath.Join(a.dir, "users.toml"))
	if err != nil || !strings.Contains(string(f), `name = "alice"`) {
		t.Fatalf("users file after import from redis: %v\n%s", err, f)
	}
	if _, errs, code := a.cli("", "user", "import", "-from", "file", "-to", "redis"); code != 1 || !strings.Contains(errs, "already exist") {
		t.Fatalf("import over existing users: exit %d, %s", code, errs)
	}
	a.mustCLI("", "user", "import", "-from", "file", "-to", "redis", "-overwrite")
}

// hammer runs verifies on s with cookie from several goroutines while act
// runs, and fails the test if any verify that started after act returned
// was allowed. It returns when act has returned and the hammer stopped.
func hammer(t *testing.T, s *stack, cookie string, act func()) {
	t.Helper()
	var done time.Time
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	bad, after, allowedBefore := 0, 0, 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				started := time.Now()
				req, _ := http.NewRequest("GET", "http://"+s.addr+"/verify", nil)
				req.Header.Set("X-Original-URI", "/app/")
				req.Header.Set("X-Original-Method", "GET")
				req.Header.Set("Cookie", cookie)
				resp, err := s.client.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				mu.Lock()
				if done.IsZero() && resp.StatusCode == 200 {
					allowedBefore++
				}
				if !done.IsZero() && started.After(done) {
					after++
					if resp.StatusCode == 200 {
						bad++
					}
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	act()
	mu.Lock()
	done = time.Now()
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if bad > 0 {
		t.Fatalf("%d of %d verifies started after the change returned were allowed", bad, after)
	}
	if after == 0 || allowedBefore == 0 {
		t.Fatalf("verifies allowed before the change: %d, run after it: %d; want both above 0", allowedBefore, after)
	}
}

// TestRedisSharedTokens: an API token created through one instance's config
// works on the other instance, and its revocation reaches both.
func TestRedisSharedTokens(t *testing.T) {
	rd := startTestRedis(t)
	a, b := redisStack(t, rd), redisStack(t, rd)
	a.mustCLI("first password 123\n", "user", "add", "alice")
	a.start()
	b.start()
	token := strings.Fields(a.mustCLI("", "token", "create", "-user", "alice", "-name", "ci"))[0]
	bearer := func(s *stack) int {
		req, _ := http.NewRequest("GET", "http://"+s.addr+"/verify", nil)
		req.Header.Set("X-Original-URI", "/app/")
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitStatus := func(s *stack, want int) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for bearer(s) != want {
			if time.Now().After(deadline) {
				t.Fatalf("token on %s: never got %d", s.addr, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitStatus(a, 200)
	waitStatus(b, 200)
	if out := b.mustCLI("", "token", "list"); !strings.Contains(out, "alice") {
		t.Errorf("token list on b: %q", out)
	}
	b.mustCLI("", "token", "revoke", token)
	waitStatus(a, 401)
	waitStatus(b, 401)
	if _, err := os.Stat(filepath.Join(a.dir, "data", "machine.json")); err == nil {
		t.Error("with store = redis the token was written to data_dir")
	}
}

// redisProbe is one connection to redis-server that reads its counters.
// It opens before the counting starts, so it never counts itself.
type redisProbe struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func newRedisProbe(t testing.TB, addr string) *redisProbe {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &redisProbe{t: t, conn: c, r: bufio.NewReader(c)}
}

// bulk sends an inline command and returns its bulk-string reply.
func (p *redisProbe) bulk(cmd string) string {
	p.t.Helper()
	p.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(p.conn, "%s\r\n", cmd); err != nil {
		p.t.Fatal(err)
	}
	head, err := p.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		p.t.Fatalf("%s: reply %q, %v", cmd, head, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil {
		p.t.Fatalf("%s: reply %q", cmd, head)
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(p.r, body); err != nil {
		p.t.Fatal(err)
	}
	return string(body[:n])
}

// received is INFO's total_connections_received: every connection ever
// accepted, closed ones included.
func (p *redisProbe) received() int {
	p.t.Helper()
	for _, line := range strings.Split(p.bulk("INFO stats"), "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_connections_received:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				p.t.Fatal(err)
			}
			return n
		}
	}
	p.t.Fatal("INFO stats has no total_connections_received")
	return 0
}

// authd counts the open connections that authd named (ClientName "authd").
func (p *redisProbe) authd() int {
	p.t.Helper()
	return strings.Count(p.bulk("CLIENT LIST"), " name=authd ")
}

// TestRedisOneClient: with store = "redis", serve opens one Redis client at
// start and keeps it — every connection it opened is still open, none was
// a throwaway client's — and a SIGHUP reload opens no connection: it reads
// the users, credentials and rules through that same client. What is
// counted is connections (redis-server's total_connections_received and
// CLIENT LIST): one go-redis client holds its pool's connections plus the
// users watcher's subscription, so "one client" shows as "no connection
// ever closed", and "none new" as "no connection opened".
func TestRedisOneClient(t *testing.T) {
	rd := startTestRedis(t)
	s := redisStack(t, rd)
	s.mustCLI("first password 123\n", "user", "add", "-groups", "staff", "alice")
	probe := newRedisProbe(t, rd.addr())
	base := probe.received()

	s.start()
	// Let the watchers make their first round trips (they tick every second).
	time.Sleep(1500 * time.Millisecond)
	opened, open := probe.received()-base, probe.authd()
	t.Logf("at start: authd opened %d connections to Redis, %d open", opened, open)
	if opened == 0 || opened != open {
		t.Fatalf("at start: authd opened %d connections to Redis and %d are open; want all of them open (one client, no throwaway)", opened, open)
	}

	reloaded := func() int { return strings.Count(s.logs.String(), `"msg":"reloaded"`) }
	for i := range 3 {
		before, n := probe.received(), reloaded()
		if err := s.proc.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); reloaded() == n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("SIGHUP %d: no reload logged:\n%s", i+1, s.logs)
			}
		}
		if got := probe.received() - before; got != 0 {
			t.Fatalf("SIGHUP %d opened %d connections to Redis; want 0 (the reload uses the client serve opened)", i+1, got)
		}
	}
	if opened, open := probe.received()-base, probe.authd(); opened != open {
		t.Fatalf("after 3 reloads: authd opened %d connections to Redis and %d are open; want all of them open", opened, open)
	}
	if r := s.verify(""); r.StatusCode != 401 {
		t.Fatalf("verify without a cookie after the reloads: got %d, want 401", r.StatusCode)
	}
}
