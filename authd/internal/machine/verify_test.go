package machine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// fixture is a records file with one token and one key for alice, a clock, and a Verifier.
type fixture struct {
	path         string
	file         *File
	v            *Verifier
	nonces       *MemoryNonces
	now          time.Time
	token        string
	tokenID      string
	keyID        string
	secret       string
	expiredToken string
	expiredKeyID string
	expiredKey   string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	fx := &fixture{path: filepath.Join(tb.TempDir(), FileName), now: t0}
	err := Edit(fx.path, func(r *Records) error {
		tok, t, err := NewToken("alice", "ci", t0.Add(-time.Hour), 0)
		if err != nil {
			return err
		}
		fx.token, fx.tokenID = tok, t.ID
		sec, k, err := NewKey("alice", "cron", t0.Add(-time.Hour), 0)
		if err != nil {
			return err
		}
		fx.secret, fx.keyID = sec, k.ID
		old, ot, err := NewToken("bob", "old", t0.Add(-48*time.Hour), 24*time.Hour)
		if err != nil {
			return err
		}
		fx.expiredToken = old
		osec, ok, err := NewKey("bob", "old", t0.Add(-48*time.Hour), 24*time.Hour)
		if err != nil {
			return err
		}
		fx.expiredKey, fx.expiredKeyID = osec, ok.ID
		r.Tokens = append(r.Tokens, t, ot)
		r.Keys = append(r.Keys, k, ok)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if fx.file, err = OpenFile(fx.path); err != nil {
		tb.Fatal(err)
	}
	clock := func() time.Time { return fx.now }
	fx.nonces = NewMemoryNonces(100, 0, clock)
	fx.v = NewVerifier(fx.file, fx.nonces, 0, clock)
	return fx
}

func (fx *fixture) sign(tb testing.TB, method, url string, ts time.Time, nonce string) string {
	tb.Helper()
	a, err := Sign(method, url, fx.keyID, []byte(fx.secret), ts, nonce)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func TestBearer(t *testing.T) {
	fx := newFixture(t)
	wrongSecret := fx.token[:len(fx.token)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(fx.token, "A")]
	unknownID := tokenPrefix + "ffffffffffffffff" + fx.token[len(tokenPrefix)+idHexLen:]
	tests := []struct {
		name    string
		req     Request
		user    string
		present bool
		err     error
	}{
		{"valid", Request{Authorization: "Bearer " + fx.token}, "alice", true, nil},
		{"scheme in any case", Request{Authorization: "bEARER " + fx.token}, "alice", true, nil},
		{"extra spaces before token", Request{Authorization: "Bearer   " + fx.token}, "alice", true, nil},
		{"no header", Request{}, "", false, nil},
		{"token in query only", Request{URI: "/api?access_token=" + fx.token + "&token=" + fx.token}, "", false, nil},
		{"basic is not ours", Request{Authorization: "Basic YWxpY2U6eA=="}, "", false, nil},
		{"wrong secret", Request{Authorization: "Bearer " + wrongSecret}, "", true, ErrMismatch},
		{"unknown id", Request{Authorization: "Bearer " + unknownID}, "", true, ErrUnknown},
		{"expired", Request{Authorization: "Bearer " + fx.expiredToken}, "", true, ErrExpired},
		{"empty", Request{Authorization: "Bearer "}, "", true, ErrMalformed},
		{"bare scheme", Request{Authorization: "Bearer"}, "", true, ErrMalformed},
		{"trailing space", Request{Authorization: "Bearer " + fx.token + " "}, "", true, ErrMalformed},
		{"truncated", Request{Authorization: "Bearer " + fx.token[:len(fx.token)-1]}, "", true, ErrMalformed},
		{"upper-case id", Request{Authorization: "Bearer " + strings.ToUpper(fx.token)}, "", true, ErrMalformed},
		{"signing secret as token", Request{Authorization: "Bearer " + fx.secret}, "", true, ErrMalformed},
		{"huge", Request{Authorization: "Bearer " + strings.Repeat("a", 100000)}, "", true, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, present, err := fx.v.Authenticate(context.Background(), tt.req)
			if user != tt.user || present != tt.present || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("got %q, %v, %v; want %q, %v, %v", user, present, err, tt.user, tt.present, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), fx.token[len(tokenPrefix)+idHexLen+1:]) {
				t.Errorf("error %q holds the token secret", err)
			}
		})
	}
}

func TestTokenRevokeAndReload(t *testing.T) {
	fx := newFixture(t)
	req := Request{Authorization: "Bearer " + fx.token}
	if _, _, err := fx.v.Authenticate(context.Background(), req); err != nil {
		t.Fatalf("before revoke: %v", err)
	}
	err := Edit(fx.path, func(r *Records) error {
		r.Tokens = r.Tokens[1:]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := fx.file.Reload(); !changed || err != nil {
		t.Fatalf("reload: %v, %v", changed, err)
	}
	if _, _, err := fx.v.Authenticate(context.Background(), req); !errors.Is(err, ErrUnknown) {
		t.Errorf("after revoke: got %v, want %v", err, ErrUnknown)
	}
}

func TestSigned(t *testing.T) {
	const url = "https://api.example.com/v1/items?b=2&a=1"
	base := Request{Method: "GET", URI: "/v1/items?b=2&a=1", Host: "api.example.com"}
	tests := []struct {
		name string
		// change edits a request signed for url at the fixture's clock.
		change func(fx *fixture, r *Request)
		err    error
	}{
		{"valid", func(fx *fixture, r *Request) {}, nil},
		{"query in another order", func(fx *fixture, r *Request) { r.URI = "/v1/items?a=1&b=2" }, ErrBadSignature},
		{"host with port and case", func(fx *fixture, r *Request) { r.Host = "API.example.com:443" }, nil},
		{"lower-case method", func(fx *fixture, r *Request) { r.Method = "get" }, nil},
		{"scheme in lower case", func(fx *fixture, r *Request) {
			r.Authorization = strings.ToLower(Scheme) + r.Authorization[len(Scheme):]
		}, nil},
		{"4 minutes late", func(fx *fixture, r *Request) { fx.now = fx.now.Add(4 * time.Minute) }, nil},
		{"changed method", func(fx *fixture, r *Request) { r.Method = "POST" }, ErrBadSignature},
		{"changed path", func(fx *fixture, r *Request) { r.URI = "/v1/admin?b=2&a=1" }, ErrBadSignature},
		{"changed path encoding", func(fx *fixture, r *Request) { r.URI = "/v1/%69tems?b=2&a=1" }, ErrBadSignature},
		{"changed query value", func(fx *fixture, r *Request) { r.URI = "/v1/items?b=3&a=1" }, ErrBadSignature},
		{"added query", func(fx *fixture, r *Request) { r.URI += "&c=1" }, ErrBadSignature},
		{"dropped query", func(fx *fixture, r *Request) { r.URI = "/v1/items" }, ErrBadSignature},
		{"changed host", func(fx *fixture, r *Request) { r.Host = "evil.example.com" }, ErrBadSignature},
		{"changed nonce", func(fx *fixture, r *Request) {
			r.Authorization = strings.Replace(r.Authorization, "Nonce=nonce-0123456789", "Nonce=nonce-0123456788", 1)
		}, ErrBadSignature},
		{"changed timestamp", func(fx *fixture, r *Request) {
			ts := strconv.FormatInt(fx.now.Unix(), 10)
			r.Authorization = strings.Replace(r.Authorization, "Timestamp="+ts, "Timestamp="+ts[:len(ts)-1]+"9", 1)
		}, ErrBadSignature},
		{"other key id", func(fx *fixture, r *Request) {
			r.Authorization = strings.Replace(r.Authorization, fx.keyID, fx.expiredKeyID, 1)
		}, ErrBadSignature},
		{"unknown key id", func(fx *fixture, r *Request) {
			r.Authorization = strings.Replace(r.Authorization, fx.keyID, "ak_ffffffffffffffff", 1)
		}, ErrUnknown},
		{"stale", func(fx *fixture, r *Request) { fx.now = fx.now.Add(301 * time.Second) }, ErrTimestamp},
		{"future", func(fx *fixture, r *Request) { fx.now = fx.now.Add(-301 * time.Second) }, ErrTimestamp},
		{"signed before the verifier started", func(fx *fixture, r *Request) {
			r.Authorization = fx.sign(t, "GET", url, fx.now.Add(-time.Second), "nonce-0123456789")
		}, ErrTimestamp},
		{"wrong secret", func(fx *fixture, r *Request) {
			r.Authorization, _ = Sign("GET", url, fx.keyID, []byte(fx.expiredKey), fx.now, "nonce-0123456789")
		}, ErrBadSignature},
		{"expired key", func(fx *fixture, r *Request) {
			r.Authorization, _ = Sign("GET", url, fx.expiredKeyID, []byte(fx.expiredKey), fx.now, "nonce-0123456789")
		}, ErrExpired},
		{"upper-case hex", func(fx *fixture, r *Request) {
			i := strings.Index(r.Authorization, "Signature=") + len("Signature=")
			r.Authorization = r.Authorization[:i] + strings.ToUpper(r.Authorization[i:])
		}, ErrMalformed},
		{"path with control byte", func(fx *fixture, r *Request) { r.URI = "/v1/items\x01?b=2&a=1" }, ErrMalformed},
		{"no host", func(fx *fixture, r *Request) { r.Host = "" }, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			r := base
			r.Authorization = fx.sign(t, "GET", url, fx.now, "nonce-0123456789")
			tt.change(fx, &r)
			user, present, err := fx.v.Authenticate(context.Background(), r)
			if !present || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("got %q, %v, %v; want present, error %v", user, present, err, tt.err)
			}
			if err == nil && user != "alice" {
				t.Errorf("user %q, want alice", user)
			}
			if err != nil && strings.Contains(err.Error(), fx.secret) {
				t.Errorf("error %q holds the secret", err)
			}
			if tt.err != nil && fx.nonces.Len() != 0 {
				t.Errorf("a refused request left %d nonces in the cache", fx.nonces.Len())
			}
		})
	}
}

// TestSchemeFoldsASCIIOnly: a scheme matches in any ASCII letter case only.
// nginx's Authorization map folds ASCII only, so a scheme that matched
// through a Unicode fold ("ſ" for "s", "K" for "k") would authenticate here
// while nginx passed the header on to the app as someone else's.
func TestSchemeFoldsASCIIOnly(t *testing.T) {
	fx := newFixture(t)
	signed := fx.sign(t, "GET", "https://api.example.com/v1", fx.now, "nonce-0123456789")
	tests := []struct{ name, auth string }{
		{"long s in the signature scheme", strings.Replace(signed, "SHA256", "\u017fHA256", 1)},
		{"long s in the retired scheme", "AUTHD-HMAC-\u017fHA256" + signed[len(Scheme):]},
		{"Kelvin sign in Bearer's place", "Bearer\u212a " + fx.token},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Request{Method: "GET", URI: "/v1", Host: "api.example.com", Authorization: tt.auth}
			user, present, err := fx.v.Authenticate(context.Background(), r)
			if present || user != "" || err != nil {
				t.Errorf("got %q, %v, %v; want not present", user, present, err)
			}
		})
	}
	if fx.nonces.Len() != 0 {
		t.Errorf("%d nonces spent, want 0", fx.nonces.Len())
	}
}

func TestSignedReplay(t *testing.T) {
	fx := newFixture(t)
	r := Request{Method: "GET", URI: "/x", Host: "h", Authorization: fx.sign(t, "GET", "https://h/x", fx.now, "nonce-0123456789")}
	if _, _, err := fx.v.Authenticate(context.Background(), r); err != nil {
		t.Fatalf("first: %v", err)
	}
	fx.now = fx.now.Add(299 * time.Second)
	if _, _, err := fx.v.Authenticate(context.Background(), r); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: got %v, want %v", err, ErrReplay)
	}
	fx.now = fx.now.Add(2 * time.Second)
	if _, _, err := fx.v.Authenticate(context.Background(), r); !errors.Is(err, ErrTimestamp) {
		t.Fatalf("replay after the window: got %v, want %v", err, ErrTimestamp)
	}
	// The same nonce under a new timestamp is a new signed request.
	r.Authorization = fx.sign(t, "GET", "https://h/x", fx.now, "nonce-0123456789")
	if _, _, err := fx.v.Authenticate(context.Background(), r); err != nil {
		t.Fatalf("same nonce after expiry: %v", err)
	}
}

type failingNonces struct{}

func (failingNonces) Seen(context.Context, string, string, time.Time) (bool, error) {
	return false, errors.New("redis: connection refused")
}

func TestSignedNonceCacheDown(t *testing.T) {
	fx := newFixture(t)
	clock := func() time.Time { return fx.now }
	r := Request{Method: "GET", URI: "/x", Host: "h", Authorization: fx.sign(t, "GET", "https://h/x", fx.now, "nonce-0123456789")}
	for name, v := range map[string]*Verifier{
		"error":    NewVerifier(fx.file, failingNonces{}, 0, clock),
		"no cache": NewVerifier(fx.file, nil, 0, clock),
		"full":     NewVerifier(fx.file, NewMemoryNonces(1, 1, clock), 0, clock),
	} {
		t.Run(name, func(t *testing.T) {
			if name == "full" {
				v.nonces.Seen(context.Background(), fx.keyID, "other-nonce-0123456789", fx.now.Add(time.Minute))
			}
			if _, present, err := v.Authenticate(context.Background(), r); !present || !errors.Is(err, ErrNonce) {
				t.Errorf("got %v, %v; want present, %v", present, err, ErrNonce)
			}
		})
	}
}

func TestSignedMalformedHeaders(t *testing.T) {
	fx := newFixture(t)
	good := fx.sign(t, "GET", "https://h/x", fx.now, "nonce-0123456789")
	params := good[len(Scheme)+1:]
	fields := strings.Split(params, ", ")
	tests := map[string]string{
		"no params":          Scheme,
		"empty params":       Scheme + " ",
		"duplicate field":    Scheme + " " + params + ", " + fields[2],
		"duplicate, 4 total": Scheme + " " + strings.Join([]string{fields[0], fields[1], fields[2], fields[2]}, ", "),
		"missing field":      Scheme + " " + strings.Join(fields[:3], ", "),
		"extra field":        Scheme + " " + params + ", Extra=1",
		"unknown field":      Scheme + " " + strings.Join([]string{fields[0], fields[1], fields[2], "Sig=abc"}, ", "),
		"field name case":    Scheme + " " + strings.Replace(params, "KeyId=", "keyid=", 1),
		"quoted value":       Scheme + " " + strings.Replace(params, "Nonce=nonce-0123456789", `Nonce="nonce-0123456789"`, 1),
		"empty part":         Scheme + " " + params + ",",
		"semicolons":         Scheme + " " + strings.ReplaceAll(params, ", ", "; "),
		"short signature":    Scheme + " " + params[:len(params)-1],
		"long signature":     Scheme + " " + params + "0",
		"non-hex signature":  Scheme + " " + params[:len(params)-1] + "g",
		"short nonce":        Scheme + " " + strings.Replace(params, "Nonce=nonce-0123456789", "Nonce=abc", 1),
		"nonce bad chars":    Scheme + " " + strings.Replace(params, "Nonce=nonce-0123456789", "Nonce=nonce.0123456789", 1),
		"negative timestamp": Scheme + " " + strings.Replace(params, "Timestamp=", "Timestamp=-", 1),
		"leading zero":       Scheme + " " + strings.Replace(params, "Timestamp=", "Timestamp=0", 1),
		"huge timestamp":     Scheme + " " + strings.Replace(params, "Timestamp=", "Timestamp=99999999", 1),
		"empty key id":       Scheme + " " + strings.Replace(params, "KeyId="+fx.keyID, "KeyId=", 1),
		"newline in key id":  Scheme + " " + strings.Replace(params, "KeyId="+fx.keyID, "KeyId="+fx.keyID+"\n", 1),
		"oversize":           Scheme + " " + params + strings.Repeat(" ", maxAuthorization),
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			r := Request{Method: "GET", URI: "/x", Host: "h", Authorization: h}
			if _, present, err := fx.v.Authenticate(context.Background(), r); !present || !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, %v; want present, %v", present, err, ErrMalformed)
			}
		})
	}
	t.Run("fields in any order with tabs", func(t *testing.T) {
		h := Scheme + " " + strings.Join([]string{fields[3], fields[1], fields[0], fields[2]}, " ,\t")
		r := Request{Method: "GET", URI: "/x", Host: "h", Authorization: h}
		if user, _, err := fx.v.Authenticate(context.Background(), r); err != nil || user != "alice" {
			t.Errorf("got %q, %v; want alice", user, err)
		}
	})
}

func TestNilFile(t *testing.T) {
	v := NewVerifier(nil, nil, 0, time.Now)
	tok, _, _ := NewToken("alice", "x", time.Now(), 0)
	if _, present, err := v.Authenticate(context.Background(), Request{Authorization: "Bearer " + tok}); !present || !errors.Is(err, ErrUnknown) {
		t.Errorf("got %v, %v; want present, %v", present, err, ErrUnknown)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	fx := newFixture(b)
	bearer := Request{Authorization: "Bearer " + fx.token}
	b.Run("bearer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := fx.v.Authenticate(context.Background(), bearer); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("signed", func(b *testing.B) {
		clock := func() time.Time { return fx.now }
		v := NewVerifier(fx.file, NewMemoryNonces(1<<20, 1<<20, clock), 0, clock)
		reqs := make([]Request, 0, 1<<16)
		for i := range cap(reqs) {
			a := fx.sign(b, "GET", "https://api.example.com/v1/items?b=2&a=1", fx.now, fmt.Sprintf("nonce-%012d", i))
			reqs = append(reqs, Request{Method: "GET", URI: "/v1/items?b=2&a=1", Host: "api.example.com", Authorization: a})
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == len(reqs) {
				b.StopTimer()
				v = NewVerifier(fx.file, NewMemoryNonces(1<<20, 1<<20, clock), 0, clock)
				i = 0
				b.StartTimer()
			}
			if _, _, err := v.Authenticate(context.Background(), reqs[i]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
