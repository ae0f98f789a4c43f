package idp

import (
	"errors"
	"slices"
	"testing"
)

func TestIdentityFromClaims(t *testing.T) {
	base := OIDCConfig{ID: "corp", UserClaim: "preferred_username", EmailClaim: "email", NameClaim: "name", GroupsClaim: "groups"}
	cases := []struct {
		name    string
		mod     func(*OIDCConfig)
		claims  map[string]any
		want    Identity
		wantErr error
	}{
		{"all claims", nil,
			map[string]any{"preferred_username": "grace", "email": "grace@example.com", "name": "Grace Hopper", "groups": []any{"navy", "navy", 7, "staff"}},
			Identity{Name: "grace", Email: "grace@example.com", DisplayName: "Grace Hopper", Groups: []string{"navy", "staff"}, Source: "oidc:corp"}, nil},
		{"one group as a string", nil,
			map[string]any{"preferred_username": "grace", "groups": "navy"},
			Identity{Name: "grace", Groups: []string{"navy"}, Source: "oidc:corp"}, nil},
		{"other claim names", func(c *OIDCConfig) { c.UserClaim, c.GroupsClaim = "upn", "roles" },
			map[string]any{"upn": "g.hopper", "roles": []any{"admin"}},
			Identity{Name: "g.hopper", Groups: []string{"admin"}, Source: "oidc:corp"}, nil},
		{"no user claim", nil, map[string]any{"email": "grace@example.com"}, Identity{}, ErrClaims},
		{"user claim not a string", nil, map[string]any{"preferred_username": 42}, Identity{}, ErrClaims},
		{"allowed domain", func(c *OIDCConfig) { c.AllowedEmailDomains = []string{"Example.com"} },
			map[string]any{"preferred_username": "grace", "email": "grace@example.COM", "email_verified": true},
			Identity{Name: "grace", Email: "grace@example.COM", Source: "oidc:corp"}, nil},
		{"other domain", func(c *OIDCConfig) { c.AllowedEmailDomains = []string{"example.com"} },
			map[string]any{"preferred_username": "m", "email": "m@evil.test", "email_verified": true}, Identity{}, ErrDenied},
		{"subdomain is another domain", func(c *OIDCConfig) { c.AllowedEmailDomains = []string{"example.com"} },
			map[string]any{"preferred_username": "m", "email": "m@evil.example.com"}, Identity{}, ErrDenied},
		{"unverified address", func(c *OIDCConfig) { c.AllowedEmailDomains = []string{"example.com"} },
			map[string]any{"preferred_username": "m", "email": "m@example.com", "email_verified": false}, Identity{}, ErrDenied},
		{"no address", func(c *OIDCConfig) { c.AllowedEmailDomains = []string{"example.com"} },
			map[string]any{"preferred_username": "m"}, Identity{}, ErrDenied},
		{"allowed group", func(c *OIDCConfig) { c.AllowedGroups = []string{"staff"} },
			map[string]any{"preferred_username": "g", "groups": []any{"navy", "staff"}},
			Identity{Name: "g", Groups: []string{"navy", "staff"}, Source: "oidc:corp"}, nil},
		{"no allowed group", func(c *OIDCConfig) { c.AllowedGroups = []string{"staff"} },
			map[string]any{"preferred_username": "g", "groups": []any{"navy"}}, Identity{}, ErrDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			got, err := (&OIDC{cfg: cfg}).identity(tc.claims)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			if got.Name != tc.want.Name || got.Email != tc.want.Email || got.DisplayName != tc.want.DisplayName ||
				got.Source != tc.want.Source || !slices.Equal(got.Groups, tc.want.Groups) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
