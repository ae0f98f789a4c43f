package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// Preallocated header values: the verify path sets them on every request.
var (
	noStore = []string{"no-store"}
)

const (
	hdrOriginalURI    = "X-Original-Uri"
	hdrOriginalMethod = "X-Original-Method"
	hdrForwardedFor   = "X-Forwarded-For"
	hdrForwardedHost  = "X-Forwarded-Host"
	hdrRealIP         = "X-Real-Ip"
)

// handleVerify answers nginx's auth_request subrequest with 200, 401 or 403.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	start := s.now()
	code := s.verify(w, r, start)
	s.metrics.verify(code, s.now().Sub(start).Seconds())
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, now time.Time) int {
	h := w.Header()
	h["Cache-Control"] = noStore
	h["Date"] = nil // nginx never passes the subrequest's headers on; skip the clock read and format
	rules := s.rules.Load()
	o := s.cur.Load()

	// Request metadata counts only from a trusted proxy; without it the
	// request is unknown and denied rather than guessed.
	var req policy.Request
	var uri, host string
	ok := false
	peer, trusted := o.peer(r)
	if trusted {
		uri = r.Header.Get(hdrOriginalURI)
		req.Method = r.Header.Get(hdrOriginalMethod)
		host = r.Header.Get(hdrForwardedHost)
		req.Host = policy.HostOnly(host)
		req.Path, ok = policy.Canonical(uri)
		ok = ok && policy.ValidMethod(req.Method)
	}

	var key session.Key
	var sess session.Session
	var u *users.Entry
	authed, viaMachine := false, false
	if auth := r.Header["Authorization"]; len(auth) > 0 && s.machine != nil {
		// authd's own credentials decide alone: a failure is a 401 even with
		// a valid cookie, and success never creates or touches a session.
		// Other schemes (Basic, …) are not ours: the cookie decides.
		u, viaMachine, authed = s.authenticateMachine(o, r, auth, &req, uri, host)
		if viaMachine && !authed {
			w.WriteHeader(http.StatusUnauthorized)
			return http.StatusUnauthorized
		}
	}
	if !viaMachine {
		key, sess, u, authed = s.authenticate(o, r, now)
	}
	if authed {
		req.User, req.Groups = u.Name, u.Groups
	}
	if ok && rules.NeedsIP() {
		req.IP = o.clientFrom(r, peer, trusted)
	}
	decision, rule := policy.Login, -1
	if ok {
		decision, rule = rules.Decide(&req)
	} else if authed {
		decision = policy.Deny
	}

	switch decision {
	case policy.Allow:
		if authed {
			level := levelOne
			if need := o.factorNeed(rules, &req, rule); need.Two || !sess.SecondFactor.IsZero() {
				if viaMachine || !factorMet(need, &sess, now) {
					// A password-only (or too old) session on a two-factor
					// path: nginx sends page navigations to the step-up page
					// (as to the login form) and keeps the 401 for fetch and
					// WebSocket. Machine credentials are one factor: a plain 401.
					if ce := s.log.Check(zap.DebugLevel, "second factor required"); ce != nil {
						ce.Write(zap.String("event", "verify"), zap.String("user", req.User), zap.String("path", capped(uri)))
					}
					if !viaMachine {
						h.Set("X-Authd-Login", o.stepUpURL(uri))
					}
					w.WriteHeader(http.StatusUnauthorized)
					return http.StatusUnauthorized
				}
				if !sess.SecondFactor.IsZero() {
					level = levelTwo
				}
			}
			h[hdrAuthLevel] = level
			s.setIdentity(h, u)
			if !viaMachine && now.Sub(sess.LastSeen) >= o.TouchInterval {
				if err := s.store.Touch(r.Context(), key, now); err != nil {
					s.log.Warn("session touch failed", zap.Error(err))
				}
			}
		}
		if ce := s.log.Check(zap.DebugLevel, "access allowed"); ce != nil {
			ce.Write(zap.String("event", "verify"), zap.String("user", req.User), zap.String("path", capped(req.Path)), zap.Int("rule", rule+1))
		}
		w.WriteHeader(http.StatusOK)
		return http.StatusOK
	case policy.Deny:
		s.log.Info("access denied", zap.String("event", "access_denied"), zap.String("user", req.User),
			zap.String("client_ip", addrField(o.clientIP(r))), zap.String("method", capped(req.Method)),
			zap.String("host", capped(req.Host)), zap.String("path", capped(uri)), zap.Bool("request_valid", ok), zap.Int("rule", rule+1))
		w.WriteHeader(http.StatusForbidden)
		return http.StatusForbidden
	default:
		if ce := s.log.Check(zap.DebugLevel, "login required"); ce != nil {
			ce.Write(zap.String("event", "verify"), zap.String("path", capped(uri)))
		}
		if ok && !viaMachine {
			h.Set("X-Authd-Login", o.Prefix+"login?rd="+url.QueryEscape(uri))
		}
		w.WriteHeader(http.StatusUnauthorized)
		return http.StatusUnauthorized
	}
}

// authenticateMachine checks an API token or a signed request. present is
// false when the request carries no credentials of authd's. The user must
// exist, not be locked, and still have the credential generation the
// credential was issued for; their sessions play no part. host is the
// forwarded Host as nginx sent it: a signature covers it in machine's own
// canonical form, which keeps an IPv6 literal's brackets (HostOnly drops
// them, and "::1" alone does not parse as a host). A user store shared
// through Redis is asked for the user's current version first, so a lock,
// delete or password change on another instance counts at once. Anything that
// cannot be confirmed is a refusal.
func (s *Server) authenticateMachine(o *settings, r *http.Request, auth []string, req *policy.Request, uri, host string) (u *users.Entry, present, ok bool) {
	fail := func(reason string) (*users.Entry, bool, bool) {
		s.metrics.login("machine_" + reasonKey(reason))
		s.log.Info("machine authentication failed", zap.String("event", "machine_auth_failed"),
			zap.String("reason", capped(reason)), zap.String("client_ip", addrField(o.clientIP(r))), zap.String("path", capped(uri)))
		return nil, true, false
	}
	// An outage refuses every machine request: one log line a second, not one each.
	unavailable := func(err error) (*users.Entry, bool, bool) {
		s.metrics.login("machine_stale")
		s.machineErrors.log(s.log, s.now(), err)
		return nil, true, false
	}
	if len(auth) > 1 {
		return fail("more than one Authorization header")
	}
	id, present, err := s.machine.Identify(r.Context(), machine.Request{Method: req.Method, URI: uri, Host: host, Authorization: auth[0]})
	switch {
	case !present:
		return nil, false, false
	case errors.Is(err, machine.ErrStale):
		return unavailable(err)
	case err != nil:
		return fail(err.Error())
	}
	if err := s.users.EnsureCurrent(r.Context(), id.User); err != nil {
		return unavailable(fmt.Errorf("user %s: %w", id.User, err))
	}
	u, found := s.users.DB().Lookup(id.User)
	switch {
	case !found || u.Disabled:
		return fail("user missing or locked")
	case u.Generation != id.Generation:
		return fail("user credentials changed since the credential was issued")
	}
	return u, true, true
}

// reasonKey turns a machine error into a short metric label.
func reasonKey(reason string) string {
	for _, k := range []string{"expired", "replay", "window", "signature", "unknown", "malformed", "locked", "scheme", "changed"} {
		if strings.Contains(reason, k) {
			return k
		}
	}
	return "other"
}

// authenticate resolves the request's session cookie to a live session and
// its user. Any doubt — a malformed or repeated cookie, a store error, an
// expired session, a changed password, a locked or deleted user — is "no".
func (s *Server) authenticate(o *settings, r *http.Request, now time.Time) (session.Key, session.Session, *users.Entry, bool) {
	key, sess, u, ok, _ := s.lookupSession(o, r, now)
	return key, sess, u, ok
}

// lookupSession is authenticate that also says whether the answer is "no"
// because the session store could not be read (unavailable true): a caller
// that can tell an outage from a signed-out user (the live check) says so.
func (s *Server) lookupSession(o *settings, r *http.Request, now time.Time) (key session.Key, sess session.Session, u *users.Entry, ok, unavailable bool) {
	var none session.Session
	v, ok := cookieValue(r.Header, o.CookieName)
	if !ok {
		return session.Key{}, none, nil, false, false
	}
	key, ok = session.Parse(v)
	if !ok {
		return key, none, nil, false, false
	}
	sess, found, err := s.store.Get(r.Context(), key)
	if err != nil {
		s.metrics.storeErrors.Inc()
		s.storeErrors.log(s.log, s.now(), err)
		return key, none, nil, false, true
	}
	if !found || !sess.Valid(now) || !o.withinLimits(&sess, now) {
		return key, none, nil, false, false
	}
	db := s.users.DB()
	if db == nil {
		return key, none, nil, false, true
	}
	if sess.External != nil {
		// A header-only identity: the session is the record. It ends when
		// a local record of the same name appears or its provider no
		// longer keeps header-only identities.
		if u, ok = s.headerOnlyUser(db, &sess); ok {
			return key, sess, u, true, false
		}
		// Ended like any session whose account changed: the login page
		// says so.
		if err := s.store.End(r.Context(), key, session.Revoked); err != nil {
			s.log.Warn("session delete failed", zap.Error(err))
		}
		return key, none, nil, false, false
	}
	u, ok = db.Lookup(sess.User)
	if !ok || u.Disabled || u.Fingerprint != sess.Fingerprint {
		// The user's credentials changed since login: this session is
		// over, and the login page will say why.
		why := session.PasswordChanged
		switch {
		case !ok:
			why = session.Revoked
		case u.Disabled:
			why = session.Locked
		}
		if err := s.store.End(r.Context(), key, why); err != nil {
			s.log.Warn("session delete failed", zap.Error(err))
		}
		return key, none, nil, false, false
	}
	return key, sess, u, true, false
}

// withinLimits holds a session to the timeouts configured now as well as
// to the deadlines it was created with: a timeout shortened on reload ends
// the sessions already past it, and one lengthened never extends a session.
func (o *settings) withinLimits(sess *session.Session, now time.Time) bool {
	idle, life := o.Idle, o.Lifetime
	if sess.Remember {
		idle, life = o.RememberIdle, o.RememberLifetime
	}
	return now.Before(sess.LastSeen.Add(idle)) && now.Before(sess.Created.Add(life))
}

// cookieValue finds the one cookie called name without allocating. A cookie
// sent twice is treated as absent: which copy wins is not ours to guess.
func cookieValue(h http.Header, name string) (string, bool) {
	var val string
	found := false
	for _, line := range h["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = textproto.TrimString(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if found {
				return "", false
			}
			val, found = v, true
		}
	}
	return val, found
}

// peer returns the direct peer's address, as rules read it (policy.Usable),
// and whether it may tell us about the original request. Unix-socket peers
// (no address) are trusted: the socket's file mode guards it. A zoned peer is
// never trusted: no configured range can vouch for a link-local address.
func (o *settings) peer(r *http.Request) (netip.Addr, bool) {
	if r.RemoteAddr == "" || r.RemoteAddr == "@" {
		return netip.Addr{}, true
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	a := policy.Usable(ap.Addr())
	return a, a.IsValid() && o.trusted(a)
}

func (o *settings) trusted(a netip.Addr) bool {
	for _, p := range o.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the client's address: from an untrusted peer the peer itself;
// from a trusted proxy the rightmost X-Forwarded-For hop that is not a
// trusted proxy, or, without X-Forwarded-For, X-Real-IP. The zero Addr means
// unknown, and is what a trusted proxy gets for anything but plain IPs: a
// hop or X-Real-IP with a port, brackets, a zone, an empty element, garbage,
// a repeated X-Real-IP, or naming no client at all. Falling back to the
// proxy's own address instead would hand every such request whatever the
// proxy's network may do.
func (o *settings) clientIP(r *http.Request) netip.Addr {
	peer, trusted := o.peer(r)
	return o.clientFrom(r, peer, trusted)
}

// clientFrom is clientIP for a peer already looked at.
func (o *settings) clientFrom(r *http.Request, peer netip.Addr, trusted bool) netip.Addr {
	if !trusted {
		return peer
	}
	var realIP netip.Addr
	if v := r.Header[hdrRealIP]; len(v) > 0 {
		// nginx sets X-Real-IP to the one address it saw; anything else came
		// from somewhere we cannot vouch for.
		if realIP = policy.ClientAddr(v[0]); len(v) > 1 || !realIP.IsValid() {
			return netip.Addr{}
		}
	}
	xff := r.Header[hdrForwardedFor]
	if len(xff) == 0 {
		return realIP
	}
	var last netip.Addr
	for i := len(xff) - 1; i >= 0; i-- {
		rest := xff[i]
		for {
			hop := rest
			j := strings.LastIndexByte(rest, ',')
			if j >= 0 {
				hop, rest = rest[j+1:], rest[:j]
			}
			a := policy.ClientAddr(hop)
			if !a.IsValid() {
				return netip.Addr{} // a hop we cannot read hides who came before it
			}
			if !o.trusted(a) {
				return a
			}
			last = a
			if j < 0 {
				break
			}
		}
	}
	// Every hop is a trusted proxy: the leftmost is where the request began
	// (a client on a proxy's own host, a health check).
	return last
}

// addrField is an address for logs and throttle keys: "unknown" for the zero Addr.
func addrField(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}
