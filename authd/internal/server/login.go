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
	now := s.now()
	key, _, _, ok, unavailable := s.lookupSession(o, r, now)
	if ok {
		s.redirect(w, o.safeRedirect(rd, o.DefaultRedirect))
		return
	}
	why := session.NotEnded
	if r.URL.Query().Has("signed_out") {
		why = session.SignedOut
	} else if key != (session.Key{}) && !unavailable {
		why = s.endReason(o, w, r, key, now)
	}
	o.renderLogin(w, r, http.StatusOK, loginView{RD: rd, Notice: endedNotice(why)})
}

// endReason says why the session named by the browser's cookie no longer
// works, and clears the cookie, so the reason shows once. It is only
// asked when the store answered: an outage must not sign anyone out.
func (s *Server) endReason(o *settings, w http.ResponseWriter, r *http.Request, key session.Key, now time.Time) session.Reason {
	o.setCookie(w, o.CookieName, "", -1)
	why, err := s.store.Ended(r.Context(), key)
	if err != nil {
		s.log.Warn("session tombstone read failed", zap.Error(err))
		return session.NotEnded
	}
	if why != session.NotEnded {
		return why
	}
	// Not swept yet (the embedded store), or no tombstone: an expired
	// record still says so.
	if sess, found, err := s.store.Get(r.Context(), key); err == nil && found &&
		(!sess.Valid(now) || !o.withinLimits(&sess, now)) {
		return session.Expired
	}
	return endedUnknown
}

// endedUnknown is a cookie that names no session and no tombstone: it
// ended longer ago than the store remembers, or in a way it did not record.
const endedUnknown = session.Reason(255)

// endedNotice is the translation key of the login page's notice for why.
func endedNotice(why session.Reason) string {
	switch why {
	case session.NotEnded:
		return ""
	case session.SignedOut:
		return "login.notice.signed_out"
	case session.Expired:
		return "login.notice.expired"
	case session.Revoked:
		return "login.notice.revoked"
	case session.PasswordChanged:
		return "login.notice.password_changed"
	case session.Locked:
		return "login.notice.locked"
	}
	return "login.notice.ended"
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
		view.Error = "login.error.expired"
		o.renderLogin(w, r, http.StatusForbidden, view)
		return
	}
	res := s.checkLogin(r.Context(), r, o, rawName, password, ip)
	s.auditFailure(r, res, "web")
	switch res.verdict {
	case loginThrottledIP:
		w.Header().Set("Retry-After", strconv.Itoa(res.retryAfter))
		view.Error, view.ErrorArgs = "login.error.throttled", []any{strconv.Itoa(res.retryAfter)}
		o.renderLogin(w, r, http.StatusTooManyRequests, view)
		return
	case loginBusy:
		o.renderBusy(w, r, view)
		return
	case loginFailed:
		view.Error = "login.error.invalid"
		o.renderLogin(w, r, http.StatusUnauthorized, view)
		return
	case loginDirectoryDown:
		w.Header().Set("Retry-After", "10")
		view.Error = msgDirectoryDown
		o.renderLogin(w, r, http.StatusServiceUnavailable, view)
		return
	case loginNotAllowed:
		view.Error = msgNotAllowed
		o.renderLogin(w, r, http.StatusForbidden, view)
		return
	}
	if _, err := s.completeLogin(o, w, r, res, remember, ip, "web"); err != nil {
		o.renderBusy(w, r, view)
		return
	}
	s.redirect(w, s.afterLogin(r.Context(), o, res.user, rd))
}

// loginVerdict is what checkLogin decided.
type loginVerdict int

const (
	loginOK            loginVerdict = iota
	loginFailed                     // wrong name or password, locked, or account throttled: all alike
	loginThrottledIP                // too many attempts from the client's network; retryAfter says how long
	loginBusy                       // hashing saturated or a store failed; try again in a moment
	loginDirectoryDown              // the directory (LDAP) cannot be reached; nothing was checked
	loginNotAllowed                 // right password, but the directory account may not sign in here
)

type loginResult struct {
	verdict    loginVerdict
	user       *users.Entry // for loginOK
	retryAfter int          // seconds, for loginThrottledIP
	// name is the attempted user name (canonical when valid, capped);
	// reason is the failure's metric label ("bad_password", …).
	name, reason string
	// source is "ldap" for a directory user, "" for a local one.
	source string
}

// checkLogin is the credential check that the login form and the JSON
// endpoint share: throttling, the hashing gate, the password check and the
// failure floor, with their metrics and log lines. Every failure that could
// tell whether the account exists (unknown user, wrong password, locked,
// account throttled) is loginFailed, padded to the same time.
func (s *Server) checkLogin(ctx context.Context, r *http.Request, o *settings, rawName, password, ip string) loginResult {
	name, nameErr := users.Canonical(rawName)
	logName := name
	if nameErr != nil {
		logName = capped(rawName)
	}

	// The attempt is counted before the password is checked, atomically
	// with the throttle's verdict, so concurrent guesses cannot all slip
	// through one check before any of them is counted.
	v, err := s.thr.Reserve(ctx, name, ip)
	if err != nil {
		s.log.Error("throttle check failed", zap.Error(err))
		s.loginOutcome("unavailable", logName, ip)
		return loginResult{verdict: loginBusy, name: logName, reason: "unavailable"}
	}
	if v.Wait > 0 && v.Scope == "ip" {
		s.loginOutcome("throttled_ip", logName, ip)
		return loginResult{verdict: loginThrottledIP, retryAfter: int(v.Wait/time.Second) + 1, name: logName, reason: "throttled_ip"}
	}
	if len(password) > users.MaxPasswordBytes {
		if v.Wait == 0 {
			s.refund(ctx, name, ip)
		}
		return s.fail(ctx, logName, ip, "password_too_long", time.Time{})
	}
	if v.Wait > 0 {
		// A throttled account looks exactly like a wrong password: the
		// same reply, padded to the same floor.
		return s.fail(ctx, logName, ip, "throttled_account", time.Now())
	}

	if nameErr == nil && s.toDirectory(name) {
		return s.checkDirectory(ctx, r, name, password, ip)
	}

	if !o.gate.acquire(ctx) {
		s.refund(ctx, name, ip) // no password was checked
		s.loginOutcome("overloaded", logName, ip)
		return loginResult{verdict: loginBusy, name: logName, reason: "overloaded"}
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
		err = s.hash.Dummy(ctx, password, o.HashParams)
	} else {
		cost = u.Cost()
		ok, upgrade, err = s.hash.Verify(ctx, u.Hash, password, o.HashParams, o.HashLimits)
	}
	took := time.Since(start)
	o.gate.releaseAfter(s.pace.rest(cost, took))
	if errors.Is(err, hasher.ErrUnavailable) {
		// Nothing was checked: busy, for a known and an unknown user alike.
		s.log.Error("password hash not run", zap.Error(err))
		s.refund(ctx, name, ip)
		s.loginOutcome("unavailable", logName, ip)
		return loginResult{verdict: loginBusy, name: logName, reason: "unavailable"}
	}
	if err != nil {
		s.log.Error("stored hash unusable", zap.String("user", name), zap.Error(err))
		ok = false
	}
	s.metrics.passwordCheck()
	s.pace.observe(cost, took)

	switch {
	case u == nil:
		return s.fail(ctx, logName, ip, "unknown_user", start)
	case !ok:
		return s.fail(ctx, logName, ip, "bad_password", start)
	case u.Disabled:
		return s.fail(ctx, logName, ip, "disabled", start)
	}
	if upgrade {
		u = s.upgradeHash(ctx, o, u, password)
	}
	if err := s.thr.Success(ctx, name, ip); err != nil {
		s.log.Warn("throttle reset failed", zap.Error(err))
	}
	// Successes never counted against the IP; take back this one's count.
	s.refund(ctx, name, ip)
	return loginResult{verdict: loginOK, user: u, name: u.Name}
}

// completeLogin starts a session for the user checkLogin admitted, sets
// the session cookie and logs the login; door says which way it came in
// ("web" or "api"). The audit source is the door, or "ldap" for a
// directory user. On error it has logged and counted the failure; the
// caller answers "unavailable".
func (s *Server) completeLogin(o *settings, w http.ResponseWriter, r *http.Request, res loginResult, remember bool, ip, door string) (session.Session, error) {
	u := res.user
	source, detail := door, ""
	if res.source != "" {
		source, detail = res.source, "via "+door
	}
	cookie, key, sess, err := s.createSession(o, r, u, nil, remember, ip)
	if err != nil {
		s.log.Error("session create failed", zap.String("user", u.Name), zap.Error(err))
		s.loginOutcome("unavailable", u.Name, ip)
		return sess, err
	}
	s.metrics.login("success")
	s.log.Info("login succeeded", zap.String("event", "login_succeeded"), zap.String("user", u.Name),
		zap.String("client_ip", ip), zap.Bool("remember", remember), zap.String("session", key.Short()),
		zap.String("source", source), zap.Strings("groups", u.Groups))
	s.record(r.Context(), r, audit.Event{Event: "login_succeeded", Actor: u.Name, Source: source, Detail: detail})
	s.noteLogin(r.Context(), u.Name)
	maxAge := 0
	if remember {
		maxAge = int(o.RememberLifetime / time.Second)
	}
	o.setCookie(w, o.CookieName, cookie, maxAge)
	o.setCookie(w, o.preName, "", -1)
	return sess, nil
}

// auditFailure records a failed login in the audit log, as the admin
// console lists them. Busy answers are not the user's doing and stay in the
// metrics and the log only.
func (s *Server) auditFailure(r *http.Request, res loginResult, source string) {
	if res.verdict != loginFailed {
		return
	}
	if res.source != "" {
		source = res.source
	} else if res.reason != "bad_password" && res.reason != "unknown_user" && res.reason != "disabled" {
		// Checked passwords only (each paid a hash): a flood of throttled
		// attempts writes no audit event each; the log line has them.
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "login_failed", Target: res.name, Source: source, Detail: res.reason})
}

// fail ends a failed login check. A zero start answers at once; otherwise
// it waits until the pace floor has passed since start, so every failure
// that could have checked a password takes the same time.
func (s *Server) fail(ctx context.Context, logName, ip, reason string, start time.Time) loginResult {
	if !start.IsZero() && !s.pace.pad(ctx, start) {
		s.loginOutcome("overloaded", logName, ip)
		return loginResult{verdict: loginBusy, name: logName, reason: "overloaded"}
	}
	s.loginOutcome(reason, logName, ip)
	return loginResult{verdict: loginFailed, name: logName, reason: reason}
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
	view.Error = "login.error.busy"
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

// startSession creates a session for u and returns its cookie value and key.
func (s *Server) startSession(o *settings, r *http.Request, u *users.Entry, remember bool, ip string) (string, session.Key, error) {
	return s.startSessionAs(o, r, u, nil, remember, ip)
}

// startSessionAs is startSession for a user who may have no record: ext,
// when set, is the header-only identity the session carries.
func (s *Server) startSessionAs(o *settings, r *http.Request, u *users.Entry, ext *session.External, remember bool, ip string) (string, session.Key, error) {
	cookie, key, _, err := s.createSession(o, r, u, ext, remember, ip)
	return cookie, key, err
}

// createSession is startSessionAs that also returns the session stored.
func (s *Server) createSession(o *settings, r *http.Request, u *users.Entry, ext *session.External, remember bool, ip string) (string, session.Key, session.Session, error) {
	cookie, key, err := session.New()
	if err != nil {
		return "", key, session.Session{}, err
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
	sess := session.Session{
		User: u.Name, Created: now, LastSeen: now, Expires: now.Add(life), Idle: idle,
		Remember: remember, IP: ip, UserAgent: ua, Fingerprint: u.Fingerprint, External: ext,
	}
	err = s.store.Create(r.Context(), key, sess)
	return cookie, key, sess, err
}

// handleLogoutForm asks for confirmation: GET never changes state.
func (s *Server) handleLogoutForm(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	key, _, u, ok := s.authenticate(o, r, s.now())
	if !ok {
		s.redirect(w, o.Prefix+"login")
		return
	}
	o.renderLogout(w, r, logoutView{User: displayName(u), CSRF: o.token("logout", key[:])})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	refuse := func(code int, heading, key string) {
		pg := o.anonPage(r, func(l *lang) string { return l.T(heading) })
		o.renderPage(w, code, "message", messageView{page: pg, Text: pg.L.T(key)})
	}
	if !o.sameOrigin(r) {
		refuse(http.StatusForbidden, "form.expired.title", "form.crosssite.text")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusRequestEntityTooLarge, "form.expired.title", "form.toolarge.text")
		return
	}
	key, sess, u, ok := s.authenticate(o, r, s.now())
	after := o.Prefix + "login?signed_out=1"
	if ok {
		if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(o.token("logout", key[:]))) {
			refuse(http.StatusForbidden, "form.expired.title", "form.expired.text")
			return
		}
		if err := s.store.End(r.Context(), key, session.SignedOut); err != nil {
			s.log.Error("session delete failed", zap.Error(err))
			refuse(http.StatusServiceUnavailable, "logout.heading", "logout.error.failed")
			return
		}
		s.log.Info("logout", zap.String("event", "logout"), zap.String("user", sess.User),
			zap.String("client_ip", addrField(o.clientIP(r))), zap.String("session", key.Short()))
		s.record(r.Context(), r, audit.Event{Event: "logout", Actor: sess.User})
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
	writeJSON(w, identityJSON(u, &sess))
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
