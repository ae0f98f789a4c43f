package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
)

// mfaTOML makes /sales a two-factor path (the demo app at / stays one
// factor), sends members of "finance" to enrolment, and allows passkey
// sign-in without a password.
const mfaTOML = `
[throttle]
base_delay = "30s"

[mfa]
required_groups = ["finance"]
passwordless = true

[[rules]]
path = "/sales"
factor = "two"

[[rules]]
path = "/"
`

// newMFAStack is a stack with mfaTOML and the app under /sales/.
func newMFAStack(t *testing.T) *stack {
	requireE2E(t)
	return newStackOpts(t, "", stackOpts{authdTOML: mfaTOML, apps: []string{"sales"}})
}

// codes hands out TOTP codes from one secret, each from a time step not
// used before (a code works once), waiting for a new step only when the
// three steps authd accepts are used up.
type codes struct {
	secret string
	used   map[int64]bool
}

func (c *codes) fresh(t testing.TB) string {
	t.Helper()
	for {
		now := time.Now()
		step := now.Unix() / 30
		// authd accepts one step either side of now: this step, the next, and
		// the previous one while enough of this step is left for the request.
		cands := []int64{step, step + 1}
		if time.Until(time.Unix((step+1)*30, 0)) > 5*time.Second {
			cands = append(cands, step-1)
		}
		for _, st := range cands {
			if !c.used[st] {
				c.used[st] = true
				code, err := totp.GenerateCode(c.secret, time.Unix(st*30, 0))
				must(t, err)
				return code
			}
		}
		time.Sleep(time.Until(time.Unix((step+1)*30, 0)) + 50*time.Millisecond)
	}
}

// fill types text into the input matched by sel, replacing what is there.
func (b *browser) fill(sel, text string) {
	b.t.Helper()
	b.do(chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

func (b *browser) logout(site string) {
	b.t.Helper()
	b.navigate(site + "/authd/logout")
	b.submitAndWait(`form button[type="submit"]`)
	b.waitPath("/authd/login", 15*time.Second)
}

// enterCode submits a code on the step-up page.
func (b *browser) enterCode(code string) {
	b.t.Helper()
	b.waitPath("/authd/mfa/step-up", 15*time.Second)
	b.fill("#code", code)
	b.submitAndWait(`form[action$="mfa/step-up"] button[type="submit"]`)
}

// navHeaders are what a browser sends for a page navigation; fetchHeaders for fetch().
var (
	navHeaders   = map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}
	fetchHeaders = map[string]string{"Sec-Fetch-Mode": "cors", "Accept": "*/*"}
	wsHeaders    = map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
)

// TestMFATOTP: enrol an authenticator app from the account page (the secret
// read off the page, the code computed from it), sign out, sign in with
// password + code, reach a two-factor path; a reused code is refused; a
// recovery code works once. Through nginx, a password-only session gets the
// step-up page on the two-factor path (302 for pages, 401 for fetch and
// WebSocket) and 200 after step-up.
func TestMFATOTP(t *testing.T) {
	s := newMFAStack(t)
	site := s.origin()
	c := s.client()
	b := newBrowser(t, s)
	var gen codes
	var recovery []string
	var oneFactor string

	step(t, b, "a password-only session reaches the one-factor app; the two-factor path sends it to enrol", func(t *testing.T) {
		b.navigate(site + "/")
		b.login("ada", testPassword)
		b.waitPath("/", 15*time.Second)
		oneFactor = b.sessionCookie(site)
		if r := s.get(t, c, "/", oneFactor, navHeaders); r.StatusCode != 200 {
			t.Fatalf("one-factor path: got %d, want 200", r.StatusCode)
		}
		r := s.get(t, c, "/sales/", oneFactor, navHeaders)
		if r.StatusCode != 302 || r.Header.Get("Location") != "/authd/mfa/step-up?rd=%2Fsales%2F" {
			t.Fatalf("page on two-factor path: got %d Location %q, want 302 to the step-up page", r.StatusCode, r.Header.Get("Location"))
		}
		for name, h := range map[string]map[string]string{"fetch": fetchHeaders, "websocket": wsHeaders} {
			path := "/sales/"
			if name == "websocket" {
				path = "/sales/_stcore/stream"
			}
			if r := s.get(t, c, path, oneFactor, h); r.StatusCode != 401 {
				t.Errorf("%s on two-factor path: got %d, want 401", name, r.StatusCode)
			}
		}
		// The browser follows the 302 and, with no factor yet, lands on enrolment.
		b.navigate(site + "/sales/")
		b.waitPath("/authd/account/mfa", 15*time.Second)
	})

	step(t, b, "enrol an authenticator app with a code computed from the secret on the page", func(t *testing.T) {
		b.do(chromedp.Click(chromedp.CSS("#totp-setup")))
		b.waitPath("/authd/account/mfa/totp", 15*time.Second)
		b.screenshot("mfa-totp-enrol")
		secret, err := eval[string](b, `document.getElementById("totp-secret").innerText`)
		must(t, err)
		gen = codes{secret: strings.ReplaceAll(secret, " ", ""), used: map[int64]bool{}}
		// A real QR reader (zbarimg) scans the code authd drew: it must carry the same key.
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("figure.qr svg")))
		cancel()
		must(t, err)
		qr := filepath.Join(s.dir, "qr.png")
		must(t, os.WriteFile(qr, png, 0o644))
		out, err := exec.Command(lookTool(t, "ZBARIMG", "zbarimg", "/usr/bin/zbarimg"), "--raw", "-q", qr).Output()
		if err != nil {
			t.Fatalf("zbarimg could not read the QR code: %v", err)
		}
		u, err := url.Parse(strings.TrimSpace(string(out)))
		if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != gen.secret ||
			!strings.Contains(u.Path, "ada") || u.Query().Get("digits") != "6" || u.Query().Get("period") != "30" {
			t.Fatalf("QR code reads %q; want an otpauth://totp URI for ada with the key shown (%s)", out, gen.secret)
		}
		b.fill("#code", gen.fresh(t))
		b.submitAndWait(`form[action$="account/mfa/totp"] button[type="submit"]`)
		b.waitText("Save these codes", 10*time.Second)
		js, err := eval[string](b, `JSON.stringify([...document.querySelectorAll("#recovery-codes code")].map(e => e.innerText))`)
		must(t, err)
		must(t, json.Unmarshal([]byte(js), &recovery))
		if len(recovery) != 10 {
			t.Fatalf("recovery codes shown: got %d, want 10", len(recovery))
		}
		b.screenshot("mfa-recovery-codes")
		// Enrolment proved the factor: the rd it came with (/sales/) now opens.
		b.submitAndWait("#codes-done")
		b.waitPath("/sales/", 15*time.Second)
	})

	step(t, b, "the password-only cookie from before is worth nothing on the two-factor path", func(t *testing.T) {
		if r := s.get(t, c, "/sales/", oneFactor, fetchHeaders); r.StatusCode != 401 {
			t.Fatalf("old cookie: got %d, want 401", r.StatusCode)
		}
	})

	var lastCode string
	step(t, b, "sign out, sign in with password and TOTP, reach the two-factor path", func(t *testing.T) {
		b.logout(site)
		b.navigate(site + "/sales/")
		b.waitPath("/authd/login", 15*time.Second)
		b.login("ada", testPassword)
		b.waitPath("/authd/mfa/step-up", 15*time.Second)
		one := b.sessionCookie(site)
		if r := s.get(t, c, "/sales/", one, fetchHeaders); r.StatusCode != 401 {
			t.Fatalf("before step-up, fetch: got %d, want 401", r.StatusCode)
		}
		b.screenshot("mfa-step-up")
		lastCode = gen.fresh(t)
		b.enterCode(lastCode)
		b.waitPath("/sales/", 15*time.Second)
		two := b.sessionCookie(site)
		if two == one {
			t.Error("step-up kept the session cookie; want a new one")
		}
		for _, h := range []map[string]string{navHeaders, fetchHeaders} {
			if r := s.get(t, c, "/sales/", two, h); r.StatusCode != 200 {
				t.Errorf("after step-up: got %d, want 200", r.StatusCode)
			}
		}
		if r := s.get(t, c, "/sales/_stcore/stream", two, wsHeaders); r.StatusCode == 401 || r.StatusCode == 302 {
			t.Errorf("WebSocket after step-up: got %d, want it to reach the app", r.StatusCode)
		}
		if r := s.get(t, c, "/sales/", one, fetchHeaders); r.StatusCode != 401 {
			t.Errorf("the pre-step-up cookie after step-up: got %d, want 401", r.StatusCode)
		}
	})

	step(t, b, "a reused code is refused", func(t *testing.T) {
		b.logout(site)
		b.navigate(site + "/sales/")
		b.login("ada", testPassword)
		b.enterCode(lastCode)
		b.waitText("not valid, or was already used", 10*time.Second)
		if p := b.waitPath("/authd/mfa/step-up", 5*time.Second); p.Path != "/authd/mfa/step-up" {
			t.Fatalf("got %s", p)
		}
	})

	step(t, b, "a recovery code works once", func(t *testing.T) {
		b.enterCode(recovery[0])
		b.waitPath("/sales/", 15*time.Second)
		b.logout(site)
		b.navigate(site + "/sales/")
		b.login("ada", testPassword)
		b.enterCode(recovery[0])
		b.waitText("not valid, or was already used", 10*time.Second)
		b.enterCode(recovery[1])
		b.waitPath("/sales/", 15*time.Second)
	})
}

// TestMFAThrottleAndRequiredGroups: wrong codes count in the login
// throttle (after account_failures of them even the right code waits), and
// a member of a required group is sent to enrol before anything else.
func TestMFAThrottleAndRequiredGroups(t *testing.T) {
	s := newMFAStack(t)
	site := s.origin()
	s.authd(t, testPassword+"\n", []string{"user", "add"}, "-groups", "finance", "fin")
	b := newBrowser(t, s)
	var gen codes

	step(t, b, "required_groups: the first login goes to enrolment, even for the one-factor app", func(t *testing.T) {
		b.navigate(site + "/")
		b.login("fin", testPassword)
		b.waitPath("/authd/account/mfa", 15*time.Second)
		b.waitText("must use a second factor", 5*time.Second)
		b.navigate(site + "/")
		b.waitPath("/authd/account/mfa", 15*time.Second)
		b.screenshot("mfa-required-enrol")
		b.do(chromedp.Click(chromedp.CSS("#totp-setup")))
		b.waitPath("/authd/account/mfa/totp", 15*time.Second)
		secret, err := eval[string](b, `document.getElementById("totp-secret").innerText`)
		must(t, err)
		gen = codes{secret: strings.ReplaceAll(secret, " ", ""), used: map[int64]bool{}}
		b.fill("#code", gen.fresh(t))
		b.submitAndWait(`form[action$="account/mfa/totp"] button[type="submit"]`)
		b.submitAndWait("#codes-done")
		b.waitPath("/", 15*time.Second)
	})

	step(t, b, "wrong codes count in the login throttle", func(t *testing.T) {
		b.logout(site)
		b.navigate(site + "/")
		b.login("fin", testPassword)
		right := gen.fresh(t)
		for i := range 5 { // throttle.account_failures = 5 are free
			b.enterCode("000000")
			if !strings.Contains(b.text(), "not valid") {
				t.Fatalf("wrong code %d: page says %q", i+1, b.text())
			}
		}
		b.enterCode(right)
		b.waitText("Too many attempts", 10*time.Second)
		if p := b.waitPath("/authd/mfa/step-up", 5*time.Second); p == nil {
			t.Fatal("left the step-up page")
		}
	})
}

// TestMFAPasskey registers a passkey with the DevTools virtual
// authenticator, uses it as second factor and to sign in without a
// password, then removes it, which ends its use.
func TestMFAPasskey(t *testing.T) {
	s := newMFAStack(t)
	site := s.origin()
	b := newBrowser(t, s)
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		}}); err != nil {
		t.Fatal(err)
	}
	c := s.client()

	step(t, b, "register a passkey from the account page", func(t *testing.T) {
		b.navigate(site + "/authd/account/mfa")
		b.login("ada", testPassword)
		b.waitPath("/authd/account/mfa", 15*time.Second)
		b.fill("#passkey-name", "Test key")
		b.submitAndWait("#passkey-add")
		b.waitText("Save these codes", 15*time.Second)
		b.submitAndWait("#codes-done")
		b.waitPath("/authd/account/mfa", 15*time.Second)
		b.waitText("Test key", 5*time.Second)
		b.screenshot("mfa-passkey-registered")
		// The page fits a 375-pixel phone: nothing scrolls sideways.
		b.do(chromedp.EmulateViewport(375, 800))
		wide, err := eval[bool](b, `document.documentElement.scrollWidth > 375`)
		must(t, err)
		b.screenshot("mfa-account-phone")
		b.do(chromedp.EmulateReset())
		if wide {
			t.Error("the second factor page scrolls sideways at 375 pixels")
		}
	})

	step(t, b, "use it as the second factor", func(t *testing.T) {
		b.logout(site)
		b.navigate(site + "/sales/")
		b.login("ada", testPassword)
		b.waitPath("/authd/mfa/step-up", 15*time.Second)
		b.submitAndWait("#passkey-use")
		b.waitPath("/sales/", 15*time.Second)
		if r := s.get(t, c, "/sales/", b.sessionCookie(site), fetchHeaders); r.StatusCode != 200 {
			t.Fatalf("after passkey step-up: got %d, want 200", r.StatusCode)
		}
	})

	step(t, b, "sign in with the passkey alone (passwordless)", func(t *testing.T) {
		b.logout(site)
		b.navigate(site + "/authd/login?rd=" + url.QueryEscape("/sales/"))
		b.waitJS("passkey button", 10*time.Second, `!!document.getElementById("passkey-login")`)
		b.submitAndWait("#passkey-login")
		b.waitPath("/sales/", 15*time.Second)
		if r := s.get(t, c, "/sales/", b.sessionCookie(site), fetchHeaders); r.StatusCode != 200 {
			t.Fatalf("passwordless session on the two-factor path: got %d, want 200", r.StatusCode)
		}
	})

	step(t, b, "removing it ends its use", func(t *testing.T) {
		b.navigate(site + "/authd/account/mfa")
		b.waitText("Test key", 10*time.Second)
		b.submitAndWait(`form[action$="passkey/remove"] button[type="submit"]`)
		b.waitText("The passkey was removed.", 10*time.Second)
		b.logout(site)
		b.waitJS("passkey button", 10*time.Second, `!!document.getElementById("passkey-login")`)
		_, _ = eval[bool](b, "window.__e2eOldPage = true")
		b.do(chromedp.Click(chromedp.CSS("#passkey-login")))
		b.waitText("That passkey was not accepted.", 15*time.Second)
		b.waitPath("/authd/mfa/passkey/login/finish", 5*time.Second)
		if c := b.sessionCookie(site); c != "" {
			if r := s.get(t, s.client(), "/", c, fetchHeaders); r.StatusCode == 200 {
				t.Fatal("a removed passkey still signs in")
			}
		}
	})
}
