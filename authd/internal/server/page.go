package server

import (
	"crypto/hmac"
	"mime"
	"net/http"
	"net/url"

	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// The signed-in pages (account, admin, second factor) share what is here:
// who is signed in, CSRF tokens bound to the session, the checks every
// form post passes, and one layout (assets/layout.html).

// maxFormBody bounds every signed-in form post.
const maxFormBody = 64 << 10

// pageUser is the browser session behind a signed-in page.
type pageUser struct {
	Key     session.Key
	Session session.Session
	User    *users.Entry
	L       *lang
}

// page is what the layout needs; every view of a signed-in page embeds it.
type page struct {
	Title, Prefix string
	Heading       string
	L             *lang
	User          *users.Entry
	// Nav is extra links in the bar, after "Account".
	Nav           []navLink
	Error, Notice string
}

type navLink struct{ Href, Text string }

// signedIn returns the signed-in user of r. When there is none it has
// answered with a 303 to the login page that returns here, and reports false.
func (s *Server) signedIn(o *settings, w http.ResponseWriter, r *http.Request) (*pageUser, bool) {
	key, sess, u, ok := s.authenticate(o, r, s.now())
	if !ok {
		s.redirect(w, o.Prefix+"login?rd="+url.QueryEscape(r.URL.RequestURI()))
		return nil, false
	}
	p := &pageUser{Key: key, Session: sess, User: u, L: o.lang(r)}
	if headerOnlySession(p) {
		s.refuseHeaderOnly(o, w, p)
		return nil, false
	}
	return p, true
}

// page returns the layout fields for p's page titled heading.
func (o *settings) page(p *pageUser, heading string) page {
	v := page{Title: o.pages.title, Prefix: o.Prefix, Heading: heading}
	if p != nil {
		v.L, v.User = p.L, p.User
	}
	return v
}

// lang is the language r asks for.
func (o *settings) lang(r *http.Request) *lang {
	return o.pages.i18n.negotiate(r.Header.Get("Accept-Language"))
}

// formToken is the CSRF token of p's form for purpose: bound to the session,
// so it is useless in another browser and dies with the session.
func (o *settings) formToken(p *pageUser, purpose string) string {
	return o.token("form:"+purpose, p.Key[:])
}

// checkForm admits a form post of p for purpose: an HTML form from this
// site, within the size limit, with the CSRF token formToken gave. On
// failure it has answered (403, 413 or 415) and reports false; nothing was
// changed.
func (s *Server) checkForm(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser, purpose string) bool {
	refuse := func(code int, key string) bool {
		v := messageView{page: o.page(p, p.L.T("form.expired.title")), Text: p.L.T(key)}
		o.renderPage(w, code, "message", v)
		return false
	}
	if !o.sameOrigin(r) {
		return refuse(http.StatusForbidden, "form.crosssite.text")
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return refuse(http.StatusUnsupportedMediaType, "form.expired.text")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		return refuse(http.StatusRequestEntityTooLarge, "form.toolarge.text")
	}
	if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(o.formToken(p, purpose))) {
		return refuse(http.StatusForbidden, "form.expired.text")
	}
	return true
}

// messageView is a page with one paragraph (and an optional way back).
type messageView struct {
	page
	Text, Back string
}

// renderPage renders assets/<name>.html, which uses the layout, with the
// security headers of every page of authd's own.
func (o *settings) renderPage(w http.ResponseWriter, code int, name string, view any) {
	t := o.pages.set.Lookup(name + ".html")
	if t == nil {
		plain(w, http.StatusInternalServerError, "internal error")
		return
	}
	o.pages.render(w, code, t, view)
}
