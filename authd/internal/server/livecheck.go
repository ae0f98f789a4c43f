package server

import (
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"
)

// livePath is where apps on this machine (the Streamlit package in
// conf/clients/streamlit_authd) ask whether a browser's session is still
// live. It sits outside the public prefix, so the shipped nginx snippets
// never route a browser to it.
const livePath = "/session/live"

// relayHeaders are headers a proxy adds. The app asks authd directly; a
// request carrying any of them came through a proxy, so possibly from a
// browser, and is refused even from a trusted address. Every header the
// shipped snippets set towards authd is here, not only the address ones:
// a proxy configured to send only some of them is still a proxy.
var relayHeaders = []string{hdrForwardedFor, hdrRealIP, "Forwarded", hdrOriginalURI, hdrOriginalMethod,
	hdrForwardedHost, "X-Forwarded-Proto", "X-Forwarded-Port", "X-Original-Url", "Via"}

// handleLive answers an app that holds a browser's Cookie header: 200 with
// the user's current identity while the session is live, 401 once it is
// revoked, expired, or its user locked, deleted or given a new password,
// and 503 while the session store cannot be read.
// Streamlit apps ask on every script run, because an open page's WebSocket
// is checked by verify only when it opens.
//
// Only trusted peers (trusted_proxies, or the unix socket) may ask: the
// answer turns a cookie into an identity, which is the proxy's job, not a
// browser's. The answer never sets cookies and is never cached.
//
// "?active=1" counts as activity for the idle timeout, as on whoami: a
// script run follows a widget interaction, which is the user at work. Like
// verify, it writes "last seen" at most once per touch_interval, so a busy
// app costs the store no more than page loads do, and it never extends the
// absolute lifetime.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	o := s.cur.Load()
	if _, trusted := o.peer(r); !trusted || relayed(r) {
		s.log.Info("session check refused", zap.String("event", "live_check_refused"),
			zap.String("client_ip", addrField(o.clientIP(r))), zap.Bool("relayed", relayed(r)))
		plain(w, http.StatusForbidden, "forbidden")
		return
	}
	now := s.now()
	key, sess, u, ok, unavailable := s.lookupSession(o, r, now)
	h.Set("Content-Type", "application/json")
	if unavailable {
		// Not "signed out": the store could not say. The app stops the
		// page either way, but tells the user to try again rather than to
		// sign in again (which would fail as well).
		w.WriteHeader(http.StatusServiceUnavailable)
		writeJSON(w, map[string]any{"live": false, "error": "session store unavailable"})
		return
	}
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]any{"live": false})
		return
	}
	if r.URL.Query().Get("active") == "1" && now.Sub(sess.LastSeen) >= o.TouchInterval {
		if err := s.store.Touch(r.Context(), key, now); err != nil {
			s.log.Warn("session touch failed", zap.Error(err))
		}
	}
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, map[string]any{
		"live": true, "user": u.Name, "name": u.DisplayName, "email": u.Email, "groups": groups,
		"expires": sess.Expires.UTC().Format(time.RFC3339),
	})
}

func relayed(r *http.Request) bool {
	for _, k := range relayHeaders {
		if _, ok := r.Header[k]; ok {
			return true
		}
	}
	return false
}
