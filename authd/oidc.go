package main

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/idp"
	"github.com/authd/authd/authd/internal/server"
)

// openOIDC builds a relying party per [[oidc]] table. A missing client
// secret is an error; a provider whose discovery fails is logged and
// retried when a sign-in starts, so local accounts work while it is down.
func openOIDC(ctx context.Context, cfg config.Config, log *zap.Logger) ([]server.OIDCProvider, error) {
	var out []server.OIDCProvider
	client := &http.Client{Timeout: 10 * time.Second}
	for _, p := range cfg.OIDC {
		secret, err := p.ClientSecret()
		if err != nil {
			return nil, err
		}
		rp, err := idp.NewOIDC(ctx, idp.OIDCConfig{
			ID: p.ID, Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: secret, Scopes: p.Scopes,
			DisplayName: p.DisplayName, UserClaim: p.UserClaim, EmailClaim: p.EmailClaim, NameClaim: p.NameClaim,
			GroupsClaim: p.GroupsClaim, AllowedEmailDomains: p.AllowedEmailDomains, AllowedGroups: p.AllowedGroups,
			EndSession: p.EndSession == nil || *p.EndSession,
			HeaderOnly: p.CreateUsers != nil && !*p.CreateUsers,
		}, cfg.PublicURL+cfg.Prefix+"oidc/"+p.ID+"/callback", client, time.Now)
		if err != nil {
			log.Warn("oidc provider unavailable; sign-in with it will retry", zap.String("provider", p.ID), zap.Error(err))
		}
		out = append(out, rp)
	}
	return out, nil
}

// oidcOrigins are the providers' origins: their sign-out pages are where
// the logout form may end up.
func oidcOrigins(cfg config.Config) []string {
	var out []string
	for _, p := range cfg.OIDC {
		if u, err := url.Parse(p.Issuer); err == nil && u.Host != "" {
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	return out
}
