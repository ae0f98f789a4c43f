package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// phoneWidth is the narrowest phone the pages must fit (CSS pixels).
const phoneWidth = 375

// TestLoginPageLanguagesBrandingAndReasons: a phone-sized Chromium that
// asks for German, then Japanese, gets the branded login page in that
// language, and after an administrator ends its session (authd session
// revoke) or its password changes (authd user passwd), the app sends it
// back to the login form, which says why.
func TestLoginPageLanguagesBrandingAndReasons(t *testing.T) {
	requireE2E(t)
	logo := filepath.Join(t.TempDir(), "logo.svg")
	must(t, os.WriteFile(logo, []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48" viewBox="0 0 48 48">`+
		`<rect width="48" height="48" rx="10" fill="#0a7f3c"/><path d="M12 34 L24 12 L36 34 Z" fill="#fff"/></svg>`), 0o644))
	s := newStackOpts(t, "", stackOpts{authdTOML: fmt.Sprintf(`
[branding]
product_name = "Acme Analytics"
logo_file = %q
accent_color = "#0a7f3c"
footer_links = [{ text = "Datenschutz / Privacy", url = "https://example.com/privacy" }, { text = "Hilfe", url = "/help/" }]
`, logo)})
	b := newBrowser(t, s)
	site := s.origin()
	b.do(chromedp.EmulateViewport(phoneWidth, 800))

	fits := func(t *testing.T) {
		t.Helper()
		w, err := eval[float64](b, `document.documentElement.scrollWidth`)
		if err != nil || w > phoneWidth {
			t.Errorf("page is %v px wide (err %v), want at most %d: it does not fit the phone", w, err, phoneWidth)
		}
	}

	step(t, b, "German: the branded login page", func(t *testing.T) {
		b.setExtraHeaders(map[string]string{"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
		b.navigate(site + "/")
		b.waitPath("/authd/login", 15*time.Second)
		b.waitText("Benutzername", 10*time.Second)
		for _, want := range []string{"Acme Analytics", "Anmelden", "Passwort", "Angemeldet bleiben", "Datenschutz / Privacy"} {
			b.waitText(want, 5*time.Second)
		}
		lang, _ := eval[string](b, `document.documentElement.lang`)
		if lang != "de" {
			t.Errorf("html lang: got %q, want de", lang)
		}
		// The accent colour reached the button through the generated stylesheet.
		bg, _ := eval[string](b, `getComputedStyle(document.querySelector("button")).backgroundColor`)
		if bg != "rgb(10, 127, 60)" {
			t.Errorf("button colour: got %q, want the accent rgb(10, 127, 60)", bg)
		}
		logoOK, _ := eval[bool](b, `(() => { const i = document.querySelector("img.logo"); return !!i && i.complete && i.naturalWidth > 0 })()`)
		if !logoOK {
			t.Error("the logo did not load")
		}
		fits(t)
		b.screenshot("login-de-375")
	})

	step(t, b, "German: ended by an administrator", func(t *testing.T) {
		b.login("ada", testPassword)
		b.waitPath("/", 15*time.Second)
		b.waitText(greeting, 30*time.Second)
		s.authd(t, "", []string{"session", "revoke"}, "-user", "ada")
		b.navigate(site + "/")
		b.waitPath("/authd/login", 15*time.Second)
		b.waitText("Ihre Sitzung wurde von einem Administrator beendet.", 10*time.Second)
		fits(t)
		b.screenshot("login-de-revoked-375")
		// Shown once: the stale cookie is gone, a reload shows the plain form.
		b.navigate(site + "/authd/login")
		b.waitText("Benutzername", 10*time.Second)
		if got := b.text(); strings.Contains(got, "Administrator") {
			t.Errorf("the notice shows again after a reload:\n%s", got)
		}
	})

	const newPassword = "a brand new passphrase for ada"
	step(t, b, "Japanese: password changed", func(t *testing.T) {
		b.setExtraHeaders(map[string]string{"Accept-Language": "ja,en;q=0.5"})
		b.navigate(site + "/")
		b.waitPath("/authd/login", 15*time.Second)
		b.waitText("ユーザー名", 10*time.Second)
		b.login("ada", testPassword)
		b.waitPath("/", 15*time.Second)
		b.waitText(greeting, 30*time.Second)
		s.authd(t, newPassword+"\n", []string{"user", "passwd"}, "ada")
		b.navigate(site + "/")
		b.waitPath("/authd/login", 15*time.Second)
		b.waitText("パスワードが変更されました。新しいパスワードでサインインしてください。", 10*time.Second)
		lang, _ := eval[string](b, `document.documentElement.lang`)
		if lang != "ja" {
			t.Errorf("html lang: got %q, want ja", lang)
		}
		fits(t)
		b.screenshot("login-ja-password-changed-375")
	})

	step(t, b, "Japanese: wrong password, then the new one", func(t *testing.T) {
		b.login("ada", testPassword)
		b.waitText("ユーザー名またはパスワードが正しくありません。", 10*time.Second)
		fits(t)
		b.screenshot("login-ja-error-375")
		b.login("ada", newPassword)
		b.waitPath("/", 15*time.Second)
		b.waitText(greeting, 30*time.Second)
	})
	// AUTHD_SCREENSHOTS=tests/e2e/screenshots refreshes the README's copies.
	if dst := os.Getenv("AUTHD_SCREENSHOTS"); dst != "" {
		for _, n := range []string{"login-de-revoked-375", "login-ja-password-changed-375"} {
			if data, err := os.ReadFile(filepath.Join(b.out, n+".png")); err == nil {
				_ = os.WriteFile(filepath.Join(dst, n+".png"), data, 0o644)
			}
		}
	}
}
