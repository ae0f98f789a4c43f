package machine

import (
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzParseAuthorization feeds arbitrary Authorization values and request
// fields to the parser and the Verifier: nothing panics, a refused credential
// is always present-with-error, an accepted header re-renders to itself, and
// nothing is accepted unless it carries the fixture's own credentials.
func FuzzParseAuthorization(f *testing.F) {
	fx := newFixture(f)
	good := fx.sign(f, "GET", "https://h/x?a=1", fx.now, "nonce-0123456789")
	seeds := []string{
		"",
		"Bearer",
		"Bearer ",
		"Bearer " + fx.token,
		"bearer authd_tok_0123456789abcdef_" + strings.Repeat("A", 43),
		"Basic YWxpY2U6eA==",
		good,
		Scheme,
		Scheme + " ",
		Scheme + " KeyId=a, Timestamp=1, Nonce=0123456789abcdef, Signature=" + strings.Repeat("0", 64),
		Scheme + " KeyId=a,KeyId=a,KeyId=a,KeyId=a,KeyId=a",
		Scheme + " ,,,,",
		Scheme + " KeyId==, Timestamp==, Nonce==, Signature==",
		Scheme + " Timestamp=99999999999999999999",
		Scheme + " KeyId=\x00",
		strings.ToLower(good),
	}
	for _, s := range seeds {
		f.Add(s, "GET", "/x?a=1", "h")
	}
	f.Add(good, "get", "/x?a=%31", "H:1")
	f.Add(good, "GET", "/x?a=1&", "h")
	f.Add(good, "GET", "/x?a=1#", "h")
	f.Fuzz(func(t *testing.T, auth, method, uri, host string) {
		if a, err := parseSigned(auth); err == nil {
			re := "KeyId=" + a.keyID + ", Timestamp=" + a.ts + ", Nonce=" + a.nonce + ", Signature=" + a.sig
			b, err := parseSigned(re)
			if err != nil || b != a {
				t.Fatalf("%q parsed to %+v, which re-renders to %q and parses to %+v, %v", auth, a, re, b, err)
			}
		}
		v := NewVerifier(fx.file, NewMemoryNonces(16, 0, func() time.Time { return fx.now }), 0, func() time.Time { return fx.now })
		user, present, err := v.Authenticate(context.Background(), Request{Method: method, URI: uri, Host: host, Authorization: auth})
		if !present && (user != "" || err != nil) {
			t.Fatalf("not present but got %q, %v", user, err)
		}
		if err != nil && user != "" {
			t.Fatalf("refused but got user %q", user)
		}
		if err == nil && present {
			if user != "alice" {
				t.Fatalf("accepted as %q", user)
			}
			if !strings.Contains(auth, fx.token) && !strings.Contains(auth, fx.keyID) {
				t.Fatalf("accepted %q without the fixture's credentials", auth)
			}
		}
		if err != nil && strings.Contains(err.Error(), fx.secret) {
			t.Fatalf("error %q holds the secret", err)
		}
	})
}
