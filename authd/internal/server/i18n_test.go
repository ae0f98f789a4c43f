package server

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func TestNegotiateLanguage(t *testing.T) {
	c := &catalog{langs: map[string]*lang{}}
	for _, code := range []string{"en", "de", "pt", "zh"} {
		c.langs[code] = &lang{Code: code}
	}
	for _, tc := range []struct{ header, want string }{
		{"", "en"},
		{"de", "de"},
		{"de-CH,de;q=0.9,en;q=0.8", "de"},
		{"fr-FR,fr;q=0.9,en;q=0.5", "en"},
		{"en;q=0.2,pt-BR;q=0.9", "pt"},
		{"zh-Hans-CN", "zh"},
		{"de;q=0,en", "en"},
		{"de;q=abc,pt", "pt"},
		{"*", "en"},
		{strings.Repeat("x,", 1000) + "de", "en"},
	} {
		t.Run(tc.header, func(t *testing.T) {
			if got := c.negotiate(tc.header).Code; got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLangFallsBackToEnglish(t *testing.T) {
	en := map[string]string{"a": "Hello %s", "b": "Bye"}
	l := &lang{Code: "de", msgs: map[string]string{"a": "Hallo %s"}, en: en}
	if got := l.T("a", "Ada"); got != "Hallo Ada" {
		t.Fatalf("got %q", got)
	}
	if got := l.T("b"); got != "Bye" {
		t.Fatalf("got %q, want the English text", got)
	}
	if got := l.T("missing"); got != "missing" {
		t.Fatalf("got %q, want the key", got)
	}
}

var tKeyRE = regexp.MustCompile(`\.T "([^"]+)"`)

// Every text a template asks for is in en.toml, and every other language
// has only keys English has, with the same placeholders.
func TestTranslationsCoverTemplates(t *testing.T) {
	c, err := loadCatalog(assets, "assets/i18n")
	if err != nil {
		t.Fatal(err)
	}
	en := c.langs["en"].msgs
	files, _ := fs.Glob(assets, "assets/*.html")
	for _, f := range files {
		data, _ := fs.ReadFile(assets, f)
		for _, m := range tKeyRE.FindAllStringSubmatch(string(data), -1) {
			if _, ok := en[m[1]]; !ok {
				t.Errorf("%s uses %q, which en.toml lacks", f, m[1])
			}
		}
	}
	for code, l := range c.langs {
		for k, v := range l.msgs {
			e, ok := en[k]
			if !ok {
				t.Errorf("%s.toml has %q, which en.toml lacks", code, k)
				continue
			}
			if strings.Count(v, "%") != strings.Count(e, "%") {
				t.Errorf("%s.toml %q: placeholders differ from English (%q vs %q)", code, k, v, e)
			}
		}
	}
}
