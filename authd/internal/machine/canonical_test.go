package machine

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTargetVariantsSignDifferently: any change to the bytes nginx forwards to
// the app — order, duplicates, "+" versus "%2B" or "%20", an escape versus its
// character, the case of hex digits, an empty "?" or a trailing "&" — gives a
// different string to sign, and a signature for one is refused for the other.
func TestTargetVariantsSignDifferently(t *testing.T) {
	tests := []struct{ name, signed, sent string }{
		{"query order", "/p?a=1&b=2", "/p?b=2&a=1"},
		{"duplicate parameter", "/p?a=1", "/p?a=1&a=1"},
		{"duplicate with other value", "/p?a=1&a=2", "/p?a=2&a=1"},
		{"plus versus %2B", "/p?q=a+b", "/p?q=a%2Bb"},
		{"plus versus %20", "/p?q=a+b", "/p?q=a%20b"},
		{"%2B versus %20", "/p?q=a%2Bb", "/p?q=a%20b"},
		{"query escape versus character", "/p?q=%41", "/p?q=A"},
		{"path escape versus character", "/%41", "/A"},
		{"encoded slash versus slash", "/a%2Fb", "/a/b"},
		{"lower versus upper hex in path", "/a%2fb", "/a%2Fb"},
		{"lower versus upper hex in query", "/p?q=%2f", "/p?q=%2F"},
		{"empty query versus none", "/p", "/p?"},
		{"trailing ampersand", "/p?a=1", "/p?a=1&"},
		{"leading ampersand", "/p?a=1", "/p?&a=1"},
		{"empty piece", "/p?a=1&b=2", "/p?a=1&&b=2"},
		{"no equals versus empty value", "/p?flag", "/p?flag="},
		{"encoded ampersand versus ampersand", "/p?a=x%26b=y", "/p?a=x&b=y"},
		{"encoded equals versus equals", "/p?a%3Db", "/p?a=b"},
		{"encoded question mark", "/p%3Fa=1", "/p?a=1"},
		{"dot segment", "/a/../b", "/b"},
		{"encoded dot", "/a/%2e%2e/b", "/a/../b"},
		{"double slash", "/a//b", "/a/b"},
		{"trailing slash", "/a/", "/a"},
		{"raw UTF-8 versus escaped", "/caf\xc3\xa9", "/caf%C3%A9"},
	}
	fx := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, errA := canonicalRequest("GET", tt.signed, "h")
			b, errB := canonicalRequest("GET", tt.sent, "h")
			if errA != nil || errB != nil {
				t.Fatalf("canonicalRequest: %v, %v", errA, errB)
			}
			if sa, sb := stringToSign(a, "1", "n", "k"), stringToSign(b, "1", "n", "k"); sa == sb {
				t.Fatalf("%q and %q share the string to sign %q", tt.signed, tt.sent, sa)
			}
			fx.now = fx.now.Add(time.Second) // a fresh nonce window for each case
			h := fx.sign(t, "GET", "https://h"+tt.signed, fx.now, "")
			if _, _, err := fx.v.Authenticate(t.Context(), Request{Method: "GET", URI: tt.sent, Host: "h", Authorization: h}); !errors.Is(err, ErrBadSignature) {
				t.Errorf("signed for %q, sent %q: got %v, want %v", tt.signed, tt.sent, err, ErrBadSignature)
			}
			if user, _, err := fx.v.Authenticate(t.Context(), Request{Method: "GET", URI: tt.signed, Host: "h", Authorization: h}); err != nil || user != "alice" {
				t.Errorf("signed and sent %q: got %q, %v; want alice", tt.signed, user, err)
			}
		})
	}
}

// TestRetiredSchemeRefused: a header of the first version, whose string to
// sign was the sorted query, is refused even when its signature is correct
// under that version's rules.
func TestRetiredSchemeRefused(t *testing.T) {
	fx := newFixture(t)
	// The first version's string to sign for GET https://h/x?b=2&a=1.
	sts := "AUTHD-HMAC-SHA256\nGET\n/x\na=1&b=2\nh\n" + strconv.FormatInt(fx.now.Unix(), 10) + "\nnonce-0123456789\n" + fx.keyID
	m := hmac.New(sha256.New, []byte(fx.secret))
	m.Write([]byte(sts))
	params := "KeyId=" + fx.keyID + ", Timestamp=" + strconv.FormatInt(fx.now.Unix(), 10) + ", Nonce=nonce-0123456789, Signature=" + hex.EncodeToString(m.Sum(nil))
	for _, scheme := range []string{RetiredScheme, strings.ToLower(RetiredScheme)} {
		for _, uri := range []string{"/x?b=2&a=1", "/x?a=1&b=2"} {
			user, present, err := fx.v.Authenticate(t.Context(), Request{Method: "GET", URI: uri, Host: "h", Authorization: scheme + " " + params})
			if !present || !errors.Is(err, ErrMalformed) || user != "" {
				t.Errorf("%s %s: got %q, present %v, %v; want refused as %v", scheme, uri, user, present, err, ErrMalformed)
			}
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"api.example.com", "api.example.com"},
		{"API.Example.COM", "api.example.com"},
		{"api.example.com:8443", "api.example.com"},
		{"api.example.com:", "api.example.com"},
		{"127.0.0.1:9091", "127.0.0.1"},
		{"[::1]", "[::1]"},
		{"[2001:DB8::1]:443", "[2001:db8::1]"},
		{"", ""},
		{":443", ""},
		{"[]", ""},
		{"[::1", ""},
		{"[::1]x", ""},
		{"host:port", ""},
		{"host:123456", ""},
		{"ho st", ""},
		{"host\n", ""},
		{"bücher.de", ""},
		{"a@b", ""},
		{strings.Repeat("a", 256), ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := canonicalHost(tt.in)
			if tt.want == "" && err == nil {
				t.Fatalf("got %q, want an error", got)
			}
			if got != tt.want && tt.want != "" {
				t.Errorf("got %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

func TestCanonicalRequestTarget(t *testing.T) {
	tests := []struct {
		uri, want string
	}{
		{"/", "/"},
		{"/a/../b", "/a/../b"},
		{"/a%2Fb?x=1", "/a%2Fb?x=1"},
		{"/a%2fb", "/a%2fb"},
		{"/p?", "/p?"},
		{"/p?b=2&a=1&", "/p?b=2&a=1&"},
		{"/p?q=a+b%zz", "/p?q=a+b%zz"},
		{"/caf\xc3\xa9", "/caf\xc3\xa9"},
		{"", ""},
		{"?a=1", ""},
		{"a/b", ""},
		{"http://h/a", ""},
		{"/a b", ""},
		{"/a?b c", ""},
		{"/a\tb", ""},
		{"/a\x00", ""},
		{"/a?\n", ""},
		{"/a\x7f", ""},
		{"/a#frag", ""},
		{"/a?b#frag", ""},
		{"/" + strings.Repeat("a", maxURIBytes), ""},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			r, err := canonicalRequest("GET", tt.uri, "h")
			if tt.want == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", r.target)
				}
				return
			}
			if err != nil || r.target != tt.want {
				t.Errorf("got %q, %v; want %q", r.target, err, tt.want)
			}
		})
	}
}

func TestSplitURL(t *testing.T) {
	tests := []struct{ in, authority, uri string }{
		{"https://h/p?q=1", "h", "/p?q=1"},
		{"HTTPS://H:8443", "H:8443", "/"},
		{"http://h?q=1", "h", "/?q=1"},
		{"http://h/p#frag?x", "h", "/p"},
		{"http://h/p?q=1#f", "h", "/p?q=1"},
		{"http://h#f", "h", "/"},
		{"http://h/a%2Fb", "h", "/a%2Fb"},
		{"ftp://h/", "", ""},
		{"h/p", "", ""},
		{"https://user:pw@h/", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, u, err := splitURL(tt.in)
			if tt.authority == "" {
				if err == nil {
					t.Fatalf("got %q %q, want an error", a, u)
				}
				return
			}
			if err != nil || a != tt.authority || u != tt.uri {
				t.Errorf("got %q %q %v, want %q %q", a, u, err, tt.authority, tt.uri)
			}
		})
	}
}

// The README's worked example: if this changes, the README must change too.
func TestWorkedExample(t *testing.T) {
	const (
		keyID  = "ak_0123456789abcdef"
		secret = "authd_sk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		nonce  = "n0nce-n0nce-n0nce"
		url    = "https://API.Example.com:8443/v1/items?b=2&a=1&a=0"
	)
	ts := time.Unix(1700000000, 0)
	sts, err := StringToSign("get", url, keyID, ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	wantSTS := "AUTHD2-HMAC-SHA256\nGET\n/v1/items?b=2&a=1&a=0\napi.example.com\n1700000000\nn0nce-n0nce-n0nce\nak_0123456789abcdef"
	if sts != wantSTS {
		t.Fatalf("string to sign:\n%s\nwant:\n%s", sts, wantSTS)
	}
	// Independently of signature(): HMAC-SHA256 over the documented string.
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(wantSTS))
	sig := hex.EncodeToString(m.Sum(nil))
	const wantSig = "d467180c2d41123cef8b583e3ab0f99bb52a3aef94210cf8da524cba498c6862"
	if sig != wantSig {
		t.Fatalf("signature %s, want %s", sig, wantSig)
	}
	got, err := Sign("get", url, keyID, []byte(secret), ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	want := "AUTHD2-HMAC-SHA256 KeyId=ak_0123456789abcdef, Timestamp=1700000000, Nonce=n0nce-n0nce-n0nce, Signature=" + wantSig
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestSignRefuses(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	sec := []byte("s")
	tests := []struct {
		name, method, url, keyID, nonce string
		secret                          []byte
	}{
		{"empty secret", "GET", "https://h/", "k", "0123456789abcdef", nil},
		{"short nonce", "GET", "https://h/", "k", "short", sec},
		{"nonce with newline", "GET", "https://h/", "k", "0123456789abcdef\n", sec},
		{"key id with newline", "GET", "https://h/", "k\n", "0123456789abcdef", sec},
		{"empty key id", "GET", "https://h/", "", "0123456789abcdef", sec},
		{"method with newline", "GET\n", "https://h/", "k", "0123456789abcdef", sec},
		{"path with space", "GET", "https://h/a b", "k", "0123456789abcdef", sec},
		{"query with space", "GET", "https://h/?a=b c", "k", "0123456789abcdef", sec},
		{"no scheme", "GET", "h/", "k", "0123456789abcdef", sec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := Sign(tt.method, tt.url, tt.keyID, tt.secret, ts, tt.nonce); err == nil {
				t.Errorf("got %s, want an error", got)
			}
		})
	}
	t.Run("random nonce when empty", func(t *testing.T) {
		a, err1 := Sign("GET", "https://h/", "k", sec, ts, "")
		b, err2 := Sign("GET", "https://h/", "k", sec, ts, "")
		if err1 != nil || err2 != nil || a == b {
			t.Errorf("got %q %q (%v, %v), want two different valid headers", a, b, err1, err2)
		}
	})
}
