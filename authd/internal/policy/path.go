package policy

import "strings"

// Canonical returns the path rules see for a raw request URI as nginx
// received it ($request_uri): the query is dropped, percent-escapes are
// decoded once and repeated slashes are merged (as nginx's merge_slashes
// does). ok is false for anything nginx and authd could read two ways, so the
// caller denies instead of guessing: encoded slashes, backslashes or dots,
// control bytes, a "%" left after decoding, bad escapes, a fragment, a ";"
// (servlet-style apps drop ";params" from segments, so "/admin;x/y" is
// /admin/y to them but not under /admin to a rule), and any "." or ".."
// segment. Browsers resolve dot segments before sending, so only a crafted
// request has one, and nginx passes it to the app unresolved: whether the
// app resolves it, and how ("/a/b/.." as "/a" or "/a/"), is the app's
// business, and a rule must not bet on the answer.
func Canonical(uri string) (path string, ok bool) {
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if len(uri) == 0 || uri[0] != '/' || len(uri) > maxPath {
		return "", false
	}
	clean := true
	for i := 0; i < len(uri); i++ {
		c := uri[i]
		switch {
		case c < 0x20 || c == 0x7f || c == '\\' || c == '#' || c == ';':
			return "", false
		case c == '%':
			clean = false
		case c == '/' && i+1 < len(uri) && (uri[i+1] == '/' || uri[i+1] == '.'):
			clean = false
		}
	}
	if clean {
		return uri, true // the common case allocates nothing
	}
	return slowCanonical(uri)
}

const maxPath = 4096

func slowCanonical(uri string) (string, bool) {
	var b strings.Builder
	b.Grow(len(uri))
	for i := 0; i < len(uri); i++ {
		c := uri[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(uri) {
			return "", false
		}
		hi, ok1 := unhex(uri[i+1])
		lo, ok2 := unhex(uri[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		d := hi<<4 | lo
		// Decoded separators, dots, escapes and control bytes are exactly
		// what makes a path mean one thing to a rule and another to an app.
		if d == '/' || d == '\\' || d == '.' || d == '%' || d == '?' || d == '#' || d == ';' || d < 0x20 || d == 0x7f {
			return "", false
		}
		b.WriteByte(d)
		i += 2
	}
	segs := strings.Split(b.String(), "/")
	out := make([]string, 0, len(segs))
	for _, s := range segs[1:] {
		switch s {
		case "":
		case ".", "..":
			return "", false
		default:
			out = append(out, s)
		}
	}
	p := "/" + strings.Join(out, "/")
	if len(out) > 0 && segs[len(segs)-1] == "" {
		p += "/" // "/a/b/" names the directory
	}
	return p, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// HasPrefix reports whether path lies under prefix as a whole segment:
// "/admin" covers "/admin" and "/admin/x" but not "/administrator".
func HasPrefix(path, prefix string) bool {
	if prefix == "/" {
		return true
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}
