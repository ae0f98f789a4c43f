package e2e

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// What the streamlit_authd package shows (conf/clients/streamlit_authd/src/streamlit_authd/__init__.py).
const (
	signedOutNotice = "You are signed out."
	sayHello        = `//button[normalize-space(.)="Say hello"]`
)

// blockWhoami makes the browser fail every request to authd's whoami, which is all the session
// watch script nginx injects into Streamlit's page does; it returns how many it blocked.
func (b *browser) blockWhoami() *atomic.Int64 {
	b.t.Helper()
	var blocked atomic.Int64
	ctx := b.ctx
	must(b.t, chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			blocked.Add(1)
			go func() {
				_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: e.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
			}()
		}
	}))
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/authd/whoami*"}}}); err != nil {
		b.t.Fatal(err)
	}
	return &blocked
}

// clickHello clicks the demo app's button and waits for its answer.
func (b *browser) clickHello(n int) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.Search(sayHello)))
	b.waitText("Hello again, Ada Lovelace (#"+strconv.Itoa(n)+")", 15*time.Second)
}

// TestStreamlitEnforcesSessionEnd: with the injected page script blocked, an open Streamlit page
// learns of a revocation, a lock or an idle expiry from the app itself (streamlit_authd asks
// authd on every script run): the next widget interaction shows the signed-out notice instead of
// the app, within one second, without the page reloading.
func TestStreamlitEnforcesSessionEnd(t *testing.T) {
	requireE2E(t)
	const idle = 8 * time.Second
	s := newStackOpts(t, "", stackOpts{authdTOML: `
[session]
idle_timeout = "8s"
touch_interval = "1s"
`})
	b := newBrowser(t, s)
	blocked := b.blockWhoami()
	site := s.origin()

	for i, tc := range []struct {
		name string
		end  func(t *testing.T)
		// after restores the user for the next case.
		after func(t *testing.T)
	}{
		{"revoked with authd session revoke", func(t *testing.T) {
			s.authd(t, "", []string{"session", "revoke"}, "-user", "ada")
		}, nil},
		{"locked with authd user lock", func(t *testing.T) {
			s.authd(t, "", []string{"user", "lock"}, "ada")
		}, func(t *testing.T) {
			s.authd(t, "", []string{"user", "unlock"}, "ada")
		}},
		{"idle timeout", func(t *testing.T) {
			time.Sleep(idle + 1500*time.Millisecond)
		}, nil},
	} {
		step(t, b, tc.name, func(t *testing.T) {
			if i == 0 {
				b.navigate(site + "/")
				b.waitPath("/authd/login", 15*time.Second)
				b.login("ada", testPassword)
				b.waitPath("/", 15*time.Second)
				b.waitText(greeting, 30*time.Second)
			}
			b.clickHello(1)
			// Let the package's cached answer (at most one second) run out, so the time below is
			// the app's reaction to the session's end alone.
			time.Sleep(1100 * time.Millisecond)
			_, _ = eval[bool](b, "window.__e2eSamePage = true")

			tc.end(t)
			ended := time.Now()
			b.do(chromedp.Click(chromedp.Search(sayHello)))
			b.waitText(signedOutNotice, 10*time.Second)
			took := time.Since(ended)
			t.Logf("signed-out notice %v after the session ended", took.Round(10*time.Millisecond))
			b.screenshot("streamlit-signed-out-" + safeName(tc.name))
			if took > time.Second {
				t.Errorf("signed-out notice after %v, want within 1s", took)
			}
			b.waitJS("the app's output gone", 5*time.Second,
				`!document.body.innerText.includes("Hello again") && !document.body.innerText.includes("Hello, Ada")`)
			if same, err := eval[bool](b, "window.__e2eSamePage === true"); err != nil || !same {
				t.Errorf("the page was reloaded (err %v): the notice must come from the app, not the page script", err)
			}
			if n := blocked.Load(); n == 0 {
				t.Errorf("no whoami request of the page script was blocked: the test did not isolate the app")
			}
			if tc.after != nil {
				tc.after(t)
			}
			// The notice's link signs in again and comes back to this page. Streamlit renders
			// the link's HTML with a plugin it may still be loading when the notice appears.
			b.waitJS("the sign-in link", 10*time.Second, `!!document.querySelector('a[href*="/authd/login"]')`)
			href, err := eval[string](b, `(document.querySelector('a[href*="/authd/login"]') || {}).href || ""`)
			if err != nil || !strings.HasSuffix(href, "/authd/login?rd=%2F") {
				t.Fatalf("sign-in link: got %q (err %v), want …/authd/login?rd=%%2F", href, err)
			}
			b.do(chromedp.Click(chromedp.CSS(`a[href*="/authd/login"]`)))
			b.waitPath("/authd/login", 15*time.Second)
			b.login("ada", testPassword)
			b.waitPath("/", 15*time.Second)
			b.waitText(greeting, 30*time.Second)
		})
	}
}

// TestStreamlitTwoApps: two apps on one site under their own prefixes, each for its own group. A
// user in one group reaches that app, with st.user carrying authd's identity, and gets the 403
// page on the other.
func TestStreamlitTwoApps(t *testing.T) {
	requireE2E(t)
	s := newStackOpts(t, "", stackOpts{apps: []string{"sales", "ops"}, noRoot: true, authdTOML: `
[[rules]]
path = "/sales"
groups = ["sales"]

[[rules]]
path = "/ops"
groups = ["ops"]

[[rules]]
path = "/"
`})
	s.authd(t, testPassword+"\n", []string{"user", "add"}, "-groups", "sales", "-email", "sam@example.com", "-name", "Sam Seller", "sam")
	b := newBrowser(t, s)
	site := s.origin()

	step(t, b, "a sales user reaches /sales/, with st.user from authd", func(t *testing.T) {
		b.navigate(site + "/sales/")
		b.waitPath("/authd/login", 15*time.Second)
		b.login("sam", testPassword)
		b.waitPath("/sales/", 15*time.Second)
		b.waitText("Hello, Sam Seller!", 30*time.Second)
		b.waitText("App sales", 5*time.Second)
		for _, want := range []string{`"user": "sam"`, `"name": "Sam Seller"`, `"email": "sam@example.com"`, `"groups": "sales"`} {
			b.waitText(want, 10*time.Second)
		}
		b.screenshot("streamlit-sales-app")
	})

	step(t, b, "the same user gets the 403 page on /ops/", func(t *testing.T) {
		var status atomic.Int64
		must(t, chromedp.Listen(b.ctx, func(ev any) {
			if e, ok := ev.(*network.EventResponseReceived); ok && e.Type == network.ResourceTypeDocument && strings.HasSuffix(e.Response.URL, "/ops/") {
				status.Store(e.Response.Status)
			}
		}))
		b.navigate(site + "/ops/")
		b.waitText("403 Forbidden", 10*time.Second)
		if got := status.Load(); got != 403 {
			t.Errorf("/ops/ answered %d, want 403", got)
		}
		if strings.Contains(b.text(), "Hello") {
			t.Errorf("the ops app rendered for a sales user:\n%s", b.text())
		}
		b.screenshot("streamlit-ops-forbidden")

		c := s.client()
		cookie := b.sessionCookie(site)
		ws := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
			"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": site, "Sec-Fetch-Mode": "websocket"}
		for path, want := range map[string]int{"/ops/_stcore/stream": 403, "/sales/_stcore/stream": 101} {
			if r := s.get(t, c, path, cookie, ws); r.StatusCode != want {
				t.Errorf("WebSocket handshake %s: got %d, want %d", path, r.StatusCode, want)
			}
		}
	})
}
