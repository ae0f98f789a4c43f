package cluster

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxStale is the bound the README documents (machine.MaxStale): a revocation is refused on every
// instance within it, and an instance that cannot confirm its credentials refuses every machine
// client past it.
const maxStale = 3 * time.Second

// blackHole forwards TCP connections to a backend until it is closed, then holds every byte in
// both directions — without closing anything — until it is opened again: a network path that
// silently drops packets, which a refused connection does not test.
type blackHole struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	cond    *sync.Cond
	closed  bool
}

func newBlackHole(t *testing.T, backend string) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	b := &blackHole{ln: ln, backend: backend}
	b.cond = sync.NewCond(&b.mu)
	t.Cleanup(func() { b.set(false); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(c)
		}
	}()
	return b
}

func (b *blackHole) addr() string { return b.ln.Addr().String() }

// set closes (true) or opens (false) the path.
func (b *blackHole) set(closed bool) {
	b.mu.Lock()
	b.closed = closed
	b.mu.Unlock()
	b.cond.Broadcast()
}

func (b *blackHole) wait() {
	b.mu.Lock()
	for b.closed {
		b.cond.Wait()
	}
	b.mu.Unlock()
}

func (b *blackHole) serve(c net.Conn) {
	defer c.Close()
	b.wait()
	up, err := net.Dial("tcp", b.backend)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			b.wait()
			n, err := src.Read(buf)
			b.wait() // bytes read just as the path closed are held, not delivered
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
}

// newMachineCluster is Redis and two authd instances (no nginx, no Streamlit: the answer under
// test is authd's to nginx's auth_request, asked directly). authd-1 reaches Redis only through a
// blackHole.
func newMachineCluster(t *testing.T) (*cluster, *blackHole) {
	t.Helper()
	c := newClusterDir(t, []string{"authd-0", "authd-1", "redis"}, []string{"authd-0", "authd-1"})
	for i := range 2 {
		host := fmt.Sprintf("127.0.0.%d", 11+i)
		c.authdAddrs[i] = net.JoinHostPort(host, strconv.Itoa(freePort(t, host)))
	}
	c.redisPort = freePort(t, "127.0.0.1")
	c.httpsPort = freePort(t, "127.0.0.1")
	c.startRedis()
	hole := newBlackHole(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(c.redisPort)))
	for i := range 2 {
		c.writeAuthdConf(i)
	}
	direct := fmt.Sprintf("addrs = [\"127.0.0.1:%d\"]", c.redisPort)
	b, err := os.ReadFile(c.confs[1])
	must(t, err)
	if !strings.Contains(string(b), direct) {
		t.Fatalf("%s: %q not found; update the test", c.confs[1], direct)
	}
	must(t, os.WriteFile(c.confs[1], []byte(strings.Replace(string(b), direct, fmt.Sprintf("addrs = [%q]", hole.addr()), 1)), 0o600))
	c.cli(0, password+"\n", "user", "add", "-groups", "staff", "ada")
	c.cli(0, password+"\n", "user", "add", "-groups", "staff", "bob")
	c.cli(0, password+"\n", "user", "add", "-groups", "staff", "eve")
	for i := range 2 {
		c.startAuthd(i)
	}
	return c, hole
}

// bearer asks authd instance i's /verify about a request with an API token, as nginx would,
// and returns the answer and how long it took.
func (c *cluster) bearer(i int, token string) (int, time.Duration) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+c.authdAddrs[i]+"/verify", nil)
	req.Header.Set("X-Original-URI", "/")
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Forwarded-Host", "localhost")
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("verify on authd-%d: %v", i, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

func (c *cluster) token(user string) (token, id string) {
	c.t.Helper()
	out := strings.Fields(c.cli(0, "", "token", "create", "-user", user, "-name", "ci"))
	if len(out) == 0 || !strings.HasPrefix(out[0], "authd_tok_") {
		c.t.Fatalf("token create printed %q", out)
	}
	return out[0], strings.Split(out[0], "_")[2]
}

// waitStatus polls authd instance i until the token gets want, for at most d, and returns how
// long that took.
func (c *cluster) waitStatus(t *testing.T, i int, token string, want int, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got, _ := c.bearer(i, token)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("authd-%d answered %d for %v, want %d", i, got, d, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMachineStalenessAcrossNodes: "Tokens … have bounded staleness". A token revoked through
// one instance is refused by the other within machine.MaxStale; a user's password change is
// refused at the very next request on the other instance; and when the other instance's path to
// Redis silently drops packets, it refuses the revoked token — and, failing closed, every token —
// within the bound, answering fast meanwhile, and recovers on its own when the path reopens.
func TestMachineStalenessAcrossNodes(t *testing.T) {
	requireCluster(t)
	c, hole := newMachineCluster(t)

	revoked, revokedID := c.token("ada")
	later, laterID := c.token("ada")
	kept, _ := c.token("ada")
	bobs, _ := c.token("bob")
	eves, _ := c.token("eve")
	for _, tok := range []string{revoked, later, kept, bobs, eves} {
		for i := range 2 {
			c.waitStatus(t, i, tok, 200, 5*time.Second)
		}
	}

	// What the per-request user check costs: one Redis round trip, as for a session.
	var lat []time.Duration
	for range 300 {
		if got, took := c.bearer(0, kept); got == 200 {
			lat = append(lat, took)
		}
	}
	slices.Sort(lat)
	if len(lat) == 300 {
		t.Logf("bearer verify on authd-0 (healthy Redis, 300 sequential): p50 %v, p99 %v", lat[150], lat[296])
	}

	t.Run("revocation reaches the other instance within the bound", func(t *testing.T) {
		c.cli(0, "", "token", "revoke", revokedID)
		took := c.waitStatus(t, 1, revoked, 401, 2*maxStale)
		if took > maxStale {
			t.Errorf("authd-1 refused the revoked token after %v, want within %v", took, maxStale)
		}
		t.Logf("authd-1 refused the revoked token %v after the CLI returned", took.Round(time.Millisecond))
	})

	t.Run("password change, lock and delete count at the next request on the other instance", func(t *testing.T) {
		c.cli(0, "a completely different passphrase\n", "user", "passwd", "bob")
		if got, _ := c.bearer(1, bobs); got != 401 {
			t.Errorf("bob's token right after his password change: authd-1 answered %d, want 401", got)
		}
		c.cli(0, "", "user", "del", "eve")
		if got, _ := c.bearer(1, eves); got != 401 {
			t.Errorf("eve's token right after her deletion: authd-1 answered %d, want 401", got)
		}
		c.cli(0, password+"\n", "user", "add", "-groups", "staff", "eve")
		time.Sleep(1500 * time.Millisecond) // every reload and announcement has landed
		for i := range 2 {
			if got, _ := c.bearer(i, bobs); got != 401 {
				t.Errorf("bob's token later: authd-%d answered %d, want 401", i, got)
			}
			if got, _ := c.bearer(i, eves); got != 401 {
				t.Errorf("eve's token after she was re-added: authd-%d answered %d, want 401", i, got)
			}
		}
	})

	t.Run("redis black-holed: the other instance fails closed within the bound", func(t *testing.T) {
		hole.set(true)
		closed := time.Now()
		c.cli(0, "", "token", "revoke", laterID)
		c.waitStatus(t, 0, later, 401, 2*maxStale)
		var slowest time.Duration
		refusedAt := map[string]time.Duration{}
		for time.Since(closed) < maxStale+2*time.Second {
			for name, tok := range map[string]string{"revoked": later, "valid": kept} {
				got, took := c.bearer(1, tok)
				slowest = max(slowest, took)
				if got == 200 {
					delete(refusedAt, name)
				} else if _, ok := refusedAt[name]; !ok {
					refusedAt[name] = time.Since(closed)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, name := range []string{"revoked", "valid"} {
			at, ok := refusedAt[name]
			if !ok {
				t.Fatalf("authd-1 still accepted the %s token %v after its Redis went silent", name, maxStale+2*time.Second)
			}
			if at > maxStale+time.Second {
				t.Errorf("authd-1 refused the %s token for good only %v after its Redis went silent, want within %v", name, at.Round(time.Millisecond), maxStale+time.Second)
			}
			t.Logf("authd-1 refused the %s token for good %v after its Redis went silent", name, at.Round(time.Millisecond))
		}
		if slowest > 1500*time.Millisecond {
			t.Errorf("slowest answer from authd-1 took %v, want under 1.5s", slowest)
		}
		if got, _ := c.bearer(0, kept); got != 200 {
			t.Errorf("authd-0, whose Redis is fine, answered %d for a valid token, want 200", got)
		}
		// Dozens of refusals, logged at most once a second.
		outage := time.Since(closed)
		b, _ := os.ReadFile(filepath.Join(c.dir, "logs", "authd-1.log"))
		lines := strings.Count(string(b), `"msg":"machine authentication refused: credentials not confirmed current"`)
		if lines == 0 || lines > int(outage/time.Second)+1 {
			t.Errorf("authd-1 logged %d refusal lines in %v, want between 1 and one a second", lines, outage.Round(time.Millisecond))
		}
		hole.set(false)
		took := c.waitStatus(t, 1, kept, 200, 10*time.Second)
		t.Logf("authd-1 accepted the valid token again %v after the path reopened", took.Round(time.Millisecond))
		if got, _ := c.bearer(1, later); got != 401 {
			t.Errorf("revoked token after recovery: authd-1 answered %d, want 401", got)
		}
	})
}
