package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// apiPost sends a JSON POST to the site through nginx, as a script would.
func (s *stack) apiPost(t testing.TB, c *http.Client, path, body, cookie string, h map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", s.origin()+path, strings.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h {
		req.Header.Set(k, v)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookieName, Value: cookie})
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	return resp, jsonBody(t, resp)
}

func jsonBody(t testing.TB, resp *http.Response) map[string]any {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json; body %s", resp.Request.URL.Path, ct, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: body %q: %v", resp.Request.URL.Path, b, err)
	}
	return m
}

func cookieOf(resp *http.Response) (string, bool) {
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookieName {
			return c.Value, true
		}
	}
	return "", false
}

// TestJSONEndpointsThroughNginx drives api/login, api/me and api/logout
// through nginx with the shipped snippets: the cookie the JSON login sets
// opens the app; errors are JSON with their codes; throttling is the
// form's.
func TestJSONEndpointsThroughNginx(t *testing.T) {
	requireE2E(t)
	s := newStack(t, "")
	c := s.client()
	login := `{"username": "ada", "password": "` + testPassword + `", "remember": true}`

	resp, id := s.apiPost(t, c, "/authd/api/login", login, "", nil)
	cookie, ok := cookieOf(resp)
	if resp.StatusCode != 200 || !ok || id["user"] != "ada" || id["name"] != "Ada Lovelace" || id["remember"] != true {
		t.Fatalf("api/login: got %d %v (cookie %v), want 200 ada with a cookie", resp.StatusCode, id, ok)
	}
	if r := s.get(t, c, "/", cookie, nil); r.StatusCode != 200 {
		t.Fatalf("the app with the API's cookie: got %d, want 200", r.StatusCode)
	}
	r := s.get(t, c, "/authd/api/me", cookie, nil)
	if me := jsonBody(t, r); r.StatusCode != 200 || me["user"] != "ada" || me["email"] != "ada@example.com" {
		t.Fatalf("api/me: got %d %v", r.StatusCode, me)
	}

	for _, tc := range []struct {
		name, body string
		h          map[string]string
		code       int
		errCode    string
	}{
		{"wrong password", `{"username": "ada", "password": "nope"}`, nil, 401, "invalid_credentials"},
		{"form encoded", "username=ada&password=x", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "bad_request"},
		{"cross-site", login, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, "cross_site"},
		{"not JSON", "{", nil, 400, "bad_request"},
	} {
		resp, m := s.apiPost(t, c, "/authd/api/login", tc.body, "", tc.h)
		if _, set := cookieOf(resp); resp.StatusCode != tc.code || m["error"] != tc.errCode || set {
			t.Errorf("%s: got %d %v (cookie set %v), want %d %s and no cookie", tc.name, resp.StatusCode, m, set, tc.code, tc.errCode)
		}
	}

	resp, m := s.apiPost(t, c, "/authd/api/logout", "", cookie, nil)
	if resp.StatusCode != 200 || m["signed_out"] != true {
		t.Fatalf("api/logout: got %d %v", resp.StatusCode, m)
	}
	if r := s.get(t, c, "/", cookie, nil); r.StatusCode != 401 {
		t.Errorf("the app after api/logout (no Accept: text/html): got %d, want 401", r.StatusCode)
	}
	r = s.get(t, c, "/authd/api/me", cookie, nil)
	if m := jsonBody(t, r); r.StatusCode != 401 || m["error"] != "unauthenticated" {
		t.Errorf("api/me after logout: got %d %v", r.StatusCode, m)
	}

	// The form's throttle: 5 failures lock the account for a while (an
	// answer that looks like a wrong password), 20 from one address
	// throttle the address with 429 and Retry-After.
	for i := 0; i < 5; i++ {
		s.apiPost(t, c, "/authd/api/login", `{"username": "ada", "password": "wrong"}`, "", nil)
	}
	resp, m = s.apiPost(t, c, "/authd/api/login", login, "", nil)
	if resp.StatusCode != 401 || m["error"] != "invalid_credentials" {
		t.Errorf("throttled account, right password: got %d %v, want 401 invalid_credentials", resp.StatusCode, m)
	}
	for i := 0; i < 20; i++ {
		s.apiPost(t, c, "/authd/api/login", `{"username": "nobody`+string(rune('a'+i))+`", "password": "x"}`, "", nil)
	}
	resp, m = s.apiPost(t, c, "/authd/api/login", `{"username": "grace", "password": "x"}`, "", nil)
	if resp.StatusCode != 429 || m["error"] != "throttled" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("throttled address: got %d %v Retry-After %q, want 429 throttled with Retry-After", resp.StatusCode, m, resp.Header.Get("Retry-After"))
	}

	// authd down: nginx answers for it, 503 with a line of text (as the README says), not JSON.
	s.procs["authd"].stop()
	req, err := http.NewRequest("POST", s.origin()+"/authd/api/login", strings.NewReader(login))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	down, err := c.Do(req)
	must(t, err)
	body, _ := io.ReadAll(down.Body)
	down.Body.Close()
	if down.StatusCode != 503 || down.Header.Get("Retry-After") != "10" || !strings.HasPrefix(down.Header.Get("Content-Type"), "text/plain") ||
		string(body) != "sign-in service unavailable, try again shortly\n" {
		t.Errorf("api/login with authd down: got %d %q Retry-After %q: %q", down.StatusCode, down.Header.Get("Content-Type"), down.Header.Get("Retry-After"), body)
	}
}

// readmeBlock returns the first fenced block of lang after heading in README.md.
func readmeBlock(t testing.TB, root, heading, lang string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	must(t, err)
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q", heading)
	}
	s = s[i:]
	start := strings.Index(s, "\n```"+lang+"\n")
	if start < 0 {
		t.Fatalf("README.md %q has no ```%s block", heading, lang)
	}
	s = s[start+len("\n```"+lang+"\n"):]
	end := strings.Index(s, "\n```\n")
	if end < 0 {
		t.Fatalf("README.md %q: unterminated ```%s block", heading, lang)
	}
	return s[:end+1]
}

// TestREADMEJSONExamples runs the README's curl and Python requests
// examples for the JSON endpoints, as written, against nginx with the
// shipped snippets (SITE pointing at the test site, its certificate
// trusted through CURL_CA_BUNDLE and REQUESTS_CA_BUNDLE).
func TestREADMEJSONExamples(t *testing.T) {
	requireE2E(t)
	s := newStack(t, "")
	const heading = "## JSON endpoints: api/login, api/logout, api/me"
	py := lookTool(t, "STREAMLIT_PYTHON", "/opt/streamlit/venv/bin/python", "python3")
	lookTool(t, "CURL", "curl")
	env := append(os.Environ(), "SITE="+s.origin(), "ADA_PASSWORD="+testPassword,
		"CURL_CA_BUNDLE="+filepath.Join(s.dir, "tls", "cert.pem"), "REQUESTS_CA_BUNDLE="+filepath.Join(s.dir, "tls", "cert.pem"))

	sh := readmeBlock(t, s.root, heading, "sh")
	// The example sets SITE for the reader's site; the test's SITE wins.
	sh = strings.Replace(sh, "SITE=https://app.example.com\n", "", 1)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", sh)
	cmd.Dir, cmd.Env = t.TempDir(), env
	out, err := cmd.CombinedOutput()
	t.Logf("curl example printed:\n%s", out)
	if err != nil {
		t.Fatalf("curl example: %v", err)
	}
	for _, want := range []string{`"user":"ada"`, `"groups":["staff","analysts"]`, "<title>Streamlit</title>", `{"signed_out":true}`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("curl example output lacks %s", want)
		}
	}

	cmd = exec.Command(py, "-c", readmeBlock(t, s.root, heading, "python"))
	cmd.Env = env
	out, err = cmd.CombinedOutput()
	t.Logf("requests example printed:\n%s", out)
	if err != nil {
		t.Fatalf("requests example: %v", err)
	}
	for _, want := range []string{"signed in as ada until ", "['staff', 'analysts']", "\n200\n", "{'signed_out': True}"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("requests example output lacks %q", want)
		}
	}
}
