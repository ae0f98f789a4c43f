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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/account"
	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/users"
)

// outbox is a Mailer that keeps what it was given. The real SMTP delivery
// is tested with a real server in tests/account.
type outbox struct {
	mu   sync.Mutex
	sent []account.Message
}

func (b *outbox) Send(_ context.Context, m account.Message) error {
	b.mu.Lock()
	b.sent = append(b.sent, m)
	b.mu.Unlock()
	return nil
}

func (b *outbox) messages() []account.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.sent)
}

// wait returns the n-th message (from 1), waiting a little: links go out off the request.
func (b *outbox) wait(t testing.TB, n int) account.Message {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := b.messages(); len(m) >= n {
			return m[n-1]
		}
	}
	t.Fatalf("got %d mails, want %d", len(b.messages()), n)
	return account.Message{}
}

// fileTokens is AccountTokens on a machine records file, as package main
// wires it, with the harness's verifier reading the same file.
type fileTokens struct {
	path string
	mf   *machine.File
	now  func() time.Time
}

func (f *fileTokens) Tokens(user string) []machine.Token {
	var out []machine.Token
	for _, t := range f.mf.Records().Tokens {
		if t.User == user {
			out = append(out, t)
		}
	}
	return out
}

func (f *fileTokens) Create(_ context.Context, user string, gen uint64, label string, life time.Duration) (string, machine.Token, error) {
	var tok string
	var rec machine.Token
	err := machine.Edit(f.path, func(r *machine.Records) error {
		var err error
		tok, rec, err = machine.NewToken(user, label, f.now(), life)
		rec.UserGeneration = gen
		r.Tokens = append(r.Tokens, rec)
		return err
	})
	if err == nil {
		_, err = f.mf.Reload()
	}
	return tok, rec, err
}

func (f *fileTokens) Revoke(_ context.Context, user, id string) error {
	err := machine.Edit(f.path, func(r *machine.Records) error {
		n := len(r.Tokens)
		r.Tokens = slices.DeleteFunc(r.Tokens, func(t machine.Token) bool { return t.ID == id && t.User == user })
		if n == len(r.Tokens) {
			return fmt.Errorf("no token %s", id)
		}
		return nil
	})
	if err == nil {
		_, err = f.mf.Reload()
	}
	return err
}

type acctHarness struct {
	*harness
	box    *outbox
	store  *account.Store
	tokens *fileTokens
}

// newAcctHarness is the harness with the account pages wired: an account
// file on the harness clock, an outbox for mail, API tokens on.
func newAcctHarness(t *testing.T, mode string, mod func(*AccountDeps)) *acctHarness {
	t.Helper()
	h := newHarness(t, nil, func(o *Options) { o.ForgotLink, o.RegisterLink = true, mode == "open" || mode == "approval" })
	dir := t.TempDir()
	st := account.New(account.NewFile(filepath.Join(dir, account.FileName), h.clock.now), h.clock.now)
	h.useMachine(t, func(*machine.Records) error { return nil })
	tpath := filepath.Join(dir, machine.FileName)
	if err := machine.Edit(tpath, func(*machine.Records) error { return nil }); err != nil {
		t.Fatal(err)
	}
	mf, err := machine.OpenFile(tpath)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.machine = machine.NewVerifier(mf, machine.NewMemoryNonces(0, 0, h.clock.now), machine.DefaultWindow, h.clock.now)
	ah := &acctHarness{harness: h, box: &outbox{}, store: st, tokens: &fileTokens{path: tpath, mf: mf, now: h.clock.now}}
	d := &AccountDeps{Store: st, Mailer: ah.box, Sessions: h.store, Tokens: ah.tokens, Site: "app.example.com",
		Registration: Registration{Mode: mode, AllowedDomains: []string{"example.com"}, DefaultGroups: []string{"staff"}}}
	if mod != nil {
		mod(d)
	}
	h.srv.acct = d
	h.h = h.srv.Handler()
	return ah
}

var acctSameSite = map[string]string{"Origin": "https://app.example.com", "Sec-Fetch-Site": "same-origin"}

// anonForm fetches an anonymous page and returns its pre-session cookie,
// CSRF token and body.
func (h *acctHarness) anonForm(path string) (pre, token, body string) {
	h.t.Helper()
	return h.anonFormWith(path, "")
}

// anonFormWith is anonForm sending cookie (a pre-session cookie), which
// the answer keeps.
func (h *acctHarness) anonFormWith(path, cookie string) (pre, token, body string) {
	h.t.Helper()
	w := h.do(req{target: path, headers: map[string]string{"Cookie": cookie}})
	pre = cookie
	if w.Code != http.StatusOK {
		h.t.Fatalf("GET %s: got %d, want 200; %s", path, w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-authd_pre" {
			pre = c.Name + "=" + c.Value
		}
	}
	m := csrfRE.FindStringSubmatch(w.Body.String())
	if pre == "" || m == nil {
		h.t.Fatalf("GET %s: no pre-session cookie or csrf token", path)
	}
	return pre, m[1], w.Body.String()
}

func (h *acctHarness) postAnon(path string, form url.Values) *httptest.ResponseRecorder {
	h.t.Helper()
	pre, tok, _ := h.anonForm(path)
	form.Set("csrf", tok)
	hd := map[string]string{"Cookie": pre}
	for k, v := range acctSameSite {
		hd[k] = v
	}
	return h.do(req{method: "POST", target: path, form: form, headers: hd})
}

// signedForm fetches the account page with cookie and returns the CSRF token of the form posting to action.
func (h *acctHarness) signedForm(cookie, action string) string {
	h.t.Helper()
	w := h.do(req{target: "/authd/account", headers: map[string]string{"Cookie": cookie}})
	if w.Code != http.StatusOK {
		h.t.Fatalf("account page: got %d; %s", w.Code, w.Body)
	}
	re := regexp.MustCompile(`action="` + regexp.QuoteMeta(action) + `"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]+)"`)
	m := re.FindStringSubmatch(w.Body.String())
	if m == nil {
		h.t.Fatalf("account page has no form for %s: %s", action, w.Body)
	}
	return m[1]
}

func (h *acctHarness) postSigned(cookie, action string, form url.Values) *httptest.ResponseRecorder {
	h.t.Helper()
	form.Set("csrf", h.signedForm(cookie, action))
	hd := map[string]string{"Cookie": cookie}
	for k, v := range acctSameSite {
		hd[k] = v
	}
	return h.do(req{method: "POST", target: action, form: form, headers: hd})
}

func (h *acctHarness) user(name string) (*users.Entry, bool) { return h.users.DB().Lookup(name) }

func TestInviteAcceptOnce(t *testing.T) {
	h := newAcctHarness(t, "off", nil)
	ctx := context.Background()
	token, _, err := h.store.CreateInvite(ctx, account.Invite{Groups: []string{"staff", "ops"}, Email: "carol@example.com", By: "alice"}, 72*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := "/authd/invite/" + token
	_, _, body := h.anonForm(path)
	if !strings.Contains(body, `name="username"`) || !strings.Contains(body, "carol@example.com") {
		t.Fatalf("invite form lacks the username field or the address: %s", body)
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want int
		msg  string
	}{
		{"passwords differ", url.Values{"username": {"carol"}, "password": {"a long passphrase"}, "password2": {"a long passphrase!"}}, 400, "differ"},
		{"too short", url.Values{"username": {"carol"}, "password": {"short"}, "password2": {"short"}}, 400, "too short"},
		{"common", url.Values{"username": {"carol"}, "password": {"password123"}, "password2": {"password123"}}, 400, "too common"},
		{"bad name", url.Values{"username": {"-carol"}, "password": {"a long passphrase"}, "password2": {"a long passphrase"}}, 400, "cannot be used"},
		{"taken", url.Values{"username": {"Bob"}, "password": {"a long passphrase"}, "password2": {"a long passphrase"}}, 409, "taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := h.postAnon(path, tc.form)
			if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.msg) {
				t.Fatalf("got %d, want %d with %q; %s", w.Code, tc.want, tc.msg, w.Body)
			}
		})
	}
	w := h.postAnon(path, url.Values{"username": {"Carol"}, "password": {"a long passphrase"}, "password2": {"a long passphrase"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("accept: got %d %q, want 303 to /; %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	cookie := sessionCookie(t, w)
	if v := h.verify("/", cookie); v.Code != 200 || v.Header().Get("Remote-User") != "carol" {
		t.Fatalf("the invitee is not signed in: verify %d %q", v.Code, v.Header().Get("Remote-User"))
	}
	u, ok := h.user("carol")
	if !ok || strings.Join(u.Groups, ",") != "staff,ops" || u.Email != "carol@example.com" || u.Generation == 0 {
		t.Fatalf("new user: got %+v", u)
	}
	if ok, _, _ := users.Verify(u.Hash, "a long passphrase", testParams, users.DefaultLimits()); !ok {
		t.Fatal("the new user's password does not verify")
	}
	again := h.do(req{target: path})
	if again.Code != http.StatusNotFound || !strings.Contains(again.Body.String(), "not valid") {
		t.Fatalf("used invite: got %d; %s", again.Code, again.Body)
	}
	if w := h.do(req{target: "/authd/invite/" + strings.Repeat("x", 43)}); w.Code != http.StatusNotFound {
		t.Fatalf("unknown invite: got %d", w.Code)
	}
}

func TestInviteFixedNameAndExpiry(t *testing.T) {
	h := newAcctHarness(t, "off", nil)
	ctx := context.Background()
	token, _, _ := h.store.CreateInvite(ctx, account.Invite{User: "dave"}, time.Hour)
	w := h.postAnon("/authd/invite/"+token, url.Values{"username": {"eve"}, "password": {"a long passphrase"}, "password2": {"a long passphrase"}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("got %d; %s", w.Code, w.Body)
	}
	if _, ok := h.user("dave"); !ok {
		t.Fatal("the invite's fixed name was not used")
	}
	if _, ok := h.user("eve"); ok {
		t.Fatal("a typed name replaced the invite's fixed name")
	}
	token, _, _ = h.store.CreateInvite(ctx, account.Invite{}, time.Hour)
	pre, tok, _ := h.anonForm("/authd/invite/" + token)
	h.clock.add(time.Hour)
	hd := map[string]string{"Cookie": pre, "Origin": "https://app.example.com"}
	w = h.do(req{method: "POST", target: "/authd/invite/" + token, headers: hd,
		form: url.Values{"csrf": {tok}, "username": {"frank"}, "password": {"a long passphrase"}, "password2": {"a long passphrase"}}})
	if w.Code != http.StatusNotFound {
		t.Fatalf("expired invite: got %d, want 404", w.Code)
	}
	if _, ok := h.user("frank"); ok {
		t.Fatal("an expired invite made a user")
	}
}

func TestResetLinkEndsSessions(t *testing.T) {
	h := newAcctHarness(t, "off", nil)
	old := h.login("bob")
	token, _, err := h.store.CreateReset(context.Background(), "bob", "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, _, body := h.anonForm("/authd/reset/" + token)
	if !strings.Contains(body, "bob") {
		t.Fatalf("reset form does not name the account: %s", body)
	}
	w := h.postAnon("/authd/reset/"+token, url.Values{"password": {"new long passphrase"}, "password2": {"new long passphrase"}})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Password changed") {
		t.Fatalf("reset: got %d; %s", w.Code, w.Body)
	}
	if v := h.verify("/", old); v.Code != http.StatusUnauthorized {
		t.Fatalf("bob's old session after the reset: got %d, want 401", v.Code)
	}
	if w := h.postLogin("bob", "new long passphrase", "/", "203.0.113.9", nil); w.Code != http.StatusSeeOther {
		t.Fatalf("login with the new password: got %d", w.Code)
	}
	if w := h.postLogin("bob", testPassword, "/", "203.0.113.9", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("login with the old password: got %d, want 401", w.Code)
	}
	if w := h.do(req{target: "/authd/reset/" + token}); w.Code != http.StatusNotFound {
		t.Fatalf("used reset link: got %d, want 404", w.Code)
	}
	expired, _, _ := h.store.CreateReset(context.Background(), "bob", "alice", time.Minute)
	h.clock.add(time.Minute)
	if w := h.do(req{target: "/authd/reset/" + expired}); w.Code != http.StatusNotFound {
		t.Fatalf("expired reset link: got %d, want 404", w.Code)
	}
}

func TestAccountPasswordChange(t *testing.T) {
	h := newAcctHarness(t, "off", nil)
	me, other := h.login("bob"), h.login("bob")
	w := h.postSigned(me, "/authd/account/password", url.Values{"current": {"wrong password"}, "password": {"new long passphrase"}, "password2": {"new long passphrase"}})
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "not correct") {
		t.Fatalf("wrong current password: got %d; %s", w.Code, w.Body)
	}
	w = h.postSigned(me, "/authd/account/password", url.Values{"current": {testPassword}, "password": {"new long passphrase"}, "password2": {"new long passphrase"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/authd/account?password_changed=1" {
		t.Fatalf("change: got %d %q; %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	fresh := sessionCookie(t, w)
	if v := h.verify("/", fresh); v.Code != 200 {
		t.Fatalf("this browser's new session: got %d, want 200", v.Code)
	}
	for name, c := range map[string]string{"old cookie of this browser": me, "other session": other} {
		if v := h.verify("/", c); v.Code != http.StatusUnauthorized {
			t.Fatalf("%s after the change: got %d, want 401", name, v.Code)
		}
	}
	page := h.do(req{target: "/authd/account?password_changed=1", headers: map[string]string{"Cookie": fresh}})
	if !strings.Contains(page.Body.String(), "Your password was changed") {
		t.Fatalf("no notice: %s", page.Body)
	}
	if evs, _ := h.srv.Audit().Recent(context.Background(), auditFilter("bob", "password_changed")); len(evs) != 1 || evs[0].Actor != "bob" || evs[0].IP == "" {
		t.Fatalf("audit: got %+v, want one password_changed by bob with an IP", evs)
	}
}

func TestAccountSessions(t *testing.T) {
	h := newAcctHarness(t, "off", nil)
	me, b, c := h.login("bob"), h.login("bob"), h.login("bob")
	alice := h.login("alice")
	page := h.do(req{target: "/authd/account", headers: map[string]string{"Cookie": me}})
	if n := strings.Count(page.Body.String(), `name="id"`); n != 2 || !strings.Contains(page.Body.String(), "This browser") {
		t.Fatalf("got %d sign-out buttons, want 2 (three sessions, one current): %s", n, page.Body)
	}
	var ids []string
	for _, m := range regexp.MustCompile(`name="id" value="([^"]+)"`).FindAllStringSubmatch(page.Body.String(), -1) {
		ids = append(ids, m[1])
	}
	w := h.postSigned(me, "/authd/account/sessions", url.Values{"id": {ids[0]}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign out one: got %d; %s", w.Code, w.Body)
	}
	alive := 0
	for _, ck := range []string{b, c} {
		if h.verify("/", ck).Code == 200 {
			alive++
		}
	}
	if alive != 1 {
		t.Fatalf("got %d of bob's two other sessions alive, want 1", alive)
	}
	w = h.postSigned(me, "/authd/account/sessions", url.Values{"id": {ids[0]}})
	if w.Code != http.StatusNotFound {
		t.Fatalf("signing out an ended session: got %d, want 404", w.Code)
	}
	w = h.postSigned(me, "/authd/account/sessions", url.Values{"others": {"1"}})
	if w.Code != http.StatusSeeOther || h.verify("/", b).Code != 401 || h.verify("/", c).Code != 401 {
		t.Fatalf("sign out others: got %d; %s", w.Code, w.Body)
	}
	if h.verify("/", me).Code != 200 || h.verify("/", alice).Code != 200 {
		t.Fatal("sign out others ended this session or another user's")
	}
}

func TestAccountTokens(t *testing.T) {
	h := newAcctHarness(t, "off", nil)
	me := h.login("bob")
	w := h.postSigned(me, "/authd/account/tokens", url.Values{"label": {"ci"}, "days": {"30"}})
	m := regexp.MustCompile(`id="newtoken" type="text" readonly value="(authd_tok_[^"]+)"`).FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusOK || m == nil {
		t.Fatalf("create: got %d; %s", w.Code, w.Body)
	}
	bearer := func() int {
		return h.do(req{target: "/verify", headers: map[string]string{"X-Original-URI": "/", "X-Original-Method": "GET", "Authorization": "Bearer " + m[1]}}).Code
	}
	if code := bearer(); code != 200 {
		t.Fatalf("the new token: verify %d, want 200", code)
	}
	list := h.tokens.Tokens("bob")
	if len(list) != 1 || list[0].Label != "ci" || list[0].Expires.Sub(list[0].Created) != 30*24*time.Hour {
		t.Fatalf("stored: %+v", list)
	}
	if w := h.postSigned(me, "/authd/account/tokens", url.Values{"label": {"x"}, "days": {"1000"}}); w.Code != http.StatusBadRequest {
		t.Fatalf("a lifetime not offered: got %d, want 400", w.Code)
	}
	alice := h.login("alice")
	if w := h.postSigned(alice, "/authd/account/tokens", url.Values{"revoke": {list[0].ID}}); w.Code != http.StatusNotFound || bearer() != 200 {
		t.Fatalf("alice revoking bob's token: got %d, want 404 and the token alive", w.Code)
	}
	if w := h.postSigned(me, "/authd/account/tokens", url.Values{"revoke": {list[0].ID}}); w.Code != http.StatusSeeOther || bearer() != 401 {
		t.Fatalf("revoke: got %d, token verify %d", w.Code, bearer())
	}
	h.srv.acct.Tokens = nil
	h.h = h.srv.Handler()
	page := h.do(req{target: "/authd/account", headers: map[string]string{"Cookie": me}})
	if strings.Contains(page.Body.String(), "API tokens") {
		t.Fatal("the tokens section shows with tokens off")
	}
}

func TestForgotNeverTells(t *testing.T) {
	h := newAcctHarness(t, "off", nil)
	login := h.do(req{target: "/authd/login"})
	if !strings.Contains(login.Body.String(), `href="/authd/forgot"`) {
		t.Fatalf("login page lacks the forgot link with mail on")
	}
	var bodies []string
	for _, addr := range []string{"alice", "ALICE@example.com", "nobody", "nobody@example.com", "bob", "alice"} {
		start := time.Now()
		w := h.postAnon("/authd/forgot", url.Values{"address": {addr}})
		if took := time.Since(start); took < anonymousFloor {
			t.Errorf("%s: answered in %s, under the floor %s", addr, took, anonymousFloor)
		}
		if w.Code != 200 {
			t.Fatalf("%s: got %d", addr, w.Code)
		}
		bodies = append(bodies, w.Body.String())
	}
	for i, b := range bodies {
		if b != bodies[0] {
			t.Fatalf("answer %d differs from the first:\n%s\n---\n%s", i, b, bodies[0])
		}
	}
	m := h.box.wait(t, 1)
	time.Sleep(100 * time.Millisecond)
	if n := len(h.box.messages()); n != 1 {
		t.Fatalf("got %d mails, want 1: alice (twice more within 15 minutes: throttled), bob has no email", n)
	}
	if m.To != "alice@example.com" || !strings.Contains(m.Body, "https://app.example.com/authd/reset/") {
		t.Fatalf("mail: %+v", m)
	}
	link := regexp.MustCompile(`https://app\.example\.com(/authd/reset/[A-Za-z0-9_-]{43})`).FindStringSubmatch(m.Body)
	if w := h.postAnon(link[1], url.Values{"password": {"new long passphrase"}, "password2": {"new long passphrase"}}); w.Code != 200 {
		t.Fatalf("the mailed link: got %d", w.Code)
	}
	h.clock.add(forgotInterval)
	h.postAnon("/authd/forgot", url.Values{"address": {"alice"}})
	h.box.wait(t, 2)

	// One client address makes at most one mail a minute, whoever it names.
	h.editUsers(func(l []users.User) []users.User {
		for i := range l {
			if l[i].Name == "bob" {
				l[i].Email = "bob@example.com"
			}
		}
		return l
	})
	h.postAnon("/authd/forgot", url.Values{"address": {"bob"}})
	time.Sleep(200 * time.Millisecond)
	if n := len(h.box.messages()); n != 2 {
		t.Fatalf("a second address from one client within a minute: got %d mails, want 2", n)
	}
	h.clock.add(ipInterval)
	h.postAnon("/authd/forgot", url.Values{"address": {"bob"}})
	if m := h.box.wait(t, 3); m.To != "bob@example.com" {
		t.Fatalf("mail after a minute: %+v", m)
	}

	h.srv.acct.Mailer = nil
	h.h = h.srv.Handler()
	if w := h.do(req{target: "/authd/forgot"}); w.Code != http.StatusNotFound {
		t.Fatalf("forgot without mail: got %d, want 404", w.Code)
	}
}

func TestRegistrationModes(t *testing.T) {
	for _, mode := range []string{"off", "invite"} {
		h := newAcctHarness(t, mode, nil)
		if w := h.do(req{target: "/authd/register"}); w.Code != http.StatusNotFound {
			t.Errorf("%s: GET register: got %d, want 404", mode, w.Code)
		}
		if w := h.do(req{method: "POST", target: "/authd/register", form: url.Values{"address": {"a@example.com"}}, headers: acctSameSite}); w.Code != http.StatusNotFound {
			t.Errorf("%s: POST register: got %d, want 404", mode, w.Code)
		}
	}

	h := newAcctHarness(t, "open", nil)
	if w := h.postAnon("/authd/register", url.Values{"address": {"eve@evil.example"}}); w.Code != http.StatusBadRequest {
		t.Fatalf("open, other domain: got %d, want 400", w.Code)
	}
	if w := h.postAnon("/authd/register", url.Values{"address": {"gina@example.com"}}); w.Code != 200 {
		t.Fatalf("open: got %d", w.Code)
	}
	m := h.box.wait(t, 1)
	link := regexp.MustCompile(`https://app\.example\.com(/authd/invite/[A-Za-z0-9_-]{43})`).FindStringSubmatch(m.Body)
	if m.To != "gina@example.com" || link == nil {
		t.Fatalf("open: mail %+v", m)
	}
	if w := h.postAnon(link[1], url.Values{"username": {"gina"}, "password": {"a long passphrase"}, "password2": {"a long passphrase"}}); w.Code != http.StatusSeeOther {
		t.Fatalf("open: accepting the mailed invite: got %d", w.Code)
	}
	if u, ok := h.user("gina"); !ok || u.Email != "gina@example.com" || strings.Join(u.Groups, ",") != "staff" {
		t.Fatalf("open: user %+v", u)
	}

	h = newAcctHarness(t, "approval", nil)
	w := h.postAnon("/authd/register", url.Values{"username": {"Hank"}, "display_name": {"Hank Hill"}, "address": {"hank@example.net"}, "password": {"a long passphrase"}, "password2": {"a long passphrase"}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "administrator approves") {
		t.Fatalf("approval: got %d; %s", w.Code, w.Body)
	}
	if _, ok := h.user("hank"); ok {
		t.Fatal("approval: the user exists before approval")
	}
	if w := h.postAnon("/authd/register", url.Values{"username": {"ivan"}, "password": {"a long passphrase"}, "password2": {"a long passphrase"}}); w.Code != http.StatusTooManyRequests {
		t.Fatalf("approval: a second request from one address within a minute: got %d, want 429", w.Code)
	}
	h.clock.add(ipInterval)
	if w := h.postAnon("/authd/register", url.Values{"username": {"hank"}, "password": {"a long passphrase"}, "password2": {"a long passphrase"}}); w.Code != http.StatusConflict {
		t.Fatalf("approval: a second request for hank: got %d, want 409", w.Code)
	}
	reqs, err := h.srv.registrationRequests(context.Background())
	if err != nil || len(reqs) != 1 || reqs[0].User != "hank" || strings.Contains(reqs[0].Hash, "passphrase") {
		t.Fatalf("queue: %+v, %v", reqs, err)
	}
	if _, err := h.srv.approveRequest(context.Background(), nil, reqs[0].ID, "alice"); err != nil {
		t.Fatal(err)
	}
	if w := h.postLogin("hank", "a long passphrase", "/", "203.0.113.5", nil); w.Code != http.StatusSeeOther {
		t.Fatalf("approval: hank signs in: got %d", w.Code)
	}
	if u, _ := h.user("hank"); u.DisplayName != "Hank Hill" || u.Email != "hank@example.net" {
		t.Fatalf("approval: user %+v", u)
	}
	if _, err := h.srv.rejectRequest(context.Background(), nil, reqs[0].ID, "alice"); err == nil {
		t.Fatal("rejecting an approved request worked")
	}
}

// TestAccountFormsRefuseCrossSite posts every form of these pages without
// a token, with another form's token, and from another site: each is
// refused and changes nothing.
func TestAccountFormsRefuseCrossSite(t *testing.T) {
	h := newAcctHarness(t, "approval", nil)
	me := h.login("bob")
	inv, _, _ := h.store.CreateInvite(context.Background(), account.Invite{}, time.Hour)
	rst, _, _ := h.store.CreateReset(context.Background(), "bob", "", time.Hour)
	pwForm := url.Values{"current": {testPassword}, "password": {"new long passphrase"}, "password2": {"new long passphrase"}, "username": {"zed"}, "address": {"alice"}, "label": {"x"}, "days": {"30"}, "others": {"1"}}
	signed := []string{"/authd/account/password", "/authd/account/sessions", "/authd/account/tokens"}
	anon := []string{"/authd/invite/" + inv, "/authd/reset/" + rst, "/authd/forgot", "/authd/register"}
	pre, forgotTok, _ := h.anonForm("/authd/forgot")
	_, registerTok, _ := h.anonFormWith("/authd/register", pre)
	sessTok := h.signedForm(me, "/authd/account/sessions")
	for _, path := range append(slices.Clone(signed), anon...) {
		cookie := me
		if slices.Contains(anon, path) {
			cookie = pre
		}
		for name, hd := range map[string]map[string]string{
			"no token":        {"Origin": "https://app.example.com"},
			"cross origin":    {"Origin": "https://evil.example", "X-Token": "own"},
			"cross fetch":     {"Sec-Fetch-Site": "cross-site", "X-Token": "own"},
			"other's purpose": {"Origin": "https://app.example.com", "X-Token": "other"},
		} {
			f := url.Values{}
			for k, v := range pwForm {
				f[k] = v
			}
			switch hd["X-Token"] {
			case "own":
				if slices.Contains(anon, path) {
					_, tok, _ := h.anonFormWith(path, pre)
					f.Set("csrf", tok)
				} else {
					f.Set("csrf", h.signedForm(me, path))
				}
			case "other":
				f.Set("csrf", sessTok)
				switch {
				case path == "/authd/forgot":
					f.Set("csrf", registerTok)
				case slices.Contains(anon, path) || path == "/authd/account/sessions":
					f.Set("csrf", forgotTok)
				}
			}
			hd["Cookie"] = cookie
			w := h.do(req{method: "POST", target: path, form: f, headers: hd})
			if w.Code != http.StatusForbidden {
				t.Errorf("%s, %s: got %d, want 403", path, name, w.Code)
			}
		}
	}
	if h.verify("/", me).Code != 200 {
		t.Fatal("a refused form ended the session")
	}
	if _, err := h.store.Invite(context.Background(), inv); err != nil {
		t.Fatal("a refused form used the invite")
	}
	if reqs, _ := h.store.Requests(context.Background()); len(reqs) != 0 || len(h.box.messages()) != 0 {
		t.Fatal("a refused form queued a request or sent mail")
	}
}

func auditFilter(user, event string) audit.Filter { return audit.Filter{User: user, Event: event} }

func TestLoginLinksOnlyWhenOn(t *testing.T) {
	h := newHarness(t, nil, nil)
	body := h.do(req{target: "/authd/login"}).Body.String()
	if strings.Contains(body, "/authd/forgot") || strings.Contains(body, "/authd/register") {
		t.Fatalf("login page links forgot or register with both off: %s", body)
	}
	if w := h.do(req{target: "/authd/account"}); w.Code != http.StatusNotFound {
		t.Fatalf("account page without Deps.Account: got %d, want 404", w.Code)
	}
	a := newAcctHarness(t, "approval", nil)
	body = a.do(req{target: "/authd/login"}).Body.String()
	if !strings.Contains(body, `href="/authd/forgot"`) || !strings.Contains(body, `href="/authd/register"`) {
		t.Fatalf("login page lacks the forgot or register link: %s", body)
	}
}
