package idp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// The kinds of failure Authenticate returns, wrapped in a *Failure.
var (
	// ErrInvalidCredentials: no such entry, a wrong password, or an account
	// the directory refuses (locked, disabled). The caller shows all of them
	// the same way.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrNotAllowed: the password was right, but the user is in none of the
	// allowed groups.
	ErrNotAllowed = errors.New("not in an allowed group")
	// ErrUnavailable: the directory could not be asked (down, slow, TLS
	// failure, a misconfigured base). Nothing about the user is known.
	ErrUnavailable = errors.New("directory unavailable")
)

// Failure is a refused or failed sign-in: Kind is one of the Err values
// above, Reason a short snake_case word for logs and metrics ("unknown_user",
// "bad_password", "locked", …) and Err the directory's own error, if any.
type Failure struct {
	Kind   error
	Reason string
	Err    error
}

func (f *Failure) Error() string {
	if f.Err != nil {
		return f.Reason + ": " + f.Err.Error()
	}
	return f.Reason
}

// Unwrap returns Kind, so errors.Is(err, ErrUnavailable) works.
func (f *Failure) Unwrap() error { return f.Kind }

func fail(kind error, reason string, err error) *Failure {
	return &Failure{Kind: kind, Reason: reason, Err: err}
}

// LDAPConfig is what LDAP needs; package main fills it from [ldap].
type LDAPConfig struct {
	// URL is "ldap://host[:port]" or "ldaps://host[:port]".
	URL string
	// StartTLS upgrades an ldap:// connection before anything is sent.
	StartTLS bool
	// TLS is used for ldaps:// and StartTLS; nil means the system roots and
	// the URL's host as the server name.
	TLS *tls.Config
	// BindDN and BindPassword are the service account; an empty BindDN
	// searches anonymously.
	BindDN, BindPassword string
	// UserBase and UserFilter find a user; "{name}" in the filter is the
	// typed name, escaped.
	UserBase, UserFilter string
	// NameAttr, EmailAttr and DisplayNameAttr map the entry to an Identity.
	NameAttr, EmailAttr, DisplayNameAttr string
	// GroupSource is "search", "memberof" or "none"; see config.LDAP.
	GroupSource, MemberOfAttr             string
	GroupBase, GroupFilter, GroupNameAttr string
	// AllowedGroups, when not empty, admits only their members.
	AllowedGroups []string
	// DialTimeout bounds a connection attempt, Timeout each request and the
	// wait for a pooled connection.
	DialTimeout, Timeout time.Duration
	// PoolSize bounds open connections and sign-ins in flight.
	PoolSize int
}

// maxGroups bounds the groups read for one user.
const maxGroups = 1000

// LDAP signs users in against a directory by search-then-bind: the service
// account finds the user's entry, then a bind as that entry checks the
// password. Connections are pooled and reused; each is bound as the service
// account again before its next search. It is safe for concurrent use.
type LDAP struct {
	cfg   LDAPConfig
	slots chan struct{} // a token per connection in use
	idle  chan *conn
	dial  func() (*ldap.Conn, error)
}

type conn struct {
	c *ldap.Conn
	// service is whether the connection is bound as the service account
	// (or anonymous when there is none) rather than as a user.
	service bool
	reused  bool
}

// NewLDAP returns an LDAP for cfg. It opens no connection: the directory
// may be down when authd starts, and then only directory sign-ins fail.
func NewLDAP(cfg LDAPConfig) (*LDAP, error) {
	if cfg.PoolSize < 1 {
		cfg.PoolSize = 1
	}
	for _, f := range []string{strings.ReplaceAll(cfg.UserFilter, "{name}", "x"),
		strings.NewReplacer("{dn}", "x", "{name}", "x").Replace(cfg.GroupFilter)} {
		if _, err := ldap.CompileFilter(f); err != nil && (f != "" || cfg.GroupSource == "search") {
			return nil, fmt.Errorf("ldap filter %q: %w", f, err)
		}
	}
	l := &LDAP{cfg: cfg, slots: make(chan struct{}, cfg.PoolSize), idle: make(chan *conn, cfg.PoolSize)}
	l.dial = l.dialDirectory
	return l, nil
}

func (l *LDAP) dialDirectory() (*ldap.Conn, error) {
	d := &net.Dialer{Timeout: l.cfg.DialTimeout}
	opts := []ldap.DialOpt{ldap.DialWithDialer(d)}
	if l.cfg.TLS != nil {
		opts = append(opts, ldap.DialWithTLSConfig(l.cfg.TLS.Clone()))
	}
	c, err := ldap.DialURL(l.cfg.URL, opts...)
	if err != nil {
		return nil, err
	}
	c.SetTimeout(l.cfg.Timeout)
	if l.cfg.StartTLS {
		tc := l.cfg.TLS
		if tc == nil {
			tc = &tls.Config{}
		}
		tc = tc.Clone()
		if tc.ServerName == "" {
			tc.ServerName = hostOf(l.cfg.URL)
		}
		if tc.MinVersion == 0 {
			tc.MinVersion = tls.VersionTLS12
		}
		// StartTLS' own handshake has no deadline in the library: bound it here.
		done := make(chan error, 1)
		go func() { done <- c.StartTLS(tc) }()
		select {
		case err = <-done:
		case <-time.After(l.cfg.DialTimeout + l.cfg.Timeout):
			err = errors.New("starttls timed out")
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("starttls: %w", err)
		}
	}
	return c, nil
}

func hostOf(rawURL string) string {
	_, rest, _ := strings.Cut(rawURL, "://")
	rest, _, _ = strings.Cut(rest, "/")
	if h, _, err := net.SplitHostPort(rest); err == nil {
		return strings.Trim(h, "[]")
	}
	return strings.Trim(rest, "[]")
}

// get returns a connection bound as the service account: an idle one or a
// new one, waiting at most Timeout for a free slot.
func (l *LDAP) get(ctx context.Context) (*conn, error) {
	t := time.NewTimer(l.cfg.Timeout)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
	case <-t.C:
		return nil, errors.New("no free directory connection in time")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var c *conn
	select {
	case c = <-l.idle:
		c.reused = true
		// An idle connection may have died meanwhile (the directory
		// restarted, or closed it while idle): then a new one.
		if c.c.IsClosing() || l.bindService(c) != nil {
			c.c.Close()
			c = nil
		}
	default:
	}
	if c == nil {
		lc, err := l.dial()
		if err != nil {
			<-l.slots
			return nil, err
		}
		c = &conn{c: lc}
		if err := l.bindService(c); err != nil {
			l.put(c, false)
			return nil, err
		}
	}
	return c, nil
}

// put gives c back to the pool, or closes it when it is not fit for reuse.
func (l *LDAP) put(c *conn, ok bool) {
	if ok && !c.c.IsClosing() {
		c.reused = false
		select {
		case l.idle <- c:
			<-l.slots
			return
		default:
		}
	}
	c.c.Close()
	<-l.slots
}

func (l *LDAP) bindService(c *conn) error {
	if c.service {
		return nil
	}
	var err error
	if l.cfg.BindDN == "" {
		err = c.c.UnauthenticatedBind("")
	} else {
		err = c.c.Bind(l.cfg.BindDN, l.cfg.BindPassword)
	}
	if err != nil {
		return fmt.Errorf("bind as service account: %w", err)
	}
	c.service = true
	return nil
}

// with runs fn on a pooled connection. A reused connection that turns out
// to be dead (the directory restarted, or closed it while idle) is replaced
// by a new one and fn runs once more.
func (l *LDAP) with(ctx context.Context, fn func(c *conn) error) error {
	for attempt := 0; ; attempt++ {
		c, err := l.get(ctx)
		if err != nil {
			return fail(ErrUnavailable, "directory_unavailable", err)
		}
		err = fn(c)
		var f *Failure
		if err == nil || !errors.As(err, &f) || !errors.Is(f, ErrUnavailable) {
			l.put(c, err == nil || f != nil)
			return err
		}
		reused := c.reused
		l.put(c, false)
		if !reused || attempt > 0 || !ldap.IsErrorWithCode(f.Err, ldap.ErrorNetwork) {
			return err
		}
	}
}

// Ping checks that the directory answers: a connection bound as the service
// account reads the root DSE.
func (l *LDAP) Ping(ctx context.Context) error {
	// The library's requests take no context: wait for ctx alone, and let
	// the request end by its own timeouts.
	done := make(chan error, 1)
	go func() {
		done <- l.with(ctx, func(c *conn) error {
			_, err := c.c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
				l.timeLimit(), false, "(objectClass=*)", []string{"1.1"}, nil))
			if err != nil {
				return fail(ErrUnavailable, "directory_unavailable", err)
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fail(ErrUnavailable, "directory_unavailable", ctx.Err())
	}
}

// Close closes the idle connections.
func (l *LDAP) Close() error {
	for {
		select {
		case c := <-l.idle:
			c.c.Close()
		default:
			return nil
		}
	}
}

// timeLimit is the server-side time limit of a search, in whole seconds.
func (l *LDAP) timeLimit() int {
	return max(1, int(l.cfg.Timeout/time.Second))
}

// Authenticate checks name and password against the directory and returns
// the user's identity (Source "ldap"). Every error is a *Failure. An empty
// password is refused without asking the directory: to LDAP it would be an
// anonymous bind, which succeeds.
func (l *LDAP) Authenticate(ctx context.Context, name, password string) (Identity, error) {
	if password == "" {
		return Identity{}, fail(ErrInvalidCredentials, "empty_password", nil)
	}
	var id Identity
	err := l.with(ctx, func(c *conn) error {
		var err error
		id, err = l.authenticate(c, name, password)
		return err
	})
	if err != nil {
		return Identity{}, err
	}
	if len(l.cfg.AllowedGroups) > 0 && !slices.ContainsFunc(id.Groups, func(g string) bool {
		return slices.Contains(l.cfg.AllowedGroups, g)
	}) {
		return id, fail(ErrNotAllowed, "not_in_allowed_groups", nil)
	}
	return id, nil
}

func (l *LDAP) authenticate(c *conn, name, password string) (Identity, error) {
	attrs := []string{l.cfg.NameAttr, l.cfg.EmailAttr, l.cfg.DisplayNameAttr}
	if l.cfg.GroupSource == "memberof" {
		attrs = append(attrs, l.cfg.MemberOfAttr)
	}
	filter := strings.ReplaceAll(l.cfg.UserFilter, "{name}", ldap.EscapeFilter(name))
	res, err := c.c.Search(ldap.NewSearchRequest(l.cfg.UserBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, l.timeLimit(), false, filter, attrs, nil))
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return Identity{}, fail(ErrInvalidCredentials, "ambiguous_user", errors.New("the user filter matches more than one entry"))
	case err != nil:
		return Identity{}, fail(ErrUnavailable, "directory_unavailable", fmt.Errorf("search users: %w", err))
	case len(res.Entries) == 0:
		return Identity{}, fail(ErrInvalidCredentials, "unknown_user", nil)
	case len(res.Entries) > 1:
		return Identity{}, fail(ErrInvalidCredentials, "ambiguous_user", errors.New("the user filter matches more than one entry"))
	}
	e := res.Entries[0]
	id := Identity{
		Name:        strings.ToLower(e.GetAttributeValue(l.cfg.NameAttr)),
		Email:       e.GetAttributeValue(l.cfg.EmailAttr),
		DisplayName: e.GetAttributeValue(l.cfg.DisplayNameAttr),
		Source:      "ldap",
	}
	switch l.cfg.GroupSource {
	case "memberof":
		id.Groups = groupsFromDNs(e.GetAttributeValues(l.cfg.MemberOfAttr), l.cfg.GroupNameAttr)
	case "search":
		if id.Groups, err = l.searchGroups(c, e.DN, name); err != nil {
			return Identity{}, fail(ErrUnavailable, "directory_unavailable", fmt.Errorf("search groups: %w", err))
		}
	}

	// The password check: a bind as the entry. From here on the connection
	// is bound as the user until get binds it as the service account again.
	c.service = false
	pp := ldap.NewControlBeheraPasswordPolicy()
	br, err := c.c.SimpleBind(ldap.NewSimpleBindRequest(e.DN, password, []ldap.Control{pp}))
	if err != nil {
		return Identity{}, bindFailure(br, err)
	}
	return id, nil
}

// bindFailure classifies a failed bind: refused credentials (wrong password,
// locked or disabled account) or a directory that could not answer.
func bindFailure(br *ldap.SimpleBindResult, err error) error {
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		if br != nil {
			for _, ctl := range br.Controls {
				if p, ok := ctl.(*ldap.ControlBeheraPasswordPolicy); ok && p.Error == 1 { // accountLocked
					return fail(ErrInvalidCredentials, "locked", err)
				}
			}
		}
		return fail(ErrInvalidCredentials, "bad_password", err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights),
		ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform),
		ldap.IsErrorWithCode(err, ldap.LDAPResultInappropriateAuthentication):
		return fail(ErrInvalidCredentials, "refused_by_directory", err)
	}
	return fail(ErrUnavailable, "directory_unavailable", fmt.Errorf("bind as user: %w", err))
}

func (l *LDAP) searchGroups(c *conn, dn, name string) ([]string, error) {
	filter := strings.NewReplacer("{dn}", ldap.EscapeFilter(dn), "{name}", ldap.EscapeFilter(name)).Replace(l.cfg.GroupFilter)
	res, err := c.c.Search(ldap.NewSearchRequest(l.cfg.GroupBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		maxGroups, l.timeLimit(), false, filter, []string{l.cfg.GroupNameAttr}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, err
	}
	var out []string
	for _, e := range res.Entries {
		if g := e.GetAttributeValue(l.cfg.GroupNameAttr); g != "" {
			out = appendGroup(out, g)
		}
	}
	return out, nil
}

// groupsFromDNs names each group DN by its first RDN's value of attr (or
// the first RDN's first value): "cn=Admins,ou=groups,…" → "admins".
func groupsFromDNs(dns []string, attr string) []string {
	var out []string
	for _, s := range dns {
		dn, err := ldap.ParseDN(s)
		if err != nil || len(dn.RDNs) == 0 || len(dn.RDNs[0].Attributes) == 0 {
			continue
		}
		rdn := dn.RDNs[0].Attributes
		v := rdn[0].Value
		for _, a := range rdn {
			if strings.EqualFold(a.Type, attr) {
				v = a.Value
			}
		}
		out = appendGroup(out, v)
		if len(out) >= maxGroups {
			break
		}
	}
	return out
}

func appendGroup(gs []string, g string) []string {
	g = strings.ToLower(g)
	if slices.Contains(gs, g) {
		return gs
	}
	return append(gs, g)
}
