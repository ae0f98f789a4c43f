package server

import (
	"crypto/hmac"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/mfa"
)

// mfaRoutes lists the second-factor pages (called from Handler).
func (s *Server) mfaRoutes(r *httprouter.Router, p string) {
	r.GET(p+"mfa/step-up", s.handleStepUpForm)
	r.POST(p+"mfa/step-up", s.handleStepUp)
	r.GET(p+"account/mfa", s.handleMFAAccount)
	r.GET(p+"account/mfa/totp", s.handleTOTPForm)
	r.POST(p+"account/mfa/totp", s.handleTOTPEnrol)
	r.POST(p+"account/mfa/totp/remove", s.handleTOTPRemove)
	r.POST(p+"account/mfa/recovery", s.handleRecoveryRegenerate)
	s.passkeyRoutes(r, p)
}

// mfaAccountView is the overview of a user's second factors.
type mfaAccountView struct {
	page
	RD                                        string
	TOTP                                      *mfa.TOTP
	Recovery                                  int
	Passkeys                                  []passkeyRow
	Required                                  bool
	RemoveTOTPCSRF, RecoveryCSRF, PasskeyCSRF string
	PasskeyAdd                                string
}

type passkeyRow struct {
	Index       int
	Name, Added string
	CSRF        string
}

// mfaManager returns p's factors for a page that changes them. A user who
// has a factor must have proved one within manageMaxAge; otherwise this
// has sent them to the step-up page (back to back) and reports false.
func (s *Server) mfaManager(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser, back string) (mfa.Factors, bool) {
	if s.mfa == nil {
		o.renderPage(w, http.StatusServiceUnavailable, "message", messageView{page: o.page(p, p.L.T("mfa.account.title")), Text: p.L.T("mfa.unavailable")})
		return mfa.Factors{}, false
	}
	f, err := s.mfa.Get(r.Context(), p.User.Name)
	if err != nil {
		s.log.Error("second factor store read failed", zap.String("user", p.User.Name), zap.Error(err))
		o.renderPage(w, http.StatusServiceUnavailable, "message", messageView{page: o.page(p, p.L.T("mfa.account.title")), Text: p.L.T("mfa.unavailable")})
		return f, false
	}
	if f.Enrolled() && (p.Session.SecondFactor.IsZero() || s.now().Sub(p.Session.SecondFactor) > manageMaxAge) {
		s.redirect(w, o.stepUpURL(back))
		return f, false
	}
	return f, true
}

func (s *Server) handleMFAAccount(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok {
		return
	}
	rd := r.URL.Query().Get("rd")
	f, ok := s.mfaManager(o, w, r, p, r.URL.RequestURI())
	if !ok {
		return
	}
	s.renderMFAAccount(o, w, p, &f, rd, http.StatusOK, "", "")
}

func (s *Server) renderMFAAccount(o *settings, w http.ResponseWriter, p *pageUser, f *mfa.Factors, rd string, code int, errKey, noticeKey string) {
	v := mfaAccountView{page: o.page(p, p.L.T("mfa.account.title")), RD: rd, TOTP: f.TOTP, Recovery: len(f.Recovery),
		Required:       o.inRequiredGroup(p.User) && !f.Enrolled(),
		RemoveTOTPCSRF: o.formToken(p, "totp-remove"), RecoveryCSRF: o.formToken(p, "recovery"),
		PasskeyCSRF: o.formToken(p, "passkey-register")}
	for i, pk := range f.Passkeys {
		v.Passkeys = append(v.Passkeys, passkeyRow{Index: i, Name: pk.Name, Added: pk.Added.UTC().Format("2006-01-02"),
			CSRF: o.formToken(p, "passkey-remove")})
	}
	if errKey != "" {
		v.Error = p.L.T(errKey)
	}
	if noticeKey != "" {
		v.Notice = p.L.T(noticeKey)
	}
	o.renderPage(w, code, "mfa_account", v)
}

// totpView is the authenticator app enrolment page.
type totpView struct {
	page
	RD, CSRF, Secret, SecretSig string
	// SecretGroups is the secret in groups of four for reading aloud or typing.
	SecretGroups string
	URI          string
	QR           template.HTML
}

func (s *Server) handleTOTPForm(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok {
		return
	}
	f, ok := s.mfaManager(o, w, r, p, r.URL.RequestURI())
	if !ok {
		return
	}
	if f.TOTP != nil {
		s.redirect(w, o.Prefix+"account/mfa")
		return
	}
	secret, uri, err := mfa.NewSecret(o.issuer(), p.User.Name)
	if err != nil {
		s.log.Error("totp secret failed", zap.Error(err))
		plain(w, http.StatusInternalServerError, "internal error")
		return
	}
	s.renderTOTP(o, w, p, secret, uri, r.URL.Query().Get("rd"), http.StatusOK, "")
}

func (o *settings) issuer() string {
	if o.MFA.Issuer != "" {
		return o.MFA.Issuer
	}
	if o.LoginTitle != "" {
		return o.LoginTitle
	}
	return "authd"
}

func (s *Server) renderTOTP(o *settings, w http.ResponseWriter, p *pageUser, secret, uri, rd string, code int, errKey string) {
	svg, err := mfa.QRSVG(uri, p.L.T("mfa.totp.qr"))
	if err != nil {
		s.log.Error("qr code failed", zap.Error(err))
	}
	var groups []string
	for i := 0; i < len(secret); i += 4 {
		groups = append(groups, secret[i:min(i+4, len(secret))])
	}
	v := totpView{page: o.page(p, p.L.T("mfa.totp.title")), RD: rd, CSRF: o.formToken(p, "totp"),
		Secret: secret, SecretSig: o.token("totp-secret:"+secret, p.Key[:]), SecretGroups: strings.Join(groups, " "),
		URI: uri, QR: template.HTML(svg)} // our own SVG: digits and fixed markup, the title escaped
	if errKey != "" {
		v.Error = p.L.T(errKey)
	}
	o.renderPage(w, code, "mfa_totp", v)
}

// handleTOTPEnrol confirms an authenticator app with its first code. The
// secret comes back from the form, signed for this session, so nothing is
// stored until the app has shown it has the secret.
func (s *Server) handleTOTPEnrol(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok || !s.checkForm(o, w, r, p, "totp") {
		return
	}
	rd := r.PostForm.Get("rd")
	f, ok := s.mfaManager(o, w, r, p, o.Prefix+"account/mfa")
	if !ok {
		return
	}
	secret := r.PostForm.Get("secret")
	if len(secret) > 128 || !hmacEqual(r.PostForm.Get("sig"), o.token("totp-secret:"+secret, p.Key[:])) {
		o.renderPage(w, http.StatusForbidden, "message", messageView{page: o.page(p, p.L.T("form.expired.title")), Text: p.L.T("form.expired.text")})
		return
	}
	if f.TOTP != nil {
		s.redirect(w, o.Prefix+"account/mfa")
		return
	}
	_, uri, _ := mfa.NewSecret(o.issuer(), p.User.Name)
	uri = withSecret(uri, secret)
	typed := strings.ReplaceAll(strings.TrimSpace(r.PostForm.Get("code")), " ", "")
	ip := addrField(o.clientIP(r))
	v, err := s.thr.Reserve(r.Context(), p.User.Name, ip)
	switch {
	case err != nil:
		s.log.Error("throttle check failed", zap.Error(err))
		s.renderTOTP(o, w, p, secret, uri, rd, http.StatusServiceUnavailable, "mfa.error.busy")
		return
	case v.Wait > 0:
		s.renderTOTP(o, w, p, secret, uri, rd, http.StatusTooManyRequests, "mfa.error.throttled")
		return
	}
	pending := &mfa.Factors{TOTP: &mfa.TOTP{Secret: secret}}
	good, err := mfa.CheckTOTP(r.Context(), s.replay, p.User.Name, pending, typed, s.now())
	if err != nil || !good {
		if err != nil {
			s.refund(r.Context(), p.User.Name, ip)
			s.log.Error("totp check failed", zap.Error(err))
			s.renderTOTP(o, w, p, secret, uri, rd, http.StatusServiceUnavailable, "mfa.error.busy")
			return
		}
		s.metrics.login("mfa_failed")
		s.log.Info("second factor failed", zap.String("event", "mfa_failed"), zap.String("reason", "wrong_enrolment_code"),
			zap.String("user", p.User.Name), zap.String("client_ip", ip))
		s.renderTOTP(o, w, p, secret, uri, rd, http.StatusUnauthorized, "mfa.error.code")
		return
	}
	s.refund(r.Context(), p.User.Name, ip)
	var codes []string
	err = s.mfa.Update(r.Context(), p.User.Name, func(f *mfa.Factors) error {
		if f.TOTP != nil {
			return mfa.ErrNotFound // enrolled meanwhile (another tab)
		}
		f.TOTP = &mfa.TOTP{Secret: secret, Added: s.now().UTC()}
		if len(f.Recovery) == 0 {
			var hashes []string
			var err error
			if codes, hashes, err = mfa.NewRecoveryCodes(); err != nil {
				return err
			}
			f.Recovery = hashes
		}
		return nil
	})
	if err == mfa.ErrNotFound {
		s.redirect(w, o.Prefix+"account/mfa")
		return
	}
	if err != nil {
		s.log.Error("second factor store write failed", zap.Error(err))
		s.renderTOTP(o, w, p, secret, uri, rd, http.StatusServiceUnavailable, "mfa.error.busy")
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "mfa_totp_added", Actor: p.User.Name, Target: p.User.Name})
	// The user just proved the new factor: the session counts as two-factor.
	if _, err := s.elevate(r.Context(), o, w, r, p, "totp"); err != nil {
		s.log.Error("session create failed", zap.Error(err))
	}
	next := o.safeRedirect(rd, o.Prefix+"account/mfa")
	if rd == "" {
		next = o.Prefix + "account/mfa"
	}
	if len(codes) == 0 {
		s.redirect(w, next)
		return
	}
	s.renderCodes(o, w, p, codes, next)
}

// withSecret puts secret in an otpauth URI made for another secret.
func withSecret(uri, secret string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	q := u.Query()
	q.Set("secret", secret)
	u.RawQuery = q.Encode()
	return u.String()
}

type codesView struct {
	page
	Codes []string
	Next  string
}

// renderCodes shows fresh recovery codes: the only time they are shown.
func (s *Server) renderCodes(o *settings, w http.ResponseWriter, p *pageUser, codes []string, next string) {
	o.renderPage(w, http.StatusOK, "mfa_codes", codesView{page: o.page(p, p.L.T("mfa.codes.title")), Codes: codes, Next: next})
}

func (s *Server) handleTOTPRemove(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok || !s.checkForm(o, w, r, p, "totp-remove") {
		return
	}
	if _, ok := s.mfaManager(o, w, r, p, o.Prefix+"account/mfa"); !ok {
		return
	}
	var f mfa.Factors
	err := s.mfa.Update(r.Context(), p.User.Name, func(x *mfa.Factors) error {
		x.TOTP = nil
		if !x.Enrolled() {
			x.Recovery = nil // codes back up a factor; with none left they go too
		}
		f = *x
		return nil
	})
	if err != nil {
		s.log.Error("second factor store write failed", zap.Error(err))
		s.renderMFAAccount(o, w, p, &f, "", http.StatusServiceUnavailable, "mfa.error.busy", "")
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "mfa_totp_removed", Actor: p.User.Name, Target: p.User.Name})
	s.renderMFAAccount(o, w, p, &f, "", http.StatusOK, "", "mfa.totp.removed")
}

func (s *Server) handleRecoveryRegenerate(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	p, ok := s.signedIn(o, w, r)
	if !ok || !s.checkForm(o, w, r, p, "recovery") {
		return
	}
	f, ok := s.mfaManager(o, w, r, p, o.Prefix+"account/mfa")
	if !ok {
		return
	}
	if !f.Enrolled() {
		s.renderMFAAccount(o, w, p, &f, "", http.StatusConflict, "mfa.codes.nofactor", "")
		return
	}
	codes, hashes, err := mfa.NewRecoveryCodes()
	if err == nil {
		err = s.mfa.Update(r.Context(), p.User.Name, func(x *mfa.Factors) error { x.Recovery = hashes; return nil })
	}
	if err != nil {
		s.log.Error("second factor store write failed", zap.Error(err))
		s.renderMFAAccount(o, w, p, &f, "", http.StatusServiceUnavailable, "mfa.error.busy", "")
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "mfa_recovery_regenerated", Actor: p.User.Name, Target: p.User.Name})
	s.renderCodes(o, w, p, codes, o.Prefix+"account/mfa")
}

func hmacEqual(a, b string) bool {
	return a != "" && hmac.Equal([]byte(a), []byte(b))
}
