package machine

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scheme is the Authorization scheme of signed requests and the first line of
// every string to sign.
const Scheme = "AUTHD-HMAC-SHA256"

const (
	maxURIBytes   = 16 << 10
	maxQueryPairs = 1024
	maxHostBytes  = 255
	maxMethod     = 32
)

// request is a request reduced to the fields a signature covers, each already
// in canonical form.
type request struct {
	method, path, query, host string
}

// stringToSign joins the canonical fields with "\n". No field can contain a
// newline (each is checked or re-encoded to exclude one), so the joined string
// splits back into its fields one way only: two different requests never share
// a string to sign.
func stringToSign(r request, ts, nonce, keyID string) string {
	var b strings.Builder
	b.Grow(len(Scheme) + len(r.method) + len(r.path) + len(r.query) + len(r.host) + len(ts) + len(nonce) + len(keyID) + 7)
	for i, s := range [...]string{Scheme, r.method, r.path, r.query, r.host, ts, nonce, keyID} {
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
// at time ts. The path and query are taken from rawURL exactly as written, so
// write them as they will go on the wire (percent-encoded). An empty nonce
// means a fresh random one.
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

// canonicalRequest checks and canonicalises method, request URI (path and
// query, as in nginx's $request_uri) and Host.
func canonicalRequest(method, uri, host string) (request, error) {
	var r request
	var err error
	if r.method, err = canonicalMethod(method); err != nil {
		return r, err
	}
	if len(uri) > maxURIBytes {
		return r, fmt.Errorf("request URI longer than %d bytes", maxURIBytes)
	}
	path, query, _ := strings.Cut(uri, "?")
	if path == "" || path[0] != '/' {
		return r, errors.New("request path must start with /")
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c == 0x7f || c == '#' {
			return r, errors.New("request path contains a space, control character or #")
		}
	}
	r.path = path
	if r.query, err = canonicalQuery(query); err != nil {
		return r, err
	}
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

// canonicalQuery splits q on "&", drops empty pieces, splits each pair at the
// first "=", percent-decodes key and value (a "+" stays a plus), re-encodes
// them with only the RFC 3986 unreserved characters left bare, sorts the pairs
// by key and then value, and joins them as key=value with "&".
func canonicalQuery(q string) (string, error) {
	if q == "" {
		return "", nil
	}
	var pairs [][2]string
	for piece := range strings.SplitSeq(q, "&") {
		if piece == "" {
			continue
		}
		if len(pairs) == maxQueryPairs {
			return "", fmt.Errorf("query has more than %d parameters", maxQueryPairs)
		}
		k, v, _ := strings.Cut(piece, "=")
		ek, err := reencode(k)
		if err != nil {
			return "", err
		}
		ev, err := reencode(v)
		if err != nil {
			return "", err
		}
		pairs = append(pairs, [2]string{ek, ev})
	}
	slices.SortFunc(pairs, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p[0])
		b.WriteByte('=')
		b.WriteString(p[1])
	}
	return b.String(), nil
}

// reencode percent-decodes s strictly (a "%" must start two hex digits) and
// encodes the bytes again, leaving only A-Z a-z 0-9 - . _ ~ bare and writing
// upper-case hex.
func reencode(s string) (string, error) {
	const hexUpper = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHexDigit(s[i+1]) || !isHexDigit(s[i+2]) {
				return "", errors.New("query has an invalid percent-encoding")
			}
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		case c <= ' ' || c == 0x7f || c == '#':
			return "", errors.New("query contains a space, control character or #")
		}
		if unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexUpper[c>>4])
			b.WriteByte(hexUpper[c&15])
		}
	}
	return b.String(), nil
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func validNonce(s string) bool { return len(s) >= 16 && len(s) <= 64 && isB64URL(s) }

func validKeyIDSyntax(s string) bool { return len(s) >= 1 && len(s) <= 64 && isB64URL(s) }
