package server

import (
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"
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
	entries, err := s.store.List(r.Context(), r.URL.Query().Get("user"))
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

func (s *Server) handleAdminRevoke(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	var n int
	var err error
	switch {
	case q.Get("all") == "1":
		n, err = s.store.DeleteAll(r.Context())
	case q.Get("user") != "":
		n, err = s.store.DeleteUser(r.Context(), q.Get("user"))
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

func adminError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	writeJSON(w, map[string]string{"error": err.Error()})
}
