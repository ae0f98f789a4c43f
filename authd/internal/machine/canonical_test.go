package machine

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

func TestCanonicalQuery(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"empty", "", "", false},
		{"only ampersands", "&&", "", false},
		{"sorted by key", "b=2&a=1", "a=1&b=2", false},
		{"repeated key sorted by value", "a=2&a=10&a=1", "a=1&a=10&a=2", false},
		{"no equals is empty value", "flag&a=1", "a=1&flag=", false},
		{"empty value", "a=", "a=", false},
		{"split at first equals", "a=b=c", "a=b%3Dc", false},
		{"plus is a literal plus", "q=a+b", "q=a%2Bb", false},
		{"encoded space stays encoded", "q=a%20b", "q=a%20b", false},
		{"lower-case escape upper-cased", "q=%2f", "q=%2F", false},
		{"unreserved escape decoded", "q=%41%7E", "q=A~", false},
		{"raw unicode encoded as UTF-8", "q=café", "q=caf%C3%A9", false},
		{"encoded unicode kept", "q=caf%C3%a9", "q=caf%C3%A9", false},
		{"reserved characters encoded", "q=/:@!$'()*,;", "q=%2F%3A%40%21%24%27%28%29%2A%2C%3B", false},
		{"encoded ampersand is data", "a=x%26b%3Dy", "a=x%26b%3Dy", false},
		{"empty key", "=v", "=v", false},
		{"bad escape", "a=%zz", "", true},
		{"short escape", "a=%4", "", true},
		{"trailing percent", "a=%", "", true},
		{"raw space", "a=b c", "", true},
		{"control", "a=\x01", "", true},
		{"newline", "a=\n", "", true},
		{"hash", "a=#", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := canonicalQuery(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("too many pairs", func(t *testing.T) {
		if _, err := canonicalQuery(strings.Repeat("a=1&", maxQueryPairs+1)); err == nil {
			t.Error("no error")
		}
	})
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

func TestCanonicalRequestPath(t *testing.T) {
	tests := []struct {
		uri, wantPath string
	}{
		{"/", "/"},
		{"/a/../b", "/a/../b"},
		{"/a%2Fb?x=1", "/a%2Fb"},
		{"/a%2fb", "/a%2fb"},
		{"/caf\xc3\xa9", "/caf\xc3\xa9"},
		{"", ""},
		{"a/b", ""},
		{"http://h/a", ""},
		{"/a b", ""},
		{"/a\tb", ""},
		{"/a\x00", ""},
		{"/a\x7f", ""},
		{"/a#frag", ""},
		{"/" + strings.Repeat("a", maxURIBytes), ""},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			r, err := canonicalRequest("GET", tt.uri, "h")
			if tt.wantPath == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", r.path)
				}
				return
			}
			if err != nil || r.path != tt.wantPath {
				t.Errorf("got %q, %v; want %q", r.path, err, tt.wantPath)
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
	wantSTS := "AUTHD-HMAC-SHA256\nGET\n/v1/items\na=0&a=1&b=2\napi.example.com\n1700000000\nn0nce-n0nce-n0nce\nak_0123456789abcdef"
	if sts != wantSTS {
		t.Fatalf("string to sign:\n%s\nwant:\n%s", sts, wantSTS)
	}
	// Independently of signature(): HMAC-SHA256 over the documented string.
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(wantSTS))
	sig := hex.EncodeToString(m.Sum(nil))
	const wantSig = "9b6c5004c0ee76399a7e1c0a2091f16441fa22117d8d2abedbd7d56320b445b4"
	if sig != wantSig {
		t.Fatalf("signature %s, want %s", sig, wantSig)
	}
	got, err := Sign("get", url, keyID, []byte(secret), ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	want := "AUTHD-HMAC-SHA256 KeyId=ak_0123456789abcdef, Timestamp=1700000000, Nonce=n0nce-n0nce-n0nce, Signature=" + wantSig
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
		{"bad query escape", "GET", "https://h/?a=%", "k", "0123456789abcdef", sec},
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
