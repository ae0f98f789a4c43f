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
