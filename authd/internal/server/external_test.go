package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/idp"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/throttle"
	"github.com/authd/authd/authd/internal/users"
)

// fakeDirectory stands in for idp.LDAP, which tests/security runs against a real slapd.
type fakeDirectory struct {
	mu    sync.Mutex
	down  bool
	users map[string]fakeEntry // by login name
	asked []string
}

type fakeEntry struct {
	password string
	id       idp.Identity
	notAllow bool
}

func (d *fakeDirectory) Authenticate(_ context.Context, name, password string) (idp.Identity, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, name)
	e, ok := d.users[name]
	switch {
	case d.down:
		return idp.Identity{}, &idp.Failure{Kind: idp.ErrUnavailable, Reason: "directory_unavailable"}
	case !ok:
		return idp.Identity{}, &idp.Failure{Kind: idp.ErrInvalidCredentials, Reason: "unknown_user"}
	case e.password != password:
		return idp.Identity{}, &idp.Failure{Kind: idp.ErrInvalidCredentials, Reason: "bad_password"}
	case e.notAllow:
		return e.id, &idp.Failure{Kind: idp.ErrNotAllowed, Reason: "not_in_allowed_groups"}
	}
	return e.id, nil
}

func (d *fakeDirectory) Ping(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return &idp.Failure{Kind: idp.ErrUnavailable, Reason: "directory_unavailable"}
	}
	return nil
}

func (d *fakeDirectory) setDown(v bool) { d.mu.Lock(); d.down = v; d.mu.Unlock() }

func (d *fakeDirectory) wasAsked(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Contains(d.asked, name)
}

const dirPassword = "directory password"

// newDirHarness is newHarness with a directory holding dora (groups Analysts → analysts),
// olga (right password, not allowed), "alice" (a local user too) and "bobby", whose entry
// names the local user bob.
func newDirHarness(t *testing.T) (*harness, *fakeDirectory) {
	t.Helper()
	h := newHarness(t, []policy.Rule{{Path: "/analysts", Groups: []string{"analysts"}}, {Path: "/"}}, nil)
	d := &fakeDirectory{users: map[string]fakeEntry{
		"dora":  {password: dirPassword, id: idp.Identity{Name: "dora", Email: "dora@example.com", DisplayName: "Dora D.", Groups: []string{"analysts", "bad group", "analysts"}, Source: "ldap"}},
		"olga":  {password: dirPassword, id: idp.Identity{Name: "olga", Source: "ldap"}, notAllow: true},
		"alice": {password: dirPassword, id: idp.Identity{Name: "alice", Source: "ldap"}},
		"bobby": {password: dirPassword, id: idp.Identity{Name: "bob", Source: "ldap"}},
	}}
	rs, err := policy.New([]policy.Rule{{Path: "/analysts", Groups: []string{"analysts"}}, {Path: "/"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	thr := throttle.NewMemory(throttle.Config{AccountFailures: 3, IPFailures: 10, BaseDelay: time.Second, MaxDelay: time.Minute, Window: 15 * time.Minute, MaxEntries: 1000}, h.clock.now)
	srv, err := New(testOptions(), Deps{Users: h.users, Sessions: h.store, Throttle: thr, Now: h.clock.now,
		Directory: d}, rs)
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.h = srv, srv.Handler()
	return h, d
}

func TestDirectorySignIn(t *testing.T) {
	h, _ := newDirHarness(t)
	w := h.postLogin("dora", dirPassword, "/analysts/x", "203.0.113.7", nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/analysts/x" {
		t.Fatalf("got %d %q, want 303 to /analysts/x; body %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	c := sessionCookie(t, w)
	if v := h.verify("/analysts/x", c); v.Code != http.StatusOK || v.Header().Get("Remote-User") != "dora" {
		t.Errorf("verify /analysts: got %d user %q, want 200 dora", v.Code, v.Header().Get("Remote-User"))
	}
	u, ok := h.users.DB().Lookup("dora")
	if !ok {
		t.Fatal("no record for dora")
	}
	if u.Source != "ldap" || u.Hash != "" || u.Email != "dora@example.com" || u.DisplayName != "Dora D." || !slices.Equal(u.Groups, []string{"analysts"}) || u.Generation == 0 {
		t.Errorf("record: got %+v, want source ldap, no hash, dora's email, name and the one valid group, a generation", u.User)
	}
	gen := u.Generation

	// A later sign-in with other groups refreshes them and keeps the generation, so the
	// open session goes on and sees the new groups.
	h.srv.dir.(*fakeDirectory).users["dora"] = fakeEntry{password: dirPassword, id: idp.Identity{Name: "dora", Source: "ldap", Groups: []string{"staff"}}}
	h.postLogin("dora", dirPassword, "/", "203.0.113.7", nil)
	u, _ = h.users.DB().Lookup("dora")
	if u.Generation != gen || !slices.Equal(u.Groups, []string{"staff"}) || u.Email != "" {
		t.Errorf("after a refresh: got %+v, want generation %d, groups [staff], no email", u.User, gen)
	}
	if v := h.verify("/analysts/x", c); v.Code != http.StatusForbidden {
		t.Errorf("old session at /analysts after leaving the group: got %d, want 403", v.Code)
	}
	if v := h.verify("/other", c); v.Code != http.StatusOK {
		t.Errorf("old session at /other: got %d, want 200", v.Code)
	}
	evs, err := h.srv.Audit().Recent(context.Background(), audit.Filter{User: "dora"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		if e.Source != "ldap" {
			t.Errorf("audit event %+v: source %q, want ldap", e, e.Source)
		}
		got = append(got, e.Event)
	}
	// Newest first: the second sign-in changed the groups, the first created the record.
	if want := []string{"login_succeeded", "user_updated", "login_succeeded", "user_created"}; !slices.Equal(got, want) {
		t.Errorf("audit events: got %q, want %q", got, want)
	}
}

func TestDirectoryRefusals(t *testing.T) {
	h, d := newDirHarness(t)
	local := h.postLogin("bob", "wrong password", "/", "203.0.113.7", nil)
	for _, tt := range []struct {
		name, user, pw string
		code           int
		msg            string
	}{
		{"wrong password", "dora", "nope", 401, "Incorrect username or password."},
		{"unknown everywhere", "nobody", dirPassword, 401, "Incorrect username or password."},
		{"not in an allowed group", "olga", dirPassword, 403, msgNotAllowed},
		{"local account wins", "alice", dirPassword, 401, "Incorrect username or password."},
		{"entry names a local account", "bobby", dirPassword, 401, "Incorrect username or password."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := h.postLogin(tt.user, tt.pw, "/", "198.51.100.1", nil)
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.msg) || sessionSet(w) {
				t.Errorf("got %d, want %d with %q and no session; body %s", w.Code, tt.code, tt.msg, w.Body)
			}
			if tt.code == 401 && (w.Code != local.Code || w.Header().Get("Retry-After") != local.Header().Get("Retry-After")) {
				t.Errorf("answer differs from a local wrong password (%d)", local.Code)
			}
		})
	}
	if d.wasAsked("alice") {
		t.Error("the directory was asked about alice, who has a local account")
	}
	if u, _ := h.users.DB().Lookup("bob"); u.Source != "" || u.Hash == "" {
		t.Errorf("local bob after a directory entry named him: got %+v, want him untouched", u.User)
	}
	if h.users.DB().HasUser("olga") {
		t.Error("olga, refused by allowed_groups, got a record")
	}
}

func TestDirectoryLockedInAuthd(t *testing.T) {
	h, _ := newDirHarness(t)
	c := sessionCookie(t, h.postLogin("dora", dirPassword, "/", "203.0.113.7", nil))
	err := h.users.Update(context.Background(), "dora", func(u users.User, _ bool) (users.User, bool, error) {
		u.Disabled, u.Generation = true, users.NewGeneration()
		return u, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := h.verify("/", c); v.Code != http.StatusUnauthorized {
		t.Errorf("locked dora's session: got %d, want 401", v.Code)
	}
	if w := h.postLogin("dora", dirPassword, "/", "203.0.113.7", nil); w.Code != http.StatusUnauthorized || sessionSet(w) {
		t.Errorf("locked dora's sign-in: got %d, want 401 without a session", w.Code)
	}
}

func TestDirectoryDown(t *testing.T) {
	h, d := newDirHarness(t)
	c := sessionCookie(t, h.postLogin("dora", dirPassword, "/", "203.0.113.7", nil))
	d.setDown(true)
	for i := 0; i < 6; i++ { // more than the throttle's 3 free failures: nothing is counted
		w := h.postLogin("dora", dirPassword, "/", "203.0.113.7", nil)
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), msgDirectoryDown) {
			t.Fatalf("attempt %d with the directory down: got %d, want 503 with %q", i, w.Code, msgDirectoryDown)
		}
	}
	if w := h.postLogin("alice", testPassword, "/", "203.0.113.7", nil); w.Code != http.StatusSeeOther {
		t.Errorf("local alice with the directory down: got %d, want 303", w.Code)
	}
	if v := h.verify("/", c); v.Code != http.StatusOK {
		t.Errorf("dora's session with the directory down: got %d, want 200", v.Code)
	}
	w := h.do(req{target: "/readyz"})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "warning: the LDAP directory cannot be reached") {
		t.Errorf("readyz: got %d %q, want 200 with a warning", w.Code, w.Body)
	}
	d.setDown(false)
	if w := h.postLogin("dora", dirPassword, "/", "203.0.113.7", nil); w.Code != http.StatusSeeOther {
		t.Errorf("dora once the directory is back: got %d, want 303 (no throttle from the outage)", w.Code)
	}
	if w := h.do(req{target: "/readyz"}); w.Code != http.StatusOK || w.Body.String() != "ok\n" {
		t.Errorf("readyz once the directory is back: got %d %q, want ok", w.Code, w.Body)
	}
}

func TestDirectoryFailuresWaitForTheFloor(t *testing.T) {
	h, _ := newDirHarness(t)
	h.srv.pace.floor.Store(int64(150 * time.Millisecond))
	for _, user := range []string{"dora", "nobody"} {
		start := time.Now()
		h.postLogin(user, "wrong password", "/", "203.0.113.9", nil)
		if took := time.Since(start); took < 150*time.Millisecond {
			t.Errorf("%s: failure answered after %v, want at least the 150ms floor", user, took)
		}
	}
}

func sessionSet(w interface{ Result() *http.Response }) bool {
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-authd_session" && c.Value != "" {
			return true
		}
	}
	return false
}

func TestDirectoryFailuresAreThrottled(t *testing.T) {
	h, d := newDirHarness(t)
	for i := 0; i < 3; i++ {
		h.postLogin("dora", "wrong password", "/", "203.0.113.7", nil)
	}
	d.mu.Lock()
	asked := len(d.asked)
	d.mu.Unlock()
	w := h.postLogin("dora", dirPassword, "/", "203.0.113.7", nil)
	if w.Code != http.StatusUnauthorized || sessionSet(w) {
		t.Errorf("right password after 3 failures: got %d, want 401 (throttled) without a session", w.Code)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.asked) != asked {
		t.Errorf("the directory was asked while the account was throttled")
	}
}
