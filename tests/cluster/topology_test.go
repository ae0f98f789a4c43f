package cluster

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/authd/authd/tests/internal/authdtest"
)

// newTopology is two authd instances (no nginx, no Streamlit: the answer under test is authd's to
// nginx's auth_request, asked directly) against a Redis deployment that start has begun and
// whose [redis] block it returns. Processes are stopped in the reverse order of their start.
func newTopology(t *testing.T, start func(c *cluster) (redisBlock string)) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), procs: map[string]*proc{}}
	must(t, os.MkdirAll(filepath.Join(c.dir, "logs"), 0o755))
	var order []string
	t.Cleanup(func() {
		for n := range c.procs {
			order = append(order, n)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(order)))
		for _, n := range order {
			c.procs[n].stop(syscall.SIGTERM)
		}
		if t.Failed() {
			for _, n := range order {
				b, _ := os.ReadFile(filepath.Join(c.dir, "logs", n+".log"))
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("---- %s log (tail) ----\n%s", n, strings.Join(lines[max(0, len(lines)-logTail):], "\n"))
			}
		}
	})
	c.bin = os.Getenv("AUTHD_BIN")
	if c.bin == "" {
		c.bin = filepath.Join(c.dir, "authd")
		must(t, authdtest.Build(c.bin))
	}
	for i := range 2 {
		host := fmt.Sprintf("127.0.0.%d", 11+i)
		c.authdAddrs[i] = net.JoinHostPort(host, strconv.Itoa(freePort(t, host)))
	}
	c.httpsPort = freePort(t, "127.0.0.1")
	block := start(c)
	for i := range 2 {
		c.writeConf(i, block)
	}
	c.cli(0, password+"\n", "user", "add", "-groups", "staff", "ada")
	for i := range 2 {
		c.startAuthd(i)
	}
	return c
}

// writeConf writes authd instance i's config with the given [redis] block.
func (c *cluster) writeConf(i int, redisBlock string) {
	data := filepath.Join(c.dir, fmt.Sprintf("authd-%d", i))
	must(c.t, os.MkdirAll(data, 0o700))
	conf := fmt.Sprintf(`listen = %q
public_url = "https://localhost:%d"
data_dir = %q
users_file = %q
store = "redis"

[throttle]
account_failures = 3
ip_failures = 4
base_delay = "30s"
max_delay = "60s"
window = "5m"

[redis]
%s
`, c.authdAddrs[i], c.httpsPort, data, filepath.Join(data, "users.toml"), redisBlock)
	c.confs[i] = filepath.Join(data, "authd.toml")
	must(c.t, os.WriteFile(c.confs[i], []byte(conf), 0o600))
}

// redisServer starts a redis-server named name on 127.0.0.1:port with AOF on, plus args.
func (c *cluster) redisServer(name string, port int, args ...string) *proc {
	c.t.Helper()
	bin := look(c.t, "REDIS_SERVER", "redis-server", "/usr/bin/redis-server")
	data := filepath.Join(c.dir, name)
	must(c.t, os.MkdirAll(data, 0o700))
	base := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", data,
		"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no",
		// A replica's first sync starts at once, not after Redis's default 5s wait for others.
		"--repl-diskless-sync-delay", "0"}
	p := c.start(name, exec.Command(bin, append(base, args...)...))
	waitDial(c.t, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 10*time.Second)
	return p
}

// rcli runs redis-cli against 127.0.0.1:port and returns its output.
func rcli(t testing.TB, port int, args ...string) string {
	t.Helper()
	out, err := tryCLI(port, args...)
	if err != nil {
		t.Fatalf("redis-cli -p %d %v: %v\n%s", port, args, err, out)
	}
	return out
}

// tryCLI is rcli for a server that may not answer yet.
func tryCLI(port int, args ...string) (string, error) {
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// waitTrue polls cond every 100ms for at most d.
func waitTrue(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// verifyCode asks authd instance i's /verify about cookie and returns the status, or 0 when
// authd did not answer.
func (c *cluster) verifyCode(hc *http.Client, i int, cookie string) int {
	req, _ := http.NewRequest("GET", "http://"+c.authdAddrs[i]+"/verify", nil)
	req.Header.Set("X-Original-URI", "/")
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Forwarded-Host", "localhost")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// logout ends the session through authd instance i, as the logout form does.
func (c *cluster) logout(i int, cookie string) {
	c.t.Helper()
	if got := c.logoutStatus(i, cookie); got != 303 {
		c.t.Fatalf("logout on authd-%d: got %d, want 303", i, got)
	}
}

// logoutStatus posts the logout form through authd instance i and returns the answer's status.
func (c *cluster) logoutStatus(i int, cookie string) int {
	c.t.Helper()
	hc := c.client()
	base := "http://" + c.authdAddrs[i]
	req, _ := http.NewRequest("GET", base+"/authd/logout", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := hc.Do(req)
	must(c.t, err)
	m := csrfField.FindStringSubmatch(readAll(resp))
	if m == nil {
		c.t.Fatalf("logout page on authd-%d without csrf token (%s)", i, resp.Status)
	}
	req, _ = http.NewRequest("POST", base+"/authd/logout", strings.NewReader("csrf="+m[1]))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.origin())
	req.Header.Set("Cookie", cookie)
	resp, err = hc.Do(req)
	must(c.t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// failoverLoad asks both authd instances about a live session and about sessions that must never
// pass (a logged-out one and a made-up one) from a few workers, recording every answer with its
// time, until stopped.
type failoverLoad struct {
	stopped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at   time.Time
	took time.Duration
	node int
	live bool // the session is live (else it must never be allowed)
	code int
}

func (c *cluster) startFailoverLoad(live string, dead []string, workers int) *failoverLoad {
	l := &failoverLoad{}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			hc := &http.Client{Timeout: 5 * time.Second}
			for i := 0; !l.stopped.Load(); i++ {
				node := (w + i) % 2
				cookie, isLive := live, true
				if i%3 == 2 {
					cookie, isLive = dead[(w+i)%len(dead)], false
				}
				start := time.Now()
				code := c.verifyCode(hc, node, cookie)
				l.mu.Lock()
				l.samples = append(l.samples, sample{time.Now(), time.Since(start), node, isLive, code})
				l.mu.Unlock()
				// Bounded: a few hundred requests a second on loopback, not a benchmark.
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *failoverLoad) stop() []sample {
	l.stopped.Store(true)
	l.wg.Wait()
	return l.samples
}

// failoverFigures sums up a failover seen by failoverLoad, from the moment of the fault.
type failoverFigures struct {
	// requests and denied count the live session's requests after the fault; never counts the
	// requests for sessions that must never pass (every one denied, or the test fails).
	requests, denied, never int
	// slowestDenial is the longest a denial took after the fault.
	slowestDenial time.Duration
	// recovered is, per node, the time from the fault to the first allowed request for the live
	// session after which that node never denied it again.
	recovered [2]time.Duration
}

// checkFailover asserts what must hold whatever the timing: every denial comes within a second,
// every answer is a 200, 401 or 403
// (a 5xx or no answer would be up to nginx to read, and nginx's auth_request treats it as an
// error, not as allow; authd must not rely on that), sessions that must never pass never got a
// 200, and each node ended up allowing the live session again. It returns the figures.
func checkFailover(t *testing.T, samples []sample, fault time.Time) failoverFigures {
	t.Helper()
	var f failoverFigures
	var lastDeny [2]time.Time
	var allowedAfter [2]bool
	for _, s := range samples {
		switch s.code {
		case 200, 401, 403:
		default:
			t.Errorf("authd-%d answered %d at %v after the fault; want only 200, 401 or 403", s.node, s.code, s.at.Sub(fault).Round(time.Millisecond))
		}
		if !s.live && s.code == 200 {
			t.Errorf("authd-%d allowed a logged-out or made-up session at %v after the fault", s.node, s.at.Sub(fault).Round(time.Millisecond))
		}
		if s.at.Before(fault) {
			continue
		}
		if s.code != 200 {
			f.slowestDenial = max(f.slowestDenial, s.took)
		}
		if !s.live {
			f.never++
			continue
		}
		f.requests++
		if s.code != 200 {
			f.denied++
			lastDeny[s.node] = s.at
			allowedAfter[s.node] = false
		} else if !allowedAfter[s.node] {
			allowedAfter[s.node] = true
			f.recovered[s.node] = s.at.Sub(fault)
		}
	}
	if f.slowestDenial > time.Second {
		t.Errorf("slowest denial after the fault took %v; want verify to deny within a second", f.slowestDenial.Round(time.Millisecond))
	}
	for i := range 2 {
		if !allowedAfter[i] {
			t.Errorf("authd-%d still denied the live session at the end (last denial %v after the fault)", i, lastDeny[i].Sub(fault).Round(time.Millisecond))
		}
	}
	return f
}

// logTail is how many lines of each process's log a failed test shows.
var logTail = 15

// checkTokensAfterFailover: API tokens, whose records every instance re-reads from Redis each
// second (and refuses all of once reads have failed for 3 s), work again after a failover, and
// a revocation still reaches both instances.
func (c *cluster) checkTokensAfterFailover(t *testing.T) {
	t.Helper()
	token, id := c.token("ada")
	for i := range 2 {
		c.waitStatus(t, i, token, 200, 10*time.Second)
	}
	c.cli(1, "", "token", "revoke", id)
	for i := range 2 {
		c.waitStatus(t, i, token, 401, 10*time.Second)
	}
}

// sessionsAfterFailover checks on both instances that each session made
// before a failover still works and that the logged-out one stays out; it
// returns how many were kept.
func (c *cluster) sessionsAfterFailover(t *testing.T, cookies []string, gone string) int {
	t.Helper()
	kept := 0
	for i, ck := range cookies {
		ok := true
		for node := range 2 {
			if got := c.verify(node, ck); got != 200 {
				t.Errorf("session %d after the failover on authd-%d: got %d, want 200 (it was acknowledged by the replica)", i, node, got)
				ok = false
			}
		}
		if ok {
			kept++
		}
	}
	for node := range 2 {
		if got := c.verify(node, gone); got != 401 {
			t.Errorf("logged-out session after the failover on authd-%d: got %d, want 401", node, got)
		}
	}
	return kept
}
