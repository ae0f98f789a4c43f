package security

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// liveDirect asks authd's /session/live (what the Streamlit package asks) directly, from the given
// loopback source address, with a Cookie header and any extra header lines.
func (s *stack) liveDirect(t testing.TB, from, cookie string, extra ...string) (int, string) {
	t.Helper()
	d := &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	req, err := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/session/live", s.authdPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", cookie)
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("direct /session/live: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("/session/live from %s: Cache-Control %q, want no-store", from, res.Header.Get("Cache-Control"))
	}
	if sc := res.Header.Values("Set-Cookie"); len(sc) > 0 {
		t.Errorf("/session/live from %s set cookies: %v", from, sc)
	}
	return res.StatusCode, string(b)
}

// TestLiveCheckOnlyForTrustedApps: the endpoint that turns a browser's cookie into an identity for
// a Streamlit app answers trusted peers (trusted_proxies, here 127.0.0.1 only) asking directly;
// a peer outside trusted_proxies, or a request relayed by a proxy, is refused; and the revocation
// an operator makes with the CLI shows there at once.
func TestLiveCheckOnlyForTrustedApps(t *testing.T) {
	s := newStack(t, stackOptions{})
	ada := session(s.login(t, "ada", adaPassword))

	code, body := s.liveDirect(t, "127.0.0.1", ada)
	if code != 200 || !strings.Contains(body, `"user":"ada"`) || !strings.Contains(body, `"live":true`) {
		t.Fatalf("trusted app: got %d %s, want 200 with ada", code, body)
	}
	for _, tc := range []struct {
		name, from string
		extra      []string
	}{
		{"peer outside trusted_proxies", "127.0.0.5", nil},
		{"relayed by a proxy", "127.0.0.1", []string{"X-Forwarded-For", "203.0.113.9"}},
		{"relayed by a proxy, X-Real-IP", "127.0.0.1", []string{"X-Real-IP", "203.0.113.9"}},
	} {
		if code, body := s.liveDirect(t, tc.from, ada, tc.extra...); code != 403 || strings.Contains(body, "ada") {
			t.Errorf("%s: got %d %q, want 403 without the identity", tc.name, code, body)
		}
	}

	s.mustCLI(t, "", "session", "revoke", "-user", "ada")
	if code, body := s.liveDirect(t, "127.0.0.1", ada); code != 401 || strings.Contains(body, "ada") {
		t.Errorf("after authd session revoke: got %d %s, want 401", code, body)
	}
}

// TestLiveCheckNotReachableThroughNginx: a browser cannot reach /session/live through the shipped
// snippets under any spelling: it lies outside authd's public prefix, so nginx sends it to the app
// (or denies it), never to authd.
func TestLiveCheckNotReachableThroughNginx(t *testing.T) {
	s := sharedStack(t)
	ada := session(s.login(t, "ada", adaPassword))
	for _, target := range []string{
		"/session/live", "/session/live?active=1", "/authd/session/live", "/authd/../session/live",
		"/authd/%2e%2e/session/live", "/authd/%2E%2E%2Fsession/live", "/_authd/verify/../../session/live",
		"//session/live", "/authd/..%2fsession/live",
	} {
		r, err := s.tryRaw("", "GET "+target+" HTTP/1.1\r\nHost: localhost\r\nCookie: "+ada+"\r\nConnection: close\r\n\r\n")
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if strings.Contains(r.Body, `"live"`) {
			t.Errorf("%s: a browser got authd's session answer: %d %s", target, r.Status, r.Body)
		}
	}
}
