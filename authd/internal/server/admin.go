package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// AdminSessions is what the admin socket needs from the session store:
// listing and bulk revocation, which the public listener never does.
type AdminSessions interface {
	List(ctx context.Context, user string) ([]session.Entry, error)
	DeleteUser(ctx context.Context, user string) (int, error)
	DeleteAll(ctx context.Context) (int, error)
}

// AdminUsers is what the admin socket needs from the users: the current
// snapshot, to tell an unknown name from a user without sessions.
type AdminUsers interface {
	DB() *users.DB
}

var (
	_ AdminSessions = (*session.Embedded)(nil)
	_ AdminSessions = (*session.Redis)(nil)
	_ AdminUsers    = (*users.File)(nil)
	_ AdminUsers    = (*users.Redis)(nil)
)

// SessionInfo is one session as the admin API lists it; it never carries
// the session key, only a short prefix of its hash.
type SessionInfo struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen"`
	Expires   time.Time `json:"expires"`
	Remember  bool      `json:"remember"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	// HeaderOnly is the provider ("oidc:<id>") of a header-only identity,
	// which has no user record; "" for a user with one.
	HeaderOnly string `json:"header_only,omitempty"`
}

// HeaderOnlySource is the provider of sess's header-only identity, or "".
func HeaderOnlySource(sess *session.Session) string {
	if sess.External == nil {
		return ""
	}
	return sess.External.Source
}

// Admin serves the local admin API the CLI uses while authd runs: list and
// revoke sessions, reload. It must only be served on a unix socket that
// only authd's user can reach. Create it with NewAdmin.
type Admin struct {
	sessions AdminSessions
	users    AdminUsers
	reload   func() error
	log      *zap.Logger
	now      func() time.Time
}

// NewAdmin returns the admin API over sessions; us tells an unknown user
// (404) from one without sessions. reload re-reads what may change (users,
// rules, credentials, settings); nil answers /reload with 501. A nil log
// discards, a nil now is time.Now.
func NewAdmin(sessions AdminSessions, us AdminUsers, reload func() error, log *zap.Logger, now func() time.Time) *Admin {
	if log == nil {
		log = zap.NewNop()
	}
	if now == nil {
		now = time.Now
	}
	return &Admin{sessions: sessions, users: us, reload: reload, log: log, now: now}
}

// Handler returns the admin API's routes, all of them.
func (s *Admin) Handler() http.Handler {
	r := httprouter.New()
	r.GET("/sessions", s.handleList)
	r.POST("/sessions/revoke", s.handleRevoke)
	r.POST("/reload", s.handleReload)
	return r
}

func (s *Admin) handleList(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	user, ok := adminUser(w, r)
	if !ok {
		return
	}
	entries, err := s.sessions.List(r.Context(), user)
	if err != nil {
		adminError(w, err)
		return
	}
	if user != "" && len(entries) == 0 && !s.users.DB().HasUser(user) {
		adminStatus(w, http.StatusNotFound, "no user "+strconv.Quote(user))
		return
	}
	now := s.now()
	out := make([]SessionInfo, 0, len(entries))
	for _, e := range entries {
		if !e.Session.Valid(now) {
			continue
		}
		out = append(out, SessionInfo{
			ID: e.Key.Short(), User: e.Session.User, Created: e.Session.Created.UTC(), LastSeen: e.Session.LastSeen.UTC(),
			Expires: e.Session.Expires.UTC(), Remember: e.Session.Remember, IP: e.Session.IP, UserAgent: e.Session.UserAgent,
			HeaderOnly: HeaderOnlySource(&e.Session),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, out)
}

func (s *Admin) handleRevoke(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	user, ok := adminUser(w, r)
	if !ok {
		return
	}
	var n int
	var err error
	switch {
	case q.Get("all") == "1":
		n, err = s.sessions.DeleteAll(r.Context())
	case user != "":
		n, err = s.sessions.DeleteUser(r.Context(), user)
	default:
		adminStatus(w, http.StatusBadRequest, "user or all required")
		return
	}
	if err != nil {
		adminError(w, err)
		return
	}
	if user != "" && n == 0 && !s.users.DB().HasUser(user) {
		// Sessions of a user deleted a moment ago are still revoked above;
		// a name nobody has is an error, never a quiet "0".
		adminStatus(w, http.StatusNotFound, "no user "+strconv.Quote(user))
		return
	}
	s.log.Info("sessions revoked", zap.String("event", "sessions_revoked"), zap.String("user", user),
		zap.Bool("all", q.Get("all") == "1"), zap.Int("count", n))
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, map[string]int{"revoked": n})
}

func (s *Admin) handleReload(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	if s.reload == nil {
		http.Error(w, `{"error":"reload not configured"}`, http.StatusNotImplemented)
		return
	}
	if err := s.reload(); err != nil {
		adminError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, map[string]bool{"ok": true})
}

// adminUser reads the "user" parameter in any spelling login accepts and
// returns its canonical form; "" when absent. A name no login could use is
// answered 400 here.
func adminUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw := r.URL.Query().Get("user")
	if raw == "" {
		return "", true
	}
	name, err := users.Canonical(raw)
	if err != nil {
		adminStatus(w, http.StatusBadRequest, "user: "+err.Error())
		return "", false
	}
	return name, true
}

func adminError(w http.ResponseWriter, err error) {
	adminStatus(w, http.StatusInternalServerError, err.Error())
}

func adminStatus(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	writeJSON(w, map[string]string{"error": msg})
}
