package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// OIDC is one OpenID Connect provider users may sign in with ([[oidc]] tables).
type OIDC struct {
	// ID names the provider in its URLs ({prefix}oidc/<id>/start and
	// …/callback) and in the Source of the users it creates ("oidc:<id>").
	ID string `toml:"id"`
	// Issuer is the provider's issuer URL (https; http only for loopback).
	Issuer   string `toml:"issuer"`
	ClientID string `toml:"client_id"`
	// ClientSecretFile or ClientSecretEnv holds the client secret; neither
	// means a public client (PKCE only).
	ClientSecretFile string `toml:"client_secret_file"`
	ClientSecretEnv  string `toml:"client_secret_env"`
	// Scopes are requested besides "openid".
	Scopes []string `toml:"scopes"`
	// DisplayName is the button's "Sign in with <display_name>".
	DisplayName string `toml:"display_name"`
	// UserClaim, EmailClaim, NameClaim and GroupsClaim name the ID token
	// claims the user name, email, display name and groups come from.
	UserClaim   string `toml:"user_claim"`
	EmailClaim  string `toml:"email_claim"`
	NameClaim   string `toml:"name_claim"`
	GroupsClaim string `toml:"groups_claim"`
	// AllowedEmailDomains admit only verified addresses in these domains; empty admits any.
	AllowedEmailDomains []string `toml:"allowed_email_domains"`
	// AllowedGroups admit only members of one of these groups; empty admits any.
	AllowedGroups []string `toml:"allowed_groups"`
	// CreateUsers creates or updates a local user record (Source "oidc:<id>")
	// at each sign-in. nil means true. false gives header-only identities:
	// no record; the session carries the name, email, display name and
	// groups the provider gave at sign-in until it ends.
	CreateUsers *bool `toml:"create_users"`
	// EndSession signs the user out at the provider too (its
	// end_session_endpoint), where the provider offers one. nil means true.
	EndSession *bool `toml:"end_session"`
}

// oidcDefaults fills in what an [[oidc]] table leaves out.
func oidcDefaults(p *OIDC) {
	if p.Scopes == nil {
		p.Scopes = []string{"profile", "email"}
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&p.DisplayName, p.ID)
	def(&p.UserClaim, "preferred_username")
	def(&p.EmailClaim, "email")
	def(&p.NameClaim, "name")
	def(&p.GroupsClaim, "groups")
	yes := true
	if p.CreateUsers == nil {
		p.CreateUsers = &yes
	}
	if p.EndSession == nil {
		p.EndSession = &yes
	}
}

// ClientSecret returns the provider's client secret from its file or
// environment variable, or "" when neither is set. The file must not be
// accessible to other users; one trailing newline is dropped.
func (p OIDC) ClientSecret() (string, error) {
	key := "oidc." + p.ID
	switch {
	case p.ClientSecretFile != "":
		fi, err := os.Stat(p.ClientSecretFile)
		if err != nil {
			return "", fmt.Errorf("%s.client_secret_file: %w", key, err)
		}
		if perm := fi.Mode().Perm(); perm&0o007 != 0 {
			return "", fmt.Errorf("%s.client_secret_file: %s is %s by others (mode %04o); run chmod 600 %s",
				key, p.ClientSecretFile, access(perm), perm, p.ClientSecretFile)
		}
		b, err := os.ReadFile(p.ClientSecretFile)
		if err != nil {
			return "", fmt.Errorf("%s.client_secret_file: %w", key, err)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if s == "" {
			return "", fmt.Errorf("%s.client_secret_file: %s is empty", key, p.ClientSecretFile)
		}
		return s, nil
	case p.ClientSecretEnv != "":
		s, ok := os.LookupEnv(p.ClientSecretEnv)
		if !ok || s == "" {
			return "", fmt.Errorf("%s.client_secret_env: environment variable %s is not set", key, p.ClientSecretEnv)
		}
		return s, nil
	}
	return "", nil
}

// checkOIDC validates the [[oidc]] tables.
func (c Config) checkOIDC(e *Errors) {
	seen := map[string]bool{}
	for i, p := range c.OIDC {
		key := index("oidc", i)
		switch {
		case !validProviderID(p.ID):
			e.add(key+".id", "must be 1-32 characters of a-z, 0-9, '-', '_' (got %q)", p.ID)
		case seen[p.ID]:
			e.add(key+".id", "is used by another [[oidc]] provider (got %q)", p.ID)
		}
		seen[p.ID] = true
		u, err := url.Parse(p.Issuer)
		switch {
		case err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			e.add(key+".issuer", "must be an absolute URL such as https://accounts.example.com (got %q)", p.Issuer)
		case u.Scheme == "http" && !loopbackHost(u.Hostname()):
			e.add(key+".issuer", "must use https (http only for a provider on loopback) (got %q)", p.Issuer)
		case u.Scheme != "https" && u.Scheme != "http":
			e.add(key+".issuer", "must use https (got %q)", p.Issuer)
		}
		if !printable(p.ClientID) {
			e.add(key+".client_id", "must be printable text without spaces (got %q)", p.ClientID)
		}
		if p.ClientSecretFile != "" && p.ClientSecretEnv != "" {
			e.add(key+".client_secret_file", "set client_secret_file or client_secret_env, not both")
		}
		if p.ClientSecretFile != "" && !filepath.IsAbs(p.ClientSecretFile) {
			e.add(key+".client_secret_file", "must be an absolute path (got %q)", p.ClientSecretFile)
		}
		if p.ClientSecretEnv != "" && !validEnvName(p.ClientSecretEnv) {
			e.add(key+".client_secret_env", "must be an environment variable name such as AUTHD_OIDC_SECRET (got %q)", p.ClientSecretEnv)
		}
		for j, s := range p.Scopes {
			if !printable(s) || s == "openid" {
				e.add(index(key+".scopes", j), `must be a scope name without spaces; "openid" is always requested (got %q)`, s)
			}
		}
		if p.DisplayName == "" || len(p.DisplayName) > 64 || strings.ContainsFunc(p.DisplayName, unsafeText) {
			e.add(key+".display_name", "must be 1-64 characters of printable text (got %q)", p.DisplayName)
		}
		for _, f := range []struct{ k, v string }{{"user_claim", p.UserClaim}, {"email_claim", p.EmailClaim}, {"name_claim", p.NameClaim}, {"groups_claim", p.GroupsClaim}} {
			if !printable(f.v) {
				e.add(key+"."+f.k, "must be a claim name without spaces (got %q)", f.v)
			}
		}
		for j, d := range p.AllowedEmailDomains {
			if !printable(d) || strings.ContainsAny(d, "@/") || !strings.Contains(d, ".") {
				e.add(index(key+".allowed_email_domains", j), "must be a domain such as example.com (got %q)", d)
			}
		}
		for j, g := range p.AllowedGroups {
			if !printable(g) || strings.Contains(g, ",") {
				e.add(index(key+".allowed_groups", j), "must be a group name without spaces or commas (got %q)", g)
			}
		}
	}
}

func validProviderID(s string) bool {
	return s != "" && len(s) <= 32 && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}

func unsafeText(r rune) bool { return r < ' ' || r == 0x7f }
