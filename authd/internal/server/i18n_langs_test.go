package server

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/session"
)

// languages are the languages every page of authd's own must speak.
var languages = []string{"de", "en", "es", "fr", "ja", "pt", "zh"}

var verbRE = regexp.MustCompile(`%[-+# 0]*[0-9]*(?:\.[0-9]+)?[a-zA-Z%]`)

// TestEveryLanguageHasEveryKey: each translation file has every key of
// en.toml, with the same placeholders in the same order, and nothing more.
func TestEveryLanguageHasEveryKey(t *testing.T) {
	c, err := loadCatalog(assets, "assets/i18n")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.codes(); !slices.Equal(got, languages) {
		t.Fatalf("languages: got %v, want %v", got, languages)
	}
	en := c.langs["en"].msgs
	for _, code := range languages {
		l := c.langs[code]
		for k, e := range en {
			v, ok := l.msgs[k]
			switch {
			case !ok:
				t.Errorf("%s.toml lacks %q (English: %q)", code, k, e)
			case strings.TrimSpace(v) == "":
				t.Errorf("%s.toml %q is empty", code, k)
			case !slices.Equal(verbRE.FindAllString(v, -1), verbRE.FindAllString(e, -1)):
				t.Errorf("%s.toml %q: placeholders %q, English has %q", code, k, verbRE.FindAllString(v, -1), verbRE.FindAllString(e, -1))
			}
		}
		for k := range l.msgs {
			if _, ok := en[k]; !ok {
				t.Errorf("%s.toml has %q, which en.toml lacks", code, k)
			}
		}
	}
}

// TestGoKeysExist: the keys handlers pass to the login page (errors,
// notices) are in en.toml; the template test cannot see them.
func TestGoKeysExist(t *testing.T) {
	c, err := loadCatalog(assets, "assets/i18n")
	if err != nil {
		t.Fatal(err)
	}
	for why := 0; why < 256; why++ {
		k := endedNotice(sessionReason(why))
		if _, ok := c.langs["en"].msgs[k]; k != "" && !ok {
			t.Errorf("reason %d: notice key %q not in en.toml", why, k)
		}
	}
	for _, k := range []string{"login.error.expired", "login.error.throttled", "login.error.invalid", "login.error.busy", msgDirectoryDown, msgNotAllowed} {
		if _, ok := c.langs["en"].msgs[k]; !ok {
			t.Errorf("%q not in en.toml", k)
		}
	}
}

// TestLoginPageLanguages: the login page answers in the browser's language,
// including its error messages, and falls back to English.
func TestLoginPageLanguages(t *testing.T) {
	h := newHarness(t, nil, nil)
	for _, tc := range []struct {
		accept, lang, heading, label, invalid string
	}{
		{"", "en", "Sign in", "Username", "Incorrect username or password."},
		{"de-DE,de;q=0.9,en;q=0.8", "de", "Anmelden", "Benutzername", "Benutzername oder Passwort ist falsch."},
		{"fr-CA", "fr", "Connexion", "Nom d’utilisateur", "Nom d’utilisateur ou mot de passe incorrect."},
		{"es-419,es;q=0.9", "es", "Iniciar sesión", "Nombre de usuario", "Nombre de usuario o contraseña incorrectos."},
		{"pt-BR", "pt", "Entrar", "Nome de usuário", "Nome de usuário ou senha incorretos."},
		{"zh-CN,zh;q=0.9", "zh", "登录", "用户名", "用户名或密码不正确。"},
		{"ja", "ja", "サインイン", "ユーザー名", "ユーザー名またはパスワードが正しくありません。"},
		{"ko-KR,ko;q=0.9", "en", "Sign in", "Username", "Incorrect username or password."},
		{"en;q=0.5,ja;q=0.8", "ja", "サインイン", "ユーザー名", "ユーザー名またはパスワードが正しくありません。"},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			w := h.do(req{target: "/authd/login", headers: map[string]string{"Accept-Language": tc.accept}})
			body := w.Body.String()
			for _, want := range []string{`<html lang="` + tc.lang + `">`, "<h1>" + tc.heading + "</h1>", `<label for="username">` + tc.label + "</label>"} {
				if !strings.Contains(body, want) {
					t.Errorf("form lacks %s", want)
				}
			}
			w = h.postLogin("alice", "wrong", "/", "203.0.113.50", map[string]string{"Accept-Language": tc.accept})
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), tc.invalid) {
				t.Errorf("failed login: got %d without %q", w.Code, tc.invalid)
			}
		})
	}
}

// TestLogoutPageLanguage: the logout page too, with the user's name in
// the sentence (escaped).
func TestLogoutPageLanguage(t *testing.T) {
	h := newHarness(t, nil, nil)
	cookie := h.login("alice")
	w := h.do(req{target: "/authd/logout", headers: map[string]string{"Cookie": cookie, "Accept-Language": "ja"}})
	body := w.Body.String()
	for _, want := range []string{`<html lang="ja">`, "<h1>サインアウト</h1>", "Alice Liddell としてサインインしています。"} {
		if !strings.Contains(body, want) {
			t.Errorf("logout page lacks %s\n%s", want, body)
		}
	}
}

// TestReasonNoticeTranslated: the reason a session ended is shown in the
// browser's language.
func TestReasonNoticeTranslated(t *testing.T) {
	h := newHarness(t, nil, nil)
	cookie := h.login("bob")
	h.clock.add(31 * time.Minute)
	w := h.do(req{target: "/authd/login", headers: map[string]string{"Cookie": cookie, "Accept-Language": "de"}})
	if !strings.Contains(w.Body.String(), "Ihre Sitzung ist abgelaufen.") {
		t.Fatalf("German notice missing:\n%s", w.Body)
	}
}

func sessionReason(i int) session.Reason { return session.Reason(i) }
