package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

func (h *harness) live(cookie, remote, query string, extra map[string]string) *httptest.ResponseRecorder {
	h.t.Helper()
	hd := map[string]string{}
	if cookie != "" {
		hd["Cookie"] = cookie
	}
	for k, v := range extra {
		hd[k] = v
	}
	return h.do(req{target: livePath + query, headers: hd, remote: remote})
}

type liveAnswer struct {
	Live   bool     `json:"live"`
	User   string   `json:"user"`
	Name   string   `json:"name"`
	Email  string   `json:"email"`
	Groups []string `json:"groups"`
}

func TestLiveCheck(t *testing.T) {
	h := newHarness(t, nil, nil)
	alice := h.login("alice")
	tests := []struct {
		name   string
		cookie string
		remote string
		extra  map[string]string
		want   int
		user   string
	}{
		{"live session from loopback", alice, "", nil, 200, "alice"},
		{"live session among other cookies", "_streamlit_xsrf=abc; " + alice + "; theme=dark", "", nil, 200, "alice"},
		{"live session over the unix socket", alice, "@", nil, 200, "alice"},
		{"no cookie", "", "", nil, 401, ""},
		{"garbage cookie", "__Host-authd_session=garbage", "", nil, 401, ""},
		{"tampered cookie", "__Host-authd_session=" + flip(strings.TrimPrefix(alice, "__Host-authd_session=")), "", nil, 401, ""},
		{"duplicated cookie", alice + "; " + alice, "", nil, 401, ""},
		{"untrusted peer", alice, "203.0.113.9:5000", nil, 403, ""},
		{"relayed by a proxy (X-Forwarded-For)", alice, "", map[string]string{"X-Forwarded-For": "203.0.113.9"}, 403, ""},
		{"relayed by a proxy (X-Real-IP)", alice, "", map[string]string{"X-Real-IP": "203.0.113.9"}, 403, ""},
		{"relayed by a proxy (Forwarded)", alice, "", map[string]string{"Forwarded": "for=203.0.113.9"}, 403, ""},
		{"relayed by nginx's verify location", alice, "", map[string]string{"X-Original-URI": "/"}, 403, ""},
		{"relayed by a proxy (X-Forwarded-Host only)", alice, "", map[string]string{"X-Forwarded-Host": "app.example.com"}, 403, ""},
		{"relayed by a proxy (X-Forwarded-Proto only)", alice, "", map[string]string{"x-forwarded-proto": "https"}, 403, ""},
		{"relayed by a proxy (X-Original-Method only)", alice, "", map[string]string{"X-Original-Method": "GET"}, 403, ""},
		{"relayed by a proxy (Via)", alice, "", map[string]string{"Via": "1.1 lb"}, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := h.live(tt.cookie, tt.remote, "", tt.extra)
			if w.Code != tt.want {
				t.Fatalf("got %d, want %d; body %s", w.Code, tt.want, w.Body)
			}
			if got := w.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if sc := w.Header()["Set-Cookie"]; len(sc) > 0 {
				t.Errorf("set cookies: %v", sc)
			}
			if tt.want != 200 {
				if strings.Contains(w.Body.String(), "alice") {
					t.Errorf("refusal carries the identity: %s", w.Body)
				}
				return
			}
			var a liveAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
				t.Fatal(err)
			}
			want := liveAnswer{Live: true, User: "alice", Name: "Alice Liddell", Email: "alice@example.com", Groups: []string{"admin", "staff"}}
			if a.Live != want.Live || a.User != want.User || a.Name != want.Name || a.Email != want.Email || strings.Join(a.Groups, ",") != strings.Join(want.Groups, ",") {
				t.Errorf("got %+v, want %+v", a, want)
			}
		})
	}
}

// TestLiveCheckEnds: what ends a session for verify ends it for the app's
// check at the very next request.
func TestLiveCheckEnds(t *testing.T) {
	tests := []struct {
		name string
		end  func(h *harness, cookie string)
	}{
		{"revoked", func(h *harness, cookie string) {
			if _, err := h.store.DeleteUser(context.Background(), "alice"); err != nil {
				t.Fatal(err)
			}
		}},
		{"user locked", func(h *harness, cookie string) {
			h.editUsers(func(l []users.User) []users.User {
				for i := range l {
					if l[i].Name == "alice" {
						l[i].Disabled = true
					}
				}
				return l
			})
		}},
		{"idle timeout", func(h *harness, cookie string) { h.clock.add(30*time.Minute + time.Second) }},
		{"absolute lifetime", func(h *harness, cookie string) {
			for i := 0; i < 25; i++ { // active every 29 minutes for 12 hours
				h.clock.add(29 * time.Minute)
				h.live(cookie, "", "?active=1", nil)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			cookie := h.login("alice")
			if w := h.live(cookie, "", "?active=1", nil); w.Code != 200 {
				t.Fatalf("before: got %d, want 200", w.Code)
			}
			tt.end(h, cookie)
			if w := h.live(cookie, "", "?active=1", nil); w.Code != 401 {
				t.Fatalf("after: got %d, want 401; body %s", w.Code, w.Body)
			}
		})
	}
}

// TestLiveCheckActivity: an app's check after user input keeps an idle
// session alive, a plain check does not, and writes are throttled like
// verify's.
func TestLiveCheckActivity(t *testing.T) {
	lastSeen := func(h *harness, cookie string) time.Time {
		h.t.Helper()
		k, ok := session.Parse(strings.TrimPrefix(cookie, "__Host-authd_session="))
		if !ok {
			h.t.Fatal("unparsable cookie")
		}
		s, found, err := h.store.Get(context.Background(), k)
		if err != nil || !found {
			h.t.Fatalf("session: found %v, err %v", found, err)
		}
		return s.LastSeen
	}
	tests := []struct {
		name  string
		query string
		want  int // after 20 + 20 minutes of checks, idle timeout 30 minutes
	}{
		{"active checks count as activity", "?active=1", 200},
		{"plain checks do not", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			cookie := h.login("alice")
			before := lastSeen(h, cookie)
			h.clock.add(30 * time.Second) // within touch_interval: no write
			h.live(cookie, "", "?active=1", nil)
			if got := lastSeen(h, cookie); !got.Equal(before) {
				t.Errorf("a check within touch_interval wrote last seen: got %v, want %v", got, before)
			}
			h.clock.add(20 * time.Minute)
			h.live(cookie, "", tt.query, nil)
			h.clock.add(20 * time.Minute)
			if w := h.live(cookie, "", tt.query, nil); w.Code != tt.want {
				t.Fatalf("got %d, want %d", w.Code, tt.want)
			}
		})
	}
}

// TestLiveCheckRefusalLog: a refused check is logged with the client address
// as every other audit line writes it ("unknown" when a proxy's header names
// none), never Go's "invalid IP".
func TestLiveCheckRefusalLog(t *testing.T) {
	tests := []struct{ name, remote, xff, want string }{
		{"untrusted peer", "203.0.113.9:5000", "", "203.0.113.9"},
		{"relayed with an unreadable hop", "", "not-an-address", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			core, logs := observer.New(zap.InfoLevel)
			h.srv.log = zap.New(core)
			extra := map[string]string{}
			if tt.xff != "" {
				extra["X-Forwarded-For"] = tt.xff
			}
			if w := h.live(h.login("alice"), tt.remote, "", extra); w.Code != 403 {
				t.Fatalf("got %d, want 403", w.Code)
			}
			got := logs.FilterField(zap.String("event", "live_check_refused")).All()
			if len(got) != 1 {
				t.Fatalf("got %d refusal lines, want 1", len(got))
			}
			if ip := got[0].ContextMap()["client_ip"]; ip != tt.want {
				t.Errorf("client_ip = %v, want %q", ip, tt.want)
			}
		})
	}
}

// unreadableStore is a session store whose reads fail, as Redis does when it
// is down.
type unreadableStore struct{ *session.Embedded }

func (unreadableStore) Get(context.Context, session.Key) (session.Session, bool, error) {
	return session.Session{}, false, errors.New("redis: connection refused")
}

// TestLiveCheckStoreDown: while the session store cannot be read the check
// answers 503 (the app says "try again"), not 401 (which the app shows as
// "signed out, sign in again"); verify still denies.
func TestLiveCheckStoreDown(t *testing.T) {
	h := newHarness(t, nil, nil)
	alice := h.login("alice")
	h.srv.store = unreadableStore{h.store}
	w := h.live(alice, "", "?active=1", nil)
	if w.Code != 503 || strings.Contains(w.Body.String(), "alice") {
		t.Errorf("live check with the store down: got %d %s, want 503 without the identity", w.Code, w.Body)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	hd := map[string]string{"X-Original-URI": "/", "X-Original-Method": "GET", "Cookie": alice}
	if w := h.do(req{target: "/verify", headers: hd}); w.Code != 401 {
		t.Errorf("verify with the store down: got %d, want 401", w.Code)
	}
	// No cookie at all is still "signed out", store or not.
	if w := h.live("", "", "", nil); w.Code != 401 {
		t.Errorf("no cookie with the store down: got %d, want 401", w.Code)
	}
}
