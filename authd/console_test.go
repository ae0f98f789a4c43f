package main

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConsoleRedisTwoNodes: two authd processes share one Redis. A change
// made in the admin console on node a takes effect at the next verify on
// node b, and b's audit page shows what a's admin did.
func TestConsoleRedisTwoNodes(t *testing.T) {
	rd := startTestRedis(t)
	a, b := redisStack(t, rd), redisStack(t, rd)
	a.mustCLI("root password 1234\n", "user", "add", "-groups", "admin", "root")
	a.mustCLI("bob password 12345\n", "user", "add", "-groups", "staff", "bob")
	a.start()
	b.start()

	bob, _ := b.login("bob", "bob password 12345", "/")
	root, _ := a.login("root", "root password 1234", "/")
	if bob == "" || root == "" {
		t.Fatal("logins failed")
	}
	if r := b.verify(bob); r.StatusCode != 200 || r.Header.Get("Remote-Groups") != "staff" {
		t.Fatalf("bob on b: got %d groups %q", r.StatusCode, r.Header.Get("Remote-Groups"))
	}
	body, _ := a.page("/authd/admin/user?u=bob", root)
	m := csrfField.FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, "User bob") {
		t.Fatalf("bob's page on a:\n%s", body)
	}
	tok := m[1]
	do := func(form url.Values) {
		t.Helper()
		form.Set("csrf", tok)
		if r := a.post("/authd/admin/do", root, form); r.StatusCode != 303 {
			t.Fatalf("%s on a: got %d, want 303", form.Get("op"), r.StatusCode)
		}
	}

	do(url.Values{"op": {"set"}, "user": {"bob"}, "groups": {"staff,ops"}, "email": {"bob@example.com"}})
	if r := b.verify(bob); r.StatusCode != 200 || r.Header.Get("Remote-Groups") != "staff,ops" || r.Header.Get("Remote-Email") != "bob@example.com" {
		t.Errorf("bob on b after the group change on a: got %d groups %q email %q", r.StatusCode, r.Header.Get("Remote-Groups"), r.Header.Get("Remote-Email"))
	}
	do(url.Values{"op": {"lock"}, "user": {"bob"}})
	if r := b.verify(bob); r.StatusCode != 401 {
		t.Errorf("bob on b after the lock on a: got %d, want 401", r.StatusCode)
	}
	if c, _ := b.login("bob", "bob password 12345", "/"); c != "" {
		t.Error("locked bob signs in on b")
	}
	do(url.Values{"op": {"unlock"}, "user": {"bob"}})
	bob, _ = b.login("bob", "bob password 12345", "/")
	if bob == "" {
		t.Fatal("unlocked bob cannot sign in on b")
	}
	do(url.Values{"op": {"revoke_all"}, "user": {"bob"}})
	if r := b.verify(bob); r.StatusCode != 401 {
		t.Errorf("bob on b after his sessions were signed out on a: got %d, want 401", r.StatusCode)
	}

	// A token made in the console on a (re-authenticating in the same
	// form) works on b, and stops working there once revoked on a.
	form := url.Values{"op": {"token_create"}, "user": {"bob"}, "kind": {"token"}, "label": {"ci"}, "days": {"7"},
		"csrf": {tok}, "reauth_password": {"root password 1234"}}
	req, _ := http.NewRequest("POST", "http://"+a.addr+"/authd/admin/do", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Cookie", root)
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sm := regexp.MustCompile(`id="secret" type="text" readonly value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != 200 || sm == nil {
		t.Fatalf("token create on a: got %d\n%s", resp.StatusCode, page)
	}
	bearer := func() int {
		req, _ := http.NewRequest("GET", "http://"+b.addr+"/verify", nil)
		req.Header.Set("X-Original-URI", "/app/")
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("Authorization", "Bearer "+string(sm[1]))
		r, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	// Other nodes poll the credentials every second (machine.RedisRecords).
	deadline := time.Now().Add(3 * time.Second)
	for bearer() != 200 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if code := bearer(); code != 200 {
		t.Errorf("console token on b: got %d, want 200", code)
	}
	id := regexp.MustCompile(`name="id" value="([0-9a-f]+)"`).FindStringSubmatch(func() string { p, _ := a.page("/authd/admin/tokens", root); return p }())
	if id == nil {
		t.Fatal("tokens page on a lists no token")
	}
	do(url.Values{"op": {"token_revoke"}, "kind": {"token"}, "id": {id[1]}})
	deadline = time.Now().Add(3 * time.Second)
	for bearer() == 200 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if code := bearer(); code != 401 {
		t.Errorf("revoked console token on b: got %d, want 401", code)
	}

	rootB, _ := b.login("root", "root password 1234", "/")
	audit, _ := b.page("/authd/admin/audit?user=bob", rootB)
	for _, want := range []string{"<td>user_updated</td><td>root</td><td>bob</td>", "<td>user_locked</td><td>root</td><td>bob</td>",
		"<td>user_unlocked</td><td>root</td><td>bob</td>", "<td>sessions_revoked</td><td>root</td><td>bob</td>", "<td>user_added</td><td>unix:"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit page on b lacks %q", want)
		}
	}
	users, _ := b.page("/authd/admin/?q=bob", rootB)
	if !strings.Contains(users, "bob@example.com") || !strings.Contains(users, "staff, ops") {
		t.Errorf("user list on b does not show a's change:\n%s", users)
	}
}
