package security

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// ldapRules: /analysts needs the analysts group, /admin the admins group (both named in the
// directory as "Analysts" and "Admins"), /app any login.
const ldapRules = `
[[rules]]
path = "/public"
allow = "public"

[[rules]]
path = "/analysts"
groups = ["analysts"]

[[rules]]
path = "/admin"
groups = ["admins"]

[[rules]]
path = "/app"
`

const (
	msgIncorrect     = "Incorrect username or password."
	msgDirectoryDown = "Sign-in is unavailable right now: the directory cannot be reached."
	msgNotAllowed    = "Your account may not sign in here."
)

// loginError is the error the login page shows, "" if none.
func loginError(r *resp) string {
	_, rest, ok := strings.Cut(r.Body, `class="error"`)
	if !ok {
		return ""
	}
	_, rest, _ = strings.Cut(rest, ">")
	msg, _, _ := strings.Cut(rest, "<")
	return strings.TrimSpace(msg)
}

// expectRefused checks a login answered like a wrong local password: 401, the same message, no
// session cookie.
func expectRefused(t *testing.T, what string, r *resp, wantStatus int, wantMsg string) {
	t.Helper()
	if r.Status != wantStatus || !strings.Contains(r.Body, wantMsg) || setCookie(r.Header, cookieName) != "" {
		t.Errorf("%s: got %s, error %q, want %d with %q and no session", what, r, loginError(r), wantStatus, wantMsg)
	}
}

func (s *stack) get(t *testing.T, path, cookie string) *resp {
	t.Helper()
	return s.do(t, req{target: path, cookie: cookie})
}

// expectApp checks the request reached the app as user.
func expectApp(t *testing.T, what string, r *resp, user string) {
	t.Helper()
	if r.Status != 200 || r.App == nil || strings.Join(r.App.header("Remote-User"), ",") != user {
		t.Errorf("%s: got %s, want 200 from the app as %s", what, r, user)
	}
}

func (s *stack) readyz(t *testing.T) (int, string) {
	t.Helper()
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", s.authdPort))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestLDAPSignIn runs a real slapd and signs directory users in through nginx and authd over
// StartTLS with a CA the test made: group rules, the local record, refusals that look like a
// wrong password, a local account that wins over a directory entry, and the directory going
// down and coming back.
func TestLDAPSignIn(t *testing.T) {
	d := requireSlapd(t)
	s := newStack(t, stackOptions{rules: ldapRules, logLevel: "info",
		tables: d.ldapConfig(d.url(), fmt.Sprintf("start_tls = true\nca_file = %q\n", d.caFile))})

	// dora: in Analysts, not in Admins.
	r := s.postLogin(t, "Dora", doraPassword, "/analysts/report", "")
	dora := setCookie(r.Header, cookieName)
	if r.Status != http.StatusSeeOther || dora == "" || r.Header.Get("Location") != "/analysts/report" {
		t.Fatalf("dora's sign-in: got %s, error %q; want 303 to /analysts/report with a session", r, loginError(r))
	}
	expectApp(t, "dora at /analysts", s.get(t, "/analysts/report", session(dora)), "dora")
	if r := s.get(t, "/admin/x", session(dora)); r.Status != http.StatusForbidden || r.App != nil {
		t.Errorf("dora at /admin: got %s, want 403", r)
	}
	r = s.get(t, "/analysts/report", session(dora))
	if r.App != nil {
		if g := strings.Join(r.App.header("Remote-Groups"), ","); g != "analysts" {
			t.Errorf("dora's groups at the app: got %q, want analysts", g)
		}
		if e := strings.Join(r.App.header("Remote-Email"), ","); e != "dora@example.com" {
			t.Errorf("dora's email at the app: got %q, want dora@example.com", e)
		}
	}
	var who struct {
		User, Name, Email string
		Groups            []string
	}
	w := s.get(t, "/authd/whoami", session(dora))
	if err := json.Unmarshal([]byte(w.Body), &who); err != nil || who.User != "dora" || who.Name != "Dora Directory" {
		t.Errorf("whoami: got %s %s, want dora, Dora Directory", w, w.Body)
	}

	// max: Admins and Analysts.
	mx := session(s.login(t, "max", maxPassword))
	expectApp(t, "max at /admin", s.get(t, "/admin/x", mx), "max")
	expectApp(t, "max at /analysts", s.get(t, "/analysts/x", mx), "max")

	// The local record: what explain and user list show.
	if out := s.mustCLI(t, "", "explain", "-user", "dora", "-path", "/analysts/x"); !strings.Contains(out, "from the LDAP directory") || !strings.Contains(out, "groups: analysts") {
		t.Errorf("explain -user dora: got\n%s\nwant the LDAP source and the analysts group", out)
	}
	if out := s.mustCLI(t, "", "user", "list"); !strings.Contains(out, "dora") {
		t.Errorf("user list: got\n%s\nwant dora's record", out)
	}
	if out := s.mustCLI(t, "", "session", "list", "-user", "dora"); strings.Count(out, "dora") != 1 {
		t.Errorf("session list -user dora: got\n%s\nwant her one session", out)
	}

	// Refusals: each looks like a wrong local password.
	local := s.postLogin(t, "ada", "not ada's password", "", "")
	expectRefused(t, "local user, wrong password", local, http.StatusUnauthorized, msgIncorrect)
	expectRefused(t, "directory user, wrong password", s.postLogin(t, "dora", "not dora's password", "", ""), http.StatusUnauthorized, msgIncorrect)
	expectRefused(t, "no such user anywhere", s.postLogin(t, "nobody", "whatever it is", "", ""), http.StatusUnauthorized, msgIncorrect)
	expectRefused(t, "directory user, empty password", s.postLogin(t, "dora", "", "", ""), http.StatusUnauthorized, msgIncorrect)
	expectRefused(t, "filter injection", s.postLogin(t, "*", doraPassword, "", ""), http.StatusUnauthorized, msgIncorrect)
	expectRefused(t, "lena, not locked yet, wrong password", s.postLogin(t, "lena", "nope nope", "", ""), http.StatusUnauthorized, msgIncorrect)
	expectApp(t, "lena before the lock", s.get(t, "/analysts/x", session(s.login(t, "lena", lenaPassword))), "lena")
	d.lockInDirectory(t, "lena")
	expectRefused(t, "lena, locked in the directory", s.postLogin(t, "lena", lenaPassword, "", ""), http.StatusUnauthorized, msgIncorrect)
	if log := s.authdLog(t); !strings.Contains(log, `"reason":"locked","source":"ldap","user":"lena"`) {
		t.Errorf("authd's log does not say lena's account is locked")
	}
	// Right password, but in no allowed group: a plain refusal, no session.
	expectRefused(t, "olga, not in allowed_groups", s.postLogin(t, "olga", olgaPassword, "", ""), http.StatusForbidden, msgNotAllowed)

	// A local account wins: ada's directory password does not sign her in, her own does.
	expectRefused(t, "local ada with the directory's password", s.postLogin(t, "ada", adaDirPW, "", ""), http.StatusUnauthorized, msgIncorrect)
	expectApp(t, "local ada", s.get(t, "/app/x", session(s.login(t, "ada", adaPassword))), "ada")

	// Groups refresh at each sign-in; the record holds them, so dora's open session sees the
	// change too.
	d.modify(t, "", "dn: cn=Analysts,ou=groups,dc=example,dc=com\nchangetype: modify\ndelete: member\nmember: uid=dora,ou=people,dc=example,dc=com\n\n"+
		"dn: cn=Admins,ou=groups,dc=example,dc=com\nchangetype: modify\nadd: member\nmember: uid=dora,ou=people,dc=example,dc=com\n")
	dora2 := session(s.login(t, "dora", doraPassword))
	expectApp(t, "dora at /admin after joining Admins", s.get(t, "/admin/x", dora2), "dora")
	for _, c := range []string{dora2, session(dora)} {
		if r := s.get(t, "/analysts/x", c); r.Status != http.StatusForbidden {
			t.Errorf("dora at /analysts after leaving Analysts: got %s, want 403", r)
		}
	}

	// Locked in authd: the directory's password no longer helps, and her sessions end.
	s.mustCLI(t, "", "user", "lock", "dora")
	waitFor(t, "dora's session to end", func() bool { return s.get(t, "/app/x", dora2).Status == http.StatusUnauthorized })
	expectRefused(t, "dora, locked in authd", s.postLogin(t, "dora", doraPassword, "", ""), http.StatusUnauthorized, msgIncorrect)
	s.mustCLI(t, "", "user", "unlock", "dora")
	waitFor(t, "dora's unlock to load", func() bool { return s.postLogin(t, "dora", doraPassword, "", "").Status == http.StatusSeeOther })

	// The directory goes away (SIGKILL).
	if code, body := s.readyz(t); code != 200 || strings.Contains(body, "warning") {
		t.Errorf("readyz with the directory up: got %d %q, want 200 ok", code, body)
	}
	doraSession := session(s.login(t, "dora", doraPassword))
	d.stop()
	start := time.Now()
	r = s.postLogin(t, "dora", doraPassword, "", "")
	took := time.Since(start)
	expectRefused(t, "dora with the directory down", r, http.StatusServiceUnavailable, msgDirectoryDown)
	if took > 5*time.Second {
		t.Errorf("sign-in with the directory down took %v, want it refused within the timeouts", took)
	}
	expectRefused(t, "unknown name with the directory down", s.postLogin(t, "nobody", "whatever it is", "", ""), http.StatusServiceUnavailable, msgDirectoryDown)
	expectApp(t, "local ada with the directory down", s.get(t, "/app/x", session(s.login(t, "ada", adaPassword))), "ada")
	expectApp(t, "dora's existing session with the directory down", s.get(t, "/app/x", doraSession), "dora")
	if code, body := s.readyz(t); code != 200 || !strings.Contains(body, "warning: the LDAP directory cannot be reached") {
		t.Errorf("readyz with the directory down: got %d %q, want 200 with a warning", code, body)
	}
	if log := s.authdLog(t); !strings.Contains(log, `"reason":"directory_unavailable"`) {
		t.Errorf("authd's log has no directory_unavailable login failure")
	}

	// It comes back: the pool's dead connections are replaced, sign-in works again.
	d.start(t)
	expectApp(t, "dora after the directory is back", s.get(t, "/app/x", session(s.login(t, "dora", doraPassword))), "dora")
}

// TestLDAPSAndMemberOf signs in over ldaps:// with groups read from memberOf (the memberof
// overlay), and refuses to talk to a directory whose certificate the configured CA did not sign.
func TestLDAPSAndMemberOf(t *testing.T) {
	d := requireSlapd(t)
	s := newStack(t, stackOptions{rules: ldapRules, logLevel: "info",
		tables: d.ldapConfig(d.tlsURL(), fmt.Sprintf("ca_file = %q\ngroup_source = \"memberof\"\n", d.caFile))})
	mx := session(s.login(t, "max", maxPassword))
	expectApp(t, "max at /admin over ldaps", s.get(t, "/admin/x", mx), "max")
	r := s.get(t, "/admin/x", mx)
	if r.App != nil {
		if g := strings.Join(r.App.header("Remote-Groups"), ","); g != "admins,analysts" {
			t.Errorf("max's groups from memberOf: got %q, want admins,analysts", g)
		}
	}
	expectRefused(t, "max, wrong password over ldaps", s.postLogin(t, "max", "not it", "", ""), http.StatusUnauthorized, msgIncorrect)

	for _, tc := range []struct {
		name, tables string
		code         int
		msg          string
	}{
		{"ldaps, wrong CA", d.ldapConfig(d.tlsURL(), fmt.Sprintf("ca_file = %q\n", d.otherCA)), http.StatusServiceUnavailable, msgDirectoryDown},
		{"start_tls, wrong CA", d.ldapConfig(d.url(), fmt.Sprintf("start_tls = true\nca_file = %q\n", d.otherCA)), http.StatusServiceUnavailable, msgDirectoryDown},
		// A filter that matches more than one entry signs nobody in.
		{"ambiguous filter", d.ldapConfig(d.url(), `user_filter = "(|(uid={name})(uid=dora))"`), http.StatusUnauthorized, msgIncorrect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := newStack(t, stackOptions{rules: ldapRules, logLevel: "info", tables: tc.tables})
			expectRefused(t, "max via this directory", bad.postLogin(t, "max", maxPassword, "", ""), tc.code, tc.msg)
			if log := bad.authdLog(t); tc.code == http.StatusServiceUnavailable && !strings.Contains(log, "certificate signed by unknown authority") {
				t.Errorf("authd's log does not say why the directory was refused")
			}
			expectApp(t, "local ada", bad.get(t, "/app/x", session(bad.login(t, "ada", adaPassword))), "ada")
		})
	}
}

// TestLDAPLoginTimingDoesNotRevealUsers: with a directory, a wrong password for a local user, a
// wrong password for a directory user, a name that exists nowhere and an account locked in the
// directory all answer after the same time, within TestLoginTimingDoesNotRevealUsers' tolerance.
// A directory failure takes no hash (a bind on loopback is ~1 ms), so without the padding to the
// floor it would answer some 40-100 ms sooner than a local one.
func TestLDAPLoginTimingDoesNotRevealUsers(t *testing.T) {
	d := requireSlapd(t)
	d.lockInDirectory(t, "lena")
	s := newStack(t, stackOptions{rules: ldapRules, logLevel: "info",
		tables: "\n[throttle]\naccount_failures = 100000\nip_failures = 100000\n" + d.ldapConfig(d.url(), "")})
	pre, csrf, _ := s.loginForm(t, "")
	kinds := []struct{ name, user, pw string }{
		{"local user, wrong password", "ada", "wrong password"},
		{"directory user, wrong password", "dora", "wrong password"},
		{"unknown everywhere", "", "wrong password"},
		{"locked in the directory", "lena", lenaPassword},
	}
	const n = 25
	times := make([][]time.Duration, len(kinds))
	for i := -3; i < n; i++ {
		for k, kind := range kinds {
			user := kind.user
			if user == "" {
				user = fmt.Sprintf("nobody%d", i+10)
			}
			form := url.Values{"username": {user}, "password": {kind.pw}, "csrf": {csrf}}
			start := time.Now()
			r := s.do(t, req{method: "POST", target: "/authd/login", from: fmt.Sprintf("127.0.3.%d", k+1),
				cookie: preName + "=" + pre, header: http.Header{"Origin": {s.origin()}}, form: form})
			took := time.Since(start)
			if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, msgIncorrect) {
				t.Fatalf("%s: got %s, want 401 %q", kind.name, r, msgIncorrect)
			}
			if i >= 0 {
				times[k] = append(times[k], took)
			}
		}
	}
	medians := make([]time.Duration, len(kinds))
	for k := range kinds {
		sort.Slice(times[k], func(i, j int) bool { return times[k][i] < times[k][j] })
		medians[k] = times[k][n/2]
	}
	t.Logf("medians: %s %v, %s %v, %s %v, %s %v", kinds[0].name, medians[0], kinds[1].name, medians[1],
		kinds[2].name, medians[2], kinds[3].name, medians[3])
	for k := 1; k < len(kinds); k++ {
		a, b := medians[0], medians[k]
		slow, diff := max(a, b), a-b
		if diff < 0 {
			diff = -diff
		}
		if limit := slow*15/100 + 5*time.Millisecond; diff > limit {
			t.Errorf("%s vs %s: medians %v and %v differ by %v, over the %v tolerance", kinds[0].name, kinds[k].name, a, b, diff, limit)
		}
	}
}
