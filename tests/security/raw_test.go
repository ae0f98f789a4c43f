package security

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRawRequestsNothingSlipsThrough sends requests a browser, curl or Go's client would normalise or
// refuse to send — dot segments, fragments, control bytes, absolute-form targets, duplicate Host
// headers, obs-fold, smuggling and pipelining — and checks both what the client sees and what
// reached the app. Anonymous clients may only ever reach /public and /readonly (GET).
func TestRawRequestsNothingSlipsThrough(t *testing.T) {
	s := sharedStack(t)
	host := fmt.Sprintf("localhost:%d", s.httpsPort)
	ada := session(s.login(t, "ada", adaPassword))
	cases := []struct {
		name    string
		request string
		// reach: the app may be reached (by anyone, for public paths); never under /admin etc.
		allowApp func(a *appSeen) bool
	}{
		{"dot segments above a public prefix", "GET /public/../admin/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"dot segments inside", "GET /public/./../app/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"fragment naming a public path", "GET /admin/x#/public HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"fragment with dot segments", "GET /public#/../admin HTTP/1.1\r\nHost: " + host + "\r\n\r\n", publicOnly},
		{"query naming a public path", "GET /admin?x=/public HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"NUL in path", "GET /public/\x00/../admin HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"control byte in path", "GET /public\x01/../admin HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"DEL in path", "GET /public/\x7f/../admin HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"tab in path", "GET /public/\t/../admin HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"bare LF line ends", "GET /admin/x HTTP/1.1\nHost: " + host + "\n\n", nil},
		{"bare CR in request line", "GET /public/x\r/../admin HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"absolute-form target", "GET https://" + host + "/admin/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"absolute-form with dot segments", "GET https://" + host + "/public/../admin HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"absolute-form for another host", "GET http://evil.example/admin/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"absolute-form public", "GET https://" + host + "/public/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", publicOnly},
		{"authority-form", "CONNECT " + host + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"duplicate Host", "GET /admin/x HTTP/1.1\r\nHost: " + host + "\r\nHost: evil.example\r\n\r\n", nil},
		{"no Host in HTTP/1.1", "GET /admin/x HTTP/1.1\r\n\r\n", nil},
		{"HTTP/1.0 without Host", "GET /admin/x HTTP/1.0\r\n\r\n", nil},
		{"HTTP/0.9", "GET /admin/x\r\n\r\n", nil},
		{"HTTP/2 version string", "GET /admin/x HTTP/2.0\r\nHost: " + host + "\r\n\r\n", nil},
		{"obs-fold into an identity header", "GET /public/x HTTP/1.1\r\nHost: " + host + "\r\nX-Foo: a\r\n Remote-User: " + spoof + "\r\n\r\n", publicOnly},
		{"obs-fold on X-Forwarded-For", "GET /office/x HTTP/1.1\r\nHost: " + host + "\r\nX-Forwarded-For: 10.0.0.1,\r\n 127.0.0.5\r\n\r\n", nil},
		{"obs-fold on Cookie", "GET /app/x HTTP/1.1\r\nHost: " + host + "\r\nCookie: a=b;\r\n " + ada + "\r\n\r\n", func(a *appSeen) bool { return true }},
		{"space before colon", "GET /public/x HTTP/1.1\r\nHost: " + host + "\r\nRemote-User : " + spoof + "\r\n\r\n", publicOnly},
		{"NUL in a header value", "GET /app/x HTTP/1.1\r\nHost: " + host + "\r\nCookie: " + ada + "\x00\r\n\r\n", nil},
		{"lower-case method", "get /app/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"unknown method", "FOO /app/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"OPTIONS is no bypass", "OPTIONS /app/x HTTP/1.1\r\nHost: " + host + "\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: GET\r\n\r\n", nil},
		{"HEAD is not GET", "HEAD /readonly/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"POST to a GET-only public rule", "POST /readonly/x HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\n\r\n", nil},
		{"method override header", "POST /readonly/x HTTP/1.1\r\nHost: " + host + "\r\nX-HTTP-Method-Override: GET\r\nContent-Length: 0\r\n\r\n", nil},
		{"GET-only public rule", "GET /readonly/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", func(a *appSeen) bool { return strings.HasPrefix(a.URI, "/readonly/") && a.Method == "GET" }},
		{"very long path", "GET /public/" + strings.Repeat("a/../", 2000) + "admin HTTP/1.1\r\nHost: " + host + "\r\n\r\n", nil},
		{"very long header", "GET /admin/x HTTP/1.1\r\nHost: " + host + "\r\nX-Pad: " + strings.Repeat("a", 20000) + "\r\n\r\n", nil},
		{"many headers", "GET /admin/x HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Repeat("X-A: b\r\n", 2000) + "\r\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			request := tc.request
			if i := strings.Index(request, " HTTP/1.1\r\n"); i >= 0 && strings.HasSuffix(request, "\r\n\r\n") {
				request = request[:len(request)-2] + "Connection: close\r\n\r\n" // one request: don't wait for more
			}
			rs := s.rawAll(t, request)
			if tc.name == "GET-only public rule" && (len(rs) != 1 || rs[0].App == nil) {
				t.Errorf("control: got %v, want the app", rs)
			}
			for _, r := range rs {
				if r.App == nil {
					if r.Status < 300 {
						t.Errorf("got %s from something other than the app", r)
					}
					continue
				}
				if len(spoofed(r.App)) > 0 {
					t.Errorf("spoofed header reached the app: %v", spoofed(r.App))
				}
				if tc.allowApp == nil || !tc.allowApp(r.App) {
					t.Errorf("got %s with %q, want no access", r, r.App.header("Remote-User"))
				}
			}
		})
	}
}

func publicOnly(a *appSeen) bool {
	return under(appView(a.URI), "/public") && len(a.header("Remote-User")) == 0
}

// TestSmugglingAndPipelining: a request hidden in the body of a public one, or pipelined after it,
// is checked like any other.
func TestSmugglingAndPipelining(t *testing.T) {
	s := sharedStack(t)
	host := fmt.Sprintf("localhost:%d", s.httpsPort)
	smuggled := "GET /admin/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	for name, request := range map[string]string{
		"pipelined": "GET /public/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n" + smuggled,
		"CL.TE": fmt.Sprintf("POST /public/x HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s",
			host, 5+len(smuggled), smuggled),
		"TE.CL": fmt.Sprintf("POST /public/x HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
			host, len(smuggled), smuggled),
		"TE obfuscated": fmt.Sprintf("POST /public/x HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n%s",
			host, 5+len(smuggled), smuggled),
		"two Content-Lengths": fmt.Sprintf("POST /public/x HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n%s",
			host, len(smuggled), smuggled),
		"Expect with body": "POST /public/x HTTP/1.1\r\nHost: " + host + "\r\nExpect: 100-continue\r\nContent-Length: " + fmt.Sprint(len(smuggled)) + "\r\n\r\n" + smuggled,
	} {
		t.Run(name, func(t *testing.T) {
			for _, r := range s.rawAll(t, request) {
				if r.App != nil && !publicOnly(r.App) {
					t.Errorf("got %s: a smuggled request reached the app", r)
				}
			}
		})
	}
}

// rawAll writes request on a fresh connection and reads every response until the server closes
// the connection or goes quiet.
func (s *stack) rawAll(t testing.TB, request string) []*resp {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", s.httpsPort),
		&tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []*resp
	for {
		conn.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		hr, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		if hr.StatusCode == http.StatusContinue {
			continue
		}
		r, err := readResp(hr)
		if err != nil {
			return out
		}
		out = append(out, r)
		if hr.Close {
			return out
		}
	}
}
