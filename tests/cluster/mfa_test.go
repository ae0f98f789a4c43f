package cluster

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

var (
	secretField = regexp.MustCompile(`name="secret" value="([^"]+)"`)
	sigField    = regexp.MustCompile(`name="sig" value="([^"]+)"`)
)

// TestMFAReplayAcrossNodes: two authd sharing one Redis. A TOTP code
// accepted by one node is refused by the other (the replay record is in
// Redis), and a factor enrolled through one node works on the other.
func TestMFAReplayAcrossNodes(t *testing.T) {
	requireCluster(t)
	c := newClusterDir(t, []string{"authd-0", "authd-1", "redis"}, []string{"authd-0", "authd-1", "redis"})
	for i := range 2 {
		host := fmt.Sprintf("127.0.0.%d", 11+i)
		c.authdAddrs[i] = net.JoinHostPort(host, strconv.Itoa(freePort(t, host)))
	}
	c.redisPort = freePort(t, "127.0.0.1")
	c.httpsPort = freePort(t, "127.0.0.1")
	c.startRedis()
	for i := range 2 {
		c.writeAuthdConf(i)
	}
	c.cli(0, password+"\n", "user", "add", "ada")
	for i := range 2 {
		c.startAuthd(i)
	}
	node := func(i int) string { return "http://" + c.authdAddrs[i] }
	hc := c.client()

	// page GETs a page of node i with cookie and returns its body.
	page := func(i int, path, cookie string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", node(i)+path, nil)
		req.Header.Set("Cookie", cookie)
		resp, err := hc.Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	post := func(i int, path, cookie string, form url.Values) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", node(i)+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", c.origin())
		req.Header.Set("Cookie", cookie)
		resp, err := hc.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp
	}
	field := func(re *regexp.Regexp, body string) string {
		t.Helper()
		m := re.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no %s in page:\n%.600s", re, body)
		}
		return m[1]
	}
	used := map[int64]bool{}
	// fresh returns a code of a time step not used before: authd accepts
	// one step either side of now, so three are at hand before waiting.
	fresh := func(secret string) string {
		for {
			now := time.Now()
			step := now.Unix() / 30
			cands := []int64{step, step + 1}
			if time.Until(time.Unix((step+1)*30, 0)) > 5*time.Second {
				cands = append(cands, step-1)
			}
			for _, s := range cands {
				if !used[s] {
					used[s] = true
					code, err := totp.GenerateCode(secret, time.Unix(s*30, 0))
					must(t, err)
					return code
				}
			}
			time.Sleep(time.Until(time.Unix((step+1)*30, 0)) + 50*time.Millisecond)
		}
	}
	stepUp := func(i int, cookie, code string) int {
		t.Helper()
		_, body := page(i, "/authd/mfa/step-up?rd=%2F", cookie)
		return post(i, "/authd/mfa/step-up", cookie, url.Values{"csrf": {field(csrfField, body)}, "rd": {"/"}, "code": {code}}).StatusCode
	}

	// Enrol through node 0.
	one, _ := c.login(node(0), "ada", password)
	_, body := page(0, "/authd/account/mfa/totp", one)
	secret := field(secretField, body)
	resp := post(0, "/authd/account/mfa/totp", one, url.Values{"csrf": {field(csrfField, body)}, "secret": {secret},
		"sig": {field(sigField, body)}, "code": {fresh(secret)}})
	if resp.StatusCode != 200 {
		t.Fatalf("enrolment on node 0: got %d, want 200 (the recovery codes page)", resp.StatusCode)
	}

	// A fresh code is accepted by node 0 ...
	code := fresh(secret)
	a, r := c.login(node(0), "ada", password)
	if loc := r.Header.Get("Location"); !strings.HasPrefix(loc, "/authd/mfa/step-up") {
		t.Fatalf("login of an enrolled user on node 0: Location %q, want the step-up page", loc)
	}
	if got := stepUp(0, a, code); got != http.StatusSeeOther {
		t.Fatalf("code on node 0: got %d, want 303", got)
	}
	// ... and then refused by node 1, which enrolled nothing itself.
	b, _ := c.login(node(1), "ada", password)
	if got := stepUp(1, b, code); got != http.StatusUnauthorized {
		t.Fatalf("the same code on node 1: got %d, want 401 (replayed)", got)
	}
	if got := stepUp(1, b, fresh(secret)); got != http.StatusSeeOther {
		t.Fatalf("a fresh code on node 1: got %d, want 303", got)
	}
}
