package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/account"
	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/hasher"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// AccountDeps wires the account page and the invite, registration and
// password-reset pages (account.go, links.go). Deps.Account nil leaves them
// unrouted.
type AccountDeps struct {
	// Store keeps invites, reset links and registration requests.
	Store *account.Store
	// Mailer sends links by mail; nil sends none, and the login page offers
	// no "Forgot password?".
	Mailer Mailer
	// Sessions lists a user's sessions for the account page.
	Sessions SessionLister
	// Tokens, if not nil, lets users create and revoke their own API tokens.
	Tokens AccountTokens
	// Registration is who may make their own account.
	Registration Registration
	// Site names the site in mails ("app.example.com").
	Site string
}

// Registration is the [registration] config: Mode is "off", "invite",
// "open" or "approval".
type Registration struct {
	Mode           string
	AllowedDomains []string
	DefaultGroups  []string
}

// Mailer sends one mail.
type Mailer interface {
	Send(ctx context.Context, m account.Message) error
}

// SessionLister lists one user's sessions.
type SessionLister interface {
	List(ctx context.Context, user string) ([]session.Entry, error)
}

// AccountTokens are a user's own API tokens, made by the same code as
// "authd token create". Create binds the token to the user's credential
// generation; Revoke removes only a token of user.
type AccountTokens interface {
	Tokens(user string) []machine.Token
	Create(ctx context.Context, user string, generation uint64, label string, lifetime time.Duration) (token string, rec machine.Token, err error)
	Revoke(ctx context.Context, user, id string) error
}

var (
	_ SessionLister = (*session.Embedded)(nil)
	_ SessionLister = (*session.Redis)(nil)
	_ Mailer        = (*account.Mailer)(nil)
)

// Lifetimes of links the pages make.
const (
	resetTTL       = time.Hour
	openInviteTTL  = 24 * time.Hour
	requestTTL     = 30 * 24 * time.Hour
	forgotInterval = 15 * time.Minute
	// ipInterval spaces the mails (forgot) and registrations one client
	// address may cause.
	ipInterval = time.Minute
	// anonymousFloor is the least time the forgot and register answers
	// take, so an answer's timing says nothing about the account.
	anonymousFloor = 400 * time.Millisecond
)

// routeAccount adds the account routes to r when they are wired.
func (s *Server) routeAccount(r *httprouter.Router, p string) {
	if s.acct == nil {
		return
	}
	r.GET(p+"account", s.handleAccount)
	r.POST(p+"account/password", s.handleAccountPassword)
	r.POST(p+"account/sessions", s.handleAccountSessions)
	r.POST(p+"account/tokens", s.handleAccountTokens)
	r.GET(p+"invite/:token", s.handleInviteForm)
	r.POST(p+"invite/:token", s.handleInvite)
	r.GET(p+"reset/:token", s.handleResetForm)
	r.POST(p+"reset/:token", s.handleReset)
	r.GET(p+"forgot", s.handleForgotForm)
	r.POST(p+"forgot", s.handleForgot)
	r.GET(p+"register", s.handleRegisterForm)
	r.POST(p+"register", s.handleRegister)
}

// ownSessionRow is one of the user's sessions as the account page shows it.
type ownSessionRow struct {
	ID                string
	Created, LastSeen string
	IP, UserAgent     string
	Current, Remember bool
}

type ownTokenRow struct {
	ID, Label, Created, Expires string
	Expired                     bool
}

type accountView struct {
	page
	PasswordCSRF, SessionsCSRF, TokensCSRF string
	Sessions                               []ownSessionRow
	TokensOn                               bool
	Tokens                                 []ownTokenRow
	// NewToken is a token just made, shown this once.
	NewToken string
}

func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok {
		return
	}
	v := s.accountView(o, r.Context(), p)
	switch {
	case r.URL.Query().Has("password_changed"):
		v.Notice = p.L.T("account.password.done")
	case r.URL.Query().Has("signed_out_others"):
		v.Notice = p.L.T("account.sessions.others_done")
	case r.URL.Query().Has("signed_out_one"):
		v.Notice = p.L.T("account.sessions.one_done")
	case r.URL.Query().Has("token_revoked"):
		v.Notice = p.L.T("account.tokens.revoked")
	}
	o.renderPage(w, http.StatusOK, "account", v)
}

func (s *Server) accountView(o *settings, ctx context.Context, p *pageUser) accountView {
	v := accountView{page: o.page(p, p.L.T("account.title")),
		PasswordCSRF: o.formToken(p, "account-password"), SessionsCSRF: o.formToken(p, "account-sessions"),
		TokensCSRF: o.formToken(p, "account-tokens"), TokensOn: s.acct.Tokens != nil}
	if list, err := s.acct.Sessions.List(ctx, p.User.Name); err != nil {
		s.log.Warn("list sessions failed", zap.Error(err))
		v.Error = p.L.T("account.sessions.unavailable")
	} else {
		slices.SortFunc(list, func(a, b session.Entry) int { return b.Session.LastSeen.Compare(a.Session.LastSeen) })
		for _, e := range list {
			v.Sessions = append(v.Sessions, ownSessionRow{
				ID: e.Key.Short(), Created: stamp(e.Session.Created), LastSeen: stamp(e.Session.LastSeen),
				IP: e.Session.IP, UserAgent: e.Session.UserAgent, Current: e.Key == p.Key, Remember: e.Session.Remember,
			})
		}
	}
	if s.acct.Tokens != nil {
		now := s.now()
		for _, t := range s.acct.Tokens.Tokens(p.User.Name) {
			v.Tokens = append(v.Tokens, ownTokenRow{ID: t.ID, Label: t.Label, Created: stamp(t.Created), Expires: stamp(t.Expires), Expired: !now.Before(t.Expires)})
		}
	}
	return v
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// handleAccountPassword changes the signed-in user's password. The current
// password is checked like a login (throttled, counted as a failure when
// wrong). The new password gets a new credential generation, which ends
// every session of the user on every node; this browser gets a fresh one.
func (s *Server) handleAccountPassword(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok || !s.checkForm(o, w, r, p, "account-password") {
		return
	}
	ip := addrField(o.clientIP(r))
	fail := func(code int, key string, args ...any) {
		v := s.accountView(o, r.Context(), p)
		v.Error = p.L.T(key, args...)
		o.renderPage(w, code, "account", v)
	}
	cur, pw, pw2 := r.PostForm.Get("current"), r.PostForm.Get("password"), r.PostForm.Get("password2")
	if msg := checkNewPasswords(pw, pw2); msg != "" {
		fail(http.StatusBadRequest, msg)
		return
	}
	name := p.User.Name
	verdict, err := s.thr.Reserve(r.Context(), name, ip)
	if err != nil {
		s.log.Error("throttle check failed", zap.Error(err))
		fail(http.StatusServiceUnavailable, "account.busy")
		return
	}
	if verdict.Wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(verdict.Wait/time.Second)+1))
		fail(http.StatusTooManyRequests, "account.password.throttled")
		return
	}
	good, hash, err := s.checkAndHash(o, r.Context(), p.User.Hash, cur, pw)
	if err != nil {
		s.refund(r.Context(), name, ip)
		fail(http.StatusServiceUnavailable, "account.busy")
		return
	}
	if !good {
		s.loginOutcome("bad_password", name, ip)
		s.record(r.Context(), r, audit.Event{Event: "password_change_failed", Actor: name, Target: name, Detail: "wrong current password"})
		fail(http.StatusForbidden, "account.password.wrong")
		return
	}
	s.refund(r.Context(), name, ip)
	err = s.users.Update(r.Context(), name, func(u users.User, exists bool) (users.User, bool, error) {
		if !exists || u.Disabled {
			return u, false, errGone
		}
		u.Hash, u.Generation = hash, users.NewGeneration()
		return u, false, nil
	})
	if err != nil {
		s.log.Error("password change failed", zap.String("user", name), zap.Error(err))
		fail(http.StatusServiceUnavailable, "account.busy")
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "password_changed", Actor: name, Target: name, Detail: "account page; every session ended"})
	if err := s.store.Delete(r.Context(), p.Key); err != nil {
		s.log.Warn("session delete failed", zap.Error(err))
	}
	if !s.resume(o, w, r, name, p.Session.Remember, ip) {
		s.redirect(w, o.Prefix+"login")
		return
	}
	s.redirect(w, o.Prefix+"account?password_changed=1")
}

// errGone is an Update refused because the user was deleted or locked meanwhile.
var errGone = errors.New("user deleted or locked")

// resume starts a fresh session for user in this browser, after a change
// that ended the old one. It reports false when it could not.
func (s *Server) resume(o *settings, w http.ResponseWriter, r *http.Request, name string, remember bool, ip string) bool {
	u, ok := s.users.DB().Lookup(name)
	if !ok || u.Disabled {
		return false
	}
	cookie, key, err := s.startSession(o, r, u, remember, ip)
	if err != nil {
		s.log.Error("session create failed", zap.String("user", name), zap.Error(err))
		return false
	}
	s.log.Info("session started", zap.String("event", "session_started"), zap.String("user", name),
		zap.String("client_ip", ip), zap.String("session", key.Short()))
	maxAge := 0
	if remember {
		maxAge = int(o.RememberLifetime / time.Second)
	}
	o.setCookie(w, o.CookieName, cookie, maxAge)
	return true
}

// checkAndHash verifies password against hash (current may be "" to skip:
// invites and resets have no current password) and hashes newPassword, in
// one slot of the hashing gate.
func (s *Server) checkAndHash(o *settings, ctx context.Context, hash, current, newPassword string) (good bool, newHash string, err error) {
	if !o.gate.acquire(ctx) {
		return false, "", errors.New("hashing busy")
	}
	defer o.gate.release()
	good = true
	if hash != "" {
		var verr error
		good, _, verr = s.hash.Verify(ctx, hash, current, o.HashParams, o.HashLimits)
		if errors.Is(verr, hasher.ErrUnavailable) {
			return false, "", verr
		}
		if verr != nil {
			s.log.Error("stored hash unusable", zap.Error(verr))
			good = false
		}
		s.metrics.passwordCheck()
		if !good {
			return false, "", nil
		}
	}
	newHash, err = s.hash.Hash(ctx, newPassword, o.HashParams)
	return good, newHash, err
}

// checkNewPasswords returns the i18n key of what is wrong with a new
// password and its confirmation, or "".
func checkNewPasswords(pw, pw2 string) string {
	if pw != pw2 {
		return "newpassword.mismatch"
	}
	if err := users.CheckNewPassword(pw); err != nil {
		switch {
		case !utf8.ValidString(pw):
			return "newpassword.invalid"
		case utf8.RuneCountInString(pw) < users.MinPasswordRunes:
			return "newpassword.short"
		case len(pw) > users.MaxPasswordBytes:
			return "newpassword.long"
		default:
			return "newpassword.common"
		}
	}
	return ""
}

// handleAccountSessions signs out one of the user's sessions (id) or all
// but this one (all=1).
func (s *Server) handleAccountSessions(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok || !s.checkForm(o, w, r, p, "account-sessions") {
		return
	}
	list, err := s.acct.Sessions.List(r.Context(), p.User.Name)
	if err != nil {
		s.log.Error("list sessions failed", zap.Error(err))
		o.renderPage(w, http.StatusServiceUnavailable, "message", messageView{page: o.page(p, p.L.T("account.title")), Text: p.L.T("account.busy"), Back: o.Prefix + "account"})
		return
	}
	others, id := r.PostForm.Get("others") != "", r.PostForm.Get("id")
	n := 0
	for _, e := range list {
		if e.Key == p.Key || (!others && e.Key.Short() != id) {
			continue
		}
		if err := s.store.Delete(r.Context(), e.Key); err != nil {
			s.log.Error("session delete failed", zap.Error(err))
			continue
		}
		n++
	}
	if !others && n == 0 {
		v := s.accountView(o, r.Context(), p)
		v.Error = p.L.T("account.sessions.gone")
		o.renderPage(w, http.StatusNotFound, "account", v)
		return
	}
	detail := "one session"
	if others {
		detail = strconv.Itoa(n) + " other sessions"
	}
	s.record(r.Context(), r, audit.Event{Event: "sessions_revoked", Actor: p.User.Name, Target: p.User.Name, Detail: "account page: " + detail})
	if others {
		s.redirect(w, o.Prefix+"account?signed_out_others=1")
		return
	}
	s.redirect(w, o.Prefix+"account?signed_out_one=1")
}

// handleAccountTokens creates (label, days) or revokes (revoke=ID) one of
// the user's own API tokens.
func (s *Server) handleAccountTokens(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok || !s.checkForm(o, w, r, p, "account-tokens") {
		return
	}
	if s.acct.Tokens == nil {
		o.renderPage(w, http.StatusForbidden, "message", messageView{page: o.page(p, p.L.T("account.title")), Text: p.L.T("account.tokens.off"), Back: o.Prefix + "account"})
		return
	}
	name := p.User.Name
	if id := r.PostForm.Get("revoke"); id != "" {
		if err := s.acct.Tokens.Revoke(r.Context(), name, id); err != nil {
			v := s.accountView(o, r.Context(), p)
			v.Error = p.L.T("account.tokens.gone")
			o.renderPage(w, http.StatusNotFound, "account", v)
			return
		}
		s.record(r.Context(), r, audit.Event{Event: "token_revoked", Actor: name, Target: name, Detail: "token " + id})
		s.redirect(w, o.Prefix+"account?token_revoked=1")
		return
	}
	label := strings.TrimSpace(r.PostForm.Get("label"))
	days, err := strconv.Atoi(r.PostForm.Get("days"))
	if label == "" || len(label) > 100 || strings.ContainsFunc(label, func(c rune) bool { return c < ' ' || c == 0x7f }) || err != nil || !slices.Contains([]int{7, 30, 90, 365}, days) {
		v := s.accountView(o, r.Context(), p)
		v.Error = p.L.T("account.tokens.invalid")
		o.renderPage(w, http.StatusBadRequest, "account", v)
		return
	}
	tok, rec, err := s.acct.Tokens.Create(r.Context(), name, p.User.Generation, label, time.Duration(days)*24*time.Hour)
	if err != nil {
		s.log.Error("token create failed", zap.String("user", name), zap.Error(err))
		v := s.accountView(o, r.Context(), p)
		v.Error = p.L.T("account.busy")
		o.renderPage(w, http.StatusServiceUnavailable, "account", v)
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "token_created", Actor: name, Target: name, Detail: "token " + rec.ID})
	v := s.accountView(o, r.Context(), p)
	v.NewToken = tok
	v.Notice = p.L.T("account.tokens.created")
	o.renderPage(w, http.StatusOK, "account", v)
}
