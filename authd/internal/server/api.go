package server

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// The JSON endpoints ({prefix}api/login, api/logout, api/me) are the login
// form for scripts and single-page front ends. They carry no CSRF token;
// instead a POST must say Content-Type: application/json, which a
// cross-site HTML form cannot send and a cross-site fetch can only send
// after a CORS preflight that authd never answers, and it must pass the
// same Origin / Sec-Fetch-Site check as the form. Errors are JSON objects
// {"error": code, "message": text} with stable codes.
const (
	apiBadRequest   = "bad_request"
	apiCrossSite    = "cross_site"
	apiInvalid      = "invalid_credentials"
	apiThrottled    = "throttled"
	apiUnavailable  = "unavailable"
	apiUnauthorized = "unauthenticated"
	apiNotAllowed   = "not_allowed"
)

type apiLoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Remember bool   `json:"remember"`
}

// apiError answers with a JSON error object.
func apiError(w http.ResponseWriter, code int, errCode, msg string) {
	apiHeaders(w)
	w.WriteHeader(code)
	writeJSON(w, map[string]string{"error": errCode, "message": msg})
}

func apiHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// apiPreflight applies the checks every JSON POST needs before its body is
// read: a JSON content type, the same-origin check and a body limit. On
// failure it has answered and returns false.
func (s *Server) apiPreflight(o *settings, w http.ResponseWriter, r *http.Request, ip, what string) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		s.log.Info(what+" refused", zap.String("event", "api_refused"), zap.String("reason", "content_type"), zap.String("client_ip", ip))
		apiError(w, http.StatusUnsupportedMediaType, apiBadRequest, "send Content-Type: application/json")
		return false
	}
	if !o.sameOrigin(r) {
		s.log.Info(what+" refused", zap.String("event", "api_refused"), zap.String("reason", "cross_site"), zap.String("client_ip", ip))
		apiError(w, http.StatusForbidden, apiCrossSite, "cross-site request refused")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	return true
}

// handleAPILogin checks a JSON username and password with the form's
// checkLogin, sets the session cookie and returns the identity.
func (s *Server) handleAPILogin(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	ip := addrField(o.clientIP(r))
	if !s.apiPreflight(o, w, r, ip, "login") {
		s.metrics.login("bad_request")
		return
	}
	// As the form: beyond the hashing queue, refuse before reading the body.
	if o.gate.saturated() {
		s.loginOutcome("overloaded", "", ip)
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusServiceUnavailable, apiUnavailable, "sign-in is busy; try again in a moment")
		return
	}
	var req apiLoginRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err != nil || req.Username == "" || req.Password == "" {
		s.loginOutcome("bad_request", capped(req.Username), ip)
		msg := `expected {"username": "…", "password": "…", "remember": false}`
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			msg = "request body too large"
		}
		apiError(w, http.StatusBadRequest, apiBadRequest, msg)
		return
	}
	res := s.checkLogin(r.Context(), r, o, req.Username, req.Password, ip)
	s.auditFailure(r, res, "api")
	switch res.verdict {
	case loginThrottledIP:
		w.Header().Set("Retry-After", strconv.Itoa(res.retryAfter))
		apiError(w, http.StatusTooManyRequests, apiThrottled,
			"too many sign-in attempts from your network; try again in "+strconv.Itoa(res.retryAfter)+" seconds")
		return
	case loginBusy:
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusServiceUnavailable, apiUnavailable, "sign-in is busy; try again in a moment")
		return
	case loginFailed:
		apiError(w, http.StatusUnauthorized, apiInvalid, "incorrect username or password")
		return
	case loginDirectoryDown:
		w.Header().Set("Retry-After", "10")
		apiError(w, http.StatusServiceUnavailable, apiUnavailable, "the directory cannot be reached; try again later")
		return
	case loginNotAllowed:
		apiError(w, http.StatusForbidden, apiNotAllowed, "this account may not sign in here")
		return
	}
	sess, err := s.completeLogin(o, w, r, res, req.Remember, ip, "api")
	if err != nil {
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusServiceUnavailable, apiUnavailable, "sign-in is busy; try again in a moment")
		return
	}
	id := identityJSON(res.user, &sess)
	// A user with a second factor (or who must enrol one) holds a
	// password-only session: paths that demand two factors refuse it until
	// the step-up page, in a browser, has seen the second factor.
	if step := o.stepUpURL("/"); s.afterLogin(r.Context(), o, res.user, "/") == step {
		id["second_factor"] = "required"
		id["step_up"] = step
	}
	apiHeaders(w)
	writeJSON(w, id)
}

// handleAPILogout ends the session the cookie names. It answers 200 with
// {"signed_out": true} when there was a session and false when there was
// none, and clears the cookie either way.
func (s *Server) handleAPILogout(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	ip := addrField(o.clientIP(r))
	if !s.apiPreflight(o, w, r, ip, "logout") {
		return
	}
	key, sess, _, ok := s.authenticate(o, r, s.now())
	if ok {
		if err := s.store.End(r.Context(), key, session.SignedOut); err != nil {
			s.log.Error("session delete failed", zap.Error(err))
			apiError(w, http.StatusServiceUnavailable, apiUnavailable, "could not sign out; try again")
			return
		}
		s.log.Info("logout", zap.String("event", "logout"), zap.String("user", sess.User),
			zap.String("client_ip", ip), zap.String("session", key.Short()), zap.String("source", "api"))
		s.record(r.Context(), r, audit.Event{Event: "logout", Actor: sess.User, Source: "api"})
	}
	o.setCookie(w, o.CookieName, "", -1)
	apiHeaders(w)
	writeJSON(w, map[string]bool{"signed_out": ok})
}

// handleAPIMe returns the identity of the current session, as whoami does,
// or 401 {"error": "unauthenticated"}. Like a plain whoami it does not count
// as activity.
func (s *Server) handleAPIMe(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	o := s.cur.Load()
	_, sess, u, ok := s.authenticate(o, r, s.now())
	if !ok {
		apiError(w, http.StatusUnauthorized, apiUnauthorized, "not signed in")
		return
	}
	apiHeaders(w)
	writeJSON(w, identityJSON(u, &sess))
}

// identityJSON is the identity whoami and the JSON endpoints return.
func identityJSON(u *users.Entry, sess *session.Session) map[string]any {
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	return map[string]any{
		"user": u.Name, "name": u.DisplayName, "email": u.Email, "groups": groups,
		"expires": sess.Expires.UTC().Format(time.RFC3339), "remember": sess.Remember,
	}
}
