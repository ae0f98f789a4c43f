package machine

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Scheme is the Authorization scheme of signed requests and the first line of
// every string to sign. The "2" versions the string to sign: version 2 signs
// the request target exactly as sent.
const Scheme = "AUTHD2-HMAC-SHA256"

// RetiredScheme is the first version's scheme, which signed a re-encoded and
// sorted query: two different query strings (order, duplicates, "+" or
// "%2B") could share one signature while the app read them differently.
// Headers with it are refused, never verified under other semantics.
const RetiredScheme = "AUTHD-HMAC-SHA256"

const (
	maxURIBytes  = 16 << 10
	maxHostBytes = 255
	maxMethod    = 32
)

// request is a request reduced to the fields a signature covers.
type request struct {
	// target is the request target exactly as sent (nginx's $request_uri):
	// the path, and "?" and the query if the client sent one, byte for byte.
	// Nothing is decoded, sorted or re-encoded, so any change to the bytes
	// nginx forwards to the app changes the string to sign.
	target       string
	method, host string
}

// stringToSign joins the fields with "\n". No field can contain a newline
// (each is checked to exclude one), so the joined string splits back into its
// fields one way only: two different requests never share a string to sign.
func stringToSign(r request, ts, nonce, keyID string) string {
	var b strings.Builder
	b.Grow(len(Scheme) + len(r.method) + len(r.target) + len(r.host) + len(ts) + len(nonce) + len(keyID) + 6)
	for i, s := range [...]string{Scheme, r.method, r.target, r.host, ts, nonce, keyID} {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(s)
	}
	return b.String()
}

func signature(secret []byte, sts string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(sts))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign returns the Authorization header value for a request to rawURL
// ("https://host[:port]/path?query"), signed with the key keyID and its secret
// at time ts. The path and query are signed exactly as written in rawURL, so
// write them as they go on the wire (percent-encoded, in the order sent): the
// client must send these very bytes. An empty nonce means a fresh random one.
func Sign(method, rawURL string, keyID string, secret []byte, ts time.Time, nonce string) (authorization string, err error) {
	if len(secret) == 0 {
		return "", errors.New("empty secret")
	}
	sts, nonce, err := signedString(method, rawURL, keyID, ts, nonce)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s KeyId=%s, Timestamp=%d, Nonce=%s, Signature=%s",
		Scheme, keyID, ts.Unix(), nonce, signature(secret, sts)), nil
}

// StringToSign returns the exact string Sign signs, for debugging a client.
func StringToSign(method, rawURL, keyID string, ts time.Time, nonce string) (string, error) {
	if nonce == "" {
		return "", errors.New("empty nonce")
	}
	sts, _, err := signedString(method, rawURL, keyID, ts, nonce)
	return sts, err
}

// signedString builds the string to sign for a URL; an empty nonce means a fresh one.
func signedString(method, rawURL, keyID string, ts time.Time, nonce string) (sts, usedNonce string, err error) {
	if nonce == "" {
		nonce = NewNonce()
	}
	if !validNonce(nonce) {
		return "", "", errors.New("nonce must be 16-64 characters of A-Z a-z 0-9 _ -")
	}
	if !validKeyIDSyntax(keyID) {
		return "", "", errors.New("key id must be 1-64 characters of A-Z a-z 0-9 _ -")
	}
	if ts.Unix() < 0 {
		return "", "", errors.New("timestamp before 1970")
	}
	host, uri, err := splitURL(rawURL)
	if err != nil {
		return "", "", err
	}
	r, err := canonicalRequest(method, uri, host)
	if err != nil {
		return "", "", err
	}
	return stringToSign(r, strconv.FormatInt(ts.Unix(), 10), nonce, keyID), nonce, nil
}

// splitURL splits "scheme://authority/path?query#fragment" into the authority
// and the request URI a client sends (path and query; the fragment is never
// sent). It is deliberately simpler than net/url and matches the Python client
// step by step: nothing is decoded or re-encoded here.
func splitURL(raw string) (authority, uri string, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !(strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")) {
		return "", "", errors.New("URL must start with http:// or https://")
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, uri = rest[:end], rest[end:]
	if strings.Contains(authority, "@") {
		return "", "", errors.New("URL must not contain user information")
	}
	uri, _, _ = strings.Cut(uri, "#")
	if uri == "" || uri[0] == '?' {
		uri = "/" + uri
	}
	return authority, uri, nil
}

// canonicalRequest checks method, request target (path and query as sent,
// as in nginx's $request_uri) and Host. The target is kept byte for byte.
func canonicalRequest(method, uri, host string) (request, error) {
	var r request
	var err error
	if r.method, err = canonicalMethod(method); err != nil {
		return r, err
	}
	if len(uri) > maxURIBytes {
		return r, fmt.Errorf("request URI longer than %d bytes", maxURIBytes)
	}
	if uri == "" || uri[0] != '/' {
		return r, errors.New("request path must start with /")
	}
	// No request line carries these (a fragment is never sent), and a
	// newline would let one field pass for two.
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c <= ' ' || c == 0x7f || c == '#' {
			return r, errors.New("request URI contains a space, control character or #")
		}
	}
	r.target = uri
	if r.host, err = canonicalHost(host); err != nil {
		return r, err
	}
	return r, nil
}

// canonicalMethod upper-cases an HTTP method token.
func canonicalMethod(m string) (string, error) {
	if m == "" || len(m) > maxMethod {
		return "", errors.New("method must be 1-32 letters")
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '-' || c == '_') {
			return "", errors.New("method must be 1-32 letters")
		}
	}
	return strings.ToUpper(m), nil
}

// canonicalHost lower-cases the host name and drops any port. nginx's $host,
// which the shipped snippet forwards, has no port either.
func canonicalHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("host is empty")
	}
	var name, port string
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", errors.New("host has an unclosed [")
		}
		name, port = h[:end+1], h[end+1:]
		for i := 1; i < len(name)-1; i++ {
			if c := name[i]; !(isHexDigit(c) || c == ':' || c == '.') {
				return "", errors.New("host has an invalid IPv6 literal")
			}
		}
	} else {
		i := strings.IndexByte(h, ':')
		if i < 0 {
			i = len(h)
		}
		name, port = h[:i], h[i:]
		for i := 0; i < len(name); i++ {
			if c := name[i]; !(idByte(c) || c == '.') {
				return "", errors.New("host name may contain only A-Z a-z 0-9 . - _ (use punycode)")
			}
		}
	}
	if port != "" {
		if port[0] != ':' || len(port) > 6 || strings.Trim(port[1:], "0123456789") != "" {
			return "", errors.New("host has an invalid port")
		}
	}
	if name == "" || name == "[]" || len(name) > maxHostBytes {
		return "", errors.New("host name is empty or too long")
	}
	return strings.ToLower(name), nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func validNonce(s string) bool { return len(s) >= 16 && len(s) <= 64 && isB64URL(s) }

func validKeyIDSyntax(s string) bool { return len(s) >= 1 && len(s) <= 64 && isB64URL(s) }
