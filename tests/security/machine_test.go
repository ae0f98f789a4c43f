package security

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMachineCredentialsMalformed covers, beside TestMachineClientsThroughNginx: "Bearer tokens …
// stored hashed …", "they never create sessions" and "Signed requests: stale or future timestamps outside the window, reused
// nonces, any changed field, and malformed signatures are refused". Every Authorization value in
// testdata/authorization.txt is sent through nginx to a protected path and straight to /verify;
// none may authenticate, and /verify answers 401 to each.
func TestMachineCredentialsMalformed(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	token := strings.TrimSpace(s.cliOut(t, "", "token", "create", "-user", "ada", "-name", "ci"))
	key := strings.Fields(s.cliOut(t, "", "key", "create", "-user", "ada", "-name", "signer"))
	if len(key) != 2 {
		t.Fatalf("key create printed %q", key)
	}
	secretFile := filepath.Join(s.dir, "key.secret")
	must(t, os.WriteFile(secretFile, []byte(key[1]+"\n"), 0o600))
	// Tokens are stored hashed: no file in the data directory holds the token's secret part. A
	// signing key's secret must be kept to check signatures, so the files are for authd alone.
	tokenSecret := strings.SplitN(token, "_", 4)[3]
	filepath.Walk(s.dataDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), tokenSecret) {
				t.Errorf("%s stores an API token in the clear", p)
			}
			if strings.Contains(string(b), key[1]) && fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s holds a signing secret with mode %04o, want 0600", p, fi.Mode().Perm())
			}
		}
		return nil
	})
	waitFor(t, "the token", func() bool {
		return s.do(t, req{target: "/app/x", header: http.Header{"Authorization": {"Bearer " + token}}}).App != nil
	})
	out, err := exec.Command(s.bin, "sign", "-key", key[0], "-secret-file", secretFile, s.origin()+"/app/other").Output()
	must(t, err)
	sig := regexp.MustCompile(`Signature=([0-9a-f]{64})`).FindStringSubmatch(string(out))
	if sig == nil {
		t.Fatalf("sign printed %q", out)
	}
	vars := s.vars()
	vars["TOKEN"], vars["KEYID"], vars["SIG"] = token, key[0], sig[1]
	now := time.Now().Unix()
	vars["TS"], vars["PAST"], vars["FUTURE"] = strconv.FormatInt(now, 10), strconv.FormatInt(now-600, 10), strconv.FormatInt(now+600, 10)
	tokRE := regexp.MustCompile(`\{(TOKEN|KEYID|SIG|TS|PAST|FUTURE|NONCE)\}`)
	c := &rawConn{s: s}
	defer c.close()
	for _, e := range loadCorpus(t, "authorization.txt", false) {
		v := tokRE.ReplaceAllStringFunc(e.text, func(m string) string {
			if m == "{NONCE}" {
				var b [16]byte
				rand.Read(b[:])
				return hex.EncodeToString(b[:])
			}
			return vars[m[1:len(m)-1]]
		})
		v = expand(t, v, vars)
		r, err := c.do(s.keepAliveGet("/app/x", "Authorization: "+v))
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		if r.App != nil || r.Status < 300 {
			t.Errorf("%s: got %s, want no access", e, r)
		}
		if strings.ContainsAny(v, "\x00") || len(v) > 8<<10 {
			continue // refused by nginx or Go's HTTP server before authd's handler
		}
		if got := s.verifyDirect(t, "127.0.0.1", http.Header{"X-Original-Uri": {"/app/x"}, "X-Original-Method": {"GET"}, "Authorization": {v}}); got != http.StatusUnauthorized {
			t.Errorf("%s: /verify answered %d, want 401", e, got)
		}
	}
	if out := strings.TrimSpace(s.mustCLI(t, "", "session", "list")); out != "" {
		t.Errorf("machine requests created sessions:\n%s", out)
	}
}

// TestSignedTargetVariantsThroughNginx: a signature covers the request target exactly as nginx
// forwards it to the app. Signed with authd sign for one target and sent with a variant that an
// app could read differently (parameter order, duplicates, "+" versus "%2B" or "%20", "%41"
// versus "A", hex case, an empty "?", a trailing "&"), the request is refused with 401 and never
// reaches the app; sent as signed, it passes and the app sees those very bytes.
func TestSignedTargetVariantsThroughNginx(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	key := strings.Fields(s.cliOut(t, "", "key", "create", "-user", "ada", "-name", "signer"))
	if len(key) != 2 {
		t.Fatalf("key create printed %q", key)
	}
	secretFile := filepath.Join(s.dir, "key.secret")
	must(t, os.WriteFile(secretFile, []byte(key[1]+"\n"), 0o600))
	sign := func(t *testing.T, target string) string {
		t.Helper()
		out, err := exec.Command(s.bin, "sign", "-key", key[0], "-secret-file", secretFile, s.origin()+target).Output()
		if err != nil {
			t.Fatalf("authd sign %s: %v", target, err)
		}
		return strings.TrimSpace(string(out))
	}
	c := &rawConn{s: s}
	defer c.close()
	waitFor(t, "the signing key", func() bool {
		r, err := c.do(s.keepAliveGet("/app/x", sign(t, "/app/x")))
		return err == nil && r.App != nil
	})
	tests := []struct{ name, signed, sent string }{
		{"query order", "/app/x?a=1&b=2", "/app/x?b=2&a=1"},
		{"duplicate parameter", "/app/x?a=1", "/app/x?a=1&a=1"},
		{"plus versus %2B", "/app/x?q=a+b", "/app/x?q=a%2Bb"},
		{"plus versus %20", "/app/x?q=a+b", "/app/x?q=a%20b"},
		{"%41 versus A in the query", "/app/x?q=%41", "/app/x?q=A"},
		{"%41 versus A in the path", "/app/%41", "/app/A"},
		{"lower versus upper hex", "/app/x?q=%2f", "/app/x?q=%2F"},
		{"empty query", "/app/x", "/app/x?"},
		{"trailing ampersand", "/app/x?a=1", "/app/x?a=1&"},
		{"empty piece", "/app/x?a=1&b=2", "/app/x?a=1&&b=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sign(t, tt.signed)
			r, err := c.do(s.keepAliveGet(tt.sent, h))
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != http.StatusUnauthorized || r.App != nil {
				t.Errorf("signed for %s, sent %s: got %s, want 401", tt.signed, tt.sent, r)
			}
			// The refused variant spent no nonce: the same header still works for what it signed.
			r, err = c.do(s.keepAliveGet(tt.signed, h))
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != http.StatusOK || r.App == nil || r.App.URI != tt.signed {
				t.Errorf("signed and sent %s: got %s, want 200 with the app seeing %s", tt.signed, r, tt.signed)
			}
		})
	}
	// A client that reaches the site by an IPv6 literal signs that host; nginx forwards $host with
	// its brackets, and authd checks the signature against that very host.
	t.Run("IPv6 literal host", func(t *testing.T) {
		hostPort := "[::1]:" + strconv.Itoa(s.httpsPort)
		out, err := exec.Command(s.bin, "sign", "-key", key[0], "-secret-file", secretFile, "https://"+hostPort+"/app/x").Output()
		if err != nil {
			t.Fatalf("authd sign: %v", err)
		}
		h := strings.TrimSpace(string(out))
		get := func(host, auth string) *resp {
			r, err := c.do("GET /app/x HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "\r\n\r\n")
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := get("[::2]:"+strconv.Itoa(s.httpsPort), h); r.Status != http.StatusUnauthorized || r.App != nil {
			t.Errorf("signed for %s, sent to [::2]: got %s, want 401", hostPort, r)
		}
		if r := get(hostPort, h); r.Status != http.StatusOK || r.App == nil {
			t.Errorf("signed for and sent to %s: got %s, want 200", hostPort, r)
		}
	})
	// nginx's Authorization map folds ASCII letter case only. A scheme spelt with a Unicode
	// look-alike that folds to ASCII ("ſ", U+017F, for "s") is not authd's either: it must not
	// sign the request in (nginx would pass it to the app as the app's own header).
	t.Run("scheme with a Unicode look-alike letter", func(t *testing.T) {
		h := sign(t, "/app/x")
		lookalike := strings.Replace(h, "SHA256", "\u017fHA256", 1)
		if lookalike == h {
			t.Fatalf("authd sign printed %q, want the %s scheme", h, "AUTHD2-HMAC-SHA256")
		}
		r, err := c.do(s.keepAliveGet("/app/x", lookalike))
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusUnauthorized || r.App != nil {
			t.Errorf("sent %q: got %s, want 401", lookalike, r)
		}
		r, err = c.do(s.keepAliveGet("/app/x", h))
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK || r.App == nil {
			t.Errorf("sent as signed after the look-alike: got %s, want 200", r)
		}
	})
}

// TestAuthdCredentialsNeverReachApp: "authd's credentials never reach the app". An Authorization
// header carrying an API token, a signing key's secret or the signature scheme — in any letter
// case, with extra spaces or tabs, or duplicated — is removed before nginx proxies to the app,
// in the protect snippet's locations and the Streamlit profile's. Each request also carries ada's
// session cookie, so a header authd does not take as its own still reaches the app (and must
// arrive without the credential). Other schemes (Basic) are the app's own and pass unchanged.
func TestAuthdCredentialsNeverReachApp(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	token := strings.TrimSpace(s.cliOut(t, "", "token", "create", "-user", "ada", "-name", "ci"))
	key := strings.Fields(s.cliOut(t, "", "key", "create", "-user", "ada", "-name", "signer"))
	if len(key) != 2 {
		t.Fatalf("key create printed %q", key)
	}
	cookie := "Cookie: " + session(s.login(t, "ada", adaPassword))
	c := &rawConn{s: s}
	defer c.close()
	waitFor(t, "the token", func() bool {
		r, err := c.do(s.keepAliveGet("/app/x", "Authorization: Bearer "+token))
		return err == nil && r.App != nil
	})
	sig := "KeyId=" + key[0] + ", Timestamp=" + strconv.FormatInt(time.Now().Unix(), 10) + ", Nonce=nonce-0123456789abcdef, Signature=" + strings.Repeat("0", 64)
	tests := []struct {
		name  string
		lines []string
	}{
		{"Bearer", []string{"Authorization: Bearer " + token}},
		{"bearer", []string{"Authorization: bearer " + token}},
		{"BEARER", []string{"Authorization: BEARER " + token}},
		{"bEaReR", []string{"Authorization: bEaReR " + token}},
		{"two spaces", []string{"Authorization: Bearer  " + token}},
		{"tab", []string{"Authorization: Bearer\t" + token}},
		{"leading spaces and tab", []string{"Authorization:  \t Bearer " + token}},
		{"trailing spaces", []string{"Authorization: Bearer " + token + "  "}},
		{"Bearer alone", []string{"Authorization: Bearer"}},
		{"token without scheme", []string{"Authorization: " + token}},
		{"token under another scheme", []string{"Authorization: Token " + token}},
		{"signing secret", []string{"Authorization: Basic " + key[1]}},
		{"signature scheme", []string{"Authorization: AUTHD2-HMAC-SHA256 " + sig}},
		{"signature scheme lower case", []string{"Authorization: authd2-hmac-sha256 " + sig}},
		{"signature scheme mixed case", []string{"Authorization: Authd2-Hmac-Sha256 " + sig}},
		{"signature scheme with tab", []string{"Authorization: AUTHD2-HMAC-SHA256\t" + sig}},
		{"retired signature scheme", []string{"Authorization: authd-hmac-sha256 " + sig}},
		{"duplicated, token second", []string{"Authorization: Basic YWRhOng=", "Authorization: Bearer " + token}},
		{"duplicated, token first", []string{"Authorization: Bearer " + token, "Authorization: Basic YWRhOng="}},
		{"duplicated, lower-case name", []string{"Authorization: Basic YWRhOng=", "authorization: bearer " + token}},
	}
	for _, path := range []string{"/app/x", "/ws/x"} {
		for _, tt := range tests {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				r, err := c.do(s.keepAliveGet(path, append([]string{cookie}, tt.lines...)...))
				if err != nil {
					t.Fatal(err)
				}
				if r.App == nil {
					if r.Status < 400 {
						t.Errorf("got %s, want the app or a refusal", r)
					}
					return
				}
				for _, v := range r.App.header("Authorization") {
					low := strings.ToLower(v)
					if strings.Contains(v, token) || strings.Contains(v, key[1]) || strings.Contains(low, "bearer") || strings.Contains(low, "hmac-sha256") {
						t.Errorf("the app received Authorization %q", v)
					}
				}
			})
		}
	}
	t.Run("the app's own scheme passes", func(t *testing.T) {
		r, err := c.do(s.keepAliveGet("/app/x", cookie, "Authorization: Basic YWRhOng="))
		if err != nil {
			t.Fatal(err)
		}
		if r.App == nil || strings.Join(r.App.header("Authorization"), "|") != "Basic YWRhOng=" {
			t.Errorf("got %s, want the app to see Authorization: Basic YWRhOng=", r)
		}
	})
}

// TestMachineCredentialsEndWithUserChanges: an API token or signing key acts as its user only
// while the user keeps the credentials they had when it was issued. Through nginx, right after
// `authd user passwd`, `lock` or `del` returns, the user's token and signatures are refused; an
// unlock or a re-add does not revive them.
func TestMachineCredentialsEndWithUserChanges(t *testing.T) {
	s := newStack(t, stackOptions{logLevel: "info"})
	c := &rawConn{s: s}
	defer c.close()
	type creds struct{ token, keyID, secretFile string }
	issue := func(t *testing.T, user string) creds {
		t.Helper()
		tok := strings.TrimSpace(s.cliOut(t, "", "token", "create", "-user", user, "-name", "ci"))
		key := strings.Fields(s.cliOut(t, "", "key", "create", "-user", user, "-name", "signer"))
		if len(key) != 2 {
			t.Fatalf("key create printed %q", key)
		}
		f := filepath.Join(s.dir, user+".secret")
		must(t, os.WriteFile(f, []byte(key[1]+"\n"), 0o600))
		return creds{tok, key[0], f}
	}
	// status returns what nginx answered to the token and to a fresh signature.
	status := func(t *testing.T, cr creds) [2]int {
		t.Helper()
		var got [2]int
		for i, h := range []string{"Authorization: Bearer " + cr.token, ""} {
			if i == 1 {
				out, err := exec.Command(s.bin, "sign", "-key", cr.keyID, "-secret-file", cr.secretFile, s.origin()+"/app/x").Output()
				must(t, err)
				h = strings.TrimSpace(string(out))
			}
			r, err := c.do(s.keepAliveGet("/app/x", h))
			if err != nil {
				t.Fatal(err)
			}
			got[i] = r.Status
		}
		return got
	}
	ada, root := issue(t, "ada"), issue(t, "root")
	waitFor(t, "the credentials", func() bool { return status(t, ada) == [2]int{200, 200} && status(t, root) == [2]int{200, 200} })

	s.mustCLI(t, "an entirely new passphrase\n", "user", "passwd", "ada")
	if got := status(t, ada); got != [2]int{401, 401} {
		t.Errorf("right after ada's password change: token, signature got %v, want 401s", got)
	}
	s.mustCLI(t, "", "user", "lock", "root")
	if got := status(t, root); got != [2]int{401, 401} {
		t.Errorf("right after root was locked: token, signature got %v, want 401s", got)
	}
	s.mustCLI(t, "", "user", "unlock", "root")
	if got := status(t, root); got != [2]int{401, 401} {
		t.Errorf("after root was unlocked again: token, signature got %v, want 401s", got)
	}
	fresh := issue(t, "root")
	if got := status(t, fresh); got != [2]int{200, 200} {
		t.Errorf("credentials issued after the unlock: got %v, want 200s", got)
	}
	s.mustCLI(t, "", "user", "del", "root")
	s.mustCLI(t, rootPassword+"\n", "user", "add", "-groups", "admins,staff", "root")
	if got := status(t, fresh); got != [2]int{401, 401} {
		t.Errorf("after root was deleted and re-added: token, signature got %v, want 401s", got)
	}
}
