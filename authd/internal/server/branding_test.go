package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testSVG = `<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40" fill="#0a7"/></svg>`

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBranding(t *testing.T) {
	logo := writeFile(t, "logo.svg", testSVG)
	h := newHarness(t, nil, func(o *Options) {
		o.Branding = Branding{ProductName: "Acme <Analytics>", LogoFile: logo, AccentColor: "#FFCC00",
			FooterLinks: []Link{{Text: "Privacy & terms", URL: "https://example.com/privacy?a=1&b=2"}, {Text: "Help", URL: "/help/"}}}
	})
	w := h.do(req{target: "/authd/login"})
	body := w.Body.String()
	for _, want := range []string{
		`<title>Sign in · Acme &lt;Analytics&gt;</title>`,
		`<link rel="stylesheet" href="/authd/static/brand.css">`,
		`<img class="logo" src="/authd/static/logo" alt="Acme &lt;Analytics&gt;">`,
		`<p class="product">Acme &lt;Analytics&gt;</p>`,
		`<a href="https://example.com/privacy?a=1&amp;b=2">Privacy &amp; terms</a>`,
		`<a href="/help/">Help</a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %s\n%s", want, body)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "style-src 'self'") {
		t.Errorf("login page CSP changed by branding: %s", csp)
	}

	w = h.do(req{target: "/authd/static/brand.css"})
	css := w.Body.String()
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/css; charset=utf-8" ||
		!strings.Contains(css, "--accent: #ffcc00; --on-accent: #000;") || !strings.Contains(css, "prefers-color-scheme: dark") {
		t.Errorf("brand.css: got %d %q %s", w.Code, w.Header().Get("Content-Type"), css)
	}

	w = h.do(req{target: "/authd/static/logo"})
	if w.Code != 200 || w.Header().Get("Content-Type") != "image/svg+xml" || w.Body.String() != testSVG {
		t.Errorf("logo: got %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("SVG logo served without a sandboxing CSP: %q", csp)
	}
	if w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("logo without nosniff")
	}

	// The built-in stylesheet is still there.
	if w := h.do(req{target: "/authd/static/style.css"}); w.Code != 200 {
		t.Errorf("style.css: got %d", w.Code)
	}
}

func TestNoBrandingNoBrandFiles(t *testing.T) {
	h := newHarness(t, nil, nil)
	body := h.do(req{target: "/authd/login"}).Body.String()
	if strings.Contains(body, "brand.css") || strings.Contains(body, `class="logo"`) || strings.Contains(body, `class="footer"`) {
		t.Errorf("plain login page shows branding:\n%s", body)
	}
	for _, p := range []string{"/authd/static/brand.css", "/authd/static/logo"} {
		if w := h.do(req{target: p}); w.Code != 404 {
			t.Errorf("%s without branding: got %d, want 404", p, w.Code)
		}
	}
}

func TestAccentTextContrast(t *testing.T) {
	for _, tc := range []struct{ accent, on string }{
		{"#2458d6", "#fff"}, {"#000000", "#fff"}, {"#ffffff", "#000"}, {"#ffcc00", "#000"}, {"#0a7f3c", "#fff"},
	} {
		css, err := accentCSS(tc.accent)
		if err != nil || !strings.Contains(string(css), "--on-accent: "+tc.on+";") {
			t.Errorf("%s: got %s %v, want text %s", tc.accent, css, err, tc.on)
		}
	}
}

func TestReadLogo(t *testing.T) {
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
	for _, tc := range []struct {
		name, data, want string
	}{
		{"png", png, "image/png"},
		{"jpeg", "\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"},
		{"svg", testSVG, "image/svg+xml"},
		{"svg with bom and comment", "\xef\xbb\xbf<!-- logo -->\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>", "image/svg+xml"},
		{"html", "<html><script>alert(1)</script></html>", ""},
		{"gif", "GIF89a....", ""},
		{"xml that is not svg", "<?xml version=\"1.0\"?><html/>", ""},
		{"too large", png + strings.Repeat("x", MaxLogoBytes), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ct, err := ReadLogo(writeFile(t, "logo", tc.data))
			if ct != tc.want || (tc.want == "") != (err != nil) {
				t.Fatalf("got %q, %v; want %q", ct, err, tc.want)
			}
		})
	}
	if _, _, err := ReadLogo(filepath.Join(t.TempDir(), "missing.png")); err == nil {
		t.Error("missing file: got no error")
	}
}

// TestBadLogoRefusedAtStartAndReload: a logo that cannot be used stops New
// and is refused by SetOptions, which keeps the running look.
func TestBadLogoRefusedAtStartAndReload(t *testing.T) {
	bad := writeFile(t, "logo.gif", "GIF89a")
	o := testOptions()
	o.Branding.LogoFile = bad
	if _, err := newSettings(o, nil); err == nil || !strings.Contains(err.Error(), "branding.logo_file") {
		t.Fatalf("newSettings with a GIF logo: got %v, want a branding.logo_file error", err)
	}
	h := newHarness(t, nil, nil)
	if err := h.srv.SetOptions(o); err == nil {
		t.Fatal("SetOptions with a GIF logo: got nil, want an error")
	}
	if w := h.do(req{target: "/authd/login"}); w.Code != 200 {
		t.Fatalf("login after a refused reload: got %d", w.Code)
	}
}
