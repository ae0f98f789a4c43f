package e2e

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestAdminStory is issue 11's story, in two headless Chromium browsers
// (two profiles, two cookie jars) through real nginx with the shipped
// snippets, authd and the Streamlit demo app:
//
//  1. the admin signs in on the login form and opens the console;
//  2. invites a user from the console and reads the link off the page;
//  3. the invitee opens the link in the other browser, picks a username
//     and a password and lands in the Streamlit app, which greets them;
//  4. the invitee changes their password on the account page;
//  5. the admin locks them; the invitee's open Streamlit page goes back
//     to the login form by itself, saying the account is locked;
//  6. the admin unlocks them and issues a reset link (re-entering their
//     password); the invitee sets a new password with it, signs in and
//     reaches the app;
//  7. the audit page lists every step, with the admin where one acted.
//
// Screenshots land in tests/out (story-*.png); AUTHD_SCREENSHOTS=dir
// copies the three committed under tests/e2e/screenshots there.
func TestAdminStory(t *testing.T) {
	requireE2E(t)
	const (
		adminPW = "grace admin passphrase 1"
		firstPW = "bea first passphrase"
		nextPW  = "bea second passphrase"
		resetPW = "bea third passphrase"
	)
	s := newStack(t, "")
	s.authd(t, adminPW+"\n", []string{"user", "add"}, "-groups", "admin", "-name", "Grace Hopper", "grace")
	time.Sleep(300 * time.Millisecond) // the CLI told the running authd to reload; let it settle
	site := s.origin()
	admin := newBrowser(t, s)
	bea := newBrowserProfile(t, s, "chrome-invitee")
	// story runs one step with both browsers failing into it.
	story := func(name string, f func(t *testing.T)) {
		t.Helper()
		ok := t.Run(name, func(t *testing.T) {
			pa, pb := admin.t, bea.t
			admin.t, bea.t = t, t
			defer func() { admin.t, bea.t = pa, pb }()
			f(t)
		})
		if !ok {
			t.FailNow()
		}
	}
	linkRE := func(kind string) *regexp.Regexp {
		return regexp.MustCompile(`^` + regexp.QuoteMeta(site) + `/authd/` + kind + `/[A-Za-z0-9_-]{43}$`)
	}
	// shownLink reads the link the console shows once, checks its form and
	// blanks it on the page (the screenshots are committed).
	shownLink := func(t *testing.T, b *browser, kind string) string {
		t.Helper()
		b.waitJS("the link shown once", 10*time.Second, `!!document.getElementById("secret")`)
		link, err := eval[string](b, `document.getElementById("secret").value`)
		must(t, err)
		if !linkRE(kind).MatchString(link) {
			t.Fatalf("the console shows %q, want a %s link to %s", link, kind, site)
		}
		_, _ = eval[bool](b, `(document.getElementById("secret").value = "`+site+`/authd/`+kind+`/…", true)`)
		return link
	}

	// usedOnce checks that a link, used, is not valid any more.
	usedOnce := func(t *testing.T, link string) {
		t.Helper()
		r := s.get(t, s.client(), strings.TrimPrefix(link, site), "", nil)
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), "This link is not valid") {
			t.Errorf("the used link %s answered %d:\n%s", strings.TrimPrefix(link, site)[:14], r.StatusCode, body)
		}
	}

	story("1 the admin signs in and opens the console", func(t *testing.T) {
		admin.navigate(site + "/authd/admin/")
		u := admin.waitPath("/authd/login", 15*time.Second)
		if rd := u.Query().Get("rd"); rd != "/authd/admin/" {
			t.Errorf("the login form returns to %q, want /authd/admin/", rd)
		}
		admin.login("grace", adminPW)
		admin.waitPath("/authd/admin/", 15*time.Second)
		admin.waitText("Ada Lovelace", 10*time.Second)
		admin.waitText("Grace Hopper", 5*time.Second)
		// The bar's title and its links sit on one line.
		off, err := eval[float64](admin, `(() => { const c = e => { const r = document.querySelector(e).getBoundingClientRect(); return r.top + r.height / 2 }; return Math.abs(c(".bar .brand") - c(".bar nav")) })()`)
		if err != nil || off > 2 {
			t.Errorf("the console's bar: title and links %vpx apart vertically (%v)", off, err)
		}
	})

	var invite string
	story("2 the admin invites a user from the console", func(t *testing.T) {
		admin.do(chromedp.Click(chromedp.CSS(`a[href="/authd/admin/new"]`)))
		admin.waitPath("/authd/admin/new", 10*time.Second)
		admin.waitText("Or invite by link", 5*time.Second)
		admin.fillFields(`#inv-email`, "bea@example.com", `#inv-groups`, "staff")
		admin.submitAndWait(`form[aria-labelledby="invite"] button[type="submit"]`)
		admin.waitText("Shown once", 10*time.Second)
		invite = shownLink(t, admin, "invite")
		admin.screenshot("story-invite-link")
	})

	story("3 the invitee accepts the invite and lands in the app", func(t *testing.T) {
		bea.navigate(invite)
		bea.waitText("Create your account", 15*time.Second)
		bea.waitText("bea@example.com", 5*time.Second)
		bea.fillFields(`#username`, "bea", `#password`, firstPW, `#password2`, firstPW)
		bea.submitAndWait(`form button[type="submit"]`)
		bea.waitPath("/", 15*time.Second)
		bea.waitText("Hello, bea!", 30*time.Second)
		bea.waitText("staff", 10*time.Second)
		bea.screenshot("story-app")
		usedOnce(t, invite)
	})

	story("4 the invitee changes their password on the account page", func(t *testing.T) {
		bea.navigate(site + "/authd/account")
		bea.waitText("Change password", 15*time.Second)
		bea.fillFields(`#current`, firstPW, `#password`, nextPW, `#password2`, nextPW)
		bea.submitAndWait(`form[action="/authd/account/password"] button[type="submit"]`)
		bea.waitText("Your password was changed", 15*time.Second)
		// Back to the app, which stays open through the next step.
		bea.navigate(site + "/")
		bea.waitText("Hello, bea!", 30*time.Second)
	})

	story("5 the admin locks the invitee; their open app page returns to the login form saying why", func(t *testing.T) {
		admin.navigate(site + "/authd/admin/")
		admin.waitText("bea@example.com", 10*time.Second)
		admin.do(chromedp.Click(chromedp.CSS(`a[href*="admin/user?u=bea"]`)))
		admin.waitPath("/authd/admin/user", 10*time.Second)
		admin.waitText("Sessions", 5*time.Second)
		admin.submitAndWait(`form input[value=lock] ~ button`)
		admin.waitText("User locked", 10*time.Second)
		locked := time.Now()

		// Nobody touches bea's page: the page script that nginx adds to
		// Streamlit's page notices (it asks whoami every 5 s) and reloads;
		// nginx sends the reload to the login form.
		u := bea.waitPath("/authd/login", 20*time.Second)
		t.Logf("the open app page showed the login form %v after the lock", time.Since(locked).Round(100*time.Millisecond))
		if rd := u.Query().Get("rd"); rd != "/" {
			t.Errorf("the login form returns to %q, want /", rd)
		}
		bea.waitJS("login form", 10*time.Second, `!!document.querySelector('input[autocomplete="current-password"]')`)
		bea.waitText("Your account has been locked", 5*time.Second)
		bea.screenshot("story-locked")
		bea.do(chromedp.EmulateViewport(375, 800))
		bea.screenshot("story-locked-375")
		if wide, err := eval[bool](bea, "document.documentElement.scrollWidth > 375"); err != nil || wide {
			t.Errorf("the login page is wider than a 375px phone (%v)", err)
		}
		bea.do(chromedp.EmulateViewport(1280, 1100))
		// Locked is locked: the new password does not sign in.
		bea.login("bea", nextPW)
		bea.waitText("Incorrect username or password", 15*time.Second)
	})

	var reset string
	story("6 the admin unlocks and sends a reset link; the invitee uses it and reaches the app", func(t *testing.T) {
		admin.submitAndWait(`form input[value=unlock] ~ button`)
		admin.waitText("User unlocked", 10*time.Second)
		admin.submitAndWait(`form input[value=reset] ~ button`)
		admin.waitText("needs your password again", 10*time.Second)
		admin.fillFields(`#reauth_password`, adminPW)
		admin.submitAndWait(`form button[type="submit"]`)
		admin.waitText("Shown once", 10*time.Second)
		reset = shownLink(t, admin, "reset")

		bea.navigate(reset)
		bea.waitText("Choose a new password for the account bea", 15*time.Second)
		bea.fillFields(`#password`, resetPW, `#password2`, resetPW)
		bea.submitAndWait(`form button[type="submit"]`)
		bea.waitText("Your password was changed", 15*time.Second)
		usedOnce(t, reset)
		bea.navigate(site + "/")
		bea.waitPath("/authd/login", 15*time.Second)
		bea.login("bea", nextPW)
		bea.waitText("Incorrect username or password", 15*time.Second)
		bea.login("bea", resetPW)
		bea.waitPath("/", 15*time.Second)
		bea.waitText("Hello, bea!", 30*time.Second)
	})

	story("7 the audit page lists every step with the acting admin", func(t *testing.T) {
		admin.navigate(site + "/authd/admin/audit")
		admin.waitText("reset_used", 10*time.Second)
		text := admin.text()
		// Rows are "time event by target ip source detail", tab-separated.
		for _, want := range []string{
			"\tlogin_succeeded\tgrace\t",
			"\tinvite_created\tgrace\t",
			"\tinvite_accepted\tbea\t",
			"\tlogin_succeeded\tbea\t",
			"\tpassword_changed\tbea\tbea\t",
			"\tuser_locked\tgrace\tbea\t",
			"\tuser_unlocked\tgrace\tbea\t",
			"\treauth_succeeded\tgrace\t",
			"\treset_issued\tgrace\tbea\t",
			"\treset_used\t",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("the audit page lacks %q", want)
			}
		}
		if t.Failed() {
			t.Logf("audit page:\n%s", text)
		}
		admin.screenshot("story-audit")
	})

	if dst := os.Getenv("AUTHD_SCREENSHOTS"); dst != "" {
		for _, n := range []string{"story-invite-link", "story-locked-375", "story-audit"} {
			if data, err := os.ReadFile(filepath.Join(admin.out, n+".png")); err == nil {
				_ = os.WriteFile(filepath.Join(dst, n+".png"), data, 0o644)
			}
		}
	}
}
