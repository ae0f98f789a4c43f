// Command oidcprovider is a real OpenID Connect provider for authd's tests:
// github.com/zitadel/oidc's certified op package with its example storage
// (RSA-signed ID tokens, discovery, JWKS, PKCE, end_session), a username and
// password login page, and the clients and users a JSON file describes.
// Clients can be set to misbehave in ways a relying party must refuse: an
// ID token for another audience, or one that has already expired.
//
//	oidcprovider -config provider.json
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Config is the provider's JSON configuration.
type Config struct {
	Listen  string         `json:"listen"` // 127.0.0.1:port
	Issuer  string         `json:"issuer"` // http://127.0.0.1:port
	Clients []ClientConfig `json:"clients"`
	Users   []UserConfig   `json:"users"`
}

// ClientConfig is one registered relying party.
type ClientConfig struct {
	ID             string   `json:"id"`
	Secret         string   `json:"secret"`
	RedirectURIs   []string `json:"redirect_uris"`
	PostLogoutURIs []string `json:"post_logout_uris"`
	// Audience, when set, replaces the ID token's aud and azp: a token
	// for another application.
	Audience []string `json:"audience"`
	// IDTokenLifetime, when set, replaces one hour (negative: born expired).
	IDTokenLifetime string `json:"id_token_lifetime"`
}

// UserConfig is one account at the provider.
type UserConfig struct {
	Username      string   `json:"username"`
	Password      string   `json:"password"`
	First         string   `json:"first"`
	Last          string   `json:"last"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Groups        []string `json:"groups"`
}

type users struct{ byID, byName map[string]*storage.User }

func (u users) GetUserByID(id string) *storage.User          { return u.byID[id] }
func (u users) GetUserByUsername(n string) *storage.User     { return u.byName[n] }
func (u users) ExampleClientID() string                      { return "service" }
func (u users) add(id string, c UserConfig, s *storage.User) { u.byID[id], u.byName[c.Username] = s, s }

// store is the example storage with groups, per-client ID token
// lifetimes, and a signing key of its own that this program can also use
// (see rewriteAudience).
type store struct {
	*storage.Storage
	clients map[string]ClientConfig
	groups  map[string][]string // by user id
	key     *rsa.PrivateKey
}

const keyID = "test-key-1"

type signingKey struct{ key *rsa.PrivateKey }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return keyID }

type publicKey struct{ key *rsa.PrivateKey }

func (k publicKey) ID() string                         { return keyID }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func (s *store) SigningKey(context.Context) (op.SigningKey, error) { return signingKey{s.key}, nil }
func (s *store) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}
func (s *store) KeySet(context.Context) ([]op.Key, error) { return []op.Key{publicKey{s.key}}, nil }

// rewriteAudience makes the token endpoint answer a client that has an
// Audience configured with an ID token for that audience instead: the
// provider's own token, its aud and azp replaced and signed again with the
// provider's key, as if the provider had issued it to another application.
func (s *store) rewriteAudience(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _, ok := r.BasicAuth()
		if !ok {
			_ = r.ParseForm()
			id = r.PostForm.Get("client_id")
		}
		aud := s.clients[id].Audience
		if len(aud) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
			copyResponse(w, rec)
			return
		}
		raw, _ := body["id_token"].(string)
		parts := strings.Split(raw, ".")
		var claims map[string]any
		if len(parts) != 3 {
			copyResponse(w, rec)
			return
		}
		p, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil || json.Unmarshal(p, &claims) != nil {
			copyResponse(w, rec)
			return
		}
		claims["aud"], claims["azp"], claims["client_id"] = aud, aud[0], aud[0]
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: s.key, KeyID: keyID}},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			log.Fatal(err)
		}
		payload, _ := json.Marshal(claims)
		jws, err := signer.Sign(payload)
		if err != nil {
			log.Fatal(err)
		}
		if body["id_token"], err = jws.CompactSerialize(); err != nil {
			log.Fatal(err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(body)
	})
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (s *store) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return &client{Client: c, cfg: s.clients[id]}, nil
}

func (s *store) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, t op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, t, scopes); err != nil {
		return err
	}
	if slices.Contains(scopes, "groups") {
		ui.AppendClaims("groups", s.groups[t.GetSubject()])
	}
	return nil
}

type client struct {
	op.Client
	cfg ClientConfig
}

func (c *client) IDTokenLifetime() time.Duration {
	if d, err := time.ParseDuration(c.cfg.IDTokenLifetime); err == nil {
		return d
	}
	return time.Hour
}

// IDTokenUserinfoClaimsAssertion puts the profile, email and groups claims
// into the ID token, as Keycloak, Entra and Google do.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) IsScopeAllowed(s string) bool         { return s == "groups" }
func (c *client) PostLogoutRedirectURIs() []string     { return c.cfg.PostLogoutURIs }

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test provider sign-in</title></head>
<body><h1>Test provider</h1>
{{if .Error}}<p id="provider-error">{{.Error}}</p>{{end}}
<form method="post" action="/login/username">
<input type="hidden" name="id" value="{{.ID}}">
<label for="username">Provider username</label> <input id="username" name="username" autocomplete="off">
<label for="password">Provider password</label> <input id="password" name="password" type="password">
<button type="submit" id="provider-submit">Sign in at the provider</button>
</form></body></html>`))

func main() {
	path := flag.String("config", "", "JSON configuration")
	flag.Parse()
	b, err := os.ReadFile(*path)
	if err != nil {
		log.Fatal(err)
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		log.Fatalf("%s: %v", *path, err)
	}
	us := users{byID: map[string]*storage.User{}, byName: map[string]*storage.User{}}
	st := &store{clients: map[string]ClientConfig{}, groups: map[string][]string{}}
	for i, u := range cfg.Users {
		id := fmt.Sprintf("sub-%d-%s", i, u.Username)
		us.add(id, u, &storage.User{ID: id, Username: u.Username, Password: u.Password, FirstName: u.First,
			LastName: u.Last, Email: u.Email, EmailVerified: u.EmailVerified})
		st.groups[id] = u.Groups
	}
	for _, c := range cfg.Clients {
		storage.RegisterClients(storage.WebClient(c.ID, c.Secret, c.RedirectURIs...))
		st.clients[c.ID] = c
	}
	st.Storage = storage.NewStorage(us)
	if st.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		log.Fatal(err)
	}

	provider, err := op.NewProvider(&op.Config{
		CryptoKey:                sha256.Sum256([]byte("authd test provider")),
		DefaultLogoutRedirectURI: "/logged-out",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
	}, st, op.StaticIssuer(cfg.Issuer), op.WithAllowInsecure())
	if err != nil {
		log.Fatal(err)
	}
	callback := op.AuthCallbackURL(provider)
	intercept := op.NewIssuerInterceptor(provider.IssuerFromRequest)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /logged-out", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "signed out at the test provider")
	})
	mux.HandleFunc("GET /login/username", func(w http.ResponseWriter, r *http.Request) {
		_ = loginPage.Execute(w, map[string]string{"ID": r.URL.Query().Get("authRequestID")})
	})
	mux.Handle("POST /login/username", intercept.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.FormValue("id")
		if err := st.CheckUsernamePassword(r.FormValue("username"), r.FormValue("password"), id); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			_ = loginPage.Execute(w, map[string]string{"ID": id, "Error": "wrong provider username or password"})
			return
		}
		http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
	}))
	mux.Handle("POST /oauth/token", st.rewriteAudience(provider))
	mux.Handle("/", provider)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("oidc provider %s listening on %s", cfg.Issuer, ln.Addr())
	srv := &http.Server{Handler: logRequests(mux), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.Serve(ln))
}

func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s", r.Method, r.URL.Path)
		h.ServeHTTP(w, r)
	})
}
