package server

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/redistest"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/throttle"
)

// withRedisSessions rebuilds h's server on a Redis session store (a real
// redis-server, started for this test) with the session limits idle and
// lifetime. Redis's TTLs run on the real clock, h's server on h.clock: a
// test moves both.
func withRedisSessions(t *testing.T, h *harness, idle, lifetime time.Duration) *session.Redis {
	t.Helper()
	c, prefix := redistest.Start(t).Open(t)
	st := session.NewRedis(c, prefix, h.clock.now)
	o := testOptions()
	o.Idle, o.Lifetime, o.TouchInterval = idle, lifetime, 0
	rs, err := policy.New([]policy.Rule{{Path: "/"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	thr := throttle.NewMemory(throttle.Config{AccountFailures: 3, IPFailures: 10, BaseDelay: time.Second, MaxDelay: time.Minute, Window: 15 * time.Minute, MaxEntries: 1000}, h.clock.now)
	srv, err := New(o, Deps{Users: h.users, Sessions: st, Throttle: thr, Now: h.clock.now}, rs)
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.h = srv, srv.Handler()
	return st
}

// loginNotice is the notice the login page shows a browser with cookie.
func (h *harness) loginNotice(cookie string) string {
	h.t.Helper()
	w := h.do(req{target: "/authd/login", headers: map[string]string{"Cookie": cookie}})
	if w.Code != http.StatusOK {
		h.t.Fatalf("login page: got %d, want 200", w.Code)
	}
	body := html.UnescapeString(w.Body.String())
	for _, n := range []string{"Your session expired.", "Your session has ended.", "You have signed out.", "was ended by an administrator"} {
		if strings.Contains(body, n) {
			return n
		}
	}
	return ""
}

// Both ways a Redis session simply runs out, idle timeout and absolute
// lifetime, read as "expired" on the login page once Redis has dropped the
// session's key; while it is gone, verify refuses the cookie.
func TestRedisSessionExpiryReason(t *testing.T) {
	const expired = "Your session expired."
	t.Run("idle", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		withRedisSessions(t, h, 700*time.Millisecond, time.Hour)
		cookie := h.login("alice")
		if w := h.verify("/x", cookie); w.Code != http.StatusOK {
			t.Fatalf("verify right after login: got %d, want 200", w.Code)
		}
		time.Sleep(900 * time.Millisecond)
		h.clock.add(900 * time.Millisecond)
		if w := h.verify("/x", cookie); w.Code != http.StatusUnauthorized {
			t.Errorf("verify after the idle timeout: got %d, want 401", w.Code)
		}
		if got := h.loginNotice(cookie); got != expired {
			t.Errorf("login page after the idle timeout: notice %q, want %q", got, expired)
		}
	})
	t.Run("lifetime", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		withRedisSessions(t, h, time.Hour, 1200*time.Millisecond)
		cookie := h.login("alice")
		// Activity keeps the idle timer fresh; the lifetime ends it anyway.
		for range 3 {
			time.Sleep(300 * time.Millisecond)
			h.clock.add(300 * time.Millisecond)
			if w := h.verify("/x", cookie); w.Code != http.StatusOK {
				t.Fatalf("verify within the lifetime: got %d, want 200", w.Code)
			}
		}
		time.Sleep(500 * time.Millisecond)
		h.clock.add(500 * time.Millisecond)
		if w := h.verify("/x", cookie); w.Code != http.StatusUnauthorized {
			t.Errorf("verify after the lifetime: got %d, want 401", w.Code)
		}
		if got := h.loginNotice(cookie); got != expired {
			t.Errorf("login page after the lifetime: notice %q, want %q", got, expired)
		}
	})
	t.Run("record still in Redis", func(t *testing.T) {
		// This instance's clock is past the idle deadline before Redis's
		// is: the record is still there, verify refuses it all the same.
		h := newHarness(t, nil, nil)
		withRedisSessions(t, h, time.Hour, 12*time.Hour)
		cookie := h.login("alice")
		h.clock.add(time.Hour + time.Second)
		if w := h.verify("/x", cookie); w.Code != http.StatusUnauthorized {
			t.Errorf("verify of a record past its idle deadline: got %d, want 401", w.Code)
		}
		if got := h.loginNotice(cookie); got != expired {
			t.Errorf("login page: notice %q, want %q", got, expired)
		}
	})
	t.Run("signed out", func(t *testing.T) {
		// A logout is not an expiry, and a cookie nobody knows is neither.
		h := newHarness(t, nil, nil)
		st := withRedisSessions(t, h, time.Hour, 12*time.Hour)
		cookie := h.login("alice")
		key, ok := session.Parse(strings.TrimPrefix(cookie, "__Host-authd_session="))
		if !ok {
			t.Fatal("session cookie does not parse")
		}
		if err := st.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		if got := h.loginNotice(cookie); got != "Your session has ended." {
			t.Errorf("login page after a delete without reason: notice %q, want the generic one", got)
		}
		cookie = h.login("bob")
		key, _ = session.Parse(strings.TrimPrefix(cookie, "__Host-authd_session="))
		if err := st.End(t.Context(), key, session.SignedOut); err != nil {
			t.Fatal(err)
		}
		if got := h.loginNotice(cookie); got != "You have signed out." {
			t.Errorf("login page after sign-out: notice %q, want %q", got, "You have signed out.")
		}
	})
}

// A refused sign-out is a page in the browser's language, not English text.
func TestLogoutRefusalsTranslated(t *testing.T) {
	h := newHarness(t, nil, nil)
	cookie := h.login("alice")
	w := h.do(req{method: "POST", target: "/authd/logout", form: url.Values{"csrf": {"stale"}},
		headers: map[string]string{"Cookie": cookie, "Origin": "https://app.example.com", "Accept-Language": "de"}})
	body := html.UnescapeString(w.Body.String())
	if w.Code != http.StatusForbidden || !strings.Contains(body, "Dieses Formular ist abgelaufen") || !strings.Contains(body, "<html") {
		t.Errorf("logout with a stale form: got %d, want 403 and the German form-expired page; body:\n%s", w.Code, body)
	}
	w = h.do(req{method: "POST", target: "/authd/logout", form: url.Values{"csrf": {"x"}},
		headers: map[string]string{"Cookie": cookie, "Origin": "https://evil.example.net", "Accept-Language": "ja"}})
	if body := w.Body.String(); w.Code != http.StatusForbidden || strings.Contains(body, "refused") || !strings.Contains(body, "lang=\"ja\"") {
		t.Errorf("cross-site logout: got %d, want 403 and a Japanese page; body:\n%s", w.Code, body)
	}
	if w := h.verify("/x", cookie); w.Code != http.StatusOK {
		t.Errorf("after refused sign-outs: verify got %d, want 200 (still signed in)", w.Code)
	}
}
