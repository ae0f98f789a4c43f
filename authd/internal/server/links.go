package server

import (
	"context"
	"crypto/hmac"
	"errors"
	"mime"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/account"
	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/users"
)

// The pages of people who are not signed in: accepting an invite, using a
// reset link, asking for one, and registering. Their forms carry a CSRF
// token bound to the login page's pre-session cookie and the purpose.

// anonPage returns the layout fields of a page without a signed-in user.
func (o *settings) anonPage(r *http.Request, heading func(l *lang) string) page {
	l := o.lang(r)
	return page{Title: o.pages.title, Prefix: o.Prefix, L: l, Heading: heading(l)}
}

// anonToken is the CSRF token of an anonymous form for purpose.
func (o *settings) anonToken(w http.ResponseWriter, r *http.Request, purpose string) string {
	return o.token("anon:"+purpose, []byte(o.preSession(w, r)))
}

// checkAnonForm admits an anonymous form post for purpose, like checkForm
// does for signed-in pages. On failure it has answered and reports false.
func (s *Server) checkAnonForm(o *settings, w http.ResponseWriter, r *http.Request, purpose string) bool {
	refuse := func(code int, key string) bool {
		pg := o.anonPage(r, func(l *lang) string { return l.T("form.expired.title") })
		o.renderPage(w, code, "message", messageView{page: pg, Text: pg.L.T(key)})
		return false
	}
	if !o.sameOrigin(r) {
		return refuse(http.StatusForbidden, "form.crosssite.text")
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return refuse(http.StatusUnsupportedMediaType, "form.expired.text")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		return refuse(http.StatusRequestEntityTooLarge, "form.toolarge.text")
	}
	pre, ok := cookieValue(r.Header, o.preName)
	tok := r.PostForm.Get("csrf")
	if !ok || pre == "" || tok == "" || !hmac.Equal([]byte(tok), []byte(o.token("anon:"+purpose, []byte(pre)))) {
		return refuse(http.StatusForbidden, "form.expired.text")
	}
	return true
}

// linkInvalid answers a link that is unknown, used, revoked or expired: one
// answer for all four.
func (s *Server) linkInvalid(o *settings, w http.ResponseWriter, r *http.Request) {
	pg := o.anonPage(r, func(l *lang) string { return l.T("link.invalid.title") })
	o.renderPage(w, http.StatusNotFound, "message", messageView{page: pg, Text: pg.L.T("link.invalid.text"), Back: o.Prefix + "login"})
}

// linkOK answers a failed link lookup: an unknown, used, revoked or expired
// link gets the one invalid-link page, a store failure the busy page. It
// reports whether err was nil, so the handler may go on.
func (s *Server) linkOK(o *settings, w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, account.ErrInvalid):
		s.linkInvalid(o, w, r)
	default:
		s.storeTrouble(o, w, r, err)
	}
	return false
}

func (s *Server) storeTrouble(o *settings, w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("account store failed", zap.Error(err))
	pg := o.anonPage(r, func(l *lang) string { return l.T("account.busy.title") })
	w.Header().Set("Retry-After", "1")
	o.renderPage(w, http.StatusServiceUnavailable, "message", messageView{page: pg, Text: pg.L.T("account.busy")})
}

type inviteView struct {
	page
	Action, CSRF string
	// Fixed is the username the invite gives, if any; Username is what was typed.
	Fixed, Username, Email string
}

func (s *Server) handleInviteForm(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	o := s.cur.Load()
	token := ps.ByName("token")
	inv, err := s.acct.Store.Invite(r.Context(), token)
	if !s.linkOK(o, w, r, err) {
		return
	}
	s.renderInvite(o, w, r, http.StatusOK, token, inv, "", "")
}

func (s *Server) renderInvite(o *settings, w http.ResponseWriter, r *http.Request, code int, token string, inv account.Invite, typed, errKey string) {
	v := inviteView{page: o.anonPage(r, func(l *lang) string { return l.T("invite.title") }),
		Action: o.Prefix + "invite/" + token, CSRF: o.anonToken(w, r, "invite"), Fixed: inv.User, Username: typed, Email: inv.Email}
	if errKey != "" {
		v.Error = v.L.T(errKey)
	}
	o.renderPage(w, code, "invite", v)
}

// handleInvite makes the invitee's account and signs them in. The invite
// is taken (atomically, once) only after the form checked out and the
// password is hashed; if the account cannot be made it is put back.
func (s *Server) handleInvite(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	o := s.cur.Load()
	if !s.checkAnonForm(o, w, r, "invite") {
		return
	}
	token := ps.ByName("token")
	inv, err := s.acct.Store.Invite(r.Context(), token)
	if !s.linkOK(o, w, r, err) {
		return
	}
	typed := r.PostForm.Get("username")
	name := inv.User
	if name == "" {
		if name, err = users.Canonical(typed); err != nil {
			s.renderInvite(o, w, r, http.StatusBadRequest, token, inv, typed, "invite.username.invalid")
			return
		}
	}
	if _, taken := s.users.DB().Lookup(name); taken {
		s.renderInvite(o, w, r, http.StatusConflict, token, inv, typed, "invite.username.taken")
		return
	}
	if key := checkNewPasswords(r.PostForm.Get("password"), r.PostForm.Get("password2")); key != "" {
		s.renderInvite(o, w, r, http.StatusBadRequest, token, inv, typed, key)
		return
	}
	_, hash, err := s.checkAndHash(o, r.Context(), "", "", r.PostForm.Get("password"))
	if err != nil {
		s.storeTrouble(o, w, r, err)
		return
	}
	inv, err = s.acct.Store.TakeInvite(r.Context(), token)
	if !s.linkOK(o, w, r, err) {
		return
	}
	err = s.users.Update(r.Context(), name, func(u users.User, exists bool) (users.User, bool, error) {
		if exists {
			return u, false, users.ErrExists
		}
		return users.User{Name: name, Hash: hash, Groups: inv.Groups, Email: inv.Email, Generation: users.NewGeneration(),
			Created: s.now().UTC().Truncate(time.Second)}, false, nil
	})
	if err != nil {
		if perr := s.acct.Store.PutBackInvite(r.Context(), token, inv); perr != nil {
			s.log.Warn("put back invite failed", zap.Error(perr))
		}
		if errors.Is(err, users.ErrExists) {
			s.renderInvite(o, w, r, http.StatusConflict, token, inv, typed, "invite.username.taken")
			return
		}
		s.storeTrouble(o, w, r, err)
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "invite_accepted", Actor: name, Target: name,
		Detail: "invite " + inv.ID + " by " + inv.By + "; groups " + strings.Join(inv.Groups, ",")})
	ip := addrField(o.clientIP(r))
	if !s.resume(o, w, r, name, false, ip) {
		s.redirect(w, o.Prefix+"login")
		return
	}
	o.setCookie(w, o.preName, "", -1)
	s.redirect(w, o.DefaultRedirect)
}

type resetView struct {
	page
	Action, CSRF, User string
}

func (s *Server) handleResetForm(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	o := s.cur.Load()
	token := ps.ByName("token")
	rs, err := s.acct.Store.Reset(r.Context(), token)
	if !s.linkOK(o, w, r, err) {
		return
	}
	s.renderReset(o, w, r, http.StatusOK, token, rs.User, "")
}

func (s *Server) renderReset(o *settings, w http.ResponseWriter, r *http.Request, code int, token, user, errKey string) {
	v := resetView{page: o.anonPage(r, func(l *lang) string { return l.T("reset.title") }),
		Action: o.Prefix + "reset/" + token, CSRF: o.anonToken(w, r, "reset"), User: user}
	if errKey != "" {
		v.Error = v.L.T(errKey)
	}
	o.renderPage(w, code, "reset", v)
}

// handleReset sets a new password from a reset link. The new credential
// generation ends every session of the user, on every node; the user then
// signs in with the new password.
func (s *Server) handleReset(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	o := s.cur.Load()
	if !s.checkAnonForm(o, w, r, "reset") {
		return
	}
	token := ps.ByName("token")
	rs, err := s.acct.Store.Reset(r.Context(), token)
	if !s.linkOK(o, w, r, err) {
		return
	}
	if key := checkNewPasswords(r.PostForm.Get("password"), r.PostForm.Get("password2")); key != "" {
		s.renderReset(o, w, r, http.StatusBadRequest, token, rs.User, key)
		return
	}
	_, hash, err := s.checkAndHash(o, r.Context(), "", "", r.PostForm.Get("password"))
	if err != nil {
		s.storeTrouble(o, w, r, err)
		return
	}
	rs, err = s.acct.Store.TakeReset(r.Context(), token)
	if !s.linkOK(o, w, r, err) {
		return
	}
	err = s.users.Update(r.Context(), rs.User, func(u users.User, exists bool) (users.User, bool, error) {
		if !exists {
			return u, false, errGone
		}
		u.Hash, u.Generation = hash, users.NewGeneration()
		return u, false, nil
	})
	if errors.Is(err, errGone) {
		s.linkInvalid(o, w, r)
		return
	}
	if err != nil {
		s.storeTrouble(o, w, r, err)
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "reset_used", Actor: rs.User, Target: rs.User, Detail: "reset " + rs.ID + " by " + rs.By + "; every session ended"})
	pg := o.anonPage(r, func(l *lang) string { return l.T("reset.done.title") })
	o.renderPage(w, http.StatusOK, "message", messageView{page: pg, Text: pg.L.T("reset.done.text"), Back: o.Prefix + "login"})
}

type addressView struct {
	page
	Action, CSRF, Address string
	// Fields of the approval form.
	Approval              bool
	Username, DisplayName string
}

func (s *Server) handleForgotForm(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	if s.acct.Mailer == nil {
		plain(w, http.StatusNotFound, "not found")
		return
	}
	s.renderAddress(o, w, r, http.StatusOK, "forgot", addressView{})
}

func (s *Server) renderAddress(o *settings, w http.ResponseWriter, r *http.Request, code int, name string, v addressView) {
	v.page = o.anonPage(r, func(l *lang) string { return l.T(name + ".title") })
	v.Action, v.CSRF = o.Prefix+name, o.anonToken(w, r, name)
	o.renderPage(w, code, name, v)
}

// handleForgot mails a reset link to the account named by a username or an
// email address, if there is one with an email address. The answer is the
// same text after the same least time whether or not an account exists or
// a mail was sent; one address gets at most one mail per 15 minutes (the
// account store keeps the hashed address, so every node shares the limit).
func (s *Server) handleForgot(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	if s.acct.Mailer == nil {
		plain(w, http.StatusNotFound, "not found")
		return
	}
	start := time.Now()
	if !s.checkAnonForm(o, w, r, "forgot") {
		return
	}
	addr := strings.TrimSpace(r.PostForm.Get("address"))
	if addr == "" || len(addr) > 254 {
		s.renderAddress(o, w, r, http.StatusBadRequest, "forgot", addressView{Address: capText(addr, 254)})
		return
	}
	user, email := s.findAccount(addr)
	ip := addrField(o.clientIP(r))
	if user != "" {
		// Everything that touches a store or the mail server runs after the
		// answer, so its time says nothing about the account.
		go s.forgotMail(o, user, email, ip)
	} else {
		s.log.Info("reset asked for no account", zap.String("event", "reset_unknown"), zap.String("client_ip", ip))
	}
	pad(r.Context(), start, anonymousFloor)
	pg := o.anonPage(r, func(l *lang) string { return l.T("forgot.title") })
	o.renderPage(w, http.StatusOK, "message", messageView{page: pg, Text: pg.L.T("forgot.sent"), Back: o.Prefix + "login"})
}

// allow is Store.Allow failing closed: a store error allows nothing.
func (s *Server) allow(ctx context.Context, what string, interval time.Duration) bool {
	ok, err := s.acct.Store.Allow(ctx, what, interval)
	if err != nil {
		s.log.Error("account limit check failed", zap.Error(err))
		return false
	}
	return ok
}

// findAccount returns the user addr names (a username or an email address)
// and that user's email, or "" when none has an email address.
func (s *Server) findAccount(addr string) (user, email string) {
	db := s.users.DB()
	if name, err := users.Canonical(addr); err == nil {
		if u, ok := db.Lookup(name); ok && u.Email != "" && !u.Disabled {
			return u.Name, u.Email
		}
	}
	if !strings.Contains(addr, "@") {
		return "", ""
	}
	for _, u := range db.Users() {
		if u.Email != "" && !u.Disabled && strings.EqualFold(u.Email, addr) {
			return u.Name, u.Email
		}
	}
	return "", ""
}

// forgotMail makes a reset link for user and mails it to email, off the
// request, within two limits: one client address causes at most one mail
// per ipInterval, to any account (a script cannot mail every user at
// once), and one address gets at most one per forgotInterval.
func (s *Server) forgotMail(o *settings, user, email, ip string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !s.allow(ctx, "forgot-ip:"+ip, ipInterval) || !s.allow(ctx, "forgot:"+strings.ToLower(email), forgotInterval) {
		s.log.Info("reset mail throttled", zap.String("event", "reset_throttled"), zap.String("user", user), zap.String("client_ip", ip))
		return
	}
	token, rs, err := s.acct.Store.CreateReset(ctx, user, "forgot", resetTTL)
	if err != nil {
		s.log.Error("reset link failed", zap.Error(err))
		return
	}
	s.record(ctx, nil, audit.Event{Event: "reset_issued", Actor: user, Target: user, IP: ip, Source: "web", Detail: "forgot password; reset " + rs.ID + " mailed"})
	link := o.PublicURL + o.Prefix + "reset/" + token
	s.send(account.ResetMessage(email, s.acct.Site, user, link, rs.Expires), "reset", user)
}

func (s *Server) send(m account.Message, what, user string) {
	if err := s.acct.Mailer.Send(context.Background(), m); err != nil {
		s.log.Error("mail failed", zap.String("event", "mail_failed"), zap.String("mail", what), zap.String("user", user), zap.Error(err))
		return
	}
	s.log.Info("mail sent", zap.String("event", "mail_sent"), zap.String("mail", what), zap.String("user", user))
}

// pad sleeps until floor has passed since start.
func pad(ctx context.Context, start time.Time, floor time.Duration) {
	t := time.NewTimer(time.Until(start.Add(floor)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func capText(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (s *Server) handleRegisterForm(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	switch s.acct.Registration.Mode {
	case "open", "approval":
		s.renderAddress(o, w, r, http.StatusOK, "register", addressView{Approval: s.acct.Registration.Mode == "approval"})
	default:
		pg := o.anonPage(r, func(l *lang) string { return l.T("register.title") })
		o.renderPage(w, http.StatusNotFound, "message", messageView{page: pg, Text: pg.L.T("register.closed"), Back: o.Prefix + "login"})
	}
}

// handleRegister takes a registration. "open": an address in an allowed
// domain gets an invite link by mail (so only its owner can make the
// account); the answer is the same whether a mail went out. "approval":
// the request, with the password already hashed, waits for an admin.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	mode := s.acct.Registration.Mode
	if mode != "open" && mode != "approval" {
		s.handleRegisterForm(w, r, nil)
		return
	}
	start := time.Now()
	if !s.checkAnonForm(o, w, r, "register") {
		return
	}
	ip := addrField(o.clientIP(r))
	v := addressView{Approval: mode == "approval", Address: capText(strings.TrimSpace(r.PostForm.Get("address")), 254),
		Username: capText(r.PostForm.Get("username"), 64), DisplayName: capText(strings.TrimSpace(r.PostForm.Get("display_name")), 100)}
	bad := func(code int, key string) {
		v.Error = o.lang(r).T(key)
		s.renderAddress(o, w, r, code, "register", v)
	}
	throttled := func() bool {
		if s.allow(r.Context(), "register-ip:"+ip, ipInterval) {
			return false
		}
		w.Header().Set("Retry-After", "60")
		bad(http.StatusTooManyRequests, "register.throttled")
		return true
	}
	if mode == "open" {
		if !account.EmailAllowed(v.Address, s.acct.Registration.AllowedDomains) {
			bad(http.StatusBadRequest, "register.domain")
			return
		}
		if throttled() {
			return
		}
		if allowed, err := s.acct.Store.Allow(r.Context(), "register:"+strings.ToLower(v.Address), forgotInterval); err != nil {
			s.storeTrouble(o, w, r, err)
			return
		} else if allowed {
			token, inv, err := s.acct.Store.CreateInvite(r.Context(), account.Invite{Email: v.Address, Groups: s.acct.Registration.DefaultGroups, By: "register"}, openInviteTTL)
			if err != nil {
				s.storeTrouble(o, w, r, err)
				return
			}
			s.record(r.Context(), r, audit.Event{Event: "invite_created", Actor: "register", Detail: "open registration; invite " + inv.ID + " mailed"})
			go s.send(account.InviteMessage(v.Address, s.acct.Site, o.PublicURL+o.Prefix+"invite/"+token, inv.Expires), "invite", "")
		}
		pad(r.Context(), start, anonymousFloor)
		pg := o.anonPage(r, func(l *lang) string { return l.T("register.title") })
		o.renderPage(w, http.StatusOK, "message", messageView{page: pg, Text: pg.L.T("register.sent"), Back: o.Prefix + "login"})
		return
	}
	name, err := users.Canonical(v.Username)
	if err != nil {
		bad(http.StatusBadRequest, "invite.username.invalid")
		return
	}
	if v.Address != "" {
		if a, err := mail.ParseAddress(v.Address); err != nil || a.Address != v.Address {
			bad(http.StatusBadRequest, "register.address.invalid")
			return
		}
	}
	if strings.ContainsFunc(v.DisplayName, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		bad(http.StatusBadRequest, "register.name.invalid")
		return
	}
	if _, taken := s.users.DB().Lookup(name); taken {
		bad(http.StatusConflict, "invite.username.taken")
		return
	}
	if key := checkNewPasswords(r.PostForm.Get("password"), r.PostForm.Get("password2")); key != "" {
		bad(http.StatusBadRequest, key)
		return
	}
	if throttled() {
		return
	}
	_, hash, err := s.checkAndHash(o, r.Context(), "", "", r.PostForm.Get("password"))
	if err != nil {
		s.storeTrouble(o, w, r, err)
		return
	}
	req, err := s.acct.Store.AddRequest(r.Context(), account.Request{User: name, Email: v.Address, DisplayName: v.DisplayName, Hash: hash, IP: ip}, requestTTL)
	if errors.Is(err, account.ErrPending) {
		bad(http.StatusConflict, "invite.username.taken")
		return
	}
	if err != nil {
		s.storeTrouble(o, w, r, err)
		return
	}
	s.record(r.Context(), r, audit.Event{Event: "registration_requested", Actor: name, Target: name, Detail: "request " + req.ID})
	pg := o.anonPage(r, func(l *lang) string { return l.T("register.title") })
	o.renderPage(w, http.StatusOK, "message", messageView{page: pg, Text: pg.L.T("register.queued"), Back: o.Prefix + "login"})
}

// Registration requests for the admin console: RegistrationRequests lists
// the queue, approveRequest makes the user (with the password they chose
// and the default groups) and rejectRequest drops the request. Both take
// the request atomically, so two admins acting at once change it once;
// both are audit events naming the admin.

// registrationRequests lists the waiting requests, oldest first.
func (s *Server) registrationRequests(ctx context.Context) ([]account.Request, error) {
	if s.acct == nil {
		return nil, nil
	}
	return s.acct.Store.Requests(ctx)
}

// approveRequest makes the account asked for by request id. A username
// taken meanwhile leaves the request in the queue and returns users.ErrExists.
func (s *Server) approveRequest(ctx context.Context, r *http.Request, id, admin string) (account.Request, error) {
	if s.acct == nil {
		return account.Request{}, account.ErrNotFound
	}
	req, err := s.acct.Store.Approve(ctx, id, func(q account.Request) error {
		return s.users.Update(ctx, q.User, func(u users.User, exists bool) (users.User, bool, error) {
			if exists {
				return u, false, users.ErrExists
			}
			return users.User{Name: q.User, Hash: q.Hash, Email: q.Email, DisplayName: q.DisplayName,
				Groups: s.acct.Registration.DefaultGroups, Generation: users.NewGeneration(), Created: s.now().UTC().Truncate(time.Second)}, false, nil
		})
	})
	if err != nil {
		return req, err
	}
	s.record(ctx, r, audit.Event{Event: "registration_approved", Actor: admin, Target: req.User, Detail: "request " + req.ID})
	return req, nil
}

// rejectRequest drops request id.
func (s *Server) rejectRequest(ctx context.Context, r *http.Request, id, admin string) (account.Request, error) {
	if s.acct == nil {
		return account.Request{}, account.ErrNotFound
	}
	req, err := s.acct.Store.Reject(ctx, id)
	if err != nil {
		return req, err
	}
	s.record(ctx, r, audit.Event{Event: "registration_rejected", Actor: admin, Target: req.User, Detail: "request " + req.ID})
	return req, nil
}

// issueReset makes a reset link for user on behalf of admin and returns
// it; with a mailer and an email address on the user it is mailed too
// (mailed reports whether a mail was handed to the mail server).
func (s *Server) issueReset(ctx context.Context, r *http.Request, user, admin string, ttl time.Duration) (link string, mailed bool, err error) {
	if s.acct == nil {
		return "", false, errors.New("account links are not wired")
	}
	o := s.cur.Load()
	token, rs, err := s.acct.Store.CreateReset(ctx, user, admin, ttl)
	if err != nil {
		return "", false, err
	}
	link = o.PublicURL + o.Prefix + "reset/" + token
	s.record(ctx, r, audit.Event{Event: "reset_issued", Actor: admin, Target: user, Detail: "reset " + rs.ID})
	if u, ok := s.users.DB().Lookup(user); ok && u.Email != "" && s.acct.Mailer != nil {
		if err := s.acct.Mailer.Send(ctx, account.ResetMessage(u.Email, s.acct.Site, user, link, rs.Expires)); err != nil {
			s.log.Error("mail failed", zap.String("event", "mail_failed"), zap.String("mail", "reset"), zap.String("user", user), zap.Error(err))
			return link, false, nil
		}
		return link, true, nil
	}
	return link, false, nil
}

// createInvite makes an invite on behalf of admin and returns its link;
// with a mailer and inv.Email it is mailed too.
func (s *Server) createInvite(ctx context.Context, r *http.Request, inv account.Invite, admin string, ttl time.Duration) (link string, mailed bool, err error) {
	if s.acct == nil {
		return "", false, errors.New("account links are not wired")
	}
	o := s.cur.Load()
	inv.By = admin
	token, inv, err := s.acct.Store.CreateInvite(ctx, inv, ttl)
	if err != nil {
		return "", false, err
	}
	link = o.PublicURL + o.Prefix + "invite/" + token
	s.record(ctx, r, audit.Event{Event: "invite_created", Actor: admin, Target: inv.User, Detail: "invite " + inv.ID + "; groups " + strings.Join(inv.Groups, ",")})
	if inv.Email != "" && s.acct.Mailer != nil {
		if err := s.acct.Mailer.Send(ctx, account.InviteMessage(inv.Email, s.acct.Site, link, inv.Expires)); err != nil {
			s.log.Error("mail failed", zap.String("event", "mail_failed"), zap.String("mail", "invite"), zap.Error(err))
			return link, false, nil
		}
		return link, true, nil
	}
	return link, false, nil
}
