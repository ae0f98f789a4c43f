package server

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/users"
)

// useMachine gives the server a machine credentials file that edit fills,
// with an in-memory nonce cache on the harness clock.
func (h *harness) useMachine(t testing.TB, edit func(r *machine.Records) error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), machine.FileName)
	if err := machine.Edit(path, edit); err != nil {
		t.Fatal(err)
	}
	mf, err := machine.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.machine = machine.NewVerifier(mf, machine.NewMemoryNonces(0, 0, h.clock.now), machine.DefaultWindow, h.clock.now)
}

func TestVerifyMachineClients(t *testing.T) {
	h := newHarness(t, []policy.Rule{{Path: "/admin", Groups: []string{"admin"}}, {Path: "/"}}, nil)
	var bobToken, malloryToken, secret string
	var key machine.Key
	h.useMachine(t, func(r *machine.Records) error {
		var tok machine.Token
		var err error
		if bobToken, tok, err = machine.NewToken("bob", "ci", h.clock.now(), time.Hour); err != nil {
			return err
		}
		tok.UserGeneration = 2 // bob's, in the harness
		r.Tokens = append(r.Tokens, tok)
		if malloryToken, tok, err = machine.NewToken("mallory", "old", h.clock.now(), time.Hour); err != nil {
			return err
		}
		tok.UserGeneration = 3
		r.Tokens = append(r.Tokens, tok)
		if secret, key, err = machine.NewKey("bob", "nightly", h.clock.now(), time.Hour); err != nil {
			return err
		}
		key.UserGeneration = 2
		r.Keys = append(r.Keys, key)
		return nil
	})
	cookie := h.login("alice")
	signed := func(method, uri string) string {
		a, err := machine.Sign(method, "https://app.example.com"+uri, key.ID, []byte(secret), h.clock.now(), "")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	replayed := signed("GET", "/api/x")

	tests := []struct {
		name, method, uri, auth, cookie string
		want                            int
		user                            string
	}{
		{"bearer token", "GET", "/api/x", "Bearer " + bobToken, "", 200, "bob"},
		{"bearer token obeys rules", "GET", "/admin", "Bearer " + bobToken, "", 403, ""},
		{"garbage token beats a valid cookie", "GET", "/", "Bearer authd_tok_garbage", cookie, 401, ""},
		{"locked user's token", "GET", "/", "Bearer " + malloryToken, "", 401, ""},
		{"basic auth is not ours: no cookie", "GET", "/", "Basic Ym9iOnB3", "", 401, ""},
		{"basic auth is not ours: the cookie decides", "GET", "/", "Basic Ym9iOnB3", cookie, 200, "alice"},
		{"signed request", "GET", "/api/x", replayed, "", 200, "bob"},
		{"replayed signed request", "GET", "/api/x", replayed, "", 401, ""},
		{"signature for another path", "GET", "/api/y", signed("GET", "/api/x"), "", 401, ""},
		{"signature for another method", "POST", "/api/x", signed("GET", "/api/x"), "", 401, ""},
		{"signature for another query", "GET", "/api/x?a=2", signed("GET", "/api/x?a=1"), "", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hd := map[string]string{"X-Original-URI": tt.uri, "X-Original-Method": tt.method, "X-Forwarded-Host": "app.example.com", "Authorization": tt.auth}
			if tt.cookie != "" {
				hd["Cookie"] = tt.cookie
			}
			w := h.do(req{target: "/verify", headers: hd})
			if w.Code != tt.want || w.Header().Get("Remote-User") != tt.user {
				t.Errorf("got %d as %q, want %d as %q", w.Code, w.Header().Get("Remote-User"), tt.want, tt.user)
			}
			ours := strings.HasPrefix(tt.auth, "Bearer ") || strings.HasPrefix(tt.auth, machine.Scheme)
			if ours && w.Header().Get("X-Authd-Login") != "" {
				t.Error("a machine client was offered the login form")
			}
		})
	}
	if n := h.store.Len(); n != 1 {
		t.Errorf("sessions = %d, want 1: machine clients must not create sessions", n)
	}
}

// TestVerifySignedHostForms: a signature covers the host nginx forwards
// ($host: lower case, no port, an IPv6 literal in brackets) whatever form the
// client signed it in; another host is refused.
func TestVerifySignedHostForms(t *testing.T) {
	h := newHarness(t, []policy.Rule{{Path: "/"}}, nil)
	var secret string
	var key machine.Key
	h.useMachine(t, func(r *machine.Records) error {
		var err error
		secret, key, err = machine.NewKey("bob", "nightly", h.clock.now(), time.Hour)
		key.UserGeneration = 2 // bob's, in the harness
		r.Keys = append(r.Keys, key)
		return err
	})
	tests := []struct {
		name, signedFor, forwarded string
		want                       int
	}{
		{"name", "https://app.example.com/api/x", "app.example.com", 200},
		{"name with port and case", "https://App.Example.com:8443/api/x", "app.example.com", 200},
		{"IPv6 literal", "https://[2001:db8::1]/api/x", "[2001:db8::1]", 200},
		{"IPv6 literal with port", "https://[2001:db8::1]:8443/api/x", "[2001:db8::1]", 200},
		{"IPv4 literal", "https://192.0.2.1:8443/api/x", "192.0.2.1", 200},
		{"another IPv6 literal", "https://[2001:db8::1]/api/x", "[2001:db8::2]", 401},
		{"another name", "https://app.example.com/api/x", "api.example.com", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := machine.Sign("GET", tt.signedFor, key.ID, []byte(secret), h.clock.now(), "")
			if err != nil {
				t.Fatal(err)
			}
			hd := map[string]string{"X-Original-URI": "/api/x", "X-Original-Method": "GET", "X-Forwarded-Host": tt.forwarded, "Authorization": a}
			if w := h.do(req{target: "/verify", headers: hd}); w.Code != tt.want {
				t.Errorf("signed for %s, forwarded host %s: got %d, want %d", tt.signedFor, tt.forwarded, w.Code, tt.want)
			}
		})
	}
}

// TestVerifyMachineUserChanges: a token or signing key acts as its user only
// while the user exists, is not locked and keeps the credential generation the
// credential was issued for. A password change, lock, unlock or delete gives
// the user a new generation (as for sessions), so the credential is refused
// from the next request on, and stays refused.
func TestVerifyMachineUserChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(u *users.User) (keep bool)
	}{
		{"password changed", func(u *users.User) bool { u.Hash, u.Generation = mustHash(t, "another long password"), 20; return true }},
		{"locked", func(u *users.User) bool { u.Disabled, u.Generation = true, 21; return true }},
		{"locked and unlocked", func(u *users.User) bool { u.Generation = 22; return true }},
		{"deleted", func(u *users.User) bool { return false }},
		{"deleted and re-added", func(u *users.User) bool { u.Generation = 23; return true }},
		{"locked, same generation", func(u *users.User) bool { u.Disabled = true; return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, []policy.Rule{{Path: "/"}}, nil)
			var token, secret string
			var key machine.Key
			h.useMachine(t, func(r *machine.Records) error {
				tok, rec, err := machine.NewToken("bob", "ci", h.clock.now(), time.Hour)
				rec.UserGeneration = 2
				token = tok
				r.Tokens = append(r.Tokens, rec)
				if err != nil {
					return err
				}
				secret, key, err = machine.NewKey("bob", "nightly", h.clock.now(), time.Hour)
				key.UserGeneration = 2
				r.Keys = append(r.Keys, key)
				return err
			})
			verify := func(auth string) int {
				return h.do(req{target: "/verify", headers: map[string]string{"X-Original-URI": "/x", "X-Original-Method": "GET",
					"X-Forwarded-Host": "app.example.com", "Authorization": auth}}).Code
			}
			signed := func() string {
				a, err := machine.Sign("GET", "https://app.example.com/x", key.ID, []byte(secret), h.clock.now(), "")
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			if got := verify("Bearer " + token); got != 200 {
				t.Fatalf("token before the change: got %d, want 200", got)
			}
			if got := verify(signed()); got != 200 {
				t.Fatalf("signed before the change: got %d, want 200", got)
			}
			h.editUsers(func(l []users.User) []users.User {
				i := slices.IndexFunc(l, func(u users.User) bool { return u.Name == "bob" })
				if !tt.change(&l[i]) {
					return slices.Delete(l, i, i+1)
				}
				return l
			})
			if got := verify("Bearer " + token); got != 401 {
				t.Errorf("token after the change: got %d, want 401", got)
			}
			if got := verify(signed()); got != 401 {
				t.Errorf("signed after the change: got %d, want 401", got)
			}
		})
	}
}

// laggingUsers is a user store whose copy may lag behind a shared one, like
// users.Redis: EnsureCurrent records the names asked for and fails with err.
type laggingUsers struct {
	*users.File
	err   error
	asked []string
}

func (l *laggingUsers) EnsureCurrent(_ context.Context, name string) error {
	l.asked = append(l.asked, name)
	return l.err
}

// wrappedUsers is a UserStore as a caller might pass it on, wrapped (to
// count, to log): only the methods of the interface reach the server.
type wrappedUsers struct{ UserStore }

// TestVerifyMachineUserCurrentThroughWrapping: a machine client's user is
// caught up with the shared store before the credential counts, even when
// the store reaches the server wrapped; a user that cannot be confirmed
// current is a refusal.
func TestVerifyMachineUserCurrentThroughWrapping(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
		user string
	}{
		{"user confirmed current", nil, 200, "bob"},
		{"user not confirmed", errors.New("read user version from redis: i/o timeout"), 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, []policy.Rule{{Path: "/"}}, nil)
			var bobToken string
			h.useMachine(t, func(r *machine.Records) error {
				tok, rec, err := machine.NewToken("bob", "ci", h.clock.now(), time.Hour)
				rec.UserGeneration = 2 // bob's, in the harness
				bobToken, r.Tokens = tok, append(r.Tokens, rec)
				return err
			})
			lag := &laggingUsers{File: h.users, err: tt.err}
			h.srv.users = wrappedUsers{lag}

			w := h.do(req{target: "/verify", headers: map[string]string{
				"X-Original-URI": "/api/x", "X-Original-Method": "GET", "X-Forwarded-Host": "app.example.com", "Authorization": "Bearer " + bobToken}})
			if w.Code != tt.want || w.Header().Get("Remote-User") != tt.user {
				t.Errorf("got %d as %q, want %d as %q", w.Code, w.Header().Get("Remote-User"), tt.want, tt.user)
			}
			if !slices.Equal(lag.asked, []string{"bob"}) {
				t.Errorf("EnsureCurrent asked for %q, want [bob]", lag.asked)
			}
		})
	}
}
