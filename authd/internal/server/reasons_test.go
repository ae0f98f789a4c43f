package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// TestLoginPageSaysWhy: a browser whose session stopped working lands on
// the login form (nginx's 302 after verify's 401) with its old cookie; the
// form says why, once, and clears the cookie.
func TestLoginPageSaysWhy(t *testing.T) {
	tests := []struct {
		name string
		end  func(h *harness, cookie string)
		want string
	}{
		{"revoked by an administrator", func(h *harness, _ string) {
			if _, err := h.store.EndUser(context.Background(), "bob", session.Revoked); err != nil {
				t.Fatal(err)
			}
		}, "ended by an administrator"},
		{"user deleted", func(h *harness, _ string) {
			h.editUsers(func(l []users.User) []users.User { return l[:1] })
		}, "ended by an administrator"},
		{"password changed", func(h *harness, _ string) {
			h.editUsers(func(l []users.User) []users.User {
				l[1].Hash = mustHash(t, "a new password")
				return l
			})
		}, "Your password was changed"},
		{"account locked", func(h *harness, _ string) {
			h.editUsers(func(l []users.User) []users.User {
				l[1].Disabled = true
				l[1].Generation++
				return l
			})
		}, "Your account has been locked"},
		{"idle timeout", func(h *harness, _ string) { h.clock.add(31 * time.Minute) }, "Your session expired"},
		{"lifetime", func(h *harness, cookie string) {
			for range 25 { // active every 30 minutes, past the 12-hour lifetime
				h.clock.add(29 * time.Minute)
				key, _ := session.Parse(strings.TrimPrefix(cookie, "__Host-authd_session="))
				_ = h.store.Touch(context.Background(), key, h.clock.now())
			}
		}, "Your session expired"},
		{"forgotten by the store", func(h *harness, _ string) {
			if _, err := h.store.DeleteAll(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, "Your session has ended"},
		{"signed out in another tab", func(h *harness, cookie string) {
			key, _ := session.Parse(strings.TrimPrefix(cookie, "__Host-authd_session="))
			if err := h.store.End(context.Background(), key, session.SignedOut); err != nil {
				t.Fatal(err)
			}
		}, "You have signed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			cookie := h.login("bob")
			tt.end(h, cookie)
			// What the user sees first: verify refuses (nginx then redirects).
			if w := h.verify("/app", cookie); w.Code != http.StatusUnauthorized {
				t.Fatalf("verify after the end: got %d, want 401", w.Code)
			}
			w := h.do(req{target: "/authd/login?rd=%2Fapp", headers: map[string]string{"Cookie": cookie}})
			if w.Code != 200 {
				t.Fatalf("login form: got %d, want 200", w.Code)
			}
			body := w.Body.String()
			if !strings.Contains(body, tt.want) {
				t.Fatalf("login form does not say %q:\n%s", tt.want, body)
			}
			if !strings.Contains(strings.Join(w.Header()["Set-Cookie"], "\n"), "__Host-authd_session=;") {
				t.Errorf("stale session cookie not cleared: %v", w.Header()["Set-Cookie"])
			}
		})
	}
}

func TestLoginPageSaysNothingWithoutCookie(t *testing.T) {
	h := newHarness(t, nil, nil)
	w := h.do(req{target: "/authd/login"})
	if strings.Contains(w.Body.String(), `class="notice"`) {
		t.Fatalf("fresh visit shows a notice:\n%s", w.Body)
	}
	if strings.Contains(strings.Join(w.Header()["Set-Cookie"], "\n"), "__Host-authd_session=") {
		t.Errorf("fresh visit touches the session cookie: %v", w.Header()["Set-Cookie"])
	}
}

// TestLogoutLeavesSignedOut: the form's logout leaves a tombstone, so a
// second tab that still sends the cookie is told it signed out.
func TestLogoutLeavesSignedOut(t *testing.T) {
	h := newHarness(t, nil, nil)
	cookie := h.login("alice")
	key, _ := session.Parse(strings.TrimPrefix(cookie, "__Host-authd_session="))
	w := h.apiDo("POST", "/authd/api/logout", "", map[string]string{"Cookie": cookie})
	if w.Code != 200 {
		t.Fatalf("logout: got %d", w.Code)
	}
	if why, _ := h.store.Ended(context.Background(), key); why != session.SignedOut {
		t.Fatalf("tombstone: got %v, want %v", why, session.SignedOut)
	}
}

// TestConsoleEndsSessionsWithReasons: what an administrator does in the
// console reaches the user's login page as the reason.
func TestConsoleEndsSessionsWithReasons(t *testing.T) {
	c := newConsole(t)
	alice := c.login("alice")
	tok := c.csrf(alice)
	loginPage := func(cookie string) string {
		return c.do(req{target: "/authd/login", headers: map[string]string{"Cookie": cookie}}).Body.String()
	}
	bob := c.login("bob")
	if w := c.post(alice, form("op", "revoke_all", "user", "bob", "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("revoke all: got %d", w.Code)
	}
	if !strings.Contains(loginPage(bob), "ended by an administrator") {
		t.Error("revoke_all: login page does not say an administrator ended the session")
	}
	bob = c.login("bob")
	if w := c.post(alice, form("op", "lock", "user", "bob", "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("lock: got %d", w.Code)
	}
	if !strings.Contains(loginPage(bob), "Your account has been locked") {
		t.Error("lock: login page does not say the account is locked")
	}
}
