package server

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/mfa"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// Second factors, the HTTP side: what verify asks of a session on a
// two-factor path, the step-up page that proves a factor and raises the
// session, and (mfa_pages.go) the enrolment pages under account/mfa.
// Factor data and code checks are package mfa's.

// MFAOptions configure second factors.
type MFAOptions struct {
	// Issuer names the site in authenticator apps; empty uses LoginTitle.
	Issuer string
	// RequiredGroups must enrol and use a second factor for every path.
	RequiredGroups []string
	// Passwordless lets a discoverable passkey sign in alone.
	Passwordless bool
}

// manageMaxAge is how recent the second factor must be before a user who
// has one may change their factors: a stolen password-only session cannot
// add the thief's authenticator.
const manageMaxAge = 15 * time.Minute

// Remote-Auth-Level values, preallocated for verify.
var (
	levelOne = []string{"1"}
	levelTwo = []string{"2"}
)

const hdrAuthLevel = "Remote-Auth-Level"

// factorNeed is what req's session must show beyond its login: the rule's
// requirement, and two factors everywhere for members of a required group.
func (o *settings) factorNeed(rules *policy.Rules, req *policy.Request, rule int) policy.Factor {
	f := rules.FactorFor(req, rule)
	if !f.Two && req.User != "" && o.requiredGroup(req.Groups) {
		f.Two = true
	}
	return f
}

// factorMet reports whether sess satisfies f at now.
func factorMet(f policy.Factor, sess *session.Session, now time.Time) bool {
	if !f.Two {
		return true
	}
	if sess.SecondFactor.IsZero() {
		return false
	}
	return f.MaxAge <= 0 || now.Sub(sess.SecondFactor) <= f.MaxAge
}

// stepUpURL is where a session short of its second factor is sent, with
// the path it asked for.
func (o *settings) stepUpURL(rd string) string {
	return o.Prefix + "mfa/step-up?rd=" + url.QueryEscape(rd)
}

// inRequiredGroup reports whether u must have a second factor everywhere.
func (o *settings) inRequiredGroup(u *users.Entry) bool { return o.requiredGroup(u.Groups) }

// requiredGroup reports whether any of groups is in [mfa] required_groups.
func (o *settings) requiredGroup(groups []string) bool {
	for _, g := range groups {
		if slices.Contains(o.MFA.RequiredGroups, g) {
			return true
		}
	}
	return false
}

// afterLogin is where a password login goes next: the step-up page for a
// user with a second factor (or who must enrol one), else rd.
func (s *Server) afterLogin(ctx context.Context, o *settings, u *users.Entry, rd string) string {
	if s.mfa == nil {
		return o.safeRedirect(rd, o.DefaultRedirect)
	}
	f, err := s.mfa.Get(ctx, u.Name)
	if err != nil {
		// Unknown: the step-up page says so rather than guess.
		s.log.Error("second factor store read failed", zap.String("user", u.Name), zap.Error(err))
		return o.stepUpURL(rd)
	}
	if f.Enrolled() || o.inRequiredGroup(u) {
		return o.stepUpURL(rd)
	}
	return o.safeRedirect(rd, o.DefaultRedirect)
}

// elevate replaces p's session with a new one (a new cookie, so a cookie
// from before the step-up is worth nothing more) that records a second
// factor proved now, and ends the old one.
func (s *Server) elevate(ctx context.Context, o *settings, w http.ResponseWriter, r *http.Request, p *pageUser, how string) (session.Key, error) {
	cookie, key, err := session.New()
	if err != nil {
		return key, err
	}
	now := s.now()
	ns := p.Session
	ns.SecondFactor, ns.LastSeen = now, now
	if err := s.store.Create(ctx, key, ns); err != nil {
		return key, err
	}
	if err := s.store.Delete(ctx, p.Key); err != nil {
		s.log.Warn("session delete failed", zap.Error(err))
	}
	maxAge := 0
	if ns.Remember {
		maxAge = max(1, int(ns.Expires.Sub(now)/time.Second))
	}
	o.setCookie(w, o.CookieName, cookie, maxAge)
	p.Key, p.Session = key, ns
	s.log.Info("second factor accepted", zap.String("event", "mfa_passed"), zap.String("user", p.User.Name),
		zap.String("method", how), zap.String("client_ip", addrField(o.clientIP(r))), zap.String("session", key.Short()))
	return key, nil
}

// stepUpView is the step-up page.
type stepUpView struct {
	page
	CSRF, RD, PasskeyCSRF string
	TOTP, Passkeys        bool
	Recovery              int
}

func (s *Server) handleStepUpForm(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok {
		return
	}
	s.showStepUp(o, w, r, p, r.URL.Query().Get("rd"), http.StatusOK, "")
}

func (s *Server) showStepUp(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser, rd string, code int, errKey string) {
	if s.mfa == nil {
		o.renderPage(w, http.StatusServiceUnavailable, "message", messageView{page: o.page(p, p.L.T("mfa.stepup.title")), Text: p.L.T("mfa.unavailable")})
		return
	}
	f, err := s.mfa.Get(r.Context(), p.User.Name)
	if err != nil {
		s.log.Error("second factor store read failed", zap.String("user", p.User.Name), zap.Error(err))
		o.renderPage(w, http.StatusServiceUnavailable, "message", messageView{page: o.page(p, p.L.T("mfa.stepup.title")), Text: p.L.T("mfa.unavailable")})
		return
	}
	if !f.Enrolled() {
		// Nothing to step up with: enrol first (a required group's members
		// land here at their first login), then continue to rd.
		s.redirect(w, o.Prefix+"account/mfa?rd="+url.QueryEscape(rd))
		return
	}
	v := stepUpView{page: o.page(p, p.L.T("mfa.stepup.title")), RD: rd,
		CSRF: o.formToken(p, "stepup"), PasskeyCSRF: o.formToken(p, "passkey-stepup"),
		TOTP: f.TOTP != nil, Passkeys: len(f.Passkeys) > 0, Recovery: len(f.Recovery)}
	if errKey != "" {
		v.Error = p.L.T(errKey)
	}
	o.renderPage(w, code, "mfa_stepup", v)
}

// handleStepUp checks a TOTP or recovery code. Wrong codes count in the
// login throttle under the user's name and the client's address, like
// wrong passwords, so a stolen password does not buy unlimited guesses.
func (s *Server) handleStepUp(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok || !s.checkForm(o, w, r, p, "stepup") {
		return
	}
	rd := r.PostForm.Get("rd")
	if s.mfa == nil || s.replay == nil {
		s.showStepUp(o, w, r, p, rd, http.StatusServiceUnavailable, "")
		return
	}
	how, errKey, code := s.checkCode(r.Context(), o, r, p, r.PostForm.Get("code"))
	if errKey != "" {
		s.showStepUp(o, w, r, p, rd, code, errKey)
		return
	}
	if _, err := s.elevate(r.Context(), o, w, r, p, how); err != nil {
		s.log.Error("session create failed", zap.String("user", p.User.Name), zap.Error(err))
		s.showStepUp(o, w, r, p, rd, http.StatusServiceUnavailable, "mfa.error.busy")
		return
	}
	if how == "recovery" {
		s.record(r.Context(), r, audit.Event{Event: "mfa_recovery_used", Actor: p.User.Name, Target: p.User.Name})
	}
	s.redirect(w, o.safeRedirect(rd, o.DefaultRedirect))
}

// checkCode checks a typed code for p's user: six digits are a TOTP code,
// anything else a recovery code. It returns the method that passed, or an
// i18n error key and the status to answer with.
func (s *Server) checkCode(ctx context.Context, o *settings, r *http.Request, p *pageUser, typed string) (how, errKey string, code int) {
	ip := addrField(o.clientIP(r))
	name := p.User.Name
	typed = strings.TrimSpace(typed)
	if typed == "" || len(typed) > 64 {
		return "", "mfa.error.code", http.StatusUnauthorized
	}
	v, err := s.thr.Reserve(ctx, name, ip)
	if err != nil {
		s.log.Error("throttle check failed", zap.Error(err))
		return "", "mfa.error.busy", http.StatusServiceUnavailable
	}
	if v.Wait > 0 {
		s.metrics.login("mfa_throttled")
		s.log.Info("second factor failed", zap.String("event", "mfa_failed"), zap.String("reason", "throttled"),
			zap.String("user", name), zap.String("client_ip", ip), zap.Duration("wait", v.Wait))
		return "", "mfa.error.throttled", http.StatusTooManyRequests
	}
	var ok bool
	if digits := strings.ReplaceAll(typed, " ", ""); len(digits) == mfa.Digits && strings.Trim(digits, "0123456789") == "" {
		how = "totp"
		var f mfa.Factors
		if f, err = s.mfa.Get(ctx, name); err == nil {
			ok, err = mfa.CheckTOTP(ctx, s.replay, name, &f, digits, s.now())
		}
	} else {
		how = "recovery"
		err = s.mfa.Update(ctx, name, func(f *mfa.Factors) error {
			if ok = mfa.UseRecovery(f, typed); !ok {
				return mfa.ErrNotFound // nothing to write
			}
			return nil
		})
		if err == mfa.ErrNotFound {
			err = nil
		}
	}
	if err != nil {
		s.refund(ctx, name, ip) // no code was judged
		s.log.Error("second factor check failed", zap.String("user", name), zap.Error(err))
		return "", "mfa.error.busy", http.StatusServiceUnavailable
	}
	if !ok {
		s.metrics.login("mfa_failed")
		s.log.Info("second factor failed", zap.String("event", "mfa_failed"), zap.String("reason", "wrong_"+how),
			zap.String("user", name), zap.String("client_ip", ip))
		return "", "mfa.error.code", http.StatusUnauthorized
	}
	s.refund(ctx, name, ip)
	return how, "", 0
}

// newWebAuthn is the relying party for o, or nil when public_url cannot
// be one (WebAuthn then refuses; codes still work).
func newWebAuthn(o Options) *webauthn.WebAuthn {
	name := o.MFA.Issuer
	if name == "" {
		name = o.LoginTitle
	}
	if name == "" {
		name = "authd"
	}
	wa, err := mfa.NewWebAuthn(o.PublicURL, name)
	if err != nil {
		return nil
	}
	return wa
}
