package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/users"
)

// The admin console ({prefix}admin/): pages for the enabled members of the
// admin groups; everyone else signed in gets 403 on every URL and method.
// Every change is one POST to {prefix}admin/do with an op field, checked
// like every signed-in form (Origin, CSRF bound to the session), written
// through the stores' Update paths (so every node sees it at its next
// verify) and recorded as an audit event naming the admin, the target and
// the client address.

// ConsoleCredentials is what the console needs of API tokens and signing
// keys; package main gives it the functions the token and key commands use.
type ConsoleCredentials interface {
	Records() machine.Records
	// Create issues a token or key ("token" or "key") for user, bound to the
	// user's credential generation, and returns what to show once, its id
	// and its expiry.
	Create(ctx context.Context, kind, user string, generation uint64, label string, lifetime time.Duration) (shown, id string, expires time.Time, err error)
	Revoke(ctx context.Context, kind, id string) error
}

// LastLogins says when each user last signed in; nil shows no last login.
// Login calls Seen; it is kept apart from the users (no write per login to
// the users file or record).
type LastLogins interface {
	Seen(ctx context.Context, user string, t time.Time) error
	LastLogin(ctx context.Context) (map[string]time.Time, error)
}

// noteLogin records a successful sign-in for the console's "last login".
func (s *Server) noteLogin(ctx context.Context, user string) {
	if s.lastLogins == nil {
		return
	}
	if err := s.lastLogins.Seen(ctx, user, s.now()); err != nil {
		s.log.Warn("last login not recorded", zap.Error(err))
	}
}

// consolePageSize is how many users a page of the list shows.
const consolePageSize = 50

// consoleRoutes adds the admin console's routes under prefix p.
func (s *Server) consoleRoutes(r *httprouter.Router, p string) {
	r.GET(p+"admin", s.admin(func(o *settings, w http.ResponseWriter, _ *http.Request, _ *pageUser) {
		s.redirect(w, o.Prefix+"admin/")
	}))
	r.GET(p+"admin/", s.admin(s.handleConsoleUsers))
	r.GET(p+"admin/user", s.admin(s.handleConsoleUser))
	r.GET(p+"admin/new", s.admin(s.handleConsoleNew))
	r.GET(p+"admin/audit", s.admin(s.handleConsoleAudit))
	r.GET(p+"admin/tokens", s.admin(s.handleConsoleTokens))
	r.GET(p+"admin/registrations", s.admin(s.handleConsoleRegistrations))
	r.GET(p+"admin/headeronly", s.admin(s.handleConsoleHeaderOnly))
	r.POST(p+"admin/do", s.admin(s.handleConsoleDo))
}

type consoleHandler func(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser)

// admin admits the signed-in members of the admin groups to h. Everyone
// else signed in gets 403, whatever the URL or method; a request without a
// session goes to the login page. Every answer carries Server-Timing
// (app;dur=milliseconds spent in authd, rendering included).
func (s *Server) admin(h consoleHandler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		w = &timedWriter{ResponseWriter: w, start: time.Now()}
		o := s.cur.Load()
		p, ok := s.signedIn(o, w, r)
		if !ok {
			return
		}
		if !users.IsAdmin(p.User.User, o.AdminGroups) {
			s.record(r.Context(), r, audit.Event{Event: "admin_denied", Actor: p.User.Name, Detail: r.Method + " " + capped(r.URL.Path)})
			v := messageView{page: o.page(p, "Forbidden"), Text: "The admin console is for members of the admin groups."}
			o.renderPage(w, http.StatusForbidden, "message", v)
			return
		}
		if s.needsStepUp(o, r, p) {
			s.redirect(w, o.stepUpURL(o.Prefix+"admin/"))
			return
		}
		h(o, w, r, p)
	}
}

// timedWriter adds Server-Timing when the answer's header is written.
type timedWriter struct {
	http.ResponseWriter
	start time.Time
	wrote bool
}

func (t *timedWriter) WriteHeader(code int) {
	if !t.wrote {
		t.wrote = true
		ms := float64(time.Since(t.start).Microseconds()) / 1000
		t.Header().Set("Server-Timing", "app;dur="+strconv.FormatFloat(ms, 'f', 2, 64))
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *timedWriter) Write(b []byte) (int, error) {
	if !t.wrote {
		t.WriteHeader(http.StatusOK)
	}
	return t.ResponseWriter.Write(b)
}

// consolePage is the layout of every console page.
func (o *settings) consolePage(p *pageUser, heading string) page {
	v := o.page(p, heading)
	a := o.Prefix + "admin/"
	v.Nav = []navLink{{a, "Users"}, {a + "new", "Add user"}, {a + "tokens", "Tokens"}, {a + "audit", "Audit"}}
	return v
}

// userRow is one user as the list shows it, precomputed per users snapshot.
type userRow struct {
	users.User
	Admin  bool
	search string // lower-case name, display name, email, groups
}

// userIndex is the users of one snapshot, sorted by name, built once.
type userIndex struct {
	db   *users.DB
	rows []userRow
}

// consoleCache holds the index of the latest snapshot the console saw.
type consoleCache struct {
	mu  sync.Mutex
	idx *userIndex
}

// index returns the sorted rows of db, building them once per snapshot (a
// reload or an Update makes a new *users.DB).
func (c *consoleCache) index(db *users.DB, groups []string) *userIndex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idx != nil && c.idx.db == db {
		return c.idx
	}
	list := db.Users() // sorted by name
	rows := make([]userRow, len(list))
	for i, u := range list {
		rows[i] = userRow{User: u, Admin: users.IsAdmin(u, groups),
			search: strings.ToLower(u.Name + "\x00" + u.DisplayName + "\x00" + u.Email + "\x00" + strings.Join(u.Groups, "\x00"))}
	}
	c.idx = &userIndex{db: db, rows: rows}
	return c.idx
}

type usersView struct {
	page
	Q            string
	Rows         []userRow
	Total        int
	Page, Pages  int
	Prev, Next   string
	CSRF         string
	LastLogin    map[string]time.Time
	HasLastLogin bool
	// Factors are second factors by user; HasFactors is false when they
	// are not configured.
	Factors    map[string]FactorSummary
	HasFactors bool
}

func (s *Server) handleConsoleUsers(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 128 {
		q = q[:128]
	}
	idx := s.console.index(s.users.DB(), o.AdminGroups)
	rows := idx.rows
	if q != "" {
		lq := strings.ToLower(q)
		rows = nil
		for i := range idx.rows {
			if strings.Contains(idx.rows[i].search, lq) {
				rows = append(rows, idx.rows[i])
			}
		}
	}
	v := usersView{page: o.consolePage(p, "Users"), Q: q, Total: len(rows), CSRF: o.formToken(p, "admin")}
	v.Pages = max(1, (len(rows)+consolePageSize-1)/consolePageSize)
	v.Page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	v.Page = min(max(v.Page, 1), v.Pages)
	from := (v.Page - 1) * consolePageSize
	v.Rows = rows[from:min(from+consolePageSize, len(rows))]
	link := func(n int) string {
		u := o.Prefix + "admin/?page=" + strconv.Itoa(n)
		if q != "" {
			u += "&q=" + urlQuery(q)
		}
		return u
	}
	if v.Page > 1 {
		v.Prev = link(v.Page - 1)
	}
	if v.Page < v.Pages {
		v.Next = link(v.Page + 1)
	}
	if s.lastLogins != nil {
		if m, err := s.lastLogins.LastLogin(r.Context()); err == nil {
			v.LastLogin, v.HasLastLogin = m, true
		}
	}
	if sums, err := s.FactorSummaries(r.Context()); err == nil {
		v.Factors, v.HasFactors = sums, true
	}
	v.Notice = doneNotice(r)
	o.renderPage(w, http.StatusOK, "admin_users", v)
}
