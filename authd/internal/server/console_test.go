package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/users"
)

// fakeCredentials keeps tokens in memory; the real ones (data_dir's file,
// Redis) are tested in package machine and through the binary in tests/e2e.
type fakeCredentials struct {
	mu  sync.Mutex
	rec machine.Records
}

func (f *fakeCredentials) Records() machine.Records {
	f.mu.Lock()
	defer f.mu.Unlock()
	return machine.Records{Tokens: slices.Clone(f.rec.Tokens), Keys: slices.Clone(f.rec.Keys)}
}

func (f *fakeCredentials) Create(_ context.Context, kind, user string, gen uint64, label string, life time.Duration) (string, string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok, rec, err := machine.NewToken(user, label, time.Now(), life)
	if err != nil {
		return "", "", time.Time{}, err
	}
	rec.UserGeneration = gen
	f.rec.Tokens = append(f.rec.Tokens, rec)
	return tok, rec.ID, rec.Expires, nil
}

func (f *fakeCredentials) Revoke(_ context.Context, kind, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.rec.Tokens)
	f.rec.Tokens = slices.DeleteFunc(f.rec.Tokens, func(t machine.Token) bool { return t.ID == id })
	if n == len(f.rec.Tokens) {
		return fmt.Errorf("no %s %s", kind, id)
	}
	return nil
}

type consoleHarness struct {
	*harness
	creds *fakeCredentials
}

func newConsole(t testing.TB) *consoleHarness {
	t.Helper()
	h := newHarness(t, nil, func(o *Options) { o.AdminGroups, o.Reauth = []string{"admin"}, 5*time.Minute })
	c := &consoleHarness{harness: h, creds: &fakeCredentials{}}
	h.srv.adminSessions, h.srv.credentials = h.store, c.creds
	return c
}

var sameSite = map[string]string{"Origin": "https://app.example.com", "Sec-Fetch-Site": "same-origin"}

func (c *consoleHarness) get(cookie, target string) *httptest.ResponseRecorder {
	c.t.Helper()
	return c.do(req{target: target, headers: map[string]string{"Cookie": cookie}})
}

// csrf returns the console form token of the session behind cookie.
func (c *consoleHarness) csrf(cookie string) string {
	c.t.Helper()
	w := c.get(cookie, "/authd/admin/new")
	m := csrfRE.FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusOK || m == nil {
		c.t.Fatalf("add-user page: got %d without a csrf token", w.Code)
	}
	return m[1]
}

// post sends a console form from the site itself, with cookies joined by "; ".
func (c *consoleHarness) post(cookies string, form url.Values) *httptest.ResponseRecorder {
	c.t.Helper()
	hd := map[string]string{"Cookie": cookies, "X-Forwarded-For": "198.51.100.9"}
	for k, v := range sameSite {
		hd[k] = v
	}
	return c.do(req{method: "POST", target: "/authd/admin/do", headers: hd, form: form})
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// reauthCookie signs in again through the prompt and returns its cookie.
func reauthCookie(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	for _, ck := range w.Result().Cookies() {
		if ck.Name == "__Host-authd_reauth" && ck.Value != "" {
			return ck.Name + "=" + ck.Value
		}
	}
	return ""
}

var consoleGets = []string{"/authd/admin", "/authd/admin/", "/authd/admin/?q=a&page=2", "/authd/admin/user?u=alice",
	"/authd/admin/new", "/authd/admin/audit", "/authd/admin/audit?user=alice", "/authd/admin/tokens", "/authd/admin/registrations"}

func TestConsoleNonAdminGets403Everywhere(t *testing.T) {
	c := newConsole(t)
	bob := c.login("bob")
	aliceTok := c.csrf(c.login("alice"))
	alice := c.login("alice")
	for _, target := range consoleGets[1:] {
		w := c.get(alice, target)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `href="/authd/admin/audit"`) || !strings.Contains(w.Body.String(), `href="/authd/logout"`) {
			t.Errorf("GET %s as alice: got %d, want 200 with the console's navigation", target, w.Code)
		}
		if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Server-Timing") == "" {
			t.Errorf("GET %s: Cache-Control %q, Server-Timing %q", target, w.Header().Get("Cache-Control"), w.Header().Get("Server-Timing"))
		}
	}
	for _, target := range consoleGets {
		if w := c.get(bob, target); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "admin groups") {
			t.Errorf("GET %s as bob: got %d, want 403 page", target, w.Code)
		}
	}
	for _, op := range consoleOps {
		// Even a valid form (its token is for bob's own session) is refused before it is read.
		for _, tok := range []string{aliceTok, ""} {
			f := form("op", op, "csrf", tok, "user", "bob", "confirm", "yes", "groups", "admin", "password", "a brand new password 1", "reauth_password", testPassword)
			if w := c.post(bob, f); w.Code != http.StatusForbidden {
				t.Errorf("POST %s as bob: got %d, want 403", op, w.Code)
			}
		}
	}
	if e, _ := c.users.DB().Lookup("bob"); slices.Contains(e.Groups, "admin") || e.Disabled {
		t.Errorf("bob changed himself: %+v", e.User)
	}
	// Signed out: the login page, returning to the console.
	if w := c.get("", "/authd/admin/"); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/authd/login?rd=%2Fauthd%2Fadmin%2F") {
		t.Errorf("signed out: got %d %q, want 303 to login", w.Code, w.Header().Get("Location"))
	}
	ev, _ := c.srv.audit.Recent(context.Background(), audit.Filter{Event: "admin_denied"})
	if len(ev) == 0 || ev[0].Actor != "bob" {
		t.Errorf("refusals are not audited: %v", ev)
	}
	for _, m := range []string{"PUT", "DELETE", "PATCH"} {
		if w := c.do(req{method: m, target: "/authd/admin/do", headers: map[string]string{"Cookie": bob}}); w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /authd/admin/do: got %d, want 405", m, w.Code)
		}
	}
}

// TestConsoleFormsRefuseCSRFAndOrigin: every op, with a missing or foreign
// token, or sent from another site, changes nothing.
func TestConsoleFormsRefuseCSRFAndOrigin(t *testing.T) {
	c := newConsole(t)
	alice := c.login("alice")
	tok := c.csrf(alice)
	otherTok := c.csrf(c.login("alice")) // alice's other session
	before := c.users.DB().Users()
	for _, op := range consoleOps {
		base := form("op", op, "user", "bob", "confirm", "yes", "groups", "x", "password", "a brand new password 1",
			"kind", "token", "label", "ci", "days", "30", "id", "x", "reauth_password", testPassword)
		for _, tc := range []struct {
			name    string
			tok     string
			headers map[string]string
		}{
			{"no token", "", sameSite},
			{"another session's token", otherTok, sameSite},
			{"cross-site origin", tok, map[string]string{"Origin": "https://evil.example"}},
			{"cross-site fetch", tok, map[string]string{"Sec-Fetch-Site": "cross-site"}},
			{"null origin", tok, map[string]string{"Origin": "null"}},
		} {
			f := url.Values{}
			for k, v := range base {
				f[k] = v
			}
			if tc.tok != "" {
				f.Set("csrf", tc.tok)
			}
			hd := map[string]string{"Cookie": alice}
			for k, v := range tc.headers {
				hd[k] = v
			}
			w := c.do(req{method: "POST", target: "/authd/admin/do", headers: hd, form: f})
			if w.Code != http.StatusForbidden {
				t.Errorf("%s, %s: got %d, want 403", op, tc.name, w.Code)
			}
		}
	}
	if after := c.users.DB().Users(); !slices.EqualFunc(before, after, func(a, b users.User) bool {
		return a.Name == b.Name && a.Generation == b.Generation && slices.Equal(a.Groups, b.Groups)
	}) {
		t.Errorf("users changed by refused forms:\n%v\n%v", before, after)
	}
	if n := c.store.Len(); n != 2 {
		t.Errorf("sessions after refused forms: %d, want 2", n)
	}
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// TestConsoleReauth: a sensitive action asks for the password in a page
// that carries the pending form; the right password completes the action
// and admits others for [admin] reauth, in this session only.
func TestConsoleReauth(t *testing.T) {
	c := newConsole(t)
	alice := c.login("alice")
	tok := c.csrf(alice)
	w := c.post(alice, form("op", "delete", "user", "bob", "confirm", "yes", "csrf", tok))
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `name="reauth_password"`) {
		t.Fatalf("delete without re-authentication: got %d, want the password prompt; %s", w.Code, w.Body)
	}
	if _, ok := c.users.DB().Lookup("bob"); !ok {
		t.Fatal("bob deleted without re-authentication")
	}
	// The prompt carries the pending action; post it back as a browser would.
	pending := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(w.Body.String(), -1) {
		pending.Add(m[1], m[2])
	}
	if pending.Get("op") != "delete" || pending.Get("user") != "bob" || pending.Get("csrf") != tok || pending.Get("confirm") != "yes" {
		t.Fatalf("prompt does not carry the pending form: %v", pending)
	}
	pending.Set("reauth_password", "wrong password here")
	if w := c.post(alice, pending); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "not right") {
		t.Fatalf("wrong password: got %d, want the prompt again with an error", w.Code)
	}
	if _, ok := c.users.DB().Lookup("bob"); !ok {
		t.Fatal("bob deleted with a wrong password")
	}
	pending.Set("reauth_password", testPassword)
	w = c.post(alice, pending)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/authd/admin/?done=deleted" {
		t.Fatalf("right password: got %d %q, want 303 to the list", w.Code, w.Header().Get("Location"))
	}
	if _, ok := c.users.DB().Lookup("bob"); ok {
		t.Fatal("bob not deleted after re-authentication")
	}
	ra := reauthCookie(t, w)
	if ra == "" {
		t.Fatal("no re-authentication cookie")
	}
	// Within reauth: a token for alice without a prompt.
	w = c.post(alice+"; "+ra, form("op", "token_create", "user", "alice", "kind", "token", "label", "ci", "days", "30", "csrf", tok))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "authd_") {
		t.Fatalf("token within reauth: got %d, want it shown; %s", w.Code, w.Body)
	}
	// The cookie is worthless in another session of the same admin.
	alice2 := c.login("alice")
	w = c.post(alice2+"; "+ra, form("op", "token_create", "user", "alice", "kind", "token", "label", "ci2", "days", "30", "csrf", c.csrf(alice2)))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("reauth cookie of another session: got %d, want the prompt", w.Code)
	}
	// After reauth has passed: the prompt again.
	c.clock.add(5*time.Minute + time.Second)
	w = c.post(alice+"; "+ra, form("op", "token_create", "user", "alice", "kind", "token", "label", "ci3", "days", "30", "csrf", tok))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("after reauth expired: got %d, want the prompt", w.Code)
	}
	// Granting an admin group is sensitive; other edits are not.
	c.clock.add(time.Minute)
	alice = c.login("alice")
	tok = c.csrf(alice)
	if w := c.post(alice, form("op", "add", "user", "carol", "password", "carol's long password", "groups", "staff", "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("add carol: got %d; %s", w.Code, w.Body)
	}
	if w := c.post(alice, form("op", "set", "user", "carol", "groups", "staff, admin", "csrf", tok)); w.Code != http.StatusUnauthorized {
		t.Errorf("granting admin: got %d, want the prompt", w.Code)
	}
	if w := c.post(alice, form("op", "set", "user", "carol", "groups", "staff,dev", "email", "carol@example.com", "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Errorf("plain edit: got %d, want 303", w.Code)
	}
	if e, _ := c.users.DB().Lookup("carol"); !slices.Equal(e.Groups, []string{"staff", "dev"}) || e.Email != "carol@example.com" || e.Created.IsZero() {
		t.Errorf("carol: got %+v", e.User)
	}
}

func TestConsoleLastAdmin(t *testing.T) {
	c := newConsole(t)
	alice := c.login("alice")
	tok := c.csrf(alice)
	// Re-authenticate once, so the refusals below are the last-admin rule's.
	w := c.post(alice, form("op", "delete", "user", "alice", "confirm", "yes", "csrf", tok, "reauth_password", testPassword))
	ra := reauthCookie(t, w)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "last enabled member") || ra == "" {
		t.Fatalf("delete the last admin: got %d, want a refusal; %s", w.Code, w.Body)
	}
	cookies := alice + "; " + ra
	for _, f := range []url.Values{
		form("op", "lock", "user", "alice"),
		form("op", "set", "user", "alice", "groups", "staff"),
	} {
		f.Set("csrf", tok)
		if w := c.post(cookies, f); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "last enabled member") {
			t.Errorf("%s of the last admin: got %d, want a refusal", f.Get("op"), w.Code)
		}
	}
	if e, _ := c.users.DB().Lookup("alice"); e.Disabled || !slices.Contains(e.Groups, "admin") {
		t.Fatalf("alice changed: %+v", e.User)
	}
	// With a second admin, alice may step down.
	if w := c.post(cookies, form("op", "set", "user", "bob", "groups", "staff,admin", "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("make bob admin: got %d; %s", w.Code, w.Body)
	}
	if w := c.post(cookies, form("op", "set", "user", "alice", "groups", "staff", "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Errorf("demote alice with bob an admin: got %d; %s", w.Code, w.Body)
	}
}

// TestConsoleLastAdminStaleSnapshot: the last-admin check reads the users
// file under its lock, not the snapshot, which has not yet caught up with
// the CLI demoting the only other admin.
func TestConsoleLastAdminStaleSnapshot(t *testing.T) {
	c := newConsole(t)
	setBob := func(groups ...string) {
		t.Helper()
		if err := users.Edit(c.path, users.DefaultLimits(), func(us []users.User) ([]users.User, error) {
			us[slices.IndexFunc(us, func(u users.User) bool { return u.Name == "bob" })].Groups = groups
			return us, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	setBob("admin")
	if _, err := c.users.Reload(); err != nil {
		t.Fatal(err)
	}
	alice := c.login("alice")
	tok := c.csrf(alice)
	setBob("staff") // not reloaded
	if e, _ := c.users.DB().Lookup("bob"); !slices.Contains(e.Groups, "admin") {
		t.Fatal("the snapshot caught up; the test proves nothing")
	}
	if w := c.post(alice, form("op", "set", "user", "alice", "groups", "staff", "csrf", tok)); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "last enabled member") {
		t.Fatalf("demote alice, bob demoted in the file: got %d, want a refusal; %s", w.Code, w.Body)
	}
	if _, err := c.users.Reload(); err != nil {
		t.Fatal(err)
	}
	if e, _ := c.users.DB().Lookup("alice"); !slices.Contains(e.Groups, "admin") {
		t.Errorf("alice demoted: %+v", e.User)
	}
}

// TestConsoleChanges: each change reaches the store, ends what it should at
// the next verify, and is an audit event naming the admin, the target and
// the client address.
func TestConsoleChanges(t *testing.T) {
	c := newConsole(t)
	alice := c.login("alice")
	bob, bob2 := c.login("bob"), c.login("bob")
	tok := c.csrf(alice)
	if w := c.get(alice, "/authd/admin/user?u=bob"); w.Code != http.StatusOK || strings.Count(w.Body.String(), `value="revoke_session"`) != 2 {
		t.Fatalf("bob's page: got %d, want his two sessions listed", w.Code)
	}
	id := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(c.get(alice, "/authd/admin/user?u=bob").Body.String())[1]
	if w := c.post(alice, form("op", "revoke_session", "user", "bob", "id", id, "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("revoke one session: got %d; %s", w.Code, w.Body)
	}
	alive := 0
	for _, ck := range []string{bob, bob2} {
		if c.verify("/app", ck).Code == http.StatusOK {
			alive++
		}
	}
	if alive != 1 {
		t.Errorf("after revoking one of two sessions: %d alive, want 1", alive)
	}
	if w := c.post(alice, form("op", "lock", "user", "bob", "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("lock bob: got %d", w.Code)
	}
	if c.verify("/app", bob).Code == http.StatusOK || c.verify("/app", bob2).Code == http.StatusOK {
		t.Error("bob's sessions survive the lock")
	}
	if w := c.postLogin("bob", testPassword, "/", "203.0.113.7", nil); w.Code == http.StatusSeeOther {
		t.Error("locked bob signs in")
	}
	if w := c.post(alice, form("op", "unlock", "user", "bob", "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("unlock bob: got %d", w.Code)
	}
	bob = c.login("bob")
	if w := c.post(alice, form("op", "revoke_all", "user", "bob", "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("revoke all: got %d", w.Code)
	}
	if c.verify("/app", bob).Code == http.StatusOK {
		t.Error("bob's session survives revoke_all")
	}
	w := c.post(alice, form("op", "signout_everyone", "csrf", tok))
	if w.Code != http.StatusBadRequest {
		t.Errorf("sign everyone out without confirm: got %d, want 400", w.Code)
	}
	if w := c.post(alice, form("op", "signout_everyone", "confirm", "yes", "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("sign everyone out: got %d", w.Code)
	}
	if c.verify("/app", alice).Code == http.StatusOK || c.store.Len() != 0 {
		t.Error("sessions survive signing everyone out")
	}
	ev, _ := c.srv.audit.Recent(context.Background(), audit.Filter{})
	var got []string
	for _, e := range ev {
		if e.Actor == "alice" && e.Event != "login_succeeded" {
			got = append(got, e.Event+" "+e.Target)
			if e.IP != "198.51.100.9" || e.Source != "web" {
				t.Errorf("event %+v: want client IP 198.51.100.9, source web", e)
			}
		}
	}
	want := []string{"all_sessions_revoked ", "sessions_revoked bob", "user_unlocked bob", "user_locked bob", "session_revoked bob"}
	if !slices.Equal(got, want) {
		t.Errorf("audit:\n got %q\nwant %q", got, want)
	}
	alice = c.login("alice")
	if w := c.get(alice, "/authd/admin/audit?user=bob&event=user_locked"); w.Code != http.StatusOK || strings.Count(w.Body.String(), "<td>user_locked</td>") != 1 || strings.Contains(w.Body.String(), "user_unlocked") {
		t.Errorf("audit page filtered: got %d\n%s", w.Code, w.Body)
	}
}

func TestConsoleUsersSearchAndPaging(t *testing.T) {
	c := newConsole(t)
	addUsers(t, c.harness, 120)
	alice := c.login("alice")
	w := c.get(alice, "/authd/admin/?page=2")
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.Contains(body, "123 users") || !strings.Contains(body, "page 2 of 3") || strings.Count(body, "admin/user?u=") != consolePageSize {
		t.Fatalf("page 2: got %d\n%s", w.Code, body)
	}
	if !strings.Contains(body, `href="/authd/admin/?page=3"`) || !strings.Contains(body, `href="/authd/admin/?page=1"`) {
		t.Error("page 2 lacks links to pages 1 and 3")
	}
	w = c.get(alice, "/authd/admin/?q=USER01")
	if body := w.Body.String(); !strings.Contains(body, "10 users matching") || !strings.Contains(body, "user010") || strings.Contains(body, "user020") {
		t.Errorf("search by name: %s", body)
	}
	if body := c.get(alice, "/authd/admin/?q=liddell").Body.String(); !strings.Contains(body, "1 users matching") || !strings.Contains(body, "?u=alice") {
		t.Errorf("search by display name: %s", body)
	}
	if body := c.get(alice, "/authd/admin/?page=99").Body.String(); !strings.Contains(body, "page 3 of 3") {
		t.Error("a page past the end does not show the last")
	}
}

// addUsers adds n users user000…, sharing one hash (hashing is not what is measured).
func addUsers(t testing.TB, h *harness, n int) {
	t.Helper()
	hash := mustHash(t, testPassword)
	h.editUsers(func(l []users.User) []users.User {
		for i := range n {
			l = append(l, users.User{Name: fmt.Sprintf("user%03d", i), Hash: hash, Groups: []string{"staff"},
				Email: fmt.Sprintf("user%d@example.com", i), DisplayName: fmt.Sprintf("User %d", i), Generation: uint64(i + 10),
				Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
		}
		return l
	})
}

// TestConsoleTenThousandUsers: the list, a far page and a search render in
// under 50ms at the server (Server-Timing) with 10,000 users.
func TestConsoleTenThousandUsers(t *testing.T) {
	if raceDetector {
		t.Skip("a timing test; -race slows it several times (and the paging is tested with 123 users)")
	}
	c := newConsole(t)
	addUsers(t, c.harness, 10000)
	alice := c.login("alice")
	for _, target := range []string{"/authd/admin/", "/authd/admin/?page=150", "/authd/admin/?q=user99", "/authd/admin/?q=example.com&page=100", "/authd/admin/user?u=user5000"} {
		// The best of several: the server's cost, not the noise of a shared machine.
		var best, cold float64 = 1e9, 0
		for i := range 10 {
			w := c.get(alice, target)
			if w.Code != http.StatusOK {
				t.Fatalf("%s: got %d", target, w.Code)
			}
			st := w.Header().Get("Server-Timing")
			ms, err := strconv.ParseFloat(strings.TrimPrefix(st, "app;dur="), 64)
			if err != nil {
				t.Fatalf("%s: Server-Timing %q", target, st)
			}
			best = min(best, ms)
			if i == 0 {
				cold = ms
			}
		}
		t.Logf("%s: %.2f ms (first %.2f ms)", target, best, cold)
		if best > 50 {
			t.Errorf("%s: %.2f ms at the server, want under 50", target, best)
		}
		if cold > 500 {
			t.Errorf("%s: first render %.2f ms at the server, want under 500 (it sorts and indexes 10,000 users)", target, cold)
		}
	}
}

func BenchmarkConsoleUsers(b *testing.B) {
	c := newConsole(b)
	addUsers(b, c.harness, 10000)
	alice := c.login("alice")
	for _, target := range []string{"/authd/admin/?page=100", "/authd/admin/?q=user99"} {
		b.Run(target, func(b *testing.B) {
			for b.Loop() {
				if w := c.get(alice, target); w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
			}
		})
	}
}

// TestConsoleLoginEvents: sign-ins and checked failures are audit events.
func TestConsoleLoginEvents(t *testing.T) {
	c := newConsole(t)
	c.login("bob")
	c.postLogin("bob", "wrong password", "/", "203.0.113.8", nil)
	c.postLogin("nobody", "wrong password", "/", "203.0.113.8", nil)
	ev, _ := c.srv.audit.Recent(context.Background(), audit.Filter{})
	var got []string
	for _, e := range ev {
		got = append(got, e.Event+" "+e.Actor+" "+e.Target+" "+e.Detail+" "+e.IP)
	}
	want := []string{"login_failed  nobody unknown_user 203.0.113.8", "login_failed  bob bad_password 203.0.113.8", "login_succeeded bob   203.0.113.7"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestConsoleLastLogin(t *testing.T) {
	c := newConsole(t)
	c.srv.lastLogins = audit.OpenLastLogins(filepath.Join(t.TempDir(), audit.LastLoginFile), c.clock.now)
	alice := c.login("alice")
	if body := c.get(alice, "/authd/admin/user?u=bob").Body.String(); !strings.Contains(body, "not recorded") {
		t.Errorf("bob before signing in: want no last login")
	}
	c.clock.add(time.Hour)
	c.login("bob")
	alice = c.login("alice") // the first session idled out
	if body := c.get(alice, "/authd/admin/user?u=bob").Body.String(); !strings.Contains(body, "2026-01-02 04:04 UTC") {
		t.Errorf("bob's page lacks his last login at 04:04:\n%s", body)
	}
	if body := c.get(alice, "/authd/admin/").Body.String(); !strings.Contains(body, "<th scope=\"col\">Last login</th>") || !strings.Contains(body, "2026-01-02 04:04") || !strings.Contains(body, "never") {
		t.Errorf("user list lacks last logins:\n%s", body)
	}
}

// TestConsoleDirectoryUser: a user who signs in through LDAP has no
// password here to set.
func TestConsoleDirectoryUser(t *testing.T) {
	c := newConsole(t)
	c.editUsers(func(l []users.User) []users.User {
		return append(l, users.User{Name: "dir", Source: "ldap", Groups: []string{"staff"}, Generation: 9})
	})
	alice := c.login("alice")
	if body := c.get(alice, "/authd/admin/user?u=dir").Body.String(); strings.Contains(body, `value="password"`) || !strings.Contains(body, "signs in through ldap") {
		t.Errorf("directory user's page offers a password:\n%s", body)
	}
	w := c.post(alice, form("op", "password", "user", "dir", "password", "a brand new password 1", "csrf", c.csrf(alice), "reauth_password", testPassword))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "signs in through ldap") {
		t.Errorf("set a directory user's password: got %d; %s", w.Code, w.Body)
	}
	if e, _ := c.users.DB().Lookup("dir"); e.Hash != "" {
		t.Error("directory user got a local hash")
	}
	// Where each user comes from, in the list and on the user's page.
	list := c.get(alice, "/authd/admin/?q=dir").Body.String()
	if !strings.Contains(list, "<td>ldap</td>") {
		t.Errorf("users list does not show the directory user's source:\n%s", list)
	}
	if list := c.get(alice, "/authd/admin/?q=bob").Body.String(); !strings.Contains(list, "<td>local</td>") {
		t.Errorf("users list does not show a local user as local:\n%s", list)
	}
	if body := c.get(alice, "/authd/admin/user?u=dir").Body.String(); !strings.Contains(body, "<dt>Source</dt><dd>ldap") {
		t.Errorf("user page does not show the source:\n%s", body)
	}
}
