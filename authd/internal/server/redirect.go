package server

import (
	"net/url"
	"strings"
)

// safeRedirect is the one validator for every redirect authd issues. It
// returns rd when rd is a path on this site or an absolute URL on an allowed
// origin, and def otherwise. Browsers forgive a lot ("/\evil", "/\t/evil",
// "https:evil"), so anything unusual is refused rather than repaired.
func (o *settings) safeRedirect(rd, def string) string {
	if rd == "" || len(rd) > 2048 {
		return def
	}
	for i := 0; i < len(rd); i++ {
		if c := rd[i]; c <= 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			return def
		}
	}
	u, err := url.Parse(rd)
	if err != nil || u.User != nil || u.Opaque != "" {
		return def
	}
	if rd[0] == '/' {
		// Relative: a path, never "//host" (scheme-relative).
		if len(rd) > 1 && rd[1] == '/' || u.Scheme != "" || u.Host != "" {
			return def
		}
		if o.isLoginPage(u.Path) {
			return def
		}
		return rd
	}
	if u.Scheme == "" || u.Host == "" || !strings.HasPrefix(rd, u.Scheme+"://") {
		return def
	}
	if !o.origins[originOf(u)] {
		return def
	}
	if o.isLoginPage(u.Path) {
		return def
	}
	return u.String()
}

// isLoginPage stops a return path from sending users back into the login or
// logout form in a loop.
func (o *settings) isLoginPage(p string) bool {
	return strings.HasPrefix(p, o.Prefix+"login") || strings.HasPrefix(p, o.Prefix+"logout")
}
