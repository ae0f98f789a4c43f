package server

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/account"
	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/hasher"
	"github.com/authd/authd/authd/internal/users"
)

// errShown is an error whose text the admin may read.
type errShown struct{ msg string }

func (e errShown) Error() string { return e.msg }

func shown(format string, args ...any) error { return errShown{fmt.Sprintf(format, args...)} }

// handleConsoleDo runs one console change. A sensitive one (delete, set a
// password, reset link, token creation, granting an admin group) needs the
// admin's password entered within [admin] reauth: without it the answer is
// a password prompt that carries the whole pending form and posts it here
// again, so nothing waits in server state.
func (s *Server) handleConsoleDo(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) {
	if !s.checkForm(o, w, r, p, "admin") {
		return
	}
	f := r.PostForm
	op := f.Get("op")
	if !slices.Contains(consoleOps, op) {
		s.consoleError(o, w, p, http.StatusBadRequest, shown("Unknown action."), "")
		return
	}
	if s.sensitive(o, op, f) && !s.reauthed(o, r, p) {
		if !s.reauthenticate(o, w, r, p) {
			return
		}
	}
	s.runOp(o, w, r, p, op)
}

var consoleOps = []string{"add", "set", "lock", "unlock", "delete", "password", "reset",
	"revoke_session", "revoke_all", "signout_everyone", "token_create", "token_revoke",
	"invite", "approve", "reject", "mfa_reset"}

// sensitive reports whether op with form f needs a recent password.
func (s *Server) sensitive(o *settings, op string, f url.Values) bool {
	switch op {
	case "delete", "password", "reset", "token_create", "mfa_reset":
		return true
	case "add", "invite":
		return grantsAdmin(o, nil, splitGroups(f.Get("groups")))
	case "approve":
		return s.acct != nil && grantsAdmin(o, nil, s.acct.Registration.DefaultGroups)
	case "set":
		var old []string
		if name, err := users.Canonical(f.Get("user")); err == nil {
			if e, ok := s.users.DB().Lookup(name); ok {
				old = e.Groups
			}
		}
		return grantsAdmin(o, old, splitGroups(f.Get("groups")))
	}
	return false
}

func grantsAdmin(o *settings, old, nu []string) bool {
	for _, g := range nu {
		if slices.Contains(o.AdminGroups, g) && !slices.Contains(old, g) {
			return true
		}
	}
	return false
}

func splitGroups(s string) []string {
	var out []string
	for _, g := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// reauthName is the cookie that says when the admin last re-entered their password.
func (o *settings) reauthName() string {
	if n := strings.Replace(o.CookieName, "session", "reauth", 1); n != o.CookieName {
		return n
	}
	return o.CookieName + "_reauth"
}

// reauthMAC binds a re-authentication time to the session, so the cookie
// is worthless in another session and dies with this one.
func (o *settings) reauthMAC(p *pageUser, t int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t))
	return o.token("reauth", append(append([]byte{}, p.Key[:]...), b[:]...))
}

// reauthed reports whether p's admin entered their password within [admin] reauth.
func (s *Server) reauthed(o *settings, r *http.Request, p *pageUser) bool {
	v, ok := cookieValue(r.Header, o.reauthName())
	if !ok {
		return false
	}
	ts, mac, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || !hmac.Equal([]byte(mac), []byte(o.reauthMAC(p, t))) {
		return false
	}
	age := s.now().Sub(time.Unix(t, 0))
	return age >= -time.Minute && age < o.Reauth
}

type reauthView struct {
	page
	Action string
	Fields []hiddenField
	What   string
}

type hiddenField struct{ Name, Value string }

// reauthenticate checks the password sent with the pending form; without
// one, or with a wrong one, it answers with the prompt and reports false.
func (s *Server) reauthenticate(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) bool {
	f := r.PostForm
	pw := f.Get("reauth_password")
	v := reauthView{page: o.consolePage(p, "Confirm it is you"), Action: o.Prefix + "admin/do", What: opTitles[f.Get("op")]}
	for k, vs := range f {
		if k == "reauth_password" {
			continue
		}
		for _, x := range vs {
			v.Fields = append(v.Fields, hiddenField{k, x})
		}
	}
	slices.SortFunc(v.Fields, func(a, b hiddenField) int { return strings.Compare(a.Name, b.Name) })
	if pw == "" {
		o.renderPage(w, http.StatusUnauthorized, "admin_reauth", v)
		return false
	}
	ok, err := s.checkOwnPassword(o, r, p, pw)
	switch {
	case err != nil:
		v.page.Error = err.Error()
	case !ok:
		s.record(r.Context(), r, audit.Event{Event: "reauth_failed", Actor: p.User.Name})
		v.page.Error = "That password is not right."
	default:
		t := s.now().Unix()
		o.setCookie(w, o.reauthName(), strconv.FormatInt(t, 10)+"."+o.reauthMAC(p, t), int(o.Reauth/time.Second))
		s.record(r.Context(), r, audit.Event{Event: "reauth_succeeded", Actor: p.User.Name})
		return true
	}
	o.renderPage(w, http.StatusUnauthorized, "admin_reauth", v)
	return false
}

// checkOwnPassword verifies p's password, throttled and gated like a login.
func (s *Server) checkOwnPassword(o *settings, r *http.Request, p *pageUser, pw string) (bool, error) {
	ip := addrField(o.clientIP(r))
	name := p.User.Name
	v, err := s.thr.Reserve(r.Context(), name, ip)
	if err != nil {
		return false, shown("Cannot check passwords right now; try again in a moment.")
	}
	if v.Wait > 0 {
		return false, shown("Too many wrong passwords; try again in %d seconds.", int(v.Wait/time.Second)+1)
	}
	if len(pw) > users.MaxPasswordBytes {
		return false, nil
	}
	if !o.gate.acquire(r.Context()) {
		s.refund(r.Context(), name, ip)
		return false, shown("Too many sign-ins right now; try again in a moment.")
	}
	var ok bool
	ok, _, err = s.hash.Verify(r.Context(), p.User.Hash, pw, o.HashParams, o.HashLimits)
	o.gate.release()
	if errors.Is(err, hasher.ErrUnavailable) {
		s.refund(r.Context(), name, ip)
		return false, shown("Too many sign-ins right now; try again in a moment.")
	}
	if err != nil || !ok {
		return false, nil
	}
	_ = s.thr.Success(r.Context(), name, ip)
	s.refund(r.Context(), name, ip)
	return true, nil
}

var opTitles = map[string]string{
	"add": "Add a user", "set": "Change a user", "delete": "Delete a user", "password": "Set a password",
	"reset": "Issue a password-reset link", "token_create": "Create an API token or signing key",
	"mfa_reset": "Reset a user's second factors",
	"invite":    "Invite a user", "approve": "Approve a registration",
}

// consoleError shows err (its text when it is errShown, else a generic one).
func (s *Server) consoleError(o *settings, w http.ResponseWriter, p *pageUser, code int, err error, back string) {
	msg := "The change could not be made; see authd's log."
	var se errShown
	if errors.As(err, &se) {
		msg = se.msg
	} else if err != nil {
		s.log.Error("admin console change failed", zap.Error(err))
	}
	v := messageView{page: o.consolePage(p, "Not done"), Text: msg, Back: back}
	o.renderPage(w, code, "message", v)
}

// runOp makes the change. r.PostForm has passed checkForm (and reauth).
func (s *Server) runOp(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser, op string) {
	f := r.PostForm
	ctx := r.Context()
	admin := o.Prefix + "admin/"
	ev := audit.Event{Actor: p.User.Name, Source: "web"}
	switch op {
	case "signout_everyone":
		if f.Get("confirm") != "yes" {
			s.consoleError(o, w, p, http.StatusBadRequest, shown("Tick the box to confirm that everyone, you included, will be signed out."), admin)
			return
		}
		if s.adminSessions == nil {
			s.consoleError(o, w, p, http.StatusNotImplemented, shown("This store cannot end every session."), admin)
			return
		}
		n, err := s.adminSessions.DeleteAll(ctx)
		if err != nil {
			s.consoleError(o, w, p, http.StatusServiceUnavailable, err, admin)
			return
		}
		ev.Event, ev.Detail = "all_sessions_revoked", fmt.Sprintf("%d sessions", n)
		s.record(ctx, r, ev)
		s.redirect(w, admin+"?done=everyone")
		return
	case "token_revoke":
		kind, id := f.Get("kind"), f.Get("id")
		if s.credentials == nil || (kind != "token" && kind != "key") || id == "" || len(id) > 64 {
			s.consoleError(o, w, p, http.StatusBadRequest, shown("No such token or key."), admin+"tokens")
			return
		}
		if err := s.credentials.Revoke(ctx, kind, id); err != nil {
			s.consoleError(o, w, p, http.StatusBadRequest, shown("%s could not be revoked (is it still there?).", id), admin+"tokens")
			return
		}
		ev.Event, ev.Target = kind+"_revoked", id
		s.record(ctx, r, ev)
		back := admin + "tokens?done=token_revoked"
		if u := f.Get("back_user"); u != "" {
			back = admin + "user?u=" + url.QueryEscape(u) + "&done=token_revoked"
		}
		s.redirect(w, back)
		return
	case "invite":
		s.consoleInvite(o, w, r, p)
		return
	case "approve", "reject":
		s.consoleRegistration(o, w, r, p, op)
		return
	}

	name, err := users.Canonical(f.Get("user"))
	if err != nil {
		s.consoleError(o, w, p, http.StatusBadRequest, shown("That is not a valid user name: %v.", err), admin)
		return
	}
	ev.Target = name
	userPage := admin + "user?u=" + url.QueryEscape(name)
	if op == "add" {
		userPage = admin + "new"
	}
	done := func(event, detail, notice string) {
		ev.Event, ev.Detail = event, detail
		s.record(ctx, r, ev)
		s.redirect(w, admin+"user?u="+url.QueryEscape(name)+"&done="+notice)
	}
	switch op {
	case "mfa_reset":
		// Their factors go, and so do their sessions: a reset usually means
		// a lost or stolen device. ResetFactors records mfa_reset.
		if _, err := s.ResetFactors(ctx, r, p.User.Name, name); err != nil {
			s.consoleError(o, w, p, http.StatusServiceUnavailable, err, userPage)
			return
		}
		n := 0
		if s.adminSessions != nil {
			if n, err = s.adminSessions.DeleteUser(ctx, name); err != nil {
				s.consoleError(o, w, p, http.StatusServiceUnavailable, err, userPage)
				return
			}
		}
		done("sessions_revoked", fmt.Sprintf("%d sessions, after a second factor reset", n), "mfa_reset")
		return
	case "revoke_session", "revoke_all":
		if s.adminSessions == nil {
			s.consoleError(o, w, p, http.StatusNotImplemented, shown("This store cannot list sessions."), userPage)
			return
		}
		if op == "revoke_all" {
			n, err := s.adminSessions.DeleteUser(ctx, name)
			if err != nil {
				s.consoleError(o, w, p, http.StatusServiceUnavailable, err, userPage)
				return
			}
			if !s.users.DB().HasUser(name) {
				// A header-only identity: no user page to go back to.
				ev.Event, ev.Detail = "sessions_revoked", fmt.Sprintf("%d header-only sessions", n)
				s.record(ctx, r, ev)
				s.redirect(w, admin+"headeronly?done=headeronly_revoked")
				return
			}
			done("sessions_revoked", fmt.Sprintf("%d sessions", n), "revoked_all")
			return
		}
		list, err := s.adminSessions.List(ctx, name)
		if err != nil {
			s.consoleError(o, w, p, http.StatusServiceUnavailable, err, userPage)
			return
		}
		id := f.Get("id")
		for _, se := range list {
			if se.Key.Short() == id && se.Session.User == name {
				if err := s.store.Delete(ctx, se.Key); err != nil {
					s.consoleError(o, w, p, http.StatusServiceUnavailable, err, userPage)
					return
				}
				done("session_revoked", "session "+id, "revoked")
				return
			}
		}
		s.consoleError(o, w, p, http.StatusNotFound, shown("That session has already ended."), userPage)
		return
	case "reset":
		if s.acct == nil {
			s.consoleError(o, w, p, http.StatusNotImplemented, shown("Password-reset links are not available here."), userPage)
			return
		}
		if _, ok := s.users.DB().Lookup(name); !ok {
			s.consoleError(o, w, p, http.StatusNotFound, shown("There is no user %s.", name), admin)
			return
		}
		ttl, err := linkTTL(f.Get("hours"), time.Hour)
		if err != nil {
			s.consoleError(o, w, p, http.StatusBadRequest, err, userPage)
			return
		}
		// issueReset (links.go) records reset_issued naming the admin.
		link, mailed, err := s.issueReset(ctx, r, name, p.User.Name, ttl)
		if err != nil {
			s.consoleError(o, w, p, http.StatusServiceUnavailable, err, userPage)
			return
		}
		text := "Give this link to " + name + " by a channel you trust."
		if mailed {
			text = "The link was mailed to " + name + "'s address."
		}
		v := shownOnceView{page: o.consolePage(p, "Password-reset link for "+name), Secret: link, Back: userPage,
			Text: text + " It is shown only this once, works once, expires in " + ttl.String() + ", and ends " + name + "'s sessions when used."}
		o.renderPage(w, http.StatusOK, "admin_shown", v)
		return
	case "token_create":
		s.createCredential(o, w, r, p, name, userPage, ev)
		return
	}
	s.editUser(o, w, r, p, op, name, userPage, done)
}

type shownOnceView struct {
	page
	Text, Secret, Back string
}

// createCredential issues a token or key for name and shows it once.
func (s *Server) createCredential(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser, name, back string, ev audit.Event) {
	f := r.PostForm
	kind, label := f.Get("kind"), strings.TrimSpace(f.Get("label"))
	if s.credentials == nil || (kind != "token" && kind != "key") {
		s.consoleError(o, w, p, http.StatusBadRequest, shown("Choose a token or a signing key."), back)
		return
	}
	if label == "" || len(label) > 100 || strings.ContainsFunc(label, isControl) {
		s.consoleError(o, w, p, http.StatusBadRequest, shown("Say what the %s is for (a name of up to 100 characters).", kind), back)
		return
	}
	days, err := strconv.Atoi(f.Get("days"))
	if err != nil || days < 1 || days > 366 {
		s.consoleError(o, w, p, http.StatusBadRequest, shown("The lifetime is 1 to 366 days."), back)
		return
	}
	e, ok := s.users.DB().Lookup(name)
	if !ok {
		s.consoleError(o, w, p, http.StatusNotFound, shown("There is no user %s.", name), o.Prefix+"admin/")
		return
	}
	if e.Disabled {
		s.consoleError(o, w, p, http.StatusBadRequest, shown("%s is locked: a %s would never work. Unlock first.", name, kind), back)
		return
	}
	secret, id, exp, err := s.credentials.Create(r.Context(), kind, name, e.Generation, label, time.Duration(days)*24*time.Hour)
	if err != nil {
		s.consoleError(o, w, p, http.StatusServiceUnavailable, err, back)
		return
	}
	ev.Event, ev.Detail = kind+"_created", id+" "+strconv.Quote(label)
	s.record(r.Context(), r, ev)
	what := "This token"
	if kind == "key" {
		what = "This key id and secret"
	}
	v := shownOnceView{page: o.consolePage(p, "New "+kind+" for "+name), Secret: secret, Back: back,
		Text: what + " (" + id + ", expires " + exp.UTC().Format("2006-01-02 15:04 UTC") + ") is shown only this once. Copy it now."}
	o.renderPage(w, http.StatusOK, "admin_shown", v)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// linkTTL reads a link lifetime in hours (empty: def), 1h to 30 days.
func linkTTL(hours string, def time.Duration) (time.Duration, error) {
	if hours == "" {
		return def, nil
	}
	n, err := strconv.Atoi(hours)
	if err != nil || n < 1 || n > 720 {
		return 0, shown("A link works for 1 to 720 hours.")
	}
	return time.Duration(n) * time.Hour, nil
}

// consoleInvite makes an invite link (user name optional: the invitee picks
// one) and shows it once; createInvite (links.go) records invite_created.
func (s *Server) consoleInvite(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) {
	f := r.PostForm
	back := o.Prefix + "admin/new"
	if s.acct == nil {
		s.consoleError(o, w, p, http.StatusNotImplemented, shown("Invites are not available here."), back)
		return
	}
	inv := account.Invite{Groups: splitGroups(f.Get("groups")), Email: strings.TrimSpace(f.Get("email"))}
	if raw := strings.TrimSpace(f.Get("user")); raw != "" {
		name, err := users.Canonical(raw)
		if err != nil {
			s.consoleError(o, w, p, http.StatusBadRequest, shown("That is not a valid user name: %v.", err), back)
			return
		}
		if _, ok := s.users.DB().Lookup(name); ok {
			s.consoleError(o, w, p, http.StatusBadRequest, shown("A user %s exists already.", name), back)
			return
		}
		inv.User = name
	}
	for _, g := range inv.Groups {
		if !users.ValidGroup(g) {
			s.consoleError(o, w, p, http.StatusBadRequest, shown("%q is not a valid group name.", g), back)
			return
		}
	}
	ttl, err := linkTTL(f.Get("hours"), 72*time.Hour)
	if err != nil {
		s.consoleError(o, w, p, http.StatusBadRequest, err, back)
		return
	}
	link, mailed, err := s.createInvite(r.Context(), r, inv, p.User.Name, ttl)
	if err != nil {
		s.consoleError(o, w, p, http.StatusServiceUnavailable, err, back)
		return
	}
	text := "Give this invite link to the new user by a channel you trust."
	if mailed {
		text = "The invite was mailed to " + inv.Email + "."
	}
	v := shownOnceView{page: o.consolePage(p, "Invite link"), Secret: link, Back: back,
		Text: text + " It is shown only this once, works once and expires in " + ttl.String() + "."}
	o.renderPage(w, http.StatusOK, "admin_shown", v)
}

// consoleRegistration approves or rejects a registration request;
// approveRequest/rejectRequest (links.go) take it atomically and record it.
func (s *Server) consoleRegistration(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser, op string) {
	back := o.Prefix + "admin/registrations"
	id := r.PostForm.Get("id")
	if s.acct == nil || id == "" || len(id) > 64 {
		s.consoleError(o, w, p, http.StatusBadRequest, shown("No such registration request."), back)
		return
	}
	var err error
	if op == "approve" {
		_, err = s.approveRequest(r.Context(), r, id, p.User.Name)
	} else {
		_, err = s.rejectRequest(r.Context(), r, id, p.User.Name)
	}
	switch {
	case errors.Is(err, account.ErrNotFound):
		s.consoleError(o, w, p, http.StatusNotFound, shown("That request was already handled or has expired."), back)
	case errors.Is(err, users.ErrExists):
		s.consoleError(o, w, p, http.StatusConflict, shown("That user name was taken meanwhile; the request stays in the queue."), back)
	case err != nil:
		s.consoleError(o, w, p, http.StatusServiceUnavailable, err, back)
	default:
		s.redirect(w, back+"?done="+op+"d")
	}
}
