package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/idp"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// OIDCProvider is one OpenID Connect provider users may sign in with
// (idp.OIDC).
type OIDCProvider interface {
	ID() string
	DisplayName() string
	Source() string
	AuthURL(ctx context.Context, state, nonce, verifier string) (string, error)
	Exchange(ctx context.Context, code, verifier, nonce string) (idp.Identity, error)
	LogoutURL(after string) string
	// HeaderOnly reports that sign-ins keep no local user record: the
	// session carries the identity (create_users = false).
	HeaderOnly() bool
}

var _ OIDCProvider = (*idp.OIDC)(nil)

// oidcFlowTTL bounds how long a sign-in at the provider may take.
const oidcFlowTTL = 10 * time.Minute

// oidcFlow is what the flow cookie carries between start and callback. It
// is signed with the server secret, so the browser can hold it but not
// change it; the state in it must come back in the callback's query, which
// binds the callback to the browser that started the flow.
type oidcFlow struct {
	Provider string `json:"p"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	RD       string `json:"r,omitempty"`
	Expires  int64  `json:"e"`
}

func (o *settings) sealFlow(f oidcFlow) string {
	b, _ := json.Marshal(f)
	p := base64.RawURLEncoding.EncodeToString(b)
	return p + "." + o.token("oidc-flow", []byte(p))
}

func (o *settings) openFlow(v string, now time.Time) (oidcFlow, bool) {
	p, sig, ok := strings.Cut(v, ".")
	if !ok || len(v) > 2048 || !hmac.Equal([]byte(sig), []byte(o.token("oidc-flow", []byte(p)))) {
		return oidcFlow{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return oidcFlow{}, false
	}
	var f oidcFlow
	if json.Unmarshal(b, &f) != nil || now.Unix() > f.Expires {
		return oidcFlow{}, false
	}
	return f, true
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// handleOIDCStart sends the browser to the provider's sign-in page, with a
// fresh state, nonce and PKCE verifier kept in the signed flow cookie.
func (s *Server) handleOIDCStart(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	o := s.cur.Load()
	p := s.oidc[ps.ByName("id")]
	if p == nil {
		plain(w, http.StatusNotFound, "not found")
		return
	}
	rd := r.URL.Query().Get("rd")
	if _, _, _, ok := s.authenticate(o, r, s.now()); ok {
		s.redirect(w, o.safeRedirect(rd, o.DefaultRedirect))
		return
	}
	f := oidcFlow{Provider: p.ID(), State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(),
		Expires: s.now().Add(oidcFlowTTL).Unix()}
	if len(rd) <= 1024 {
		f.RD = rd
	}
	to, err := p.AuthURL(r.Context(), f.State, f.Nonce, f.Verifier)
	if err != nil {
		s.oidcErrors.log(s.log, s.now(), fmt.Errorf("provider %s: %w", p.ID(), err))
		o.renderLogin(w, r, http.StatusServiceUnavailable, loginView{RD: rd,
			Error: "Sign-in with " + p.DisplayName() + " is unavailable right now. Please try again in a moment."})
		return
	}
	o.setCookie(w, o.oidcName, o.sealFlow(f), int(oidcFlowTTL/time.Second))
	s.redirect(w, to)
}

// errTakeover refuses an external sign-in whose name belongs to a local
// account or to another provider's user.
var errTakeover = errors.New("name belongs to another account")

// handleOIDCCallback finishes a sign-in: it checks the flow cookie and the
// state, redeems the code, verifies the ID token, creates or updates the
// user and starts a session. Every refusal shows the login page with a
// message, sets no session and clears the flow cookie.
func (s *Server) handleOIDCCallback(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	o := s.cur.Load()
	p := s.oidc[ps.ByName("id")]
	if p == nil {
		plain(w, http.StatusNotFound, "not found")
		return
	}
	ip := addrField(o.clientIP(r))
	name := p.DisplayName()
	// One flow, one callback: whatever happens, the cookie is spent.
	o.setCookie(w, o.oidcName, "", -1)
	refuse := func(code int, reason, user, msg string, err error) {
		s.metrics.login("oidc_" + reason)
		fields := []zap.Field{zap.String("event", "login_failed"), zap.String("reason", reason),
			zap.String("source", p.Source()), zap.String("user", capped(user)), zap.String("client_ip", ip)}
		if err != nil {
			fields = append(fields, zap.String("error", capped(err.Error())))
		}
		s.log.Info("login failed", fields...)
		s.record(r.Context(), r, audit.Event{Event: "login_failed", Target: user, Source: p.Source(), Detail: reason})
		o.renderLogin(w, r, code, loginView{Error: msg})
	}
	// Failed callbacks count against the client address only: the account
	// key is this request's own, so it never builds up a wait of its own.
	throttleKey := p.Source() + ":" + randomToken()[:16]
	v, err := s.thr.Reserve(r.Context(), throttleKey, ip)
	if err != nil {
		s.log.Error("throttle check failed", zap.Error(err))
		refuse(http.StatusServiceUnavailable, "unavailable", "", "Too many sign-ins right now. Please try again in a moment.", nil)
		return
	}
	if v.Wait > 0 {
		secs := int(v.Wait/time.Second) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		refuse(http.StatusTooManyRequests, "throttled_ip", "", "Too many sign-in attempts from your network. Try again in "+strconv.Itoa(secs)+" seconds.", nil)
		return
	}
	q := r.URL.Query()
	c, _ := cookieValue(r.Header, o.oidcName)
	f, ok := o.openFlow(c, s.now())
	switch {
	case !ok || f.Provider != p.ID():
		refuse(http.StatusBadRequest, "flow_missing", "", "Your sign-in with "+name+" expired or was started elsewhere. Please try again.", nil)
		return
	case !hmac.Equal([]byte(q.Get("state")), []byte(f.State)):
		refuse(http.StatusBadRequest, "state_mismatch", "", "Sign-in with "+name+" failed: the answer does not belong to this sign-in. Please try again.", nil)
		return
	case q.Get("error") != "":
		refuse(http.StatusUnauthorized, "provider_refused", "", "Sign-in with "+name+" was cancelled or refused.", errors.New(capped(q.Get("error"))))
		return
	case q.Get("code") == "":
		refuse(http.StatusBadRequest, "no_code", "", "Sign-in with "+name+" failed. Please try again.", nil)
		return
	}
	id, err := p.Exchange(r.Context(), q.Get("code"), f.Verifier, f.Nonce)
	switch {
	case errors.Is(err, idp.ErrProviderDown):
		s.refund(r.Context(), throttleKey, ip)
		refuse(http.StatusServiceUnavailable, "provider_down", "", "Sign-in with "+name+" is unavailable right now. Please try again in a moment.", err)
		return
	case errors.Is(err, idp.ErrDenied):
		refuse(http.StatusForbidden, "not_allowed", id.Name, "Your "+name+" account is not allowed to sign in here.", err)
		return
	case errors.Is(err, idp.ErrNonce):
		refuse(http.StatusUnauthorized, "nonce_mismatch", "", "Sign-in with "+name+" failed: the answer does not belong to this sign-in. Please try again.", err)
		return
	case err != nil:
		refuse(http.StatusUnauthorized, "token_invalid", "", "Sign-in with "+name+" failed. Please try again.", err)
		return
	}
	user, err := users.Canonical(id.Name)
	if err != nil {
		refuse(http.StatusForbidden, "bad_name", id.Name, "Your "+name+" account name cannot be used here. Ask an administrator.", err)
		return
	}
	var u *users.Entry
	var ext *session.External
	if p.HeaderOnly() {
		u, ext, err = s.headerOnly(r.Context(), user, id)
	} else {
		u, err = s.upsertExternal(r.Context(), user, id)
	}
	switch {
	case errors.Is(err, errTakeover):
		refuse(http.StatusForbidden, "account_taken", user, "The name "+user+" belongs to another account here, so "+name+" cannot sign you in as it. Ask an administrator.", err)
		return
	case err != nil:
		s.log.Error("external user update failed", zap.String("user", user), zap.Error(err))
		s.refund(r.Context(), throttleKey, ip)
		refuse(http.StatusServiceUnavailable, "unavailable", user, "Too many sign-ins right now. Please try again in a moment.", err)
		return
	case u.Disabled:
		refuse(http.StatusForbidden, "disabled", user, "This account is locked. Ask an administrator.", nil)
		return
	}
	if err := s.thr.Success(r.Context(), throttleKey, ip); err != nil {
		s.log.Warn("throttle reset failed", zap.Error(err))
	}
	s.refund(r.Context(), throttleKey, ip)
	cookie, key, err := s.startSessionAs(o, r, u, ext, false, ip)
	if err != nil {
		s.log.Error("session create failed", zap.String("user", user), zap.Error(err))
		refuse(http.StatusServiceUnavailable, "unavailable", user, "Too many sign-ins right now. Please try again in a moment.", err)
		return
	}
	s.metrics.login("success")
	s.log.Info("login succeeded", zap.String("event", "login_succeeded"), zap.String("user", user),
		zap.String("source", p.Source()), zap.Bool("header_only", ext != nil), zap.Strings("groups", u.Groups),
		zap.String("client_ip", ip), zap.String("session", key.Short()))
	s.record(r.Context(), r, audit.Event{Event: "login_succeeded", Actor: user, Source: p.Source()})
	o.setCookie(w, o.CookieName, cookie, 0)
	s.redirect(w, s.afterLogin(r.Context(), o, u, f.RD))
}

// upsertExternal creates the user an external identity names, or updates
// its email, display name and groups from the provider, and returns the
// loaded entry. A local account or another provider's user of the same
// name is never taken over.
func (s *Server) upsertExternal(ctx context.Context, name string, id idp.Identity) (*users.Entry, error) {
	var groups []string
	for _, g := range id.Groups {
		if users.CheckGroup(g) == nil {
			groups = append(groups, g)
		}
	}
	text := func(v string) string {
		if users.CheckText(v) != nil {
			return ""
		}
		return v
	}
	err := s.users.Update(ctx, name, func(u users.User, exists bool) (users.User, bool, error) {
		if exists && u.Source != id.Source {
			return u, false, errTakeover
		}
		if !exists {
			u = users.User{Name: name, Source: id.Source, Generation: users.NewGeneration()}
		}
		u.Email, u.DisplayName, u.Groups = text(id.Email), text(id.DisplayName), groups
		return u, false, nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.users.EnsureCurrent(ctx, name); err != nil {
		return nil, err
	}
	e, ok := s.users.DB().Lookup(name)
	if !ok {
		return nil, errors.New("user missing after update")
	}
	return e, nil
}

// providerLogout returns where to send a browser after its session of
// user u ended: the provider's end-session page when u came from a
// provider that offers one, else "".
func (s *Server) providerLogout(o *settings, u *users.Entry) string {
	if u == nil || !strings.HasPrefix(u.Source, "oidc:") {
		return ""
	}
	p := s.oidc[strings.TrimPrefix(u.Source, "oidc:")]
	if p == nil {
		return ""
	}
	return p.LogoutURL(o.origin + o.Prefix + "login?signed_out=1")
}

// flowName derives the flow cookie's name from the session cookie's.
func flowName(session string) string {
	n := strings.Replace(session, "session", "oidc", 1)
	if n == session {
		n = session + "_oidc"
	}
	return n
}
