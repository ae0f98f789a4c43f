package machine

import (
	"errors"
	"strconv"
	"strings"
)

// maxAuthorization bounds the Authorization header authd reads. A signed
// header is under 250 bytes and a token 70.
const maxAuthorization = 1024

// signedAuth is a parsed AUTHD-HMAC-SHA256 header.
type signedAuth struct {
	keyID, ts, nonce, sig string
	unix                  int64
}

// cutScheme splits an Authorization value into its scheme and parameters.
func cutScheme(h string) (scheme, params string) {
	scheme, params, _ = strings.Cut(h, " ")
	return scheme, strings.TrimLeft(params, " ")
}

// asciiEqualFold reports whether a and b are equal ignoring ASCII letter
// case only. strings.EqualFold also folds Unicode: "ſ" (U+017F) would match
// "s" and "K" (U+212A) "k", so "AUTHD2-HMAC-ſHA256" would count as authd's
// scheme while nginx's map (authd-http.conf), which folds ASCII only,
// passes the header to the app as someone else's.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseSigned parses the parameters of an AUTHD-HMAC-SHA256 header:
//
//	KeyId=<id>, Timestamp=<unix seconds>, Nonce=<nonce>, Signature=<64 lower-case hex>
//
// in any order, separated by commas with optional spaces or tabs around them.
// Each of the four names (exact case) appears exactly once and nothing else
// does; values are bare (no quotes) and checked against their alphabets.
func parseSigned(params string) (signedAuth, error) {
	var a signedAuth
	if len(params) > maxAuthorization {
		return a, errors.New("header too long")
	}
	var have [4]bool
	n := 0
	for part := range strings.SplitSeq(params, ",") {
		n++
		if n > len(have) {
			return a, errors.New("more than four fields")
		}
		name, val, ok := strings.Cut(strings.Trim(part, " \t"), "=")
		if !ok {
			return a, errors.New("field without =")
		}
		i := fieldIndex(name)
		if i < 0 {
			return a, errors.New("unknown field")
		}
		if have[i] {
			return a, errors.New("duplicate field " + name)
		}
		have[i] = true
		switch i {
		case 0:
			if !validKeyIDSyntax(val) {
				return a, errors.New("bad KeyId")
			}
			a.keyID = val
		case 1:
			u, ok := parseUnix(val)
			if !ok {
				return a, errors.New("bad Timestamp")
			}
			a.ts, a.unix = val, u
		case 2:
			if !validNonce(val) {
				return a, errors.New("bad Nonce")
			}
			a.nonce = val
		case 3:
			if len(val) != 64 || !isLowerHex(val) {
				return a, errors.New("bad Signature (want 64 lower-case hex digits)")
			}
			a.sig = val
		}
	}
	for i, ok := range have {
		if !ok {
			return a, errors.New("missing field " + fieldNames[i])
		}
	}
	return a, nil
}

var fieldNames = [4]string{"KeyId", "Timestamp", "Nonce", "Signature"}

func fieldIndex(name string) int {
	for i, f := range fieldNames {
		if f == name {
			return i
		}
	}
	return -1
}

// parseUnix accepts 1-12 decimal digits without a leading zero.
func parseUnix(s string) (int64, bool) {
	if s == "" || len(s) > 12 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	u, err := strconv.ParseInt(s, 10, 64)
	return u, err == nil
}
