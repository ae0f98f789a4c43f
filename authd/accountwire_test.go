package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// sessionOf returns the session cookie ("name=value") resp set, or "".
func sessionOf(resp *http.Response) string {
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-authd_session" && c.Value != "" {
			return c.Name + "=" + c.Value
		}
	}
	return ""
}

// postForm GETs path on from, then posts form with its CSRF token to path on to.
func postForm(t *testing.T, from, to *stack, path string, form url.Values) *http.Response {
	t.Helper()
	body, cookies := from.page(path, "")
	m := csrfField.FindStringSubmatch(body)
	if m == nil || len(cookies) == 0 {
		t.Fatalf("%s has no form:\n%s", path, body)
	}
	form.Set("csrf", m[1])
	return to.post(path, cookies[0].Name+"="+cookies[0].Value, form)
}

// TestRedisInviteAndResetTwoInstances: with the Redis store, an invite and
// a reset link made by the CLI work on either of two instances, once; the
// links are in Redis only as hashes; a reset ends the user's sessions on
// both instances.
func TestRedisInviteAndResetTwoInstances(t *testing.T) {
	rd := startTestRedis(t)
	a, b := redisStack(t, rd), redisStack(t, rd)
	a.start()
	b.start()

	link := strings.TrimSpace(a.mustCLI("", "invite", "create", "-groups", "staff", "-email", "carol@example.com"))
	path := strings.TrimPrefix(link, "https://app.example.com")
	if path == link || !strings.HasPrefix(path, "/authd/invite/") {
		t.Fatalf("invite create printed %q", link)
	}
	token := strings.TrimPrefix(path, "/authd/invite/")
	rc := redis.NewClient(&redis.Options{Addr: rd.addr()})
	defer rc.Close()
	dump := func() string {
		var sb strings.Builder
		keys, err := rc.Keys(context.Background(), "story:account:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			m, _ := rc.HGetAll(context.Background(), k).Result()
			for f, v := range m {
				sb.WriteString(k + " " + f + " " + v + "\n")
			}
		}
		return sb.String()
	}
	if d := dump(); !strings.Contains(d, "carol@example.com") || strings.Contains(d, token) {
		t.Fatalf("redis must hold the invite, by hash only:\n%s", d)
	}

	resp := postForm(t, b, a, path, url.Values{"username": {"carol"}, "password": {"carol's long passphrase"}, "password2": {"carol's long passphrase"}})
	cookie := sessionOf(resp)
	if resp.StatusCode != http.StatusSeeOther || cookie == "" {
		t.Fatalf("accept on a: got %d, cookie %q", resp.StatusCode, cookie)
	}
	if r := b.verify(cookie); r.StatusCode != 200 || r.Header.Get("Remote-User") != "carol" || r.Header.Get("Remote-Groups") != "staff" {
		t.Fatalf("carol's session on b: got %d %q %q", r.StatusCode, r.Header.Get("Remote-User"), r.Header.Get("Remote-Groups"))
	}
	if body, _ := b.page(path, ""); !strings.Contains(body, "not valid") {
		t.Fatalf("the used invite on b still shows a form:\n%s", body)
	}

	link = strings.TrimSpace(b.mustCLI("", "user", "reset-link", "carol"))
	path = strings.TrimPrefix(link, "https://app.example.com")
	if strings.Contains(dump(), strings.TrimPrefix(path, "/authd/reset/")) {
		t.Fatal("redis holds the reset token")
	}
	resp = postForm(t, a, b, path, url.Values{"password": {"carol's new passphrase"}, "password2": {"carol's new passphrase"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reset on b: got %d", resp.StatusCode)
	}
	for name, s := range map[string]*stack{"a": a, "b": b} {
		if r := s.verify(cookie); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("carol's old session on %s after the reset: got %d, want 401", name, r.StatusCode)
		}
	}
	if c, r := a.login("carol", "carol's new passphrase", "/"); c == "" {
		t.Fatalf("login with the new password on a: got %d", r.StatusCode)
	}
	if body, _ := a.page(path, ""); !strings.Contains(body, "not valid") {
		t.Fatalf("the used reset link on a still shows a form:\n%s", body)
	}
}
