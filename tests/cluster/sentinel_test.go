package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sentinelSet is a primary, one replica and three Sentinels watching them as "authd".
type sentinelSet struct {
	primary, replica int
	sentinels        [3]int
}

// startSentinels starts the primary, the replica and three redis-sentinel processes, and waits
// until every Sentinel knows the replica and the other two Sentinels (before that a failover
// could not reach a quorum or find a replica to promote).
func (c *cluster) startSentinels(s *sentinelSet) string {
	c.t.Helper()
	s.primary, s.replica = freePort(c.t, "127.0.0.1"), freePort(c.t, "127.0.0.1")
	c.redisServer("redis-a", s.primary)
	c.redisServer("redis-b", s.replica, "--replicaof", "127.0.0.1", strconv.Itoa(s.primary))
	// The replica is online only after its first sync (Redis delays a diskless sync by 5s).
	waitTrue(c.t, "the replica in sync", 30*time.Second, func() bool {
		out, err := tryCLI(s.primary, "INFO", "replication")
		return err == nil && strings.Contains(out, "state=online")
	})
	bin := look(c.t, "REDIS_SENTINEL", "redis-sentinel", "/usr/bin/redis-sentinel")
	var addrs []string
	for i := range s.sentinels {
		port := freePort(c.t, "127.0.0.1")
		s.sentinels[i] = port
		dir := filepath.Join(c.dir, fmt.Sprintf("sentinel-%d", i))
		must(c.t, os.MkdirAll(dir, 0o700))
		// Sentinel rewrites its config file, so each has its own. A primary is declared down
		// after 1s without an answer; failover-timeout bounds a stuck failover's retry.
		conf := fmt.Sprintf(`port %d
bind 127.0.0.1
daemonize no
dir %s
sentinel monitor authd 127.0.0.1 %d 2
sentinel down-after-milliseconds authd 1000
sentinel failover-timeout authd 10000
sentinel parallel-syncs authd 1
`, port, dir, s.primary)
		path := filepath.Join(dir, "sentinel.conf")
		must(c.t, os.WriteFile(path, []byte(conf), 0o600))
		c.start(fmt.Sprintf("sentinel-%d", i), exec.Command(bin, path))
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	for _, port := range s.sentinels {
		waitTrue(c.t, "sentinels discover the replica and each other", 30*time.Second, func() bool {
			reps, err1 := tryCLI(port, "SENTINEL", "REPLICAS", "authd")
			sens, err2 := tryCLI(port, "SENTINEL", "SENTINELS", "authd")
			return err1 == nil && err2 == nil && strings.Contains(reps, strconv.Itoa(s.replica)) && countLines(sens, "name") >= 2
		})
	}
	return fmt.Sprintf("addrs = [%q, %q, %q]\nmaster_name = \"authd\"\nkey_prefix = \"authd:\"\nwait_replicas = 1", addrs[0], addrs[1], addrs[2])
}

// TestSentinelFailover: authd behind Redis Sentinel (a primary, a replica, three Sentinels), two
// instances under bounded load, the primary killed with SIGKILL. While no primary answers, verify
// fails closed (401, never a 200 for a logged-out or made-up session, never a 5xx); both instances
// follow the Sentinels to the promoted replica on their own within a bound; the sessions written
// before the fault and acknowledged by the replica all still work, a logged-out one stays out,
// and logins, logouts and API tokens work on the new primary. With wait_replicas = 1, a login or logout is
// not confirmed (503) while the replica does not acknowledge it.
func TestSentinelFailover(t *testing.T) {
	requireCluster(t)
	var s sentinelSet
	c := newTopology(t, func(c *cluster) string { return c.startSentinels(&s) })

	const n = 8
	var cookies []string
	for i := range n {
		cookie, resp := c.login("http://"+c.authdAddrs[i%2], "ada", password)
		if cookie == "" {
			t.Fatalf("login %d: got %s and no session cookie", i, resp.Status)
		}
		cookies = append(cookies, cookie)
	}
	gone, _ := c.login("http://"+c.authdAddrs[0], "ada", password)
	c.logout(1, gone)
	unconfirmed, _ := c.login("http://"+c.authdAddrs[0], "ada", password)
	dead := []string{gone, unconfirmed, cookieName + "=" + strings.Repeat("A", 43)}
	// wait_replicas = 1: a login or logout is confirmed only once the replica holds it. With
	// the replica stopped, neither is confirmed (503), so none can be lost by a failover.
	stopped := c.procs["redis-b"]
	stopped.signal(syscall.SIGSTOP)
	if ck, resp := c.login("http://"+c.authdAddrs[0], "ada", password); ck != "" || resp.StatusCode != 503 {
		t.Errorf("login with the replica stopped: got %s (cookie %v), want 503 and no session", resp.Status, ck != "")
	}
	if got := c.logoutStatus(1, unconfirmed); got != 503 {
		t.Errorf("logout with the replica stopped: got %d, want 503 (not confirmed)", got)
	}
	stopped.signal(syscall.SIGCONT)
	// Not confirmed is not undone: the primary ended the session, the replica catches up.
	if got := c.verify(0, unconfirmed); got != 401 {
		t.Errorf("session whose logout was not confirmed: got %d, want 401", got)
	}
	for i, ck := range cookies {
		if got := c.verify(i%2, ck); got != 200 {
			t.Fatalf("session %d before the fault: got %d, want 200", i, got)
		}
	}

	l := c.startFailoverLoad(cookies[0], dead, 4)
	time.Sleep(time.Second)
	fault := time.Now()
	c.procs["redis-a"].signal(syscall.SIGKILL)
	waitTrue(t, "the Sentinels promote the replica", 30*time.Second, func() bool {
		out, _ := tryCLI(s.sentinels[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "authd")
		return strings.Contains(out, strconv.Itoa(s.replica))
	})
	promoted := time.Since(fault)
	hc := c.client()
	waitTrue(t, "both instances allow the live session again", 30*time.Second, func() bool {
		return c.verifyCode(hc, 0, cookies[0]) == 200 && c.verifyCode(hc, 1, cookies[0]) == 200
	})
	time.Sleep(2 * time.Second)
	f := checkFailover(t, l.stop(), fault)

	kept := c.sessionsAfterFailover(t, cookies, gone)
	// The promoted replica has no replica of its own: with wait_replicas = 1 no login can be
	// confirmed (503) until the old primary is back, as a replica (the Sentinels make it one).
	if ck, resp := c.login("http://"+c.authdAddrs[1], "ada", password); ck != "" || resp.StatusCode != 503 {
		t.Errorf("login with no replica left: got %s (cookie %v), want 503", resp.Status, ck != "")
	}
	c.redisServer("redis-a", s.primary)
	waitTrue(t, "the old primary back as a replica in sync", 30*time.Second, func() bool {
		out, err := tryCLI(s.replica, "INFO", "replication")
		return err == nil && strings.Contains(out, "state=online")
	})
	back := time.Now()
	var fresh string
	waitTrue(t, "a login confirmed again", 15*time.Second, func() bool {
		fresh, _ = c.login("http://"+c.authdAddrs[1], "ada", password)
		return fresh != ""
	})
	t.Logf("logins confirmed again %v after the old primary was back in sync", time.Since(back).Round(time.Millisecond))
	if got := c.verify(0, fresh); got != 200 {
		t.Fatalf("new session on the other instance: got %d, want 200", got)
	}
	c.logout(0, cookies[1])
	if got := c.verify(1, cookies[1]); got != 401 {
		t.Fatalf("logout on authd-0 after the failover, verify on authd-1: got %d, want 401", got)
	}
	c.checkTokensAfterFailover(t)
	bound := 10 * time.Second
	for i := range 2 {
		if f.recovered[i] > bound {
			t.Errorf("authd-%d recovered %v after the fault; want within %v", i, f.recovered[i].Round(time.Millisecond), bound)
		}
	}
	t.Logf("FIGURES sentinel: replica promoted %v after SIGKILL; verify allowed again after %v (authd-0) / %v (authd-1); %d requests for the live session denied (401), %d allowed, since the fault; %d requests for logged-out or made-up sessions, none allowed; slowest denial %v; sessions kept %d/%d",
		promoted.Round(time.Millisecond), f.recovered[0].Round(time.Millisecond), f.recovered[1].Round(time.Millisecond), f.denied, f.requests-f.denied, f.never, f.slowestDenial.Round(time.Millisecond), kept, n)
}

// countLines counts the lines of out that are exactly line (redis-cli prints one field a line).
func countLines(out, line string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == line {
			n++
		}
	}
	return n
}
