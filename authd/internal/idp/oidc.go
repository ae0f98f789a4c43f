package idp

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig is one OpenID Connect provider as the configuration gives it.
type OIDCConfig struct {
	// ID names the provider in URLs ({prefix}oidc/<id>/…) and in Source ("oidc:<id>").
	ID string
	// Issuer is the provider's issuer URL; discovery reads
	// Issuer + "/.well-known/openid-configuration".
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes are requested besides "openid".
	Scopes      []string
	DisplayName string
	// UserClaim, EmailClaim, NameClaim and GroupsClaim name the ID token
	// claims the identity is read from.
	UserClaim, EmailClaim, NameClaim, GroupsClaim string
	// AllowedEmailDomains, when set, admit only verified email addresses
	// in these domains (exact match, case-insensitive).
	AllowedEmailDomains []string
	// AllowedGroups, when set, admit only members of at least one of them.
	AllowedGroups []string
	// EndSession sends the browser to the provider's end_session_endpoint
	// on sign-out, when the provider offers one.
	EndSession bool
	// HeaderOnly keeps no local user record: the session carries the
	// identity (config create_users = false).
	HeaderOnly bool
}

// Refusal reasons: why a callback did not produce an identity. Each is
// an error a caller can test with errors.Is and show as a page.
var (
	// ErrProviderDown: discovery or the token endpoint could not be reached.
	ErrProviderDown = errors.New("identity provider unavailable")
	// ErrExchange: the provider refused the authorization code.
	ErrExchange = errors.New("authorization code refused by the provider")
	// ErrToken: the ID token is missing, badly signed, for another
	// client, from another issuer or expired.
	ErrToken = errors.New("id token invalid")
	// ErrNonce: the ID token answers another sign-in attempt.
	ErrNonce = errors.New("id token nonce does not match")
	// ErrClaims: the token lacks a usable user name.
	ErrClaims = errors.New("id token claims unusable")
	// ErrDenied: the account's email domain or groups are not admitted.
	ErrDenied = errors.New("account not allowed")
)

// OIDC is a relying party for one provider. Create it with NewOIDC; it is
// safe for concurrent use.
type OIDC struct {
	cfg      OIDCConfig
	redirect string
	client   *http.Client
	now      func() time.Time

	mu         sync.Mutex
	disc       *discovered
	lastTry    time.Time
	lastErr    error
	retryAfter time.Duration
}

// discovered is what the provider's discovery document gave.
type discovered struct {
	provider   *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
}

// NewOIDC returns a relying party for cfg whose callback URL is redirect.
// It runs discovery at once; when that fails the error is returned along
// with a usable *OIDC, which tries discovery again (at most every 30
// seconds) when a sign-in starts, so a provider that is down at start-up
// does not keep authd or its local accounts from working.
func NewOIDC(ctx context.Context, cfg OIDCConfig, redirect string, client *http.Client, now func() time.Time) (*OIDC, error) {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	o := &OIDC{cfg: cfg, redirect: redirect, client: client, now: now, retryAfter: 30 * time.Second}
	_, err := o.discover(ctx)
	return o, err
}

// ID returns the provider's id.
func (o *OIDC) ID() string { return o.cfg.ID }

// DisplayName returns the name shown on the sign-in button.
func (o *OIDC) DisplayName() string { return o.cfg.DisplayName }

// Source is the users' Source for identities from this provider.
func (o *OIDC) Source() string { return "oidc:" + o.cfg.ID }

// HeaderOnly reports whether sign-ins keep no local user record.
func (o *OIDC) HeaderOnly() bool { return o.cfg.HeaderOnly }

func (o *OIDC) discover(ctx context.Context) (*discovered, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.disc != nil {
		return o.disc, nil
	}
	if !o.lastTry.IsZero() && o.now().Sub(o.lastTry) < o.retryAfter {
		return nil, o.lastErr
	}
	o.lastTry = o.now()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, o.client), o.cfg.Issuer)
	if err != nil {
		o.lastErr = fmt.Errorf("%w: discovery at %s: %v", ErrProviderDown, o.cfg.Issuer, err)
		return nil, o.lastErr
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = p.Claims(&extra)
	// Keys are fetched later, outside this request: the key set gets a
	// context that lives as long as authd, with the bounded client.
	keys := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), o.client), jwksURI(p))
	d := &discovered{
		provider: p,
		verifier: oidc.NewVerifier(o.cfg.Issuer, keys, &oidc.Config{ClientID: o.cfg.ClientID, Now: o.now}),
		oauth: oauth2.Config{
			ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: p.Endpoint(),
			RedirectURL: o.redirect, Scopes: append([]string{oidc.ScopeOpenID}, o.cfg.Scopes...),
		},
		endSession: extra.EndSession,
	}
	o.disc = d
	o.lastErr = nil
	return d, nil
}

func jwksURI(p *oidc.Provider) string {
	var c struct {
		JWKS string `json:"jwks_uri"`
	}
	_ = p.Claims(&c)
	return c.JWKS
}

// AuthURL returns where to send the browser to sign in: the provider's
// authorization endpoint with state, nonce and the PKCE S256 challenge of
// verifier.
func (o *OIDC) AuthURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	d, err := o.discover(ctx)
	if err != nil {
		return "", err
	}
	return d.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// Exchange redeems code (with the PKCE verifier), verifies the ID token
// (signature, issuer, audience, expiry, nonce) and maps its claims to an
// Identity, applying the email-domain and group allow-lists. The Identity's
// Name is the raw claim value: the caller canonicalises it.
func (o *OIDC) Exchange(ctx context.Context, code, verifier, nonce string) (Identity, error) {
	d, err := o.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	tok, err := d.oauth.Exchange(oidc.ClientContext(ctx, o.client), code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return Identity{}, fmt.Errorf("%w: %s", ErrExchange, re.ErrorCode)
		}
		return Identity{}, fmt.Errorf("%w: token endpoint: %v", ErrProviderDown, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, fmt.Errorf("%w: token response has no id_token", ErrToken)
	}
	idt, err := d.verifier.Verify(oidc.ClientContext(ctx, o.client), raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrToken, err)
	}
	if nonce == "" || !constantEqual(idt.Nonce, nonce) {
		return Identity{}, ErrNonce
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrClaims, err)
	}
	return o.identity(claims)
}

// identity maps verified claims to an Identity and applies the allow-lists.
func (o *OIDC) identity(claims map[string]any) (Identity, error) {
	id := Identity{Source: o.Source()}
	id.Name, _ = claims[o.cfg.UserClaim].(string)
	if id.Name == "" {
		return Identity{}, fmt.Errorf("%w: claim %q missing or not a string", ErrClaims, o.cfg.UserClaim)
	}
	id.Email, _ = claims[o.cfg.EmailClaim].(string)
	id.DisplayName, _ = claims[o.cfg.NameClaim].(string)
	switch g := claims[o.cfg.GroupsClaim].(type) {
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok && s != "" && !slices.Contains(id.Groups, s) {
				id.Groups = append(id.Groups, s)
			}
		}
	case string:
		if g != "" {
			id.Groups = []string{g}
		}
	}
	if len(o.cfg.AllowedEmailDomains) > 0 {
		// An unverified address proves nothing about its domain.
		if v, ok := claims["email_verified"]; ok && v != true && v != "true" {
			return Identity{}, fmt.Errorf("%w: email address not verified", ErrDenied)
		}
		at := strings.LastIndexByte(id.Email, '@')
		if at < 0 || !slices.ContainsFunc(o.cfg.AllowedEmailDomains, func(d string) bool {
			return strings.EqualFold(d, id.Email[at+1:])
		}) {
			return Identity{}, fmt.Errorf("%w: email domain not allowed", ErrDenied)
		}
	}
	if len(o.cfg.AllowedGroups) > 0 && !slices.ContainsFunc(id.Groups, func(g string) bool {
		return slices.Contains(o.cfg.AllowedGroups, g)
	}) {
		return Identity{}, fmt.Errorf("%w: not in an allowed group", ErrDenied)
	}
	return id, nil
}

// LogoutURL returns the provider's end-session URL that sends the browser
// back to after, or "" when the provider offers none, EndSession is off, or
// discovery has not succeeded.
func (o *OIDC) LogoutURL(after string) string {
	if !o.cfg.EndSession {
		return ""
	}
	o.mu.Lock()
	d := o.disc
	o.mu.Unlock()
	if d == nil || d.endSession == "" {
		return ""
	}
	u, err := url.Parse(d.endSession)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", o.cfg.ClientID)
	q.Set("post_logout_redirect_uri", after)
	u.RawQuery = q.Encode()
	return u.String()
}

// constantEqual compares two strings in time that depends only on their lengths.
func constantEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
