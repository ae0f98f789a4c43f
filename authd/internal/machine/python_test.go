package machine

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// pythonClient is conf/clients/authd_sign.py, relative to this file.
func pythonClient(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "conf", "clients")
}

// signVectors are requests the Go and Python signers must agree on, byte for byte.
var signVectors = []struct {
	method, url string
}{
	{"GET", "https://api.example.com/v1/items"},
	{"get", "https://API.Example.com:8443/v1/items?b=2&a=1&a=0"},
	{"POST", "http://127.0.0.1:9091/x?"},
	{"GET", "https://h"},
	{"GET", "https://h?x=1"},
	{"GET", "https://h/p#frag"},
	{"GET", "https://h/p?q=1#frag"},
	{"GET", "https://[2001:DB8::1]:443/v6"},
	{"DELETE", "https://h/a/b?z=1&y=2&x=3"},
	{"GET", "https://h/?a=2&a=10&a=1&a="},
	{"GET", "https://h/?flag&a&&b="},
	{"GET", "https://h/?q=a+b&r=a%20b"},
	{"GET", "https://h/?k%3Dy=v%26w"},
	{"GET", "https://h/?q=%7e%41%2f%2F"},
	{"GET", "https://h/?q=caf%C3%A9&r=café&s=日本"},
	{"GET", "https://h/caf%C3%A9/%2e%2e/x"},
	{"GET", "https://h/café/日本"},
	{"GET", "https://h/?=v&=&k="},
	{"GET", "https://h/?emoji=%F0%9F%98%80&raw=😀"},
	{"GET", "https://h/?sym=!$'()*,;:@/?x"},
	{"PATCH", "https://h/a;b=c/d?x=1"},
	{"GET", "https://h/p?"},
	{"GET", "https://h/p?a=1&"},
	{"GET", "https://h/p?&a=1&&b=2"},
	{"GET", "https://h/%41%2f%2F?q=%41%2f%2F"},
	{"GET", "https://h/?a=%zz"},
	{"GET", "https://h/?a=%4"},
	// Both signers refuse these.
	{"GET", "https://h/a b"},
	{"GET", "https://h/?a=b c"},
	{"GET", "https://h/?a=\x01"},
	{"GET", "https://u@h/"},
	{"GET", "ftp://h/"},
	{"GET", "https://bücher.de/"},
	{"GE T", "https://h/"},
}

func TestPythonClientMatchesGo(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	const (
		keyID  = "ak_0123456789abcdef"
		secret = "authd_sk_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
		nonce  = "nonce_0123456789-abc"
	)
	ts := time.Unix(1795316400, 0)
	type vec struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	}
	var in []vec
	for _, v := range signVectors {
		in = append(in, vec{v.method, v.url})
	}
	stdin, _ := json.Marshal(in)
	script := `
import json, sys
sys.path.insert(0, sys.argv[1])
import authd_sign
out = []
for v in json.load(sys.stdin):
    try:
        out.append(authd_sign.sign(v["method"], v["url"], sys.argv[2], sys.argv[3], ts=int(sys.argv[4]), nonce=sys.argv[5]))
    except ValueError as e:
        out.append("error: %s" % e)
json.dump(out, sys.stdout)
`
	cmd := exec.Command(py, "-c", script, pythonClient(t), keyID, secret, "1795316400", nonce)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	var got []string
	if err := json.Unmarshal(outb, &got); err != nil || len(got) != len(signVectors) {
		t.Fatalf("python output %q: %v", outb, err)
	}
	fx := newFixtureWithKey(t, keyID, secret)
	clock := func() time.Time { return ts }
	for i, v := range signVectors {
		t.Run(v.url, func(t *testing.T) {
			want, err := Sign(v.method, v.url, keyID, []byte(secret), ts, nonce)
			if err != nil {
				if !strings.HasPrefix(got[i], "error: ") {
					t.Errorf("Go refused (%v), Python signed: %s", err, got[i])
				}
				return
			}
			if got[i] != want {
				sts, _ := StringToSign(v.method, v.url, keyID, ts, nonce)
				t.Errorf("python: %s\ngo:     %s\ngo string to sign: %q", got[i], want, sts)
			}
			// And the Verifier accepts it for the request the URL describes.
			authority, uri, _ := splitURL(v.url)
			verifier := NewVerifier(fx.file, NewMemoryNonces(1, 1, clock), 0, clock)
			user, _, err := verifier.Authenticate(t.Context(), Request{Method: strings.ToUpper(v.method), URI: uri, Host: authority, Authorization: got[i]})
			if err != nil || user != "alice" {
				t.Errorf("verify python header: %q, %v", user, err)
			}
		})
	}
}

// newFixtureWithKey is a fixture whose key has a fixed id and secret.
func newFixtureWithKey(tb testing.TB, keyID, secret string) *fixture {
	tb.Helper()
	fx := newFixture(tb)
	err := Edit(fx.path, func(r *Records) error {
		r.Keys = append(r.Keys, Key{ID: keyID, User: "alice", Label: "vectors", Secret: secret,
			Created: t0.Add(-time.Hour), Expires: t0.Add(time.Hour)})
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := fx.file.Reload(); err != nil {
		tb.Fatal(err)
	}
	fx.keyID, fx.secret = keyID, secret
	return fx
}
