package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const oidcBase = "public_url = \"https://app.example.com\"\n"

func TestOIDCDefaults(t *testing.T) {
	c, err := Parse(strings.NewReader(oidcBase + `
[[oidc]]
id = "corp"
issuer = "https://login.example.com/realms/corp"
client_id = "authd"
`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.OIDC[0]
	if !slices.Equal(p.Scopes, []string{"profile", "email"}) || p.DisplayName != "corp" || p.UserClaim != "preferred_username" ||
		p.EmailClaim != "email" || p.NameClaim != "name" || p.GroupsClaim != "groups" || !*p.CreateUsers || !*p.EndSession {
		t.Errorf("got %+v, want the documented defaults", p)
	}
}

// TestOIDCHeaderOnly checks create_users = false (header-only identities)
// is accepted, beside a provider that creates users.
func TestOIDCHeaderOnly(t *testing.T) {
	c, err := Parse(strings.NewReader(oidcBase + `
[[oidc]]
id = "corp"
issuer = "https://login.example.com"
client_id = "authd"
[[oidc]]
id = "partners"
issuer = "https://partners.example.com"
client_id = "authd"
create_users = false
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !*c.OIDC[0].CreateUsers || *c.OIDC[1].CreateUsers {
		t.Fatalf("create_users: got %v, %v; want true, false", *c.OIDC[0].CreateUsers, *c.OIDC[1].CreateUsers)
	}
}

func TestOIDCProblems(t *testing.T) {
	cases := []struct {
		name, toml string
		keys       []string
	}{
		{"bad id and issuer", `
[[oidc]]
id = "Corp!"
issuer = "ftp://x"
client_id = "a"
`, []string{"oidc[0].id", "oidc[0].issuer"}},
		{"plain http off loopback", `
[[oidc]]
id = "corp"
issuer = "http://login.example.com"
client_id = "a"
`, []string{"oidc[0].issuer"}},
		{"duplicate id, missing client, two secrets", `
[[oidc]]
id = "corp"
issuer = "https://login.example.com"
client_id = "a"
[[oidc]]
id = "corp"
issuer = "http://127.0.0.1:5556"
client_secret_file = "relative"
client_secret_env = "1BAD"
`, []string{"oidc[1].id", "oidc[1].client_id", "oidc[1].client_secret_file", "oidc[1].client_secret_file", "oidc[1].client_secret_env"}},
		{"openid scope, bad domain and group", `
[[oidc]]
id = "corp"
issuer = "https://login.example.com"
client_id = "a"
scopes = ["openid"]
allowed_email_domains = ["@example.com"]
allowed_groups = ["a,b"]
`, []string{"oidc[0].scopes[0]", "oidc[0].allowed_email_domains[0]", "oidc[0].allowed_groups[0]"}},
		{"unknown key", `
[[oidc]]
id = "corp"
issuer = "https://login.example.com"
client_id = "a"
secret = "inline"
`, []string{"oidc.secret"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(oidcBase + tc.toml))
			var e *Errors
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *Errors", err)
			}
			var got []string
			for _, p := range *e {
				got = append(got, p.Key)
			}
			slices.Sort(got)
			want := slices.Clone(tc.keys)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got keys %q, want %q (%v)", got, want, err)
			}
		})
	}
}

func TestOIDCClientSecret(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "secret")
	if err := os.WriteFile(good, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AUTHD_TEST_OIDC_SECRET", "from-env")
	cases := []struct {
		name    string
		p       OIDC
		want    string
		wantErr string
	}{
		{"file", OIDC{ID: "corp", ClientSecretFile: good}, "s3cret", ""},
		{"file readable by others", OIDC{ID: "corp", ClientSecretFile: open}, "", "readable by others"},
		{"env", OIDC{ID: "corp", ClientSecretEnv: "AUTHD_TEST_OIDC_SECRET"}, "from-env", ""},
		{"env unset", OIDC{ID: "corp", ClientSecretEnv: "AUTHD_TEST_OIDC_UNSET"}, "", "not set"},
		{"public client", OIDC{ID: "corp"}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.ClientSecret()
			if (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) || got != tc.want {
				t.Errorf("got %q, %v; want %q, error with %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestReadmeOIDCExample keeps the README's "Sign in with OIDC" example a
// config authd accepts.
func TestReadmeOIDCExample(t *testing.T) {
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Sign in with OIDC\n")
	if !ok {
		t.Fatal("README has no \"Sign in with OIDC\" section")
	}
	_, block, ok := strings.Cut(sec, "```toml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("the section has no toml example")
	}
	c, err := Parse(strings.NewReader(oidcBase + block))
	if err != nil {
		t.Fatalf("README example: %v\n%s", err, block)
	}
	if len(c.OIDC) != 1 || c.OIDC[0].ID != "corp" || c.OIDC[0].DisplayName != "Corp SSO" {
		t.Errorf("README example parsed to %+v", c.OIDC)
	}
}
