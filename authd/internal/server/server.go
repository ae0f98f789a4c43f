// Package server implements authd's HTTP interface: the verify endpoint nginx
// calls through auth_request, the login and logout pages, whoami, health,
// metrics and the local admin API used by the CLI.
//
// A request on the public listener goes Handler → one handler method
// (handleVerify, handleLogin, …) → the stores in Deps, each through the small
// interface declared here (SessionStore, UserStore, Throttler); the rules
// and the settings are atomic pointers that SetRules and SetOptions swap on
// reload, so a request sees one rule set and one set of settings from start
// to end. The admin socket (admin.go) is a separate consumer with its own
// interfaces, AdminSessions and AdminUsers. A new flow (a page, a
// form) is a handler method listed in Handler, plus a field in Deps typed
// with the interface it needs; package main wires the concrete store in.
package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/mfa"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/throttle"
	"github.com/authd/authd/authd/internal/users"
)

// UserStore is what the handlers need from the users: the current snapshot,
// a way to store an upgraded hash after a login (bcrypt → argon2id), and
// EnsureCurrent, which machine authentication calls before it trusts the
// snapshot's copy of a user. A store whose copy can lag behind a shared one
// (users.Redis) catches up on that user there, as the session store does
// through the version it reads with each session. It is part of the
// interface, not an optional extra found by a type assertion, so a store
// wrapped on its way in cannot silently skip the check.
//
// Update is the one way every change to a user is written — the CLI, the
// admin console, the account pages, invites and external sign-ins — so each
// change is validated alike and reaches every node through the store.
type UserStore interface {
	DB() *users.DB
	SetHash(name, hash string) error
	EnsureCurrent(ctx context.Context, name string) error
	Update(ctx context.Context, name string, fn func(u users.User, exists bool) (nu users.User, del bool, err error)) error
	// UpdateGuarded is Update refusing (users.ErrLastAdmin) a change that
	// leaves no enabled member of adminGroups, checked against the store
	// itself, not the snapshot, in the same atomic step as the write.
	UpdateGuarded(ctx context.Context, name string, adminGroups []string, fn func(u users.User, exists bool) (nu users.User, del bool, err error)) error
}

// SessionStore is what the public listener needs from the session store:
// the request path (verify, login, logout) plus Ping for /readyz and Len
// for /metrics. Listing and bulk revocation belong to the admin socket
// (AdminSessions).
type SessionStore interface {
	Create(ctx context.Context, k session.Key, s session.Session) error
	Get(ctx context.Context, k session.Key) (session.Session, bool, error)
	Touch(ctx context.Context, k session.Key, t time.Time) error
	Delete(ctx context.Context, k session.Key) error
	// End deletes like Delete and remembers why the session ended; Ended
	// returns that reason for the login page (session.NotEnded when the
	// store does not know).
	End(ctx context.Context, k session.Key, why session.Reason) error
	Ended(ctx context.Context, k session.Key) (session.Reason, error)
	Ping(ctx context.Context) error
	Len() int
}

// Throttler counts login attempts per account and client IP. Reserve
// counts an attempt together with its verdict, in one step, so concurrent
// guesses cannot all pass one check before any is counted; Refund takes back
// an attempt whose password was never checked (or that succeeded).
type Throttler interface {
	Reserve(ctx context.Context, user, ip string) (throttle.Verdict, error)
	Refund(ctx context.Context, user, ip string) error
	Success(ctx context.Context, user, ip string) error
}

type machineAuth interface {
	Identify(ctx context.Context, r machine.Request) (id machine.Identity, present bool, err error)
}

// damageReporter is a session store that can have recovered from damaged
// files when it opened (session.Embedded). It is optional: a store that
// cannot be damaged that way shows no damage gauges in /metrics.
type damageReporter interface {
	Damage() session.Damage
}

var (
	_ SessionStore   = (*session.Embedded)(nil)
	_ SessionStore   = (*session.Redis)(nil)
	_ damageReporter = (*session.Embedded)(nil)
	_ UserStore      = (*users.File)(nil)
	_ UserStore      = (*users.Redis)(nil)
	_ Throttler      = (*throttle.Memory)(nil)
	_ Throttler      = (*throttle.Redis)(nil)
	_ machineAuth    = (*machine.Verifier)(nil)
)

// Options are the settings the server needs from the configuration.
type Options struct {
	PublicURL       string // origin browsers use, e.g. "https://app.example.com"
	Prefix          string // "/authd/"
	CookieName      string // full name, e.g. "__Host-authd_session"
	InsecureCookies bool   // drop Secure: plain-HTTP development only
	TrustedProxies  []netip.Prefix
	LoginTitle      string
	DefaultRedirect string
	RedirectHosts   []string // extra allowed "scheme://host[:port]" origins

	Idle, Lifetime, RememberIdle, RememberLifetime, TouchInterval time.Duration

	HashParams       users.Params
	HashLimits       users.Limits
	MaxHashing       int // concurrent hash computations
	MaxHashQueue     int // logins allowed to wait for a slot
	HashQueueTimeout time.Duration

	// Branding is the look of authd's own pages.
	Branding Branding

	// Build names the running binary in /metrics.
	Build BuildInfo

	// Secret keys the CSRF tokens; at least 32 bytes.
	Secret []byte

	// MFA configures second factors.
	MFA MFAOptions
	// FormOrigins are extra origins the login and logout pages' forms may
	// end up at (the OIDC providers' sign-out pages), for the CSP.
	FormOrigins []string
	// AdminGroups are the groups whose enabled members may use the admin
	// console; none leaves it to nobody. Reauth is how long a re-entered
	// password admits the console's sensitive actions.
	AdminGroups []string
	Reauth      time.Duration
	// ForgotLink and RegisterLink put "Forgot password?" (with SMTP set) and
	// "Create an account" (registration open or by approval) on the login page.
	ForgotLink, RegisterLink bool
}

// Deps are the server's collaborators.
type Deps struct {
	Users    UserStore
	Sessions SessionStore
	Throttle Throttler
	// Machine checks API tokens and signed requests; nil disables them.
	Machine machineAuth
	Logger  *zap.Logger
	Now     func() time.Time
	// Redis, when the stores use Redis, adds its pool statistics and failed
	// commands to /metrics; nil leaves them out.
	Redis RedisClient
	// OIDC are the OpenID Connect providers offered on the login page, in
	// button order.
	OIDC []OIDCProvider
	// Audit keeps the audit events; nil keeps the latest ones in memory.
	Audit audit.Log
	// MFA keeps users' second factors and Replay the codes already used;
	// nil MFA disables second factors: a path that demands one cannot be
	// reached.
	MFA    mfa.Store
	Replay mfa.Replay
	// The admin console's stores: sessions to list and revoke (nil: the
	// console shows none), API tokens and signing keys (nil: none), last
	// logins (nil: not shown). Reset links, invites and the registration
	// queue come from Account.
	AdminSessions AdminSessions
	Credentials   ConsoleCredentials
	LastLogins    LastLogins
	// Account wires the account page, invites, registration and password
	// reset (account.go, links.go); nil leaves them out.
	Account *AccountDeps
	// Directory signs in names that have no local account (LDAP; see
	// external.go); nil turns it off.
	Directory Directory
	// Hasher runs the password hashes of logins (main passes a
	// hasher.Proc: a child process at the lowest CPU priority); nil runs
	// them in this process.
	Hasher Hasher
}

// Hasher runs password hashes. An error wrapping hasher.ErrUnavailable
// means the hash did not run (the login is answered "busy"); any other error
// from Verify is the stored hash's.
type Hasher interface {
	Verify(ctx context.Context, encoded, password string, p users.Params, l users.Limits) (ok, upgrade bool, err error)
	Dummy(ctx context.Context, password string, p users.Params) error
	Hash(ctx context.Context, password string, p users.Params) (string, error)
}

// inProcess is the Hasher for a nil Deps.Hasher.
type inProcess struct{}

func (inProcess) Verify(_ context.Context, encoded, password string, p users.Params, l users.Limits) (bool, bool, error) {
	return users.Verify(encoded, password, p, l)
}

func (inProcess) Dummy(_ context.Context, password string, p users.Params) error {
	users.Dummy(password, p)
	return nil
}

func (inProcess) Hash(_ context.Context, password string, p users.Params) (string, error) {
	return users.Hash(password, p)
}

// Server holds authd's request handlers. Create it with New.
type Server struct {
	cur     atomic.Pointer[settings]
	users   UserStore
	store   SessionStore
	thr     Throttler
	machine machineAuth
	log     *zap.Logger
	now     func() time.Time
	rules   atomic.Pointer[policy.Rules]
	ids     atomic.Pointer[identities]
	metrics *metrics
	hash    Hasher
	// pace pads failed logins to the slowest hash in use. It outlives a
	// settings swap: its estimates are of the stored hashes, not the options.
	pace *pacer
	// storeErrors keeps a store outage from writing one log line per request;
	// machineErrors does the same for machine clients refused because their
	// credentials or user could not be confirmed current.
	storeErrors   errorLog
	machineErrors errorLog
	audit         audit.Log
	mfa           mfa.Store
	replay        mfa.Replay
	// The admin console's (see console.go).
	console       consoleCache
	adminSessions AdminSessions
	credentials   ConsoleCredentials
	lastLogins    LastLogins
	acct          *AccountDeps
	// dir is Deps.Directory (external.go); dirErrors rate-limits its outage logs.
	dir       Directory
	dirErrors errorLog
	// oidc are the OIDC providers by id; fixed for the server's life.
	// oidcErrors keeps a provider outage to one log line a second.
	oidc       map[string]OIDCProvider
	oidcErrors errorLog
}

// New returns a Server. rules must not be nil.
func New(o Options, d Deps, rules *policy.Rules) (*Server, error) {
	if rules == nil {
		return nil, errors.New("no rules")
	}
	if len(o.Secret) < 32 {
		return nil, errors.New("secret shorter than 32 bytes")
	}
	st, err := newSettings(o, nil)
	if err != nil {
		return nil, err
	}
	s := &Server{
		users: d.Users, store: d.Sessions, thr: d.Throttle, machine: d.Machine, log: d.Logger, now: d.Now,
		oidc:  map[string]OIDCProvider{},
		audit: d.Audit, mfa: d.MFA, replay: d.Replay, adminSessions: d.AdminSessions, credentials: d.Credentials, lastLogins: d.LastLogins,
		acct: d.Account, hash: d.Hasher,
	}
	if s.hash == nil {
		s.hash = inProcess{}
	}
	if s.audit == nil {
		s.audit = audit.NewMemory(1000)
	}
	for _, p := range d.OIDC {
		if s.oidc[p.ID()] != nil {
			return nil, fmt.Errorf("oidc provider %q listed twice", p.ID())
		}
		s.oidc[p.ID()] = p
		st.providers = append(st.providers, providerButton{ID: p.ID(), Label: "Sign in with " + p.DisplayName()})
	}
	s.machineErrors.msg = "machine authentication refused: credentials not confirmed current"
	s.dir = d.Directory
	s.dirErrors.msg = "directory unavailable"
	s.oidcErrors.msg = "oidc provider unavailable"
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	var db *users.DB
	if d.Users != nil {
		db = d.Users.DB()
	}
	s.pace = newPacer(o.HashParams, db, nil)
	s.cur.Store(st)
	s.rules.Store(rules)
	s.metrics = newMetrics(s, d.Redis)
	if d := s.storeDamage(); d.Damaged() {
		s.log.Error("session store recovered from damaged files",
			zap.Int64("recovered_records", d.Recovered), zap.Int64("damaged_records", d.Records),
			zap.Int64("damaged_bytes", d.Bytes), zap.Strings("damaged_files", d.Files))
	}
	if d := s.storeDamage(); d.Tombstones > 0 {
		s.log.Warn("session store dropped tombstones with a reason this version does not know; the login page says less for those sessions",
			zap.Int64("dropped_tombstones", d.Tombstones))
	}
	return s, nil
}

// SetRules swaps the rule set atomically (on reload).
func (s *Server) SetRules(r *policy.Rules) {
	if r != nil {
		s.rules.Store(r)
	}
}

var verifyMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Handler returns the handler for authd's listener. All routes are here.
func (s *Server) Handler() http.Handler {
	r := httprouter.New()
	// Never answer with automatic redirects or OPTIONS replies: every answer is ours.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	r.HandleMethodNotAllowed = true
	for _, m := range verifyMethods {
		r.Handle(m, "/verify", s.handleVerify)
	}
	st := s.cur.Load()
	p := st.Prefix
	r.GET(p+"login", s.handleLoginForm)
	r.POST(p+"login", s.handleLogin)
	r.GET(p+"logout", s.handleLogoutForm)
	r.POST(p+"logout", s.handleLogout)
	r.GET(p+"whoami", s.handleWhoami)
	r.POST(p+"api/login", s.handleAPILogin)
	r.POST(p+"api/logout", s.handleAPILogout)
	r.GET(p+"api/me", s.handleAPIMe)
	s.mfaRoutes(r, p)
	r.GET(p+"oidc/:id/start", s.handleOIDCStart)
	r.GET(p+"oidc/:id/callback", s.handleOIDCCallback)
	s.consoleRoutes(r, p)
	r.GET(p+"static/*file", st.pages.static(p+"static/"))
	s.routeAccount(r, p)
	r.GET(livePath, s.handleLive)
	r.GET("/healthz", s.handleHealthz)
	r.GET("/readyz", s.handleReadyz)
	r.GET("/metrics", s.metricsHandler())
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusNotFound, "not found") })
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	r.PanicHandler = s.handlePanic
	return r
}

// handlePanic turns a panic into a deny: verify answers 401, pages 500.
func (s *Server) handlePanic(w http.ResponseWriter, r *http.Request, v any) {
	s.log.Error("handler panicked", zap.String("path", capped(r.URL.Path)), zap.Any("panic", v))
	if r.URL.Path == "/verify" {
		s.metrics.verify(http.StatusUnauthorized, 0)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	plain(w, http.StatusInternalServerError, "internal error")
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	plain(w, http.StatusOK, "ok")
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("session store not ready", zap.Error(err))
		plain(w, http.StatusServiceUnavailable, "session store unavailable")
		return
	}
	if s.users.DB() == nil {
		plain(w, http.StatusServiceUnavailable, "users not loaded")
		return
	}
	// Recovered damage leaves authd ready: the store works and holds every
	// intact session, and failing readiness would take the instance out of
	// service without bringing anything back. The warning stays until an
	// operator moves the damaged copies out of the data directory.
	msg := "ok"
	if d := s.storeDamage(); len(d.Files) > 0 {
		msg += fmt.Sprintf("\nwarning: session store recovered from damaged files "+
			"(%d records lost, %d recovered); copies kept aside in the data directory: %s",
			d.Records, d.Recovered, strings.Join(d.Files, " "))
	}
	// So does a directory that is down: local users and every session still
	// work, and failing readiness would not bring the directory back.
	if s.dir != nil {
		if err := s.dir.Ping(ctx); err != nil {
			s.dirErrors.log(s.log, time.Now(), err)
			msg += "\nwarning: the LDAP directory cannot be reached; directory users cannot sign in"
		}
	}
	plain(w, http.StatusOK, msg)
}

// storeDamage returns what the session store recovered from, if it can tell.
func (s *Server) storeDamage() session.Damage {
	if dr, ok := s.store.(damageReporter); ok {
		return dr.Damage()
	}
	return session.Damage{}
}

func plain(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

func originOf(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	scheme := strings.ToLower(u.Scheme)
	if port == "" || (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return scheme + "://" + host
	}
	return scheme + "://" + netJoin(host, port)
}

func netJoin(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// capped bounds user-controlled text before it reaches a log field.
func capped(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
