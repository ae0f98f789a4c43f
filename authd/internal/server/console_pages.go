package server

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authd/authd/authd/internal/account"
	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/users"
)

func urlQuery(s string) string { return url.QueryEscape(s) }

// doneNotices are the notices a redirect after a change may ask for; the
// query names one, so no text from the URL reaches the page.
var doneNotices = map[string]string{
	"added": "User added.", "updated": "User updated.", "locked": "User locked; their sessions ended.",
	"unlocked": "User unlocked.", "deleted": "User deleted; their sessions ended.",
	"revoked": "Session signed out.", "revoked_all": "Every session of the user signed out.",
	"everyone": "Everyone was signed out.", "approved": "Registration approved; the user can sign in.",
	"rejected": "Registration rejected.", "token_revoked": "Revoked.", "password": "Password set; their sessions ended.",
	"mfa_reset":          "Second factors removed; their sessions ended.",
	"headeronly_revoked": "Signed out: their sessions ended.",
}

func doneNotice(r *http.Request) string { return doneNotices[r.URL.Query().Get("done")] }

type sessionRow struct {
	ID, IP, UserAgent string
	Created, LastSeen time.Time
	Remember, Current bool
}

type credentialRow struct {
	Kind, ID, User, Label string
	Created, Expires      time.Time
	Expired               bool
}

type userView struct {
	page
	U              users.User
	Admin          bool
	Groups         string
	CSRF           string
	Sessions       []sessionRow
	SessionsError  string
	Credentials    []credentialRow
	HasResetLinks  bool
	HasCredentials bool
	LastLogin      time.Time
	// Factors are the user's second factors; HasFactors is false when
	// second factors are not configured.
	Factors    FactorSummary
	HasFactors bool
}

// consoleUser returns the user named by the query's u, or answers 404.
func (s *Server) consoleUser(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) (*users.Entry, bool) {
	name, err := users.Canonical(r.URL.Query().Get("u"))
	if err == nil {
		if e, ok := s.users.DB().Lookup(name); ok {
			return e, true
		}
	}
	v := messageView{page: o.consolePage(p, "No such user"), Text: "There is no such user.", Back: o.Prefix + "admin/"}
	o.renderPage(w, http.StatusNotFound, "message", v)
	return nil, false
}

func (s *Server) handleConsoleUser(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) {
	e, ok := s.consoleUser(o, w, r, p)
	if !ok {
		return
	}
	v := userView{page: o.consolePage(p, "User "+e.Name), U: e.User, Admin: users.IsAdmin(e.User, o.AdminGroups),
		Groups: strings.Join(e.Groups, ", "), CSRF: o.formToken(p, "admin"),
		HasResetLinks: s.acct != nil, HasCredentials: s.credentials != nil}
	v.Notice = doneNotice(r)
	if s.adminSessions == nil {
		v.SessionsError = "This store cannot list sessions."
	} else if list, err := s.adminSessions.List(r.Context(), e.Name); err != nil {
		v.SessionsError = "The session store could not be read."
	} else {
		now := s.now()
		for _, se := range list {
			if !se.Session.Valid(now) {
				continue
			}
			v.Sessions = append(v.Sessions, sessionRow{ID: se.Key.Short(), IP: se.Session.IP, UserAgent: se.Session.UserAgent,
				Created: se.Session.Created.UTC(), LastSeen: se.Session.LastSeen.UTC(), Remember: se.Session.Remember, Current: se.Key == p.Key})
		}
	}
	if s.credentials != nil {
		v.Credentials = credentialRows(s.credentials.Records(), e.Name, s.now())
	}
	if s.lastLogins != nil {
		if m, err := s.lastLogins.LastLogin(r.Context()); err == nil {
			v.LastLogin = m[e.Name]
		}
	}
	if sums, err := s.FactorSummaries(r.Context()); err == nil {
		v.Factors, v.HasFactors = sums[e.Name], true
	}
	o.renderPage(w, http.StatusOK, "admin_user", v)
}

func credentialRows(rec machine.Records, user string, now time.Time) []credentialRow {
	var out []credentialRow
	for _, t := range rec.Tokens {
		if user == "" || t.User == user {
			out = append(out, credentialRow{Kind: "token", ID: t.ID, User: t.User, Label: t.Label, Created: t.Created.UTC(), Expires: t.Expires.UTC(), Expired: !now.Before(t.Expires)})
		}
	}
	for _, k := range rec.Keys {
		if user == "" || k.User == user {
			out = append(out, credentialRow{Kind: "key", ID: k.ID, User: k.User, Label: k.Label, Created: k.Created.UTC(), Expires: k.Expires.UTC(), Expired: !now.Before(k.Expires)})
		}
	}
	return out
}

type newUserView struct {
	page
	CSRF    string
	Invites bool
}

func (s *Server) handleConsoleNew(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) {
	v := newUserView{page: o.consolePage(p, "Add user"), CSRF: o.formToken(p, "admin"), Invites: s.acct != nil}
	v.Notice = doneNotice(r)
	o.renderPage(w, http.StatusOK, "admin_new", v)
}

type auditView struct {
	page
	// FilterUser and FilterEvent are the filter's (page.User is the admin).
	FilterUser, FilterEvent string
	Events                  []audit.Event
}

func (s *Server) handleConsoleAudit(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) {
	q := r.URL.Query()
	f := audit.Filter{User: strings.TrimSpace(q.Get("user")), Event: strings.TrimSpace(q.Get("event")), Limit: 200}
	if len(f.User) > 128 || len(f.Event) > 64 {
		f.User, f.Event = "", ""
	}
	v := auditView{page: o.consolePage(p, "Audit log"), FilterUser: f.User, FilterEvent: f.Event}
	ev, err := s.audit.Recent(r.Context(), f)
	if err != nil {
		v.page.Error = "The audit log could not be read."
	}
	v.Events = ev
	o.renderPage(w, http.StatusOK, "admin_audit", v)
}

type tokensView struct {
	page
	CSRF        string
	Credentials []credentialRow
	Available   bool
}

func (s *Server) handleConsoleTokens(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) {
	v := tokensView{page: o.consolePage(p, "API tokens and signing keys"), CSRF: o.formToken(p, "admin"), Available: s.credentials != nil}
	if s.credentials != nil {
		v.Credentials = credentialRows(s.credentials.Records(), "", s.now())
	}
	v.Notice = doneNotice(r)
	o.renderPage(w, http.StatusOK, "admin_tokens", v)
}

type registrationsView struct {
	page
	CSRF      string
	Requests  []account.Request
	Available bool
}

// handleConsoleRegistrations is the approval queue of registration mode
// "approval" (the account pages fill it).
func (s *Server) handleConsoleRegistrations(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) {
	v := registrationsView{page: o.consolePage(p, "Registrations"), CSRF: o.formToken(p, "admin"), Available: s.acct != nil}
	if s.acct != nil {
		reqs, err := s.registrationRequests(r.Context())
		if err != nil {
			v.page.Error = "The registration queue could not be read."
		}
		v.Requests = reqs
	}
	v.Notice = doneNotice(r)
	o.renderPage(w, http.StatusOK, "admin_registrations", v)
}
