package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// browser is one headless Chromium tab with the WebSocket handshakes it has seen.
type browser struct {
	t   testing.TB
	ctx context.Context
	out string // where screenshots go

	mu sync.Mutex
	ws []wsHandshake
}

type wsHandshake struct {
	url    string
	status int64
}

func newBrowser(t *testing.T, s *stack) *browser {
	t.Helper()
	chrome := lookTool(t, "CHROMIUM", "chromium", "/usr/bin/chromium", "chromium-browser", "google-chrome")
	// A profile of its own, so a test can run two browsers (two people) at once.
	profile, err := os.MkdirTemp(s.dir, "chrome")
	must(t, err)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.IgnoreCertErrors,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 1100),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx)
		cancel()
		acancel()
	})
	b := &browser{t: t, ctx: ctx, out: filepath.Join(s.root, "tests", "out")}
	must(t, os.MkdirAll(b.out, 0o755))

	urls := map[network.RequestID]string{}
	must(t, chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventWebSocketCreated:
			b.mu.Lock()
			urls[e.RequestID] = e.URL
			b.mu.Unlock()
		case *network.EventWebSocketHandshakeResponseReceived:
			b.mu.Lock()
			b.ws = append(b.ws, wsHandshake{url: urls[e.RequestID], status: e.Response.Status})
			b.mu.Unlock()
		}
	}))
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// handshakes returns the WebSocket handshakes seen so far.
func (b *browser) handshakes() []wsHandshake {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]wsHandshake(nil), b.ws...)
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v (at %s)", err, b.location())
	}
}

func (b *browser) navigate(u string) {
	b.t.Helper()
	b.do(chromedp.Navigate(u))
}

func (b *browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	return loc
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, js string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js))
}

// waitJS waits until the expression is true; it survives navigations.
func (b *browser) waitJS(what string, timeout time.Duration, js string) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := eval[bool](b, js)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.screenshot("failure-" + safeName(b.t.Name()))
			text, _ := eval[string](b, "document.body ? document.body.innerText : ''")
			b.t.Fatalf("waited %v for %s; at %s (last error %v); page text:\n%s", timeout, what, b.location(), err, text)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// waitText waits until the page's visible text contains s.
func (b *browser) waitText(s string, timeout time.Duration) {
	b.t.Helper()
	q, _ := json.Marshal(s)
	b.waitJS("text "+string(q), timeout, "!!document.body && document.body.innerText.includes("+string(q)+")")
}

// waitPath waits until the page's path is p.
func (b *browser) waitPath(p string, timeout time.Duration) *url.URL {
	b.t.Helper()
	q, _ := json.Marshal(p)
	b.waitJS("path "+p, timeout, "location.pathname === "+string(q)+" && document.readyState !== 'loading'")
	u, err := url.Parse(b.location())
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

func (b *browser) text() string {
	b.t.Helper()
	s, err := eval[string](b, "document.body ? document.body.innerText : ''")
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// screenshot saves the viewport as tests/out/<name>.png.
func (b *browser) screenshot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.out, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", path)
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// login fills the login form the browser is on, submits it, and waits for the next page.
func (b *browser) login(user, password string) {
	b.t.Helper()
	b.waitJS("login form", 15*time.Second, `document.readyState === "complete" && !!document.querySelector('input[autocomplete="current-password"]')`)
	b.do(
		chromedp.Clear(chromedp.CSS(`input[autocomplete="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[autocomplete="username"]`), user),
		chromedp.Clear(chromedp.CSS(`input[autocomplete="current-password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[autocomplete="current-password"]`), password),
	)
	b.submitAndWait(`form button[type="submit"]`)
}

// submitAndWait clicks the button and waits until a new document has replaced this one.
func (b *browser) submitAndWait(button string) {
	b.t.Helper()
	_, _ = eval[bool](b, "window.__e2eOldPage = true")
	b.do(chromedp.Click(chromedp.CSS(button)))
	b.waitJS("the next page", 15*time.Second, `!window.__e2eOldPage && document.readyState !== "loading"`)
}

// sessionCookie returns the authd session cookie the browser holds for the site ("" if none).
func (b *browser) sessionCookie(origin string) string {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{origin + "/"}})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == sessionCookieName {
			return c.Value
		}
	}
	return ""
}

// setExtraHeaders makes the browser send these headers with every request, WebSocket
// handshakes included; nil clears them.
func (b *browser) setExtraHeaders(h map[string]string) {
	b.t.Helper()
	hs := network.Headers{}
	for k, v := range h {
		hs[k] = v
	}
	if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: hs}); err != nil {
		b.t.Fatal(err)
	}
}
