package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/mfa"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// Passkeys (WebAuthn). A ceremony has two steps: "begin" answers the
// options as JSON (passkey.js hands them to the browser), "finish" is a
// normal form post carrying the browser's answer. Between them the
// ceremony's state (challenge, user, allowed credentials) travels in a
// short-lived cookie, HMAC-signed and bound to the session (or, for a
// passwordless sign-in, the login form's pre-session cookie), so every
// node can finish what another began; the challenge is claimed in the
// replay record when it is used, so one answer works once.

const ceremonyMaxAge = 5 * time.Minute

func (s *Server) passkeyRoutes(r *httprouter.Router, p string) {
	r.POST(p+"account/mfa/passkey/begin", s.handlePasskeyRegisterBegin)
	r.POST(p+"account/mfa/passkey/finish", s.handlePasskeyRegisterFinish)
	r.POST(p+"account/mfa/passkey/remove", s.handlePasskeyRemove)
	r.POST(p+"mfa/passkey/begin", s.handlePasskeyStepUpBegin)
	r.POST(p+"mfa/passkey/finish", s.handlePasskeyStepUpFinish)
	r.POST(p+"mfa/passkey/login/begin", s.handlePasskeyLoginBegin)
	r.POST(p+"mfa/passkey/login/finish", s.handlePasskeyLoginFinish)
}

func (o *settings) ceremonyCookie() string { return o.CookieName + "_wa" }

// saveCeremony puts sd in the ceremony cookie, signed for purpose and binding.
func (o *settings) saveCeremony(w http.ResponseWriter, purpose string, binding []byte, sd *webauthn.SessionData, now time.Time) error {
	if sd.Expires.IsZero() || sd.Expires.After(now.Add(ceremonyMaxAge)) {
		sd.Expires = now.Add(ceremonyMaxAge)
	}
	b, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	v := base64.RawURLEncoding.EncodeToString(b)
	o.setCookie(w, o.ceremonyCookie(), v+"."+o.token("webauthn:"+purpose+":"+v, binding), int(ceremonyMaxAge/time.Second))
	return nil
}

// loadCeremony reads and clears the ceremony cookie; false when it is
// missing, forged, for another purpose or binding, or expired.
func (o *settings) loadCeremony(w http.ResponseWriter, r *http.Request, purpose string, binding []byte, now time.Time) (webauthn.SessionData, bool) {
	var sd webauthn.SessionData
	c, ok := cookieValue(r.Header, o.ceremonyCookie())
	o.setCookie(w, o.ceremonyCookie(), "", -1)
	if !ok || len(c) > 8<<10 {
		return sd, false
	}
	v, sig, ok := strings.Cut(c, ".")
	if !ok || !hmacEqual(sig, o.token("webauthn:"+purpose+":"+v, binding)) {
		return sd, false
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || json.Unmarshal(b, &sd) != nil {
		return sd, false
	}
	if sd.Expires.IsZero() || now.After(sd.Expires) {
		return sd, false
	}
	return sd, true
}

// claimChallenge records a ceremony's challenge as used.
func (s *Server) claimChallenge(ctx context.Context, sd *webauthn.SessionData) (bool, error) {
	if s.replay == nil {
		return false, errors.New("no replay record")
	}
	h := sha256.Sum256([]byte(sd.Challenge))
	return s.replay.Claim(ctx, "webauthn:"+hex.EncodeToString(h[:]), 2*ceremonyMaxAge)
}

func jsonAnswer(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	writeJSON(w, v)
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	jsonAnswer(w, code, map[string]string{"error": msg})
}

func (s *Server) webUser(p *pageUser, f *mfa.Factors) *mfa.WebUser {
	return &mfa.WebUser{Name: p.User.Name, Display: displayName(p.User), F: f}
}

// checkJSONForm is checkForm for the begin steps, which answer JSON.
func (s *Server) checkJSONForm(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser, purpose string) bool {
	if !o.sameOrigin(r) {
		jsonError(w, http.StatusForbidden, "cross-site request refused")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		jsonError(w, http.StatusRequestEntityTooLarge, "form too large")
		return false
	}
	if !hmacEqual(r.PostForm.Get("csrf"), o.formToken(p, purpose)) {
		jsonError(w, http.StatusForbidden, "form expired; reload the page")
		return false
	}
	return true
}

// signedInJSON is signedIn for the begin steps: 401 JSON instead of a redirect.
func (s *Server) signedInJSON(o *settings, w http.ResponseWriter, r *http.Request) (*pageUser, bool) {
	key, sess, u, ok := s.authenticate(o, r, s.now())
	if !ok {
		jsonError(w, http.StatusUnauthorized, "not signed in")
		return nil, false
	}
	if sess.External != nil {
		jsonError(w, http.StatusForbidden, "authd keeps no account for this sign-in")
		return nil, false
	}
	return &pageUser{Key: key, Session: sess, User: u, L: o.lang(r)}, true
}

func (s *Server) handlePasskeyRegisterBegin(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedInJSON(o, w, r)
	if !ok || !s.checkJSONForm(o, w, r, p, "passkey-register") {
		return
	}
	if s.mfa == nil || o.webauthn == nil {
		jsonError(w, http.StatusServiceUnavailable, "passkeys unavailable")
		return
	}
	var f mfa.Factors
	err := s.mfa.Update(r.Context(), p.User.Name, func(x *mfa.Factors) error {
		if err := mfa.EnsureHandle(x); err != nil {
			return err
		}
		f = *x
		return nil
	})
	if err != nil {
		s.log.Error("second factor store write failed", zap.Error(err))
		jsonError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	if f.Enrolled() && !recent(p.Session.SecondFactor, s.now(), manageMaxAge) {
		jsonError(w, http.StatusForbidden, "confirm your second factor first; reload the page")
		return
	}
	wu := s.webUser(p, &f)
	var exclude []protocol.CredentialDescriptor
	for _, c := range wu.WebAuthnCredentials() {
		exclude = append(exclude, c.Descriptor())
	}
	rk := protocol.ResidentKeyRequirementPreferred
	if o.MFA.Passwordless {
		rk = protocol.ResidentKeyRequirementRequired
	}
	creation, sd, err := o.webauthn.BeginRegistration(wu, webauthn.WithExclusions(exclude), webauthn.WithResidentKeyRequirement(rk),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation))
	if err == nil {
		err = o.saveCeremony(w, "register", p.Key[:], sd, s.now())
	}
	if err != nil {
		s.log.Error("passkey registration begin failed", zap.Error(err))
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	jsonAnswer(w, http.StatusOK, creation)
}

func recent(t, now time.Time, d time.Duration) bool { return !t.IsZero() && now.Sub(t) <= d }

func (s *Server) handlePasskeyRegisterFinish(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok || !s.checkForm(o, w, r, p, "passkey-register") {
		return
	}
	f, ok := s.mfaManager(o, w, r, p, o.Prefix+"account/mfa")
	if !ok {
		return
	}
	rd := r.PostForm.Get("rd")
	fail := func(code int, why string, err error) {
		s.log.Info("passkey registration failed", zap.String("event", "passkey_failed"), zap.String("user", p.User.Name),
			zap.String("reason", why), zap.Error(err))
		s.renderMFAAccount(o, w, p, &f, rd, code, "mfa.passkey.failed", "")
	}
	sd, ok := o.loadCeremony(w, r, "register", p.Key[:], s.now())
	if !ok || o.webauthn == nil {
		fail(http.StatusBadRequest, "ceremony missing or expired", nil)
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if name == "" || len(name) > 64 || !utf8.ValidString(name) {
		name = "Passkey " + strconv.Itoa(len(f.Passkeys)+1)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(r.PostForm.Get("credential")))
	if err != nil {
		fail(http.StatusBadRequest, "unreadable answer", err)
		return
	}
	cred, err := o.webauthn.CreateCredential(s.webUser(p, &f), sd, parsed)
	if err != nil {
		fail(http.StatusBadRequest, "answer refused", err)
		return
	}
	if fresh, err := s.claimChallenge(r.Context(), &sd); err != nil || !fresh {
		fail(http.StatusBadRequest, "challenge used before", err)
		return
	}
	var codes []string
	err = s.mfa.Update(r.Context(), p.User.Name, func(x *mfa.Factors) error {
		if !bytes.Equal(x.Handle, sd.UserID) {
			return errors.New("user handle changed meanwhile")
		}
		if err := mfa.AddPasskey(x, name, *cred, s.now().UTC()); err != nil {
			return err
		}
		if len(x.Recovery) == 0 {
			var hashes []string
			var err error
			if codes, hashes, err = mfa.NewRecoveryCodes(); err != nil {
				return err
			}
			x.Recovery = hashes
		}
		f = *x
		return nil
	})
	if err != nil {
		fail(http.StatusConflict, "store refused", err)
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "mfa_passkey_added", Actor: p.User.Name, Target: p.User.Name, Detail: name})
	if _, err := s.elevate(r.Context(), o, w, r, p, "passkey"); err != nil {
		s.log.Error("session create failed", zap.Error(err))
	}
	next := o.Prefix + "account/mfa"
	if rd != "" {
		next = o.safeRedirect(rd, next)
	}
	if len(codes) > 0 {
		s.renderCodes(o, w, p, codes, next)
		return
	}
	s.renderMFAAccount(o, w, p, &f, rd, http.StatusOK, "", "mfa.passkey.added.notice")
}

func (s *Server) handlePasskeyRemove(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok || !s.checkForm(o, w, r, p, "passkey-remove") {
		return
	}
	f, ok := s.mfaManager(o, w, r, p, o.Prefix+"account/mfa")
	if !ok {
		return
	}
	i, err := strconv.Atoi(r.PostForm.Get("index"))
	name := r.PostForm.Get("name")
	if err == nil {
		err = s.mfa.Update(r.Context(), p.User.Name, func(x *mfa.Factors) error {
			// The name guards against a list that changed in another tab.
			if i < 0 || i >= len(x.Passkeys) || x.Passkeys[i].Name != name {
				return mfa.ErrNotFound
			}
			mfa.RemovePasskey(x, i)
			if !x.Enrolled() {
				x.Recovery = nil
			}
			f = *x
			return nil
		})
	}
	if err != nil {
		s.renderMFAAccount(o, w, p, &f, "", http.StatusConflict, "mfa.passkey.failed", "")
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "mfa_passkey_removed", Actor: p.User.Name, Target: p.User.Name, Detail: name})
	s.renderMFAAccount(o, w, p, &f, "", http.StatusOK, "", "mfa.passkey.removed")
}

func (s *Server) handlePasskeyStepUpBegin(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedInJSON(o, w, r)
	if !ok || !s.checkJSONForm(o, w, r, p, "passkey-stepup") {
		return
	}
	if s.mfa == nil || o.webauthn == nil {
		jsonError(w, http.StatusServiceUnavailable, "passkeys unavailable")
		return
	}
	f, err := s.mfa.Get(r.Context(), p.User.Name)
	if err != nil || len(f.Passkeys) == 0 {
		jsonError(w, http.StatusConflict, "no passkey registered")
		return
	}
	assertion, sd, err := o.webauthn.BeginLogin(s.webUser(p, &f))
	if err == nil {
		err = o.saveCeremony(w, "stepup", p.Key[:], sd, s.now())
	}
	if err != nil {
		s.log.Error("passkey step-up begin failed", zap.Error(err))
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	jsonAnswer(w, http.StatusOK, assertion)
}

func (s *Server) handlePasskeyStepUpFinish(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok || !s.checkForm(o, w, r, p, "passkey-stepup") {
		return
	}
	rd := r.PostForm.Get("rd")
	fail := func(why string, err error) {
		s.metrics.login("mfa_failed")
		s.log.Info("second factor failed", zap.String("event", "mfa_failed"), zap.String("reason", "passkey: "+why),
			zap.String("user", p.User.Name), zap.String("client_ip", addrField(o.clientIP(r))), zap.Error(err))
		s.showStepUp(o, w, r, p, rd, http.StatusUnauthorized, "mfa.passkey.failed")
	}
	sd, ok := o.loadCeremony(w, r, "stepup", p.Key[:], s.now())
	if !ok || s.mfa == nil || o.webauthn == nil {
		fail("ceremony missing or expired", nil)
		return
	}
	f, err := s.mfa.Get(r.Context(), p.User.Name)
	if err != nil {
		fail("store unavailable", err)
		return
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(r.PostForm.Get("credential")))
	if err != nil {
		fail("unreadable answer", err)
		return
	}
	cred, err := o.webauthn.ValidateLogin(s.webUser(p, &f), sd, parsed)
	if err != nil {
		fail("answer refused", err)
		return
	}
	if err := s.usePasskey(r.Context(), p.User.Name, &sd, cred); err != nil {
		fail("refused", err)
		return
	}
	if _, err := s.elevate(r.Context(), o, w, r, p, "passkey"); err != nil {
		s.log.Error("session create failed", zap.Error(err))
		s.showStepUp(o, w, r, p, rd, http.StatusServiceUnavailable, "mfa.error.busy")
		return
	}
	s.redirect(w, o.safeRedirect(rd, o.DefaultRedirect))
}

// usePasskey claims the ceremony's challenge and stores what the assertion
// changed; a credential that looks cloned (its sign count went back) or
// that was removed meanwhile is refused.
func (s *Server) usePasskey(ctx context.Context, user string, sd *webauthn.SessionData, cred *webauthn.Credential) error {
	if cred.Authenticator.CloneWarning {
		return errors.New("sign count went back: possible cloned authenticator")
	}
	fresh, err := s.claimChallenge(ctx, sd)
	if err != nil {
		return err
	}
	if !fresh {
		return errors.New("challenge used before")
	}
	return s.mfa.Update(ctx, user, func(x *mfa.Factors) error {
		if !mfa.UpdatePasskey(x, cred) {
			return errors.New("passkey removed")
		}
		return nil
	})
}

// handlePasskeyLoginBegin starts a passwordless sign-in with a discoverable
// passkey. It is bound to the login form's pre-session cookie and CSRF token.
func (s *Server) handlePasskeyLoginBegin(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	if !o.MFA.Passwordless || o.webauthn == nil || s.mfa == nil {
		jsonError(w, http.StatusNotFound, "passkey sign-in is off")
		return
	}
	if !o.sameOrigin(r) {
		jsonError(w, http.StatusForbidden, "cross-site request refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil || !o.validCSRF(r, r.PostForm.Get("csrf")) {
		jsonError(w, http.StatusForbidden, "form expired; reload the page")
		return
	}
	pre, _ := cookieValue(r.Header, o.preName)
	assertion, sd, err := o.webauthn.BeginDiscoverableLogin()
	if err == nil {
		err = o.saveCeremony(w, "login", []byte(pre), sd, s.now())
	}
	if err != nil {
		s.log.Error("passkey login begin failed", zap.Error(err))
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	jsonAnswer(w, http.StatusOK, assertion)
}

func (s *Server) handlePasskeyLoginFinish(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	ip := addrField(o.clientIP(r))
	if !o.MFA.Passwordless || o.webauthn == nil || s.mfa == nil {
		plain(w, http.StatusNotFound, "not found")
		return
	}
	if !o.sameOrigin(r) {
		s.loginOutcome("cross_site", "", ip)
		plain(w, http.StatusForbidden, "cross-site login refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		plain(w, http.StatusRequestEntityTooLarge, "login form too large")
		return
	}
	rd := r.PostForm.Get("rd")
	view := loginView{RD: rd}
	fail := func(reason string, err error) {
		s.metrics.login("passkey_failed")
		s.log.Info("login failed", zap.String("event", "login_failed"), zap.String("reason", "passkey: "+reason),
			zap.String("client_ip", ip), zap.Error(err))
		view.Error = "That passkey was not accepted."
		o.renderLogin(w, r, http.StatusUnauthorized, view)
	}
	if !o.validCSRF(r, r.PostForm.Get("csrf")) {
		fail("csrf", nil)
		return
	}
	pre, _ := cookieValue(r.Header, o.preName)
	sd, ok := o.loadCeremony(w, r, "login", []byte(pre), s.now())
	if !ok {
		fail("ceremony missing or expired", nil)
		return
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(r.PostForm.Get("credential")))
	if err != nil {
		fail("unreadable answer", err)
		return
	}
	var who string
	var wf mfa.Factors
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		all, err := s.mfa.Users(r.Context())
		if err != nil {
			return nil, err
		}
		for name, f := range all {
			if len(f.Handle) > 0 && bytes.Equal(f.Handle, userHandle) {
				who, wf = name, f
				return &mfa.WebUser{Name: name, F: &wf}, nil
			}
		}
		return nil, errors.New("no user with that passkey")
	}
	_, cred, err := o.webauthn.ValidatePasskeyLogin(handler, sd, parsed)
	if err != nil {
		fail("answer refused", err)
		return
	}
	u, found := s.users.DB().Lookup(who)
	if !found || u.Disabled {
		fail("user missing or locked", nil)
		return
	}
	if err := s.usePasskey(r.Context(), who, &sd, cred); err != nil {
		fail("refused", err)
		return
	}
	// A passkey that verified its user (PIN, biometrics) is two factors in
	// one: something you have and something you know or are.
	var factor time.Time
	if cred.Flags.UserVerified {
		factor = s.now()
	}
	cookie, key, err := s.passkeySession(o, r, u, ip, factor)
	if err != nil {
		s.log.Error("session create failed", zap.String("user", who), zap.Error(err))
		o.renderBusy(w, r, view)
		return
	}
	s.metrics.login("success")
	s.log.Info("login succeeded", zap.String("event", "login_succeeded"), zap.String("user", who), zap.String("method", "passkey"),
		zap.Bool("user_verified", cred.Flags.UserVerified), zap.String("client_ip", ip), zap.String("session", key.Short()))
	o.setCookie(w, o.CookieName, cookie, 0)
	o.setCookie(w, o.preName, "", -1)
	s.redirect(w, o.safeRedirect(rd, o.DefaultRedirect))
}

// passkeySession starts a session for a passwordless sign-in, recording a
// second factor at factor when it is not zero.
func (s *Server) passkeySession(o *settings, r *http.Request, u *users.Entry, ip string, factor time.Time) (string, session.Key, error) {
	cookie, key, err := session.New()
	if err != nil {
		return "", key, err
	}
	now := s.now()
	ua := r.UserAgent()
	if len(ua) > 128 {
		ua = ua[:128]
	}
	err = s.store.Create(r.Context(), key, session.Session{
		User: u.Name, Created: now, LastSeen: now, Expires: now.Add(o.Lifetime), Idle: o.Idle,
		IP: ip, UserAgent: ua, Fingerprint: u.Fingerprint, SecondFactor: factor,
	})
	return cookie, key, err
}
