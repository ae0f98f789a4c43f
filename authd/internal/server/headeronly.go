package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/authd/authd/authd/internal/idp"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// Header-only identities (an OIDC provider with create_users = false) have
// no local user record: the session carries the name, email, display name,
// groups and source the provider gave at sign-in, and verify answers with
// them exactly as with a record's. So an admin cannot lock or edit such a
// user: the session ends by its lifetime or idle timeout, sign-out,
// "authd session revoke -user NAME" or signing everyone out. There is no
// credential fingerprint to compare; the groups stay as they were at
// sign-in until the session ends.
//
// The name space is shared with local records: a name that has a record
// (a local account, a directory user, another provider's user, or this
// provider's user from before create_users = false) is refused at sign-in,
// and a header-only session whose name gets a record later ends at its
// next request, so it never stands in for that account.

// headerOnly checks that name has no local record (asking a shared users
// store for its current state first) and returns the user the session will
// carry. The provider's values are cut to what a record could hold:
// groups authd cannot name are dropped, and so is an email or display name
// a record would refuse; at most session.MaxGroups groups are kept.
func (s *Server) headerOnly(ctx context.Context, name string, id idp.Identity) (*users.Entry, *session.External, error) {
	if err := s.users.EnsureCurrent(ctx, name); err != nil {
		return nil, nil, fmt.Errorf("check for a local user: %w", err)
	}
	if _, ok := s.users.DB().Lookup(name); ok {
		return nil, nil, errTakeover
	}
	ext := &session.External{Source: id.Source, Email: recordText(id.Email), DisplayName: recordText(id.DisplayName)}
	for _, g := range id.Groups {
		if users.ValidGroup(g) && len(g) <= session.MaxGroup && !slices.Contains(ext.Groups, g) {
			ext.Groups = append(ext.Groups, g)
		}
	}
	slices.Sort(ext.Groups)
	if len(ext.Groups) > session.MaxGroups {
		ext.Groups = ext.Groups[:session.MaxGroups]
	}
	return externalEntry(name, ext), ext, nil
}

// headerOnlyUser returns the user a header-only session stands for, or
// false when the session must end: a local record of its name exists, or
// its provider is gone or no longer keeps header-only identities.
func (s *Server) headerOnlyUser(db *users.DB, sess *session.Session) (*users.Entry, bool) {
	if db.HasUser(sess.User) {
		return nil, false
	}
	id, ok := strings.CutPrefix(sess.External.Source, "oidc:")
	if p := s.oidc[id]; !ok || p == nil || !p.HeaderOnly() {
		return nil, false
	}
	return externalEntry(sess.User, sess.External), true
}

// externalEntry is the user entry of a header-only identity: no hash, no
// generation, fingerprint 0, never disabled.
func externalEntry(name string, ext *session.External) *users.Entry {
	return &users.Entry{
		User: users.User{Name: name, Email: ext.Email, DisplayName: ext.DisplayName,
			Groups: ext.Groups, Source: ext.Source},
		GroupsHeader: strings.Join(ext.Groups, ","),
	}
}

// headerOnlySession reports whether p's session carries a header-only
// identity: such a user has no record for the account, second factor or
// admin pages to work on.
func headerOnlySession(p *pageUser) bool { return p.Session.External != nil }

// refuseHeaderOnly answers a signed-in page (account, second factors,
// admin console) for a header-only identity: 403 with a message that says
// where the account lives; nothing can be changed.
func (s *Server) refuseHeaderOnly(o *settings, w http.ResponseWriter, p *pageUser) {
	name := p.Session.External.Source
	if id, ok := strings.CutPrefix(name, "oidc:"); ok && s.oidc[id] != nil {
		name = s.oidc[id].DisplayName()
	}
	v := messageView{page: o.page(p, p.L.T("headeronly.title")), Text: p.L.T("headeronly.text", name)}
	o.renderPage(w, http.StatusForbidden, "message", v)
}

// headerOnlyRow is one header-only identity in the console's list.
type headerOnlyRow struct {
	Name, Source, DisplayName string
	Groups                    []string
	Sessions                  int
	LastSeen                  time.Time
}

type headerOnlyView struct {
	page
	Available bool
	Rows      []headerOnlyRow
	CSRF      string
}

// handleConsoleHeaderOnly lists the live header-only sessions by name,
// each with a button that ends them (there is no user page for them). It
// reads every session, so it is a page of its own, loaded on demand.
func (s *Server) handleConsoleHeaderOnly(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) {
	v := headerOnlyView{page: o.consolePage(p, "Header-only sign-ins"), CSRF: o.formToken(p, "admin")}
	v.Notice = doneNotice(r)
	if s.adminSessions != nil {
		list, err := s.adminSessions.List(r.Context(), "")
		if err != nil {
			s.consoleError(o, w, p, http.StatusServiceUnavailable, err, o.Prefix+"admin/")
			return
		}
		v.Available = true
		now := s.now()
		at := map[string]int{}
		for _, e := range list {
			x := e.Session.External
			if x == nil || !e.Session.Valid(now) {
				continue
			}
			i, ok := at[e.Session.User]
			if !ok {
				i = len(v.Rows)
				at[e.Session.User] = i
				v.Rows = append(v.Rows, headerOnlyRow{Name: e.Session.User})
			}
			row := &v.Rows[i]
			row.Sessions++
			if e.Session.LastSeen.After(row.LastSeen) {
				// The newest session's identity is the one shown.
				row.LastSeen, row.Source, row.DisplayName, row.Groups = e.Session.LastSeen, x.Source, x.DisplayName, x.Groups
			}
		}
		slices.SortFunc(v.Rows, func(a, b headerOnlyRow) int { return strings.Compare(a.Name, b.Name) })
	}
	o.renderPage(w, http.StatusOK, "admin_headeronly", v)
}

// recordText keeps an email or display name a user record could hold, or
// drops it.
func recordText(v string) string {
	if users.CheckText(v) != nil || len(v) > session.MaxText {
		return ""
	}
	return v
}
