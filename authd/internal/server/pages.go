package server

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/julienschmidt/httprouter"
)

//go:embed assets
var assets embed.FS

type pages struct {
	login, logout *template.Template
	// set holds every page template (renderPage looks them up by name);
	// i18n every language's texts.
	set           *template.Template
	i18n          *catalog
	title, prefix string
	csp           string
	// lane spreads page renders out under a burst (lane.go); one for the
	// process, handed from settings to settings.
	lane *lane
	// forgot and register are the login page's links to those pages, or "".
	forgot, register string
	files            http.Handler
	brand            *brand
	// loginTitle is the configured login heading; "" shows the
	// translated "Sign in".
	loginTitle string
}

type loginView struct {
	Title, Heading, Prefix, Action, CSRF string
	RD, Username                         string
	Remember                             bool
	// Error and Notice are translation keys; ErrorArgs fill Error's %s, in
	// order.
	Error, Notice string
	ErrorArgs     []any
	L             *lang
	Brand         *brand
	// Passkey offers "sign in with a passkey" ([mfa] passwordless).
	Passkey bool
	// Forgot and Register link the account pages when they are on.
	Forgot, Register string
	Providers        []providerButton
}

// providerButton is a "Sign in with …" link on the login page.
type providerButton struct {
	ID, Label string
}

type logoutView struct {
	Title, Prefix, Action, CSRF string
	User                        string
	L                           *lang
	Brand                       *brand
}

// defaultLoginTitle is login_title's default; it stands for the
// translated heading.
const defaultLoginTitle = "Sign in"

func newPages(o Options, origins map[string]bool) (*pages, error) {
	t, err := template.ParseFS(assets, "assets/*.html")
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	cat, err := loadCatalog(assets, "assets/i18n")
	if err != nil {
		return nil, err
	}
	br, err := newBrand(o.Branding)
	if err != nil {
		return nil, err
	}
	title, loginTitle := o.LoginTitle, o.LoginTitle
	if loginTitle == defaultLoginTitle {
		loginTitle = ""
	}
	if br.Name != "" {
		title = br.Name
	}
	// form-action must also allow where the login's redirect may go.
	var fa []string
	for o := range origins {
		fa = append(fa, o)
	}
	for _, f := range o.FormOrigins {
		if u, err := url.Parse(f); err == nil && u.Host != "" && !origins[originOf(u)] {
			fa = append(fa, originOf(u))
		}
	}
	sort.Strings(fa)
	// script-src 'self' is for the one static script (passkey.js, WebAuthn
	// needs it); no inline script runs.
	csp := "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' " + strings.Join(fa, " ")
	p := &pages{
		login: t.Lookup("login.html"), logout: t.Lookup("logout.html"), set: t, i18n: cat,
		title: title, loginTitle: loginTitle, prefix: o.Prefix, csp: csp,
		files: http.FileServer(http.FS(static)), brand: br,
	}
	if o.ForgotLink {
		p.forgot = o.Prefix + "forgot"
	}
	if o.RegisterLink {
		p.register = o.Prefix + "register"
	}
	return p, nil
}

func (p *pages) static(strip string) httprouter.Handle {
	h := http.StripPrefix(strip, p.files)
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if strings.HasSuffix(r.URL.Path, "/") {
			plain(w, http.StatusNotFound, "not found")
			return
		}
		if p.brand.serve(w, r, strings.TrimPrefix(ps.ByName("file"), "/")) {
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	}
}

func (o *settings) renderLogin(w http.ResponseWriter, r *http.Request, code int, v loginView) {
	v.Prefix, v.Action, v.Brand = o.pages.prefix, o.pages.prefix+"login", o.pages.brand
	v.L = o.lang(r)
	v.Heading = o.pages.loginTitle
	if v.Heading == "" {
		v.Heading = v.L.T("login.heading")
	}
	v.Title = v.Heading
	if v.Brand.Name != "" {
		v.Title += " · " + v.Brand.Name
	}
	v.Error = v.L.T(v.Error, v.ErrorArgs...)
	v.Notice = v.L.T(v.Notice)
	v.Forgot, v.Register = o.pages.forgot, o.pages.register
	v.CSRF = o.token("login", []byte(o.preSession(w, r)))
	v.Passkey = o.MFA.Passwordless && o.webauthn != nil
	v.Providers = o.providers
	if len(v.Username) > 64 {
		v.Username = v.Username[:64]
	}
	o.pages.render(w, code, o.pages.login, v)
}

func (o *settings) renderLogout(w http.ResponseWriter, r *http.Request, v logoutView) {
	v.Title, v.Prefix, v.Action = o.pages.title, o.pages.prefix, o.pages.prefix+"logout"
	v.L, v.Brand = o.lang(r), o.pages.brand
	o.pages.render(w, http.StatusOK, o.pages.logout, v)
}

func (p *pages) render(w http.ResponseWriter, code int, t *template.Template, v any) {
	var buf bytes.Buffer
	start, ok := p.lane.enter(context.Background())
	if !ok {
		w.Header().Set("Retry-After", "1")
		plain(w, http.StatusServiceUnavailable, "busy, try again in a moment")
		return
	}
	err := t.Execute(&buf, v)
	p.lane.leave(start)
	if err != nil {
		plain(w, http.StatusInternalServerError, "internal error")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // no-referrer would make browsers send "Origin: null" on the form POST
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func writeJSON(w http.ResponseWriter, v any) {
	_ = json.NewEncoder(w).Encode(v)
}
