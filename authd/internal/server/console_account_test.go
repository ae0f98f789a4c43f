package server

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/authd/internal/account"
	"github.com/authd/authd/authd/internal/audit"
)

// TestConsoleAccountLinks: the console's registration queue, invite links
// and reset links, through the account pages' own functions.
func TestConsoleAccountLinks(t *testing.T) {
	ah := newAcctHarness(t, "approval", nil)
	st := *ah.srv.cur.Load()
	st.AdminGroups, st.Reauth = []string{"admin"}, 5*time.Minute
	ah.srv.cur.Store(&st)
	c := &consoleHarness{harness: ah.harness, creds: &fakeCredentials{}}
	ah.srv.adminSessions = ah.harness.store
	ctx := context.Background()
	for _, u := range []string{"carol", "dave"} {
		if _, err := ah.store.AddRequest(ctx, account.Request{User: u, Hash: mustHash(t, testPassword), Email: u + "@example.com"}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	alice := c.login("alice")
	tok := c.csrf(alice)
	body := c.get(alice, "/authd/admin/registrations").Body.String()
	ids := map[string]string{}
	for _, m := range regexp.MustCompile(`name="op" value="approve"><input type="hidden" name="id" value="([^"]+)"><button type="submit" aria-label="Approve ([a-z]+)"`).FindAllStringSubmatch(body, -1) {
		ids[m[2]] = m[1]
	}
	if len(ids) != 2 || ids["carol"] == "" || !strings.Contains(body, "carol@example.com") {
		t.Fatalf("registrations page:\n%s", body)
	}
	if w := c.post(alice, form("op", "approve", "id", ids["carol"], "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("approve: got %d; %s", w.Code, w.Body)
	}
	if w := c.post(alice, form("op", "reject", "id", ids["dave"], "csrf", tok)); w.Code != http.StatusSeeOther {
		t.Fatalf("reject: got %d; %s", w.Code, w.Body)
	}
	if w := c.post(alice, form("op", "approve", "id", ids["carol"], "csrf", tok)); w.Code != http.StatusNotFound {
		t.Errorf("approve twice: got %d, want 404", w.Code)
	}
	e, ok := c.users.DB().Lookup("carol")
	if !ok || !slices.Equal(e.Groups, []string{"staff"}) || e.Created.IsZero() {
		t.Fatalf("carol after approval: %v %+v", ok, e)
	}
	if _, ok := c.users.DB().Lookup("dave"); ok {
		t.Error("rejected dave exists")
	}
	if body := c.get(alice, "/authd/admin/registrations").Body.String(); !strings.Contains(body, "No registrations are waiting") {
		t.Errorf("queue after both: %s", body)
	}

	// An invite link, shown once; with an admin group it needs the password.
	w := c.post(alice, form("op", "invite", "user", "erin", "groups", "staff", "hours", "24", "csrf", tok))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "https://app.example.com/authd/invite/") || !strings.Contains(w.Body.String(), "expires in 24 hours.") {
		t.Fatalf("invite: got %d; %s", w.Code, w.Body)
	}
	if w := c.post(alice, form("op", "invite", "groups", "admin", "csrf", tok)); w.Code != http.StatusUnauthorized {
		t.Errorf("invite into admin without re-authentication: got %d, want the prompt", w.Code)
	}
	// A reset link: sensitive; bob has no email, so it is shown, not mailed.
	if w := c.post(alice, form("op", "reset", "user", "bob", "csrf", tok)); w.Code != http.StatusUnauthorized {
		t.Errorf("reset without re-authentication: got %d, want the prompt", w.Code)
	}
	w = c.post(alice, form("op", "reset", "user", "bob", "hours", "2", "csrf", tok, "reauth_password", testPassword))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "https://app.example.com/authd/reset/") || !strings.Contains(w.Body.String(), "expires in 2 hours,") {
		t.Fatalf("reset: got %d; %s", w.Code, w.Body)
	}
	ev, _ := c.srv.audit.Recent(ctx, audit.Filter{User: "alice"})
	var got []string
	for _, e := range ev {
		if e.Actor == "alice" && e.Event != "login_succeeded" {
			got = append(got, e.Event+" "+e.Target)
		}
	}
	want := []string{"reset_issued bob", "reauth_succeeded ", "invite_created erin", "registration_rejected dave", "registration_approved carol"}
	if !slices.Equal(got, want) {
		t.Errorf("audit:\n got %q\nwant %q", got, want)
	}
}

func TestHoursText(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1 hour", 2 * time.Hour: "2 hours", 72 * time.Hour: "72 hours", 720 * time.Hour: "720 hours"} {
		if got := hoursText(d); got != want {
			t.Errorf("hoursText(%v) = %q, want %q", d, got, want)
		}
	}
}
