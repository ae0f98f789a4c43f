package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/users"
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

// AdminHandler serves the local admin API the CLI uses while authd runs. It
// must only be served on a unix socket that only authd's user can reach.
func (s *Server) AdminHandler() http.Handler {
	r := httprouter.New()
	r.GET("/sessions", s.handleAdminList)
	r.POST("/sessions/revoke", s.handleAdminRevoke)
	r.POST("/reload", s.handleAdminReload)
	return r
}

func (s *Server) handleAdminList(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	user, ok := s.adminUser(w, r)
	if !ok {
		return
	}
	entries, err := s.store.List(r.Context(), user)
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
		})
	}
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, out)
}

func (s *Server) handleAdminRevoke(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	user, ok := s.adminUser(w, r)
	if !ok {
		return
	}
	var n int
	var err error
	switch {
	case q.Get("all") == "1":
		n, err = s.store.DeleteAll(r.Context())
	case user != "":
		n, err = s.store.DeleteUser(r.Context(), user)
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

func (s *Server) handleAdminReload(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	reload := s.cur.Load().Reload
	if reload == nil {
		http.Error(w, `{"error":"reload not configured"}`, http.StatusNotImplemented)
		return
	}
	if err := reload(); err != nil {
		adminError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, map[string]bool{"ok": true})
}

// adminUser reads the "user" parameter in any spelling login accepts and
// returns its canonical form; "" when absent. A name no login could use is
// answered 400 here.
func (s *Server) adminUser(w http.ResponseWriter, r *http.Request) (string, bool) {
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
