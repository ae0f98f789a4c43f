package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/hasher"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

const maxLoginBody = 8 << 10

// handleLoginForm shows the login form, or sends an already logged-in user on.
func (s *Server) handleLoginForm(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	rd := r.URL.Query().Get("rd")
	if _, _, _, ok := s.authenticate(o, r, s.now()); ok {
		s.redirect(w, o.safeRedirect(rd, o.DefaultRedirect))
		return
	}
	msg := ""
	if r.URL.Query().Has("signed_out") {
		msg = "You have signed out."
	}
	o.renderLogin(w, r, http.StatusOK, loginView{RD: rd, Notice: msg})
}

// handleLogin checks credentials. Every failure looks the same from outside:
// unknown user, wrong password, disabled user and throttled account all get
// the same status, body and (roughly) timing.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	ip := addrField(o.clientIP(r))
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		s.loginOutcome("bad_request", "", ip)
		plain(w, http.StatusUnsupportedMediaType, "login expects an HTML form")
		return
	}
	if !o.sameOrigin(r) {
		s.loginOutcome("cross_site", "", ip)
		plain(w, http.StatusForbidden, "cross-site login refused")
		return
	}
	// Beyond the hashing queue a login would be refused at the gate anyway:
	// refuse it before reading the form, so a flood costs no parsing, CSRF
	// check or throttle bookkeeping (nothing was checked, nothing counted).
	if o.gate.saturated() {
		s.loginOutcome("overloaded", "", ip)
		o.renderBusy(w, r, loginView{})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		s.loginOutcome("bad_request", "", ip)
		plain(w, http.StatusRequestEntityTooLarge, "login form too large")
		return
	}
	rawName, password, rd := r.PostForm.Get("username"), r.PostForm.Get("password"), r.PostForm.Get("rd")
	remember := r.PostForm.Get("remember") != ""
	view := loginView{RD: rd, Username: rawName, Remember: remember}
	if !o.validCSRF(r, r.PostForm.Get("csrf")) {
		s.loginOutcome("csrf", capped(rawName), ip)
		view.Error = "Your sign-in form expired. Please try again."
		o.renderLogin(w, r, http.StatusForbidden, view)
		return
	}
	name, nameErr := users.Canonical(rawName)
	logName := name
	if nameErr != nil {
		logName = capped(rawName)
	}

	// The attempt is counted before the password is checked, atomically
	// with the throttle's verdict, so concurrent guesses cannot all slip
	// through one check before any of them is counted.
	v, err := s.thr.Reserve(r.Context(), name, ip)
	if err != nil {
		s.log.Error("throttle check failed", zap.Error(err))
		s.loginOutcome("unavailable", logName, ip)
		o.renderBusy(w, r, view)
		return
	}
	if v.Wait > 0 && v.Scope == "ip" {
		secs := int(v.Wait/time.Second) + 1
		s.loginOutcome("throttled_ip", logName, ip)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		view.Error = "Too many sign-in attempts from your network. Try again in " + strconv.Itoa(secs) + " seconds."
		o.renderLogin(w, r, http.StatusTooManyRequests, view)
		return
	}
	if len(password) > users.MaxPasswordBytes {
		if v.Wait == 0 {
			s.refund(r.Context(), name, ip)
		}
		s.fail(o, w, r, view, logName, ip, "password_too_long", time.Time{})
		return
	}
	if v.Wait > 0 {
		// A throttled account looks exactly like a wrong password: the
		// same reply, padded to the same floor.
		s.fail(o, w, r, view, logName, ip, "throttled_account", time.Now())
		return
	}

	if nameErr == nil && s.toDirectory(name) {
		s.loginDirectory(o, w, r, view, name, password, ip, remember, rd)
		return
	}

	if !o.gate.acquire(r.Context()) {
		s.refund(r.Context(), name, ip) // no password was checked
		s.loginOutcome("overloaded", logName, ip)
		o.renderBusy(w, r, view)
		return
	}
	start := time.Now()
	db := s.users.DB()
	s.pace.track(db)
	var u *users.Entry
	if nameErr == nil {
		u, _ = db.Lookup(name)
	}
	if u != nil && u.Source != "" {
		u = nil // signs in with its provider, never with a local password
	}
	ok, upgrade := false, false
	cost := users.Cost{Argon2id: dummyParams(o.HashParams)}
	if u == nil {
		err = s.hash.Dummy(r.Context(), password, o.HashParams)
	} else {
		cost = u.Cost()
		ok, upgrade, err = s.hash.Verify(r.Context(), u.Hash, password, o.HashParams, o.HashLimits)
	}
	took := time.Since(start)
	o.gate.release()
	if errors.Is(err, hasher.ErrUnavailable) {
		// Nothing was checked: busy, for a known and an unknown user alike.
		s.log.Error("password hash not run", zap.Error(err))
		s.refund(r.Context(), name, ip)
		s.loginOutcome("unavailable", logName, ip)
		o.renderBusy(w, r, view)
		return
	}
	if err != nil {
		s.log.Error("stored hash unusable", zap.String("user", name), zap.Error(err))
		ok = false
	}
	s.metrics.passwordCheck()
	s.pace.observe(cost, took)

	switch {
	case u == nil:
		s.fail(o, w, r, view, logName, ip, "unknown_user", start)
		return
	case !ok:
		s.fail(o, w, r, view, logName, ip, "bad_password", start)
		return
	case u.Disabled:
		s.fail(o, w, r, view, logName, ip, "disabled", start)
		return
	}
	if upgrade {
		u = s.upgradeHash(r.Context(), o, u, password)
	}
	if err := s.thr.Success(r.Context(), name, ip); err != nil {
		s.log.Warn("throttle reset failed", zap.Error(err))
	}
	// Successes never counted against the IP; take back this one's count.
	s.refund(r.Context(), name, ip)
	cookie, key, err := s.startSession(o, r, u, remember, ip)
	if err != nil {
		s.log.Error("session create failed", zap.String("user", name), zap.Error(err))
		s.loginOutcome("unavailable", name, ip)
		o.renderBusy(w, r, view)
		return
	}
	s.metrics.login("success")
	s.log.Info("login succeeded", zap.String("event", "login_succeeded"), zap.String("user", name),
		zap.String("client_ip", ip), zap.Bool("remember", remember), zap.String("session", key.Short()))
	s.noteLogin(r.Context(), name)
	s.record(r.Context(), r, audit.Event{Event: "login_succeeded", Actor: name})
	maxAge := 0
	if remember {
		maxAge = int(o.RememberLifetime / time.Second)
	}
	o.setCookie(w, o.CookieName, cookie, maxAge)
	o.setCookie(w, o.preName, "", -1)
	s.redirect(w, s.afterLogin(r.Context(), o, u, rd))
}

// fail answers a failed login. A zero start answers at once; otherwise the
// reply waits until the pace floor has passed since start, so every failure
// that could have checked a password takes the same time.
func (s *Server) fail(o *settings, w http.ResponseWriter, r *http.Request, view loginView, logName, ip, reason string, start time.Time) {
	if !start.IsZero() && !s.pace.pad(r.Context(), start) {
		s.loginOutcome("overloaded", logName, ip)
		o.renderBusy(w, r, view)
		return
	}
	s.loginOutcome(reason, logName, ip)
	if reason == "bad_password" || reason == "unknown_user" || reason == "disabled" {
		// Checked passwords only (each paid a hash): a flood of throttled
		// attempts writes no audit event each; the log line has them.
		s.record(r.Context(), r, audit.Event{Event: "login_failed", Target: logName, Detail: reason})
	}
	view.Error = "Incorrect username or password."
	o.renderLogin(w, r, http.StatusUnauthorized, view)
}

// refund takes back a throttle reservation for an attempt that was not a
// failed password check.
func (s *Server) refund(ctx context.Context, name, ip string) {
	if err := s.thr.Refund(ctx, name, ip); err != nil {
		s.log.Warn("throttle refund failed", zap.Error(err))
	}
}

func (s *Server) loginOutcome(reason, user, ip string) {
	s.metrics.login(reason)
	s.log.Info("login failed", zap.String("event", "login_failed"), zap.String("reason", reason),
		zap.String("user", user), zap.String("client_ip", ip))
}

func (o *settings) renderBusy(w http.ResponseWriter, r *http.Request, view loginView) {
	w.Header().Set("Retry-After", "1")
	view.Error = "Too many sign-ins right now. Please try again in a moment."
	o.renderLogin(w, r, http.StatusServiceUnavailable, view)
}

// upgradeHash replaces a bcrypt or weak hash with argon2id after a
// successful login, and returns the reloaded user so the new session binds
// to the new credential fingerprint.
func (s *Server) upgradeHash(ctx context.Context, o *settings, u *users.Entry, password string) *users.Entry {
	if !o.gate.acquire(ctx) {
		return u // try again next login
	}
	h, err := s.hash.Hash(ctx, password, o.HashParams)
	o.gate.release()
	if err == nil {
		err = s.users.SetHash(u.Name, h)
	}
	if err != nil {
		s.log.Warn("hash upgrade failed", zap.String("user", u.Name), zap.Error(err))
		return u
	}
	s.log.Info("password hash upgraded", zap.String("event", "hash_upgraded"), zap.String("user", u.Name))
	if nu, ok := s.users.DB().Lookup(u.Name); ok {
		return nu
	}
	return u
}

func (s *Server) startSession(o *settings, r *http.Request, u *users.Entry, remember bool, ip string) (string, session.Key, error) {
	return s.startSessionAs(o, r, u, nil, remember, ip)
}

// startSessionAs is startSession for a user who may have no record: ext,
// when set, is the header-only identity the session carries.
func (s *Server) startSessionAs(o *settings, r *http.Request, u *users.Entry, ext *session.External, remember bool, ip string) (string, session.Key, error) {
	cookie, key, err := session.New()
	if err != nil {
		return "", key, err
	}
	now := s.now()
	idle, life := o.Idle, o.Lifetime
	if remember {
		idle, life = o.RememberIdle, o.RememberLifetime
	}
	ua := r.UserAgent()
	if len(ua) > 128 {
		ua = ua[:128]
	}
	err = s.store.Create(r.Context(), key, session.Session{
		User: u.Name, Created: now, LastSeen: now, Expires: now.Add(life), Idle: idle,
		Remember: remember, IP: ip, UserAgent: ua, Fingerprint: u.Fingerprint, External: ext,
	})
	return cookie, key, err
}

// handleLogoutForm asks for confirmation: GET never changes state.
func (s *Server) handleLogoutForm(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	key, _, u, ok := s.authenticate(o, r, s.now())
	if !ok {
		s.redirect(w, o.Prefix+"login")
		return
	}
	o.renderLogout(w, logoutView{User: displayName(u), CSRF: o.token("logout", key[:])})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	if !o.sameOrigin(r) {
		plain(w, http.StatusForbidden, "cross-site logout refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		plain(w, http.StatusRequestEntityTooLarge, "logout form too large")
		return
	}
	key, sess, u, ok := s.authenticate(o, r, s.now())
	after := o.Prefix + "login?signed_out=1"
	if ok {
		if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(o.token("logout", key[:]))) {
			plain(w, http.StatusForbidden, "logout form expired; go back and try again")
			return
		}
		if err := s.store.Delete(r.Context(), key); err != nil {
			s.log.Error("session delete failed", zap.Error(err))
			plain(w, http.StatusServiceUnavailable, "could not sign out; try again")
			return
		}
		s.log.Info("logout", zap.String("event", "logout"), zap.String("user", sess.User),
			zap.String("client_ip", addrField(o.clientIP(r))), zap.String("session", key.Short()))
		if to := s.providerLogout(o, u); to != "" {
			after = to
		}
	}
	o.setCookie(w, o.CookieName, "", -1)
	s.redirect(w, after)
}

// handleWhoami describes the current session as JSON. A plain poll does not
// count as activity, so an abandoned tab never keeps a session alive;
// "?active=1" does, for pages whose user works over a WebSocket that verify
// never sees (Streamlit), sent only after real input on the page.
func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	now := s.now()
	key, sess, u, ok := s.authenticate(o, r, now)
	if ok && r.URL.Query().Get("active") == "1" && now.Sub(sess.LastSeen) >= o.TouchInterval {
		if err := s.store.Touch(r.Context(), key, now); err != nil {
			s.log.Warn("session touch failed", zap.Error(err))
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]string{"error": "unauthenticated", "login": o.Prefix + "login"})
		return
	}
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, map[string]any{
		"user": u.Name, "name": u.DisplayName, "email": u.Email, "groups": groups,
		"expires": sess.Expires.UTC().Format(time.RFC3339), "remember": sess.Remember,
	})
}

func displayName(u *users.Entry) string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Name
}

// sameOrigin refuses cross-site form posts before any password work.
func (o *settings) sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	if v := r.Header.Get("Origin"); v != "" && v != o.origin {
		return false
	}
	return true
}

// The login form's CSRF token is bound to a random pre-session cookie; it
// needs no server state, so unauthenticated traffic creates none.
func (o *settings) preSession(w http.ResponseWriter, r *http.Request) string {
	if v, ok := cookieValue(r.Header, o.preName); ok && len(v) == 43 {
		if _, err := base64.RawURLEncoding.DecodeString(v); err == nil {
			return v
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	v := base64.RawURLEncoding.EncodeToString(b[:])
	o.setCookie(w, o.preName, v, 3600)
	return v
}

func (o *settings) validCSRF(r *http.Request, tok string) bool {
	pre, ok := cookieValue(r.Header, o.preName)
	if !ok || pre == "" || tok == "" {
		return false
	}
	return hmac.Equal([]byte(tok), []byte(o.token("login", []byte(pre))))
}

func (o *settings) token(purpose string, binding []byte) string {
	m := hmac.New(sha256.New, o.Secret)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(binding)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (o *settings) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: !o.InsecureCookies, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) redirect(w http.ResponseWriter, to string) {
	h := w.Header()
	h.Set("Location", to)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}
