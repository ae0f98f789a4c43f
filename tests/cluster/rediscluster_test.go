package cluster

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// redisCluster is three primaries and three replicas made by redis-cli --cluster create.
type redisCluster struct {
	ports [6]int
	args  [6][]string
}

// node is one line of CLUSTER NODES.
type node struct {
	id, master string
	port       int
	primary    bool
	slots      [][2]int
}

func (rc *redisCluster) nodes(t testing.TB, via int) []node {
	t.Helper()
	var ns []node
	for _, line := range strings.Split(rcli(t, via, "CLUSTER", "NODES"), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		_, p, _ := strings.Cut(addr, ":")
		port, _ := strconv.Atoi(p)
		n := node{id: f[0], master: f[3], port: port, primary: strings.Contains(f[2], "master") && !strings.Contains(f[2], "fail")}
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil {
				n.slots = append(n.slots, [2]int{a, b})
			}
		}
		ns = append(ns, n)
	}
	return ns
}

// owner returns the primary serving slot and one of its replicas, as node via sees them.
func (rc *redisCluster) owner(t testing.TB, via, slot int) (primary, replica node) {
	t.Helper()
	ns := rc.nodes(t, via)
	for _, n := range ns {
		for _, r := range n.slots {
			if n.primary && r[0] <= slot && slot <= r[1] {
				primary = n
			}
		}
	}
	if primary.id == "" {
		t.Fatalf("no primary serves slot %d", slot)
	}
	for _, n := range ns {
		if n.master == primary.id {
			replica = n
		}
	}
	if replica.id == "" {
		t.Fatalf("the primary on port %d has no replica", primary.port)
	}
	return primary, replica
}

// startRedisCluster starts six cluster-enabled redis-servers and joins them with
// redis-cli --cluster create (three primaries, one replica each).
func (c *cluster) startRedisCluster(rc *redisCluster) string {
	c.t.Helper()
	var addrs []string
	for i := range rc.ports {
		rc.ports[i] = freePort(c.t, "127.0.0.1")
		bus := freePort(c.t, "127.0.0.1")
		// node-timeout 2s: a primary that stops answering is failed over by its replica after it.
		rc.args[i] = []string{"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(c.dir, fmt.Sprintf("redis-%d", i), "nodes.conf"),
			"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "2000"}
		c.redisServer(fmt.Sprintf("redis-%d", i), rc.ports[i], rc.args[i]...)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", rc.ports[i]))
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, p := range rc.ports {
		waitTrue(c.t, "cluster state ok on every node", 30*time.Second, func() bool {
			out, err := tryCLI(p, "CLUSTER", "INFO")
			return err == nil && strings.Contains(out, "cluster_state:ok")
		})
	}
	// Every node a replica in sync or a primary with its replica online: right after create a
	// node still reports role:master before it is made a replica.
	for _, p := range rc.ports {
		waitTrue(c.t, "replicas in sync", 30*time.Second, func() bool {
			out, err := tryCLI(p, "INFO", "replication")
			return err == nil && (strings.Contains(out, "master_link_status:up") ||
				strings.Contains(out, "role:master") && strings.Contains(out, "connected_slaves:1") && strings.Contains(out, "state=online"))
		})
	}
	// And the primary of authd's slot gets a replica's acknowledgement (what wait_replicas = 1
	// asks of every login) before the first login.
	waitTrue(c.t, "every replica known to the node asked", 30*time.Second, func() bool {
		out, err := tryCLI(rc.ports[0], "CLUSTER", "NODES")
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 2 && strings.Contains(f[2], "slave") {
				n++
			}
		}
		return err == nil && n == len(rc.ports)/2
	})
	primary, _ := rc.owner(c.t, rc.ports[0], authdSlot(c.t, rc.ports[0]))
	waitTrue(c.t, "a write to authd's slot acknowledged by its replica", 30*time.Second, func() bool {
		if _, err := tryCLI(primary.port, "SET", "{authd}:probe", "1"); err != nil {
			return false
		}
		out, err := tryCLI(primary.port, "WAIT", "1", "500")
		return err == nil && out == "1"
	})
	rcli(c.t, primary.port, "DEL", "{authd}:probe")
	return fmt.Sprintf("addrs = [%q, %q, %q]\nkey_prefix = \"{authd}:\"\nwait_replicas = 1", addrs[0], addrs[1], addrs[2])
}

// authdSlot is the slot of every key authd writes with key_prefix "{authd}:".
func authdSlot(t testing.TB, port int) int {
	t.Helper()
	s, err := strconv.Atoi(rcli(t, port, "CLUSTER", "KEYSLOT", "{authd}:s:x"))
	must(t, err)
	return s
}

// signed asks authd instance i's /verify about a request signed with `authd sign`.
func (c *cluster) signed(i int, target, authorization string) int {
	c.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+c.authdAddrs[i]+"/verify", nil)
	req.Header.Set("X-Original-URI", target)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Forwarded-Host", "localhost")
	req.Header.Set("Authorization", authorization)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("verify on authd-%d: %v", i, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestRedisCluster: authd with a Redis Cluster (three primaries, three replicas, made by
// redis-cli --cluster create) and key_prefix "{authd}:". Everything authd keeps works across two
// instances: sessions (login on one, verify and logout seen by the other), shared throttle
// counters, API tokens and their revocation, signed requests' nonces (a replay on the other
// instance is refused). Then the primary holding authd's slot is killed with SIGKILL under load:
// verify fails closed meanwhile (never a 200 for a logged-out or made-up session, never a 5xx),
// both instances follow the promoted replica on their own, and the sessions confirmed before the
// fault (wait_replicas = 1: acknowledged by the replica) still work. Logins wait for a replica
// again (503) until the killed node is back as one; API tokens work again.
func TestRedisCluster(t *testing.T) {
	requireCluster(t)
	var rc redisCluster
	c := newTopology(t, func(c *cluster) string { return c.startRedisCluster(&rc) })
	slot := authdSlot(t, rc.ports[0])
	primary, replica := rc.owner(t, rc.ports[0], slot)
	keys := func() string {
		return rcli(t, primary.port, "KEYS", "{authd}:*")
	}

	t.Run("sessions: login on one instance, verify and logout on the other", func(t *testing.T) {
		cookie, resp := c.login("http://"+c.authdAddrs[0], "ada", password)
		if cookie == "" {
			t.Fatalf("login: got %s and no session cookie", resp.Status)
		}
		if got := c.verify(1, cookie); got != 200 {
			t.Fatalf("verify on authd-1: got %d, want 200", got)
		}
		c.logout(1, cookie)
		if got := c.verify(0, cookie); got != 401 {
			t.Fatalf("verify on authd-0 after logout on authd-1: got %d, want 401", got)
		}
		if !strings.Contains(keys(), "{authd}:u:ada") {
			t.Fatalf("the primary serving slot %d (port %d) does not hold authd's keys:\n%s", slot, primary.port, keys())
		}
	})

	t.Run("throttle counters are shared", func(t *testing.T) {
		for i := range 4 {
			base := "http://" + c.authdAddrs[i%2]
			if cookie, resp := c.login(base, fmt.Sprintf("nobody%d", i), "wrong password"); cookie != "" || resp.StatusCode != 401 {
				t.Fatalf("failure %d: got %s, want 401", i+1, resp.Status)
			}
		}
		for i := range 2 {
			if _, resp := c.login("http://"+c.authdAddrs[i], "ada", password); resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("after 4 failures spread over both: login on authd-%d got %s, want 429", i, resp.Status)
			}
		}
		rcli(t, primary.port, "EVAL", "for _, k in ipairs(redis.call('KEYS', '{authd}:t*')) do redis.call('DEL', k) end", "0")
	})

	t.Run("API tokens are shared and revoked everywhere", func(t *testing.T) {
		token, id := c.token("ada")
		for i := range 2 {
			c.waitStatus(t, i, token, 200, 5*time.Second)
		}
		c.cli(1, "", "token", "revoke", id)
		for i := range 2 {
			c.waitStatus(t, i, token, 401, 10*time.Second)
		}
	})

	t.Run("a signed request's nonce is spent on every instance", func(t *testing.T) {
		key := strings.Fields(c.cli(0, "", "key", "create", "-user", "ada", "-name", "signer"))
		if len(key) < 2 || !strings.HasPrefix(key[0], "ak_") {
			t.Fatalf("key create printed %q", key)
		}
		secret := filepath.Join(c.dir, "key.secret")
		must(t, os.WriteFile(secret, []byte(key[1]+"\n"), 0o600))
		sign := func(target string) string {
			out, err := exec.Command(c.bin, "sign", "-key", key[0], "-secret-file", secret, c.origin()+target).Output()
			if err != nil {
				t.Fatalf("authd sign: %v", err)
			}
			// It prints the header line, "Authorization: AUTHD2-HMAC-SHA256 …".
			return strings.TrimPrefix(strings.TrimSpace(string(out)), "Authorization: ")
		}
		waitTrue(t, "both instances know the signing key", 10*time.Second, func() bool {
			return c.signed(0, "/probe", sign("/probe")) == 200 && c.signed(1, "/probe", sign("/probe")) == 200
		})
		h := sign("/x")
		if got := c.signed(0, "/x", h); got != 200 {
			t.Fatalf("signed request on authd-0: got %d, want 200", got)
		}
		if got := c.signed(1, "/x", h); got != 401 {
			t.Fatalf("the same signed request replayed on authd-1: got %d, want 401", got)
		}
	})

	t.Run("SIGKILL the primary of authd's slot under load", func(t *testing.T) {
		const n = 8
		var cookies []string
		for i := range n {
			cookie, resp := c.login("http://"+c.authdAddrs[i%2], "ada", password)
			if cookie == "" {
				t.Fatalf("login %d: got %s", i, resp.Status)
			}
			cookies = append(cookies, cookie)
		}
		gone, _ := c.login("http://"+c.authdAddrs[0], "ada", password)
		c.logout(1, gone)
		dead := []string{gone, cookieName + "=" + strings.Repeat("A", 43)}

		l := c.startFailoverLoad(cookies[0], dead, 4)
		time.Sleep(time.Second)
		fault := time.Now()
		killed := indexOf(rc.ports[:], primary.port)
		c.procs[fmt.Sprintf("redis-%d", killed)].signal(syscall.SIGKILL)
		waitTrue(t, "the replica takes over authd's slot", 30*time.Second, func() bool {
			out, err := tryCLI(replica.port, "ROLE")
			return err == nil && strings.HasPrefix(out, "master")
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
		// confirmed (503) until the killed node is back, as its replica.
		if ck, resp := c.login("http://"+c.authdAddrs[1], "ada", password); ck != "" || resp.StatusCode != 503 {
			t.Errorf("login with no replica left: got %s (cookie %v), want 503", resp.Status, ck != "")
		}
		c.redisServer(fmt.Sprintf("redis-%d", killed), rc.ports[killed], rc.args[killed]...)
		waitTrue(t, "the killed node back as a replica in sync", 30*time.Second, func() bool {
			out, err := tryCLI(replica.port, "INFO", "replication")
			return err == nil && strings.Contains(out, "state=online")
		})
		back := time.Now()
		var fresh string
		waitTrue(t, "a login confirmed again", 15*time.Second, func() bool {
			fresh, _ = c.login("http://"+c.authdAddrs[1], "ada", password)
			return fresh != ""
		})
		t.Logf("logins confirmed again %v after the killed node was back in sync", time.Since(back).Round(time.Millisecond))
		if got := c.verify(0, fresh); got != 200 {
			t.Fatalf("new session on the other instance: got %d, want 200", got)
		}
		c.logout(0, cookies[1])
		if got := c.verify(1, cookies[1]); got != 401 {
			t.Fatalf("logout on authd-0 after the failover, verify on authd-1: got %d, want 401", got)
		}
		c.checkTokensAfterFailover(t)
		bound := 15 * time.Second
		for i := range 2 {
			if f.recovered[i] > bound {
				t.Errorf("authd-%d recovered %v after the fault; want within %v", i, f.recovered[i].Round(time.Millisecond), bound)
			}
		}
		t.Logf("FIGURES cluster: replica promoted %v after SIGKILL; verify allowed again after %v (authd-0) / %v (authd-1); %d requests for the live session denied (401), %d allowed, since the fault; %d requests for logged-out or made-up sessions, none allowed; slowest denial %v; sessions kept %d/%d",
			promoted.Round(time.Millisecond), f.recovered[0].Round(time.Millisecond), f.recovered[1].Round(time.Millisecond), f.denied, f.requests-f.denied, f.never, f.slowestDenial.Round(time.Millisecond), kept, n)
	})

	t.Run("planned failover (CLUSTER FAILOVER on the replica) under load", func(t *testing.T) {
		primary, replica := rc.owner(t, rc.ports[0], slot)
		cookie, resp := c.login("http://"+c.authdAddrs[0], "ada", password)
		if cookie == "" {
			t.Fatalf("login: got %s", resp.Status)
		}
		gone, _ := c.login("http://"+c.authdAddrs[1], "ada", password)
		c.logout(0, gone)
		l := c.startFailoverLoad(cookie, []string{gone}, 4)
		time.Sleep(time.Second)
		fault := time.Now()
		rcli(t, replica.port, "CLUSTER", "FAILOVER")
		waitTrue(t, "the replica takes over authd's slot", 30*time.Second, func() bool {
			out, err := tryCLI(replica.port, "ROLE")
			return err == nil && strings.HasPrefix(out, "master")
		})
		time.Sleep(2 * time.Second)
		f := checkFailover(t, l.stop(), fault)
		if got := c.verify(1, gone); got != 401 {
			t.Errorf("logged-out session after the failover: got %d, want 401", got)
		}
		t.Logf("FIGURES cluster planned failover (port %d to %d): %d of %d requests for the live session denied; %d for a logged-out session, none allowed",
			primary.port, replica.port, f.denied, f.requests, f.never)
	})
}

func indexOf(ports []int, p int) int {
	for i, q := range ports {
		if q == p {
			return i
		}
	}
	return -1
}
