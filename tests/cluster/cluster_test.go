// Package cluster tests the load-balanced deployment: the built authd with
// store = "redis", a real redis-server with AOF, two authd instances and two
// Streamlit servers on their own loopback addresses, and nginx running
// nginx/lb-example.conf with the shipped snippets. It runs only when
// AUTHD_E2E is set (tests/run.sh installs what it needs and sets it).
package cluster

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestCluster(t *testing.T) {
	requireCluster(t)
	c := newCluster(t)
	hc := c.client()

	t.Run("login through the balancer; both instances serve the session", func(t *testing.T) {
		cookie, resp := c.login(c.origin(), "ada", password)
		if cookie == "" {
			t.Fatalf("login: got %s and no session cookie", resp.Status)
		}
		before := [2]int{c.metric(0, `authd_verify_requests_total{code="200"}`), c.metric(1, `authd_verify_requests_total{code="200"}`)}
		for range 20 {
			if resp, _ := c.get(hc, "/", cookie); resp.StatusCode != 200 {
				t.Fatalf("app page with session: got %s, want 200", resp.Status)
			}
		}
		for i := range 2 {
			if got := c.metric(i, `authd_verify_requests_total{code="200"}`) - before[i]; got == 0 {
				t.Fatalf("authd-%d allowed none of 20 requests; want both instances to answer", i)
			}
			if got := c.verify(i, cookie); got != 200 {
				t.Fatalf("verify on authd-%d directly: got %d, want 200", i, got)
			}
		}
		if resp, _ := c.get(hc, "/", ""); resp.StatusCode != 302 {
			t.Fatalf("app page without session: got %s, want 302 to the login form", resp.Status)
		}
	})

	t.Run("streamlit is sticky per session", func(t *testing.T) {
		seen := map[string]bool{}
		for s := range 12 {
			cookie, _ := c.login(c.origin(), "ada", password)
			mark := fmt.Sprintf("/?sticky=%d", s)
			for range 5 {
				if resp, _ := c.get(hc, mark, cookie); resp.StatusCode != 200 {
					t.Fatalf("app page: got %s", resp.Status)
				}
			}
			// The WebSocket of the same session goes to the same server.
			req, _ := http.NewRequest("GET", c.origin()+"/_stcore/stream?sticky="+fmt.Sprint(s), nil)
			req.Header.Set("Cookie", cookie)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			req.Header.Set("Origin", c.origin())
			resp, err := c.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("websocket handshake with session: got %s, want 101", resp.Status)
			}
			ups := upstreamsFor(t, c, fmt.Sprintf("sticky=%d", s))
			if len(ups) != 1 {
				t.Fatalf("session %d reached Streamlit servers %v; want exactly one", s, ups)
			}
			for u := range ups {
				seen[u] = true
			}
		}
		if len(seen) != 2 {
			t.Fatalf("12 sessions reached Streamlit servers %v; want both used", seen)
		}
	})

	t.Run("changes on A are refused by B on the very next request", func(t *testing.T) {
		a := "http://" + c.authdAddrs[0]
		for _, change := range []struct {
			name string
			do   func(cookie string)
		}{
			{"logout", func(cookie string) {
				req, _ := http.NewRequest("GET", a+"/authd/logout", nil)
				req.Header.Set("Cookie", cookie)
				resp, err := c.client().Do(req)
				must(t, err)
				body := readAll(resp)
				m := csrfField.FindStringSubmatch(body)
				if m == nil {
					t.Fatalf("logout form on A without token: %s", resp.Status)
				}
				req, _ = http.NewRequest("POST", a+"/authd/logout", strings.NewReader(url.Values{"csrf": {m[1]}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", c.origin())
				req.Header.Set("Cookie", cookie)
				resp, err = c.client().Do(req)
				must(t, err)
				resp.Body.Close()
				if resp.StatusCode != 303 {
					t.Fatalf("logout on A: got %s", resp.Status)
				}
			}},
			{"revoke", func(string) { c.cli(0, "", "session", "revoke", "-user", "ada") }},
			{"change password", func(string) { c.cli(0, password+" 2\n", "user", "passwd", "ada") }},
			{"lock user", func(string) { c.cli(0, "", "user", "lock", "ada") }},
		} {
			pw := password
			if change.name == "lock user" {
				pw = password + " 2"
			}
			cookie, resp := c.login(a, "ada", pw)
			if cookie == "" {
				t.Fatalf("%s: login on A: got %s", change.name, resp.Status)
			}
			if got := c.verify(1, cookie); got != 200 {
				t.Fatalf("%s: verify on B before: got %d, want 200", change.name, got)
			}
			change.do(cookie)
			if got := c.verify(1, cookie); got != 401 {
				t.Fatalf("%s on A: verify on B right after: got %d, want 401", change.name, got)
			}
			if resp, _ := c.get(hc, "/", cookie); resp.StatusCode != 302 {
				t.Fatalf("%s on A: app page through nginx: got %s, want 302", change.name, resp.Status)
			}
		}
		if cookie, _ := c.login(c.origin(), "ada", password+" 2"); cookie != "" {
			t.Fatal("locked user logged in through the balancer")
		}
		c.cli(1, "", "user", "unlock", "ada")
		c.cli(1, password+"\n", "user", "passwd", "ada")
	})

	t.Run("throttle counters are shared", func(t *testing.T) {
		// ip_failures = 4: two failures on each instance trip the limit on both.
		c.redisCLI(t, "EVAL", "for _, k in ipairs(redis.call('KEYS', 'cluster:t*')) do redis.call('DEL', k) end", "0")
		for i := range 4 {
			base := "http://" + c.authdAddrs[i%2]
			if cookie, resp := c.login(base, fmt.Sprintf("nobody%d", i), "wrong password"); cookie != "" || resp.StatusCode != 401 {
				t.Fatalf("failure %d: got %s, want 401", i+1, resp.Status)
			}
		}
		for i := range 2 {
			_, resp := c.login("http://"+c.authdAddrs[i], "ada", password)
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("after 4 failures spread over both: login on authd-%d got %s, want 429", i, resp.Status)
			}
		}
		// The counters live in Redis; clear them for the rest of the test.
		c.redisCLI(t, "EVAL", "for _, k in ipairs(redis.call('KEYS', 'cluster:t*')) do redis.call('DEL', k) end", "0")
	})

	t.Run("concurrent guesses over both instances stay within one budget", func(t *testing.T) {
		// account_failures = 3: 30 wrong passwords for ada fired at once, alternating between
		// the instances, may run at most 3 password checks between them; the throttle reserves
		// each attempt in Redis before its hash.
		c.redisCLI(t, "EVAL", "for _, k in ipairs(redis.call('KEYS', 'cluster:t*')) do redis.call('DEL', k) end", "0")
		hc := c.client()
		resp, err := hc.Get("http://" + c.authdAddrs[0] + "/authd/login")
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := csrfField.FindStringSubmatch(string(body))
		if m == nil || len(resp.Cookies()) == 0 {
			t.Fatalf("login form without csrf token or pre-session cookie (%s)", resp.Status)
		}
		pre := resp.Cookies()[0]
		checks := func() int {
			return c.metric(0, "authd_password_checks_total") + c.metric(1, "authd_password_checks_total")
		}
		before := checks()
		const n = 30
		codes := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				form := url.Values{"username": {"ada"}, "password": {fmt.Sprint("guess ", i)}, "rd": {"/"}, "csrf": {m[1]}}
				req, _ := http.NewRequest("POST", "http://"+c.authdAddrs[i%2]+"/authd/login", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", c.origin())
				req.Header.Set("Cookie", pre.Name+"="+pre.Value)
				if resp, err := hc.Do(req); err == nil {
					resp.Body.Close()
					codes[i] = resp.StatusCode
				}
			})
		}
		close(start)
		wg.Wait()
		for i, code := range codes {
			if code != http.StatusUnauthorized && code != http.StatusServiceUnavailable {
				t.Errorf("guess %d on authd-%d: got %d, want 401 (or 503 when hashing is busy)", i, i%2, code)
			}
		}
		if got := checks() - before; got > 3 {
			t.Errorf("%d concurrent guesses over two instances: %d password checks, want at most 3 (account_failures)", n, got)
		}
		c.redisCLI(t, "EVAL", "for _, k in ipairs(redis.call('KEYS', 'cluster:t*')) do redis.call('DEL', k) end", "0")
	})

	t.Run("kill one authd under load: nothing allowed without a session, sessions keep working; it rejoins", func(t *testing.T) {
		cookie, _ := c.login(c.origin(), "ada", password)
		l := startLoad(t, c, cookie, 6, 20*time.Second)
		time.Sleep(500 * time.Millisecond)
		pre := l.snapshot()
		c.procs["authd-0"].stop(syscall.SIGKILL)
		time.Sleep(1500 * time.Millisecond)
		mid := l.snapshot()
		mid.authed, mid.authedOK = mid.authed-pre.authed, mid.authedOK-pre.authedOK
		c.startAuthd(0)
		// nginx skips a failed instance for fail_timeout (5s), then tries it again.
		before := c.metric(0, `authd_verify_requests_total{code="200"}`)
		rejoined := false
		for deadline := time.Now().Add(10 * time.Second); !rejoined && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			rejoined = c.metric(0, `authd_verify_requests_total{code="200"}`) > before
		}
		res := l.stop()
		if res.anonAllowed > 0 {
			t.Fatalf("%d requests without a session were allowed", res.anonAllowed)
		}
		if mid.authed == 0 || mid.authedOK*100 < mid.authed*99 {
			t.Fatalf("with one authd killed: %d of %d requests with a session got 200; want at least 99%%", mid.authedOK, mid.authed)
		}
		if res.authedOK*100 < res.authed*99 {
			t.Fatalf("over the whole run: %d of %d requests with a session got 200 (other answers %v)", res.authedOK, res.authed, res.other)
		}
		if !rejoined {
			t.Fatal("restarted authd-0 answered no verify within 10s; want it back in rotation")
		}
		t.Logf("load: %d with session (%d ok), %d without (%d allowed), other answers %v", res.authed, res.authedOK, res.anon, res.anonAllowed, res.other)
	})

	t.Run("redis restart with AOF keeps sessions", func(t *testing.T) {
		cookie, _ := c.login(c.origin(), "ada", password)
		c.procs["redis"].stop(syscall.SIGTERM)
		c.startRedis()
		waitAllowed(t, c, cookie, 5*time.Second)
	})

	t.Run("redis stopped: verify denies fast, login 503, readyz 503; recovery", func(t *testing.T) {
		cookie, _ := c.login(c.origin(), "ada", password)
		c.procs["redis"].stop(syscall.SIGTERM)
		c.checkOutage(t, cookie)
		c.startRedis()
		waitAllowed(t, c, cookie, 5*time.Second)
		if cookie, resp := c.login(c.origin(), "ada", password); cookie == "" {
			t.Fatalf("login after redis came back: got %s", resp.Status)
		}
	})

	t.Run("redis paused: the same, with no growing queue in authd", func(t *testing.T) {
		cookie, _ := c.login(c.origin(), "ada", password)
		pid := c.procs["authd-0"].cmd.Process.Pid
		rss0, fds0 := procStatus(t, pid, "VmRSS"), openFDs(t, pid)
		c.procs["redis"].signal(syscall.SIGSTOP)
		l := startLoad(t, c, cookie, 16, 4*time.Second)
		c.checkOutage(t, cookie)
		res := l.wait()
		rss1, fds1 := procStatus(t, pid, "VmRSS"), openFDs(t, pid)
		c.procs["redis"].signal(syscall.SIGCONT)
		if res.authedOK > 0 || res.anonAllowed > 0 {
			t.Fatalf("with redis paused: %d requests with a session and %d without were allowed; want none", res.authedOK, res.anonAllowed)
		}
		if res.slowest > time.Second {
			t.Fatalf("with redis paused: slowest answer took %v; want under 1s", res.slowest)
		}
		if rss1-rss0 > 32*1024 || fds1-fds0 > 64 {
			t.Fatalf("authd-0 grew while redis was paused: RSS %d→%d kB, fds %d→%d", rss0, rss1, fds0, fds1)
		}
		t.Logf("paused: %d requests, slowest %v; authd-0 RSS %d→%d kB, fds %d→%d", res.authed+res.anon, res.slowest, rss0, rss1, fds0, fds1)
		waitAllowed(t, c, cookie, 5*time.Second)
	})
}

// checkOutage asserts what an unreachable Redis looks like from outside.
func (c *cluster) checkOutage(t *testing.T, cookie string) {
	t.Helper()
	for i := range 2 {
		start := time.Now()
		if got := c.verify(i, cookie); got != 401 {
			t.Fatalf("verify on authd-%d with redis down: got %d, want 401", i, got)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("verify on authd-%d with redis down took %v; want under 1s", i, took)
		}
		resp, err := http.Get("http://" + c.authdAddrs[i] + "/readyz")
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("readyz on authd-%d with redis down: got %s, want 503", i, resp.Status)
		}
	}
	start := time.Now()
	if resp, _ := c.get(c.client(), "/", cookie); resp.StatusCode != 302 {
		t.Fatalf("app page with redis down: got %s, want 302 to the login form", resp.Status)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Fatalf("app page with redis down took %v", took)
	}
	if _, resp := c.login(c.origin(), "ada", password); resp.StatusCode != 503 {
		t.Fatalf("login with redis down: got %s, want 503", resp.Status)
	}
}

func waitAllowed(t *testing.T, c *cluster, cookie string, timeout time.Duration) {
	t.Helper()
	hc := c.client()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		if resp, _ := c.get(hc, "/", cookie); resp.StatusCode == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session not allowed again within %v", timeout)
		}
	}
}

func (c *cluster) redisCLI(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("redis-cli", append([]string{"-p", fmt.Sprint(c.redisPort)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String()
}

// upstreamsFor returns the upstream addresses nginx's access log shows for
// requests whose line contains mark.
func upstreamsFor(t *testing.T, c *cluster, mark string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "logs", "nginx-access.log"))
	must(t, err)
	ups := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, mark+" ") && !strings.Contains(line, mark+"&") {
			continue
		}
		_, u, ok := strings.Cut(line, "upstream=")
		if ok && u != "-" {
			ups[u] = true
		}
	}
	return ups
}

// load sends app page requests through nginx, half with a session and
// half without, from n workers, for at most d and at most 20000 requests.
type load struct {
	mu      sync.Mutex
	res     loadResult
	stopped atomic.Bool
	wg      sync.WaitGroup
}

type loadResult struct {
	authed, authedOK, anon, anonAllowed int
	other                               map[int]int
	slowest                             time.Duration
}

func startLoad(t *testing.T, c *cluster, cookie string, n int, d time.Duration) *load {
	l := &load{res: loadResult{other: map[int]int{}}}
	deadline := time.Now().Add(d)
	var count atomic.Int64
	for w := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			hc := c.client()
			for i := 0; !l.stopped.Load() && time.Now().Before(deadline) && count.Add(1) <= 20000; i++ {
				withSession := (w+i)%2 == 0
				req, _ := http.NewRequest("GET", c.origin()+"/?load", nil)
				req.Header.Set("Sec-Fetch-Mode", "navigate")
				if withSession {
					req.Header.Set("Cookie", cookie)
				}
				start := time.Now()
				resp, err := hc.Do(req)
				took := time.Since(start)
				code := 0
				if err == nil {
					code = resp.StatusCode
					resp.Body.Close()
				}
				l.mu.Lock()
				l.res.slowest = max(l.res.slowest, took)
				switch {
				case withSession:
					l.res.authed++
					if code == 200 {
						l.res.authedOK++
					} else {
						l.res.other[code]++
					}
				default:
					l.res.anon++
					if code == 200 {
						l.res.anonAllowed++
					} else if code != 302 {
						l.res.other[code]++
					}
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) snapshot() loadResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.res
	r.other = nil
	return r
}

func (l *load) stop() loadResult {
	l.stopped.Store(true)
	return l.wait()
}

func (l *load) wait() loadResult {
	l.wg.Wait()
	return l.res
}
