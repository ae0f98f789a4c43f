package server

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSetOptions checks that each setting a reload may change takes effect
// for the next request, and that the fixed ones stay as they were.
func TestSetOptions(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Options)
		check func(t *testing.T, h *harness)
	}{
		{"idle timeout", func(o *Options) { o.Idle = time.Minute }, func(t *testing.T, h *harness) {
			c := h.login("alice")
			h.clock.add(2 * time.Minute)
			if w := h.verify("/app", c); w.Code != http.StatusUnauthorized {
				t.Errorf("session idle 2m under a 1m idle timeout: got %d, want 401", w.Code)
			}
		}},
		{"shorter idle timeout ends existing sessions", nil, func(t *testing.T, h *harness) {
			c := h.login("alice")
			h.clock.add(2 * time.Minute)
			o := testOptions()
			o.Idle = time.Minute
			if err := h.srv.SetOptions(o); err != nil {
				t.Fatal(err)
			}
			if w := h.verify("/app", c); w.Code != http.StatusUnauthorized {
				t.Errorf("session idle 2m, idle timeout cut to 1m: got %d, want 401", w.Code)
			}
		}},
		{"shorter lifetime ends existing sessions", nil, func(t *testing.T, h *harness) {
			c := h.login("alice")
			h.clock.add(20 * time.Minute)
			h.verify("/app", c)
			h.clock.add(20 * time.Minute)
			o := testOptions()
			o.Lifetime = 30 * time.Minute
			if err := h.srv.SetOptions(o); err != nil {
				t.Fatal(err)
			}
			if w := h.verify("/app", c); w.Code != http.StatusUnauthorized {
				t.Errorf("session 40m old, lifetime cut to 30m: got %d, want 401", w.Code)
			}
		}},
		{"longer idle timeout does not extend existing sessions", nil, func(t *testing.T, h *harness) {
			c := h.login("alice")
			o := testOptions()
			o.Idle = 2 * time.Hour
			if err := h.srv.SetOptions(o); err != nil {
				t.Fatal(err)
			}
			h.clock.add(time.Hour)
			if w := h.verify("/app", c); w.Code != http.StatusUnauthorized {
				t.Errorf("session idle 1h, created under a 30m idle timeout: got %d, want 401", w.Code)
			}
		}},
		{"lifetime", func(o *Options) { o.Lifetime = time.Hour }, func(t *testing.T, h *harness) {
			c := h.login("alice")
			for range 3 {
				h.clock.add(25 * time.Minute)
				h.verify("/app", c)
			}
			if w := h.verify("/app", c); w.Code != http.StatusUnauthorized {
				t.Errorf("session 75m old under a 1h lifetime: got %d, want 401", w.Code)
			}
		}},
		{"login title", func(o *Options) { o.LoginTitle = "Staff portal" }, func(t *testing.T, h *harness) {
			if w := h.do(req{target: "/authd/login"}); !strings.Contains(w.Body.String(), "Staff portal") {
				t.Errorf("login page does not show the new title")
			}
		}},
		{"default redirect", func(o *Options) { o.DefaultRedirect = "/home/" }, func(t *testing.T, h *harness) {
			w := h.postLogin("alice", testPassword, "", "203.0.113.7", nil)
			if got := w.Header().Get("Location"); got != "/home/" {
				t.Errorf("redirect after login: got %q, want %q", got, "/home/")
			}
		}},
		{"redirect hosts", func(o *Options) { o.RedirectHosts = []string{"https://new.example.com"} }, func(t *testing.T, h *harness) {
			o := h.srv.cur.Load()
			if got := o.safeRedirect("https://new.example.com/x", "/"); got != "https://new.example.com/x" {
				t.Errorf("new redirect host: got %q", got)
			}
			if got := o.safeRedirect("https://other.example.com/x", "/"); got != "/" {
				t.Errorf("dropped redirect host: got %q, want /", got)
			}
			w := h.do(req{target: "/authd/login"})
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "https://new.example.com") {
				t.Errorf("CSP form-action misses the new host: %s", csp)
			}
		}},
		{"trusted proxies", func(o *Options) {
			o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		}, func(t *testing.T, h *harness) {
			// The harness logs in through 127.0.0.1, no longer trusted; log in from the new proxy.
			w := h.do(req{target: "/verify", remote: "127.0.0.1:1", headers: map[string]string{"X-Original-URI": "/app", "X-Original-Method": "GET"}})
			if w.Header().Get("X-Authd-Login") != "" {
				t.Errorf("loopback is no longer trusted, yet its X-Original-URI was read")
			}
			w = h.do(req{target: "/verify", remote: "10.1.2.3:1", headers: map[string]string{"X-Original-URI": "/app", "X-Original-Method": "GET"}})
			if w.Header().Get("X-Authd-Login") == "" {
				t.Errorf("10.1.2.3 is trusted now, yet its X-Original-URI was ignored")
			}
		}},
		{"hash parameters", func(o *Options) { o.HashParams.MemoryKiB = 128 }, func(t *testing.T, h *harness) {
			h.login("alice") // stored under m=64: weaker than the new parameters, so upgraded
			u, _ := h.users.DB().Lookup("alice")
			if !strings.Contains(u.Hash, "m=128,") {
				t.Errorf("alice's hash after login: %s, want it rehashed with m=128", u.Hash)
			}
		}},
		{"fixed fields stay", func(o *Options) {
			o.Prefix, o.CookieName, o.PublicURL = "/other/", "x", "https://evil.example"
		}, func(t *testing.T, h *harness) {
			c := h.login("alice") // at /authd/, with the old cookie name and origin
			if w := h.verify("/app", c); w.Code != http.StatusOK {
				t.Errorf("verify: got %d, want 200", w.Code)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			if tt.mod != nil {
				o := testOptions()
				tt.mod(&o)
				if err := h.srv.SetOptions(o); err != nil {
					t.Fatal(err)
				}
			}
			tt.check(t, h)
		})
	}
}

func TestSetOptionsGate(t *testing.T) {
	h := newHarness(t, nil, nil)
	g := h.srv.cur.Load().gate
	o := testOptions()
	o.LoginTitle = "x"
	if err := h.srv.SetOptions(o); err != nil {
		t.Fatal(err)
	}
	if h.srv.cur.Load().gate != g {
		t.Errorf("unchanged hashing limits: gate replaced, want kept")
	}
	g.slots <- struct{}{} // a login in flight on the old gate
	o.MaxHashing = 5
	if err := h.srv.SetOptions(o); err != nil {
		t.Fatal(err)
	}
	ng := h.srv.cur.Load().gate
	if got := cap(ng.slots); got != 5 {
		t.Errorf("new gate size: got %d, want 5", got)
	}
	g.release() // the in-flight login releases where it acquired
	if len(ng.slots) != 0 || len(g.slots) != 0 {
		t.Errorf("slots held after release: old %d new %d", len(g.slots), len(ng.slots))
	}
}

// TestSetOptionsWhileServing: reloads race requests safely (run with -race).
func TestSetOptionsWhileServing(t *testing.T) {
	h := newHarness(t, nil, nil)
	c := h.login("alice")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			o := testOptions()
			o.LoginTitle = "title " + strconv.Itoa(i)
			o.MaxHashing = 1 + i%3
			if err := h.srv.SetOptions(o); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 50 {
		if w := h.verify("/app", c); w.Code != http.StatusOK {
			t.Fatalf("verify during reloads: got %d, want 200", w.Code)
		}
		h.do(req{target: "/authd/login"})
	}
	<-done
}
