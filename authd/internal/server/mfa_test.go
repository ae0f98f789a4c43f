package server

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/mfa"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/session"
)

const testSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// withMFA gives h a factor store and replay record in a temp dir, with
// alice enrolled (testSecret).
func withMFA(t *testing.T, h *harness) *mfa.File {
	t.Helper()
	dir := t.TempDir()
	st, err := mfa.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := mfa.OpenReplayFile(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.mfa, h.srv.replay = st, rp
	if err := st.Update(context.Background(), "alice", func(f *mfa.Factors) error {
		f.TOTP = &mfa.TOTP{Secret: testSecret}
		_, f.Recovery, _ = mfa.NewRecoveryCodes()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

func (h *harness) code(t testing.TB, at time.Time) string {
	t.Helper()
	c, err := mfa.Code(testSecret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// stepUp posts code on the step-up page with cookie.
func (h *harness) stepUp(cookie, code, rd string) *http.Response {
	h.t.Helper()
	page := h.do(req{target: "/authd/mfa/step-up?rd=" + url.QueryEscape(rd), headers: map[string]string{"Cookie": cookie}})
	m := csrfRE.FindStringSubmatch(page.Body.String())
	if page.Code != 200 || m == nil {
		h.t.Fatalf("step-up page: got %d without a form: %s", page.Code, page.Body)
	}
	w := h.do(req{method: "POST", target: "/authd/mfa/step-up", headers: map[string]string{"Cookie": cookie, "Origin": "https://app.example.com", "X-Forwarded-For": "203.0.113.7"},
		form: url.Values{"csrf": {m[1]}, "rd": {rd}, "code": {code}}})
	return w.Result()
}

func TestVerifySecondFactor(t *testing.T) {
	h := newHarness(t, []policy.Rule{
		{Path: "/fin", Factor: policy.Factor{Two: true, MaxAge: 15 * time.Minute}},
		{Path: "/"},
	}, func(o *Options) { o.MFA.RequiredGroups = []string{"ops"} })
	withMFA(t, h)

	// A password login of an enrolled user goes on to the step-up page.
	w := h.postLogin("alice", testPassword, "/fin/x", "203.0.113.7", nil)
	if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || loc != "/authd/mfa/step-up?rd=%2Ffin%2Fx" {
		t.Fatalf("login of an enrolled user: got %d %q, want 303 to the step-up page", w.Code, loc)
	}
	one := sessionCookie(t, w)

	v := h.verify("/fin/x?a=1", one)
	if v.Code != 401 || v.Header().Get("X-Authd-Login") != "/authd/mfa/step-up?rd=%2Ffin%2Fx%3Fa%3D1" {
		t.Fatalf("one factor on a two-factor path: got %d %q, want 401 with the step-up URL", v.Code, v.Header().Get("X-Authd-Login"))
	}
	if v.Header().Get("Remote-User") != "" {
		t.Fatal("identity headers on a refused request")
	}
	v = h.verify("/app", one)
	if v.Code != 200 || v.Header().Get("Remote-Auth-Level") != "1" {
		t.Fatalf("one factor on a one-factor path: got %d level %q, want 200 level 1", v.Code, v.Header().Get("Remote-Auth-Level"))
	}

	wrong := "000000"
	if wrong == h.code(t, h.clock.now()) {
		wrong = "111111"
	}
	if r := h.stepUp(one, wrong, "/fin/x"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong code: got %d, want 401", r.StatusCode)
	}
	code := h.code(t, h.clock.now())
	r := h.stepUp(one, code, "/fin/x")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/fin/x" {
		t.Fatalf("right code: got %d %q, want 303 to /fin/x", r.StatusCode, r.Header.Get("Location"))
	}
	var two string
	for _, c := range r.Cookies() {
		if c.Name == "__Host-authd_session" {
			two = c.Name + "=" + c.Value
		}
	}
	if two == "" || two == one {
		t.Fatal("step-up did not issue a new session cookie")
	}
	if v := h.verify("/fin/x", two); v.Code != 200 || v.Header().Get("Remote-Auth-Level") != "2" {
		t.Fatalf("after step-up: got %d level %q, want 200 level 2", v.Code, v.Header().Get("Remote-Auth-Level"))
	}
	if v := h.verify("/app", one); v.Code != 401 {
		t.Fatalf("the pre-step-up cookie: got %d, want 401 (session replaced)", v.Code)
	}

	// The same code again (another session) is refused.
	other := sessionCookie(t, h.postLogin("alice", testPassword, "/", "203.0.113.7", nil))
	if r := h.stepUp(other, code, "/"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reused code: got %d, want 401", r.StatusCode)
	}

	// factor_max_age: 16 minutes on, /fin asks again; / still carries level 2.
	h.clock.add(16 * time.Minute)
	if v := h.verify("/fin/x", two); v.Code != 401 || !strings.Contains(v.Header().Get("X-Authd-Login"), "mfa/step-up") {
		t.Fatalf("stale second factor: got %d %q, want 401 to step up", v.Code, v.Header().Get("X-Authd-Login"))
	}
	if v := h.verify("/app", two); v.Code != 200 || v.Header().Get("Remote-Auth-Level") != "2" {
		t.Fatalf("stale factor on a one-factor path: got %d level %q", v.Code, v.Header().Get("Remote-Auth-Level"))
	}
}

func TestStepUpThrottle(t *testing.T) {
	h := newHarness(t, nil, nil)
	withMFA(t, h)
	one := sessionCookie(t, h.postLogin("alice", testPassword, "/", "203.0.113.7", nil))
	right := h.code(t, h.clock.now())
	wrong := "000000"
	if wrong == right {
		wrong = "111111"
	}
	for i := range 3 { // AccountFailures: 3 in the harness
		if r := h.stepUp(one, wrong, "/"); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: got %d, want 401", i+1, r.StatusCode)
		}
	}
	if r := h.stepUp(one, right, "/"); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right code after 3 wrong ones: got %d, want 429", r.StatusCode)
	}
	// The password login of the same account and address is held back too.
	if w := h.postLogin("alice", testPassword, "/", "203.0.113.7", nil); w.Code == http.StatusSeeOther {
		t.Fatal("password login right after 3 wrong codes: got through, want throttled")
	}
	h.clock.add(2 * time.Second)
	if r := h.stepUp(one, right, "/"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("right code after the delay: got %d, want 303", r.StatusCode)
	}
}

func TestRequiredGroupAndMachines(t *testing.T) {
	h := newHarness(t, nil, func(o *Options) { o.MFA.RequiredGroups = []string{"staff"} })
	withMFA(t, h)
	// bob (staff, no factor): every path sends him to step up, which sends him to enrol.
	bob := sessionCookie(t, h.postLogin("bob", testPassword, "/app", "203.0.113.7", nil))
	if v := h.verify("/app", bob); v.Code != 401 || !strings.Contains(v.Header().Get("X-Authd-Login"), "mfa/step-up") {
		t.Fatalf("required group, no factor: got %d %q, want 401 to step up", v.Code, v.Header().Get("X-Authd-Login"))
	}
	w := h.do(req{target: "/authd/mfa/step-up?rd=%2Fapp", headers: map[string]string{"Cookie": bob}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/authd/account/mfa?rd=%2Fapp" {
		t.Fatalf("step-up without a factor: got %d %q, want 303 to enrolment", w.Code, w.Header().Get("Location"))
	}
	page := h.do(req{target: "/authd/account/mfa?rd=%2Fapp", headers: map[string]string{"Cookie": bob}})
	if page.Code != 200 || !strings.Contains(page.Body.String(), "must use a second factor") {
		t.Fatalf("enrolment page: got %d", page.Code)
	}
	// A user with a factor cannot change factors with a password-only session.
	alice := sessionCookie(t, h.postLogin("alice", testPassword, "/", "203.0.113.7", nil))
	w = h.do(req{target: "/authd/account/mfa", headers: map[string]string{"Cookie": alice}})
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/authd/mfa/step-up") {
		t.Fatalf("factor management with one factor: got %d %q, want 303 to step up", w.Code, w.Header().Get("Location"))
	}
}

func TestAdminFactorHooks(t *testing.T) {
	h := newHarness(t, nil, nil)
	withMFA(t, h)
	ctx := context.Background()
	sum, err := h.srv.FactorSummaries(ctx)
	if err != nil || !sum["alice"].TOTP || sum["alice"].Recovery != 10 || sum["bob"].Enrolled() {
		t.Fatalf("summaries: %v, %v", sum, err)
	}
	had, err := h.srv.ResetFactors(ctx, nil, "admin", "alice")
	if err != nil || !had {
		t.Fatalf("reset: %v, %v", had, err)
	}
	if sum, _ := h.srv.FactorSummaries(ctx); len(sum) != 0 {
		t.Fatalf("after reset: %v", sum)
	}
	evs, _ := h.srv.Audit().Recent(ctx, audit.Filter{Event: "mfa_reset"})
	if len(evs) != 1 || evs[0].Actor != "admin" || evs[0].Target != "alice" {
		t.Fatalf("audit: %+v", evs)
	}
	// Alice's next login no longer asks for a second factor.
	if w := h.postLogin("alice", testPassword, "/app", "203.0.113.7", nil); w.Header().Get("Location") != "/app" {
		t.Fatalf("login after reset: Location %q, want /app", w.Header().Get("Location"))
	}
}

// TestTOTPEnrolSecretIsSigned: the secret shown at enrolment comes back in
// the form signed for this session; another secret (an attacker's, whose
// codes they know) is refused, and so is the signed form in another session.
func TestTOTPEnrolSecretIsSigned(t *testing.T) {
	h := newHarness(t, nil, nil)
	withMFA(t, h)
	bob := sessionCookie(t, h.postLogin("bob", testPassword, "/", "203.0.113.7", nil))
	page := h.do(req{target: "/authd/account/mfa/totp", headers: map[string]string{"Cookie": bob}})
	body := page.Body.String()
	field := func(name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]+)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no %s field in the enrolment page (%d)", name, page.Code)
		}
		return m[1]
	}
	csrf, secret, sig := field("csrf"), field("secret"), field("sig")
	if !strings.Contains(body, "<svg") {
		t.Fatal("no QR code on the enrolment page")
	}
	post := func(cookie, csrf, secret, sig string) int {
		code, _ := mfa.Code(secret, h.clock.now())
		return h.do(req{method: "POST", target: "/authd/account/mfa/totp", headers: map[string]string{"Cookie": cookie, "Origin": "https://app.example.com"},
			form: url.Values{"csrf": {csrf}, "secret": {secret}, "sig": {sig}, "code": {code}}}).Code
	}
	if got := post(bob, csrf, testSecret, sig); got != http.StatusForbidden {
		t.Fatalf("another secret with the page's signature: got %d, want 403", got)
	}
	other := sessionCookie(t, h.postLogin("bob", testPassword, "/", "203.0.113.7", nil))
	otherPage := h.do(req{target: "/authd/account/mfa/totp", headers: map[string]string{"Cookie": other}})
	otherCSRF := csrfRE.FindStringSubmatch(otherPage.Body.String())[1]
	if got := post(other, otherCSRF, secret, sig); got != http.StatusForbidden {
		t.Fatalf("the signed secret in another session: got %d, want 403", got)
	}
	if got := post(bob, csrf, secret, sig); got != http.StatusOK {
		t.Fatalf("the page's own secret: got %d, want 200", got)
	}
	f, _ := h.srv.mfa.Get(context.Background(), "bob")
	if f.TOTP == nil || f.TOTP.Secret != secret || len(f.Recovery) != 10 {
		t.Fatalf("stored: %+v", f)
	}
}

// TestConsoleFactors: the admin console shows who has which factor and
// resets a user's factors after re-authentication, ending their sessions.
func TestConsoleFactors(t *testing.T) {
	c := newConsole(t)
	st := withMFA(t, c.harness)
	ctx := context.Background()
	if err := st.Update(ctx, "bob", func(f *mfa.Factors) error { f.TOTP = &mfa.TOTP{Secret: testSecret}; return nil }); err != nil {
		t.Fatal(err)
	}
	bob := c.login("bob")
	alice := c.login("alice")
	// alice has a second factor: her password-only session is sent to prove it first.
	if w := c.get(alice, "/authd/admin/user?u=bob"); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/authd/mfa/step-up") {
		t.Fatalf("console with one factor: got %d %q, want 303 to step up", w.Code, w.Header().Get("Location"))
	}
	if w := c.post(alice, form("op", "mfa_reset", "user", "bob", "csrf", c.harness.srv.cur.Load().formToken(&pageUser{Key: keyOf(t, alice)}, "admin"), "reauth_password", testPassword)); w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Location"), "step-up") {
		t.Fatalf("console post with one factor: got %d %q, want 303 to step up", w.Code, w.Header().Get("Location"))
	}
	r := c.stepUp(alice, c.code(t, c.clock.now()), "/authd/admin/")
	alice = ""
	for _, ck := range r.Cookies() {
		if ck.Name == "__Host-authd_session" {
			alice = ck.Name + "=" + ck.Value
		}
	}
	if w := c.get(alice, "/authd/admin/"); !strings.Contains(w.Body.String(), "Second factor") || !strings.Contains(w.Body.String(), "<td>app</td>") {
		t.Fatalf("user list without the second factor column: %d", w.Code)
	}
	if w := c.get(alice, "/authd/admin/user?u=bob"); !strings.Contains(w.Body.String(), "Authenticator app.") || !strings.Contains(w.Body.String(), `value="mfa_reset"`) {
		t.Fatalf("user page without bob's factor and the reset: %d", w.Code)
	}
	tok := c.csrf(alice)
	w := c.post(alice, form("op", "mfa_reset", "user", "bob", "csrf", tok))
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `name="reauth_password"`) {
		t.Fatalf("reset without re-authentication: got %d, want the password prompt", w.Code)
	}
	if f, _ := st.Get(ctx, "bob"); f.TOTP == nil {
		t.Fatal("bob's factor reset without re-authentication")
	}
	w = c.post(alice, form("op", "mfa_reset", "user", "bob", "csrf", tok, "reauth_password", testPassword))
	if w.Code != http.StatusSeeOther || !strings.HasSuffix(w.Header().Get("Location"), "done=mfa_reset") {
		t.Fatalf("reset: got %d %q", w.Code, w.Header().Get("Location"))
	}
	if f, _ := st.Get(ctx, "bob"); f.Enrolled() || len(f.Recovery) > 0 {
		t.Fatalf("bob's factors after reset: %+v", f)
	}
	if v := c.verify("/app", bob); v.Code != 401 {
		t.Fatalf("bob's session after the reset: got %d, want 401", v.Code)
	}
	evs, _ := c.srv.Audit().Recent(ctx, audit.Filter{Event: "mfa_reset"})
	if len(evs) != 1 || evs[0].Actor != "alice" || evs[0].Target != "bob" {
		t.Fatalf("audit: %+v", evs)
	}
}

// keyOf is the session key behind a "name=value" session cookie.
func keyOf(t testing.TB, cookie string) session.Key {
	t.Helper()
	_, v, _ := strings.Cut(cookie, "=")
	k, ok := session.Parse(v)
	if !ok {
		t.Fatalf("not a session cookie: %q", cookie)
	}
	return k
}
