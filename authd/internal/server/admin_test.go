package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAdminUserSpellings(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.login("alice")
	h.login("alice")
	admin := NewAdmin(h.store, h.users, nil, nil, h.clock.now).Handler()
	call := func(method, target string) (int, string) {
		w := httptest.NewRecorder()
		admin.ServeHTTP(w, httptest.NewRequest(method, target, nil))
		return w.Code, strings.TrimSpace(w.Body.String())
	}
	for _, tt := range []struct {
		name, method, target string
		code                 int
		body                 string
	}{
		{"list in another spelling", "GET", "/sessions?user=%20Alice%20", 200, `"user":"alice"`},
		{"list unknown", "GET", "/sessions?user=ghost", 404, `no user \"ghost\"`},
		{"list impossible name", "GET", "/sessions?user=al%20ice", 400, "user: username"},
		{"revoke unknown", "POST", "/sessions/revoke?user=ghost", 404, `no user \"ghost\"`},
		{"revoke in another spelling", "POST", "/sessions/revoke?user=ALICE", 200, `{"revoked":2}`},
		{"revoke a known user with none left", "POST", "/sessions/revoke?user=alice", 200, `{"revoked":0}`},
		{"revoke without target", "POST", "/sessions/revoke", 400, "user or all required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(tt.method, tt.target)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("got %d %s, want %d containing %s", code, body, tt.code, tt.body)
			}
		})
	}
	if code, _ := call("GET", "/sessions?user=bob"); code != http.StatusOK {
		t.Errorf("a known user without sessions: got %d, want 200", code)
	}
}

// TestAdminRevokeReason: the CLI's revocations leave the reason the login
// page shows; an unknown or missing reason is an administrator's revocation.
func TestAdminRevokeReason(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{"", "ended by an administrator"},
		{"&reason=password_changed", "Your password was changed"},
		{"&reason=locked", "Your account has been locked"},
		{"&reason=bogus", "ended by an administrator"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			cookie := h.login("alice")
			admin := NewAdmin(h.store, h.users, nil, nil, h.clock.now).Handler()
			w := httptest.NewRecorder()
			admin.ServeHTTP(w, httptest.NewRequest("POST", "/sessions/revoke?user=alice"+tc.query, nil))
			if w.Code != 200 {
				t.Fatalf("revoke: got %d %s", w.Code, w.Body)
			}
			page := h.do(req{target: "/authd/login", headers: map[string]string{"Cookie": cookie}})
			if !strings.Contains(page.Body.String(), tc.want) {
				t.Fatalf("login page lacks %q:\n%s", tc.want, page.Body)
			}
		})
	}
}
