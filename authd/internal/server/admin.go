package server

import (
	"context"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/session"
)

// AdminSessions is what the admin socket needs from the session store:
// listing and bulk revocation, which the public listener never does.
type AdminSessions interface {
	List(ctx context.Context, user string) ([]session.Entry, error)
	DeleteUser(ctx context.Context, user string) (int, error)
	DeleteAll(ctx context.Context) (int, error)
}

var (
	_ AdminSessions = (*session.Embedded)(nil)
	_ AdminSessions = (*session.Redis)(nil)
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
}

// Admin serves the local admin API the CLI uses while authd runs: list and
// revoke sessions, reload. It must only be served on a unix socket that
// only authd's user can reach. Create it with NewAdmin.
type Admin struct {
	sessions AdminSessions
	reload   func() error
	log      *zap.Logger
	now      func() time.Time
}

// NewAdmin returns the admin API over sessions. reload re-reads what may
// change (users, rules, credentials); nil answers /reload with 501. A nil
// log discards, a nil now is time.Now.
func NewAdmin(sessions AdminSessions, reload func() error, log *zap.Logger, now func() time.Time) *Admin {
	if log == nil {
		log = zap.NewNop()
	}
	if now == nil {
		now = time.Now
	}
	return &Admin{sessions: sessions, reload: reload, log: log, now: now}
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
	entries, err := s.sessions.List(r.Context(), r.URL.Query().Get("user"))
	if err != nil {
		adminError(w, err)
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
		})
	}
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, out)
}

func (s *Admin) handleRevoke(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	var n int
	var err error
	switch {
	case q.Get("all") == "1":
		n, err = s.sessions.DeleteAll(r.Context())
	case q.Get("user") != "":
		n, err = s.sessions.DeleteUser(r.Context(), q.Get("user"))
	default:
		http.Error(w, `{"error":"user or all required"}`, http.StatusBadRequest)
		return
	}
	if err != nil {
		adminError(w, err)
		return
	}
	s.log.Info("sessions revoked", zap.String("event", "sessions_revoked"), zap.String("user", q.Get("user")),
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

func adminError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	writeJSON(w, map[string]string{"error": err.Error()})
}
