package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the TOML key path: "session.idle_timeout", "rules[0].path".
	Key string
	// Msg says what is wrong and shows the value found.
	Msg string
}

// String formats the problem as "key.path: what is wrong (got X)".
func (p Problem) String() string { return p.Key + ": " + p.Msg }

// Errors is every problem found in a configuration. Its Error method puts
// one problem per line, so a caller can print it as it is.
type Errors []Problem

// Error joins the problems with newlines.
func (e *Errors) Error() string {
	lines := make([]string, len(*e))
	for i, p := range *e {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (e *Errors) add(key, format string, args ...any) {
	*e = append(*e, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Hash parameter bounds. The floor is the OWASP Password Storage baseline
// (m=19 MiB, t=2, p=1); OWASP's alternative m=46 MiB, t=1 is also accepted
// because it is more memory-hard. The ceilings refuse settings that would
// let one login exhaust the machine.
const (
	minMemoryKiB      = 19456
	minMemoryKiBTime1 = 47104
	minTime           = 2
	maxMemoryKiB      = 1 << 20
	maxTime           = 20
	maxThreads        = 16
	// Imported bcrypt hashes: cost 10 is the least authd accepts; 14 takes
	// about a second per login on one core, the most worth allowing.
	minBcryptCost = 10
	maxBcryptCost = 14
)

// Validate reports every problem in c at once, as *Errors, or nil.
func (c Config) Validate() error {
	var e Errors
	checkListen(&e, c.Listen)
	if m, err := strconv.ParseUint(c.SocketMode, 8, 32); err != nil || m > 0o777 {
		e.add("socket_mode", "must be an octal permission from 0000 to 0777 (got %q)", c.SocketMode)
	}
	c.checkURLs(&e)
	if !cleanDir(c.Prefix) {
		e.add("prefix", `must start and end with "/" and be a clean path of [A-Za-z0-9._~/-] (got %q)`, c.Prefix)
	}
	if c.DataDir == "" {
		e.add("data_dir", `must not be empty (got "")`)
	}
	if c.UsersFile == "" {
		e.add("users_file", `must not be empty (got "")`)
	}
	for i, s := range c.TrustedProxies {
		p, ok := parseNet(s)
		switch {
		case isMapped(s):
			e.add(index("trusted_proxies", i), mappedProblem, s)
		case !ok:
			e.add(index("trusted_proxies", i), "must be a CIDR such as 10.0.0.0/8 or an IP address (got %q)", s)
		case p.Bits() == 0:
			e.add(index("trusted_proxies", i), "must not trust every address: any client could forge forwarded headers (got %q)", s)
		}
	}
	d := c.DefaultRedirect
	if !strings.HasPrefix(d, "/") || strings.HasPrefix(d, "//") || strings.ContainsFunc(d, unsafeInURL) {
		e.add("default_redirect", `must be a local path starting with a single "/", without backslashes, spaces or control characters (got %q)`, d)
	}
	c.checkCookie(&e)
	c.checkDurations(&e)
	c.checkHash(&e)
	c.checkThrottle(&e)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		e.add("log.level", "must be one of debug, info, warn, error (got %q)", c.Log.Level)
	}
	c.checkRules(&e)
	c.checkStore(&e)
	c.checkOIDC(&e)
	c.checkAdmin(&e)
	c.checkAccount(&e)
	c.checkLDAP(&e)
	if len(e) == 0 {
		return nil
	}
	return &e
}

func checkListen(e *Errors, listen string) {
	if p, ok := strings.CutPrefix(listen, "unix:"); ok {
		if !path.IsAbs(p) || path.Clean(p) != p {
			e.add("listen", "unix socket path must be absolute and clean (got %q)", listen)
		}
		return
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		e.add("listen", "must be host:port or unix:/absolute/path (got %q)", listen)
		return
	}
	if !validPort(port) {
		e.add("listen", "port must be a number from 1 to 65535 (got %q)", listen)
	}
}

func (c Config) checkURLs(e *Errors) {
	if c.PublicURL == "" {
		e.add("public_url", `required: the site's origin as browsers see it, e.g. "https://app.example.com" (got "")`)
	} else if u, msg := parseOrigin(c.PublicURL, true); msg != "" {
		e.add("public_url", "%s (got %q)", msg, c.PublicURL)
	} else if u.Scheme == "http" && !c.Cookie.Insecure {
		e.add("cookie.insecure", "must be true when public_url uses http: plain HTTP is for development only (got false)")
	} else if u.Scheme == "https" && c.Cookie.Insecure {
		e.add("cookie.insecure", "must be false when public_url uses https: a secure site must use secure cookies (got true)")
	}
	for i, h := range c.RedirectHosts {
		u, msg := parseOrigin(h, false)
		switch {
		case msg != "":
			e.add(index("redirect_hosts", i), "%s (got %q)", msg, h)
		case u.Scheme == "http" && !c.Cookie.Insecure:
			e.add(index("redirect_hosts", i), "must use https; http is allowed only with cookie.insecure (got %q)", h)
		}
	}
}

// parseOrigin parses "scheme://host[:port]" and says what is wrong with it,
// if anything. slash allows a lone trailing "/".
func parseOrigin(raw string, slash bool) (*url.URL, string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, "must be a URL like https://host[:port]"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "must start with https:// (or http:// for development)"
	case u.Opaque != "" || u.Hostname() == "":
		return nil, "must name a host"
	case u.Port() != "" && !validPort(u.Port()):
		return nil, "port must be a number from 1 to 65535"
	case u.User != nil:
		return nil, "must not contain a user name or password"
	case strings.ContainsAny(raw, "?#"):
		return nil, "must not have a query or fragment"
	case u.Path != "" && !(slash && u.Path == "/"):
		return nil, "must not have a path: authd needs only the scheme, host and port"
	}
	return u, ""
}

func (c Config) checkCookie(e *Errors) {
	n := c.Cookie.Name
	if len(n) < 1 || len(n) > 64 || strings.ContainsFunc(n, func(r rune) bool { return !isAlnum(r) && r != '_' && r != '-' }) {
		e.add("cookie.name", "must be 1 to 64 characters of [A-Za-z0-9_-] (got %q)", n)
	} else if l := strings.ToLower(n); strings.HasPrefix(l, "__host-") || strings.HasPrefix(l, "__secure-") {
		e.add("cookie.name", "must not carry a __Host- or __Secure- prefix: authd adds __Host- itself (got %q)", n)
	}
}

func (c Config) checkDurations(e *Errors) {
	s := c.Session
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"session.idle_timeout", s.IdleTimeout},
		{"session.lifetime", s.Lifetime},
		{"session.remember_idle_timeout", s.RememberIdleTimeout},
		{"session.remember_lifetime", s.RememberLifetime},
		{"session.touch_interval", s.TouchInterval},
		{"hash.queue_timeout", c.Hash.QueueTimeout},
		{"throttle.base_delay", c.Throttle.BaseDelay},
		{"throttle.max_delay", c.Throttle.MaxDelay},
		{"throttle.window", c.Throttle.Window},
		{"timeouts.read_header", c.Timeouts.ReadHeader},
		{"timeouts.read", c.Timeouts.Read},
		{"timeouts.write", c.Timeouts.Write},
		{"timeouts.idle", c.Timeouts.Idle},
		{"timeouts.shutdown", c.Timeouts.Shutdown},
	} {
		if d.v.Duration <= 0 {
			e.add(d.key, "must be positive (got %s)", fmtDuration(d.v.Duration))
		}
	}
	notAbove(e, "session.idle_timeout", s.IdleTimeout, "session.lifetime", s.Lifetime)
	notAbove(e, "session.remember_idle_timeout", s.RememberIdleTimeout, "session.remember_lifetime", s.RememberLifetime)
	notAbove(e, "session.lifetime", s.Lifetime, "session.remember_lifetime", s.RememberLifetime)
	notAbove(e, "throttle.base_delay", c.Throttle.BaseDelay, "throttle.max_delay", c.Throttle.MaxDelay)
	if s.TouchInterval.Duration >= s.IdleTimeout.Duration {
		e.add("session.touch_interval", "must be shorter than session.idle_timeout (got %s >= %s)",
			fmtDuration(s.TouchInterval.Duration), fmtDuration(s.IdleTimeout.Duration))
	}
}

func notAbove(e *Errors, key string, v Duration, limitKey string, limit Duration) {
	if v.Duration > limit.Duration {
		e.add(key, "must not exceed %s (got %s > %s)", limitKey, fmtDuration(v.Duration), fmtDuration(limit.Duration))
	}
}

func (c Config) checkHash(e *Errors) {
	h := c.Hash
	switch {
	case h.MemoryKiB < minMemoryKiB:
		e.add("hash.memory_kib", "must be at least %d (19 MiB, the OWASP minimum) (got %d)", minMemoryKiB, h.MemoryKiB)
	case h.MemoryKiB > maxMemoryKiB:
		e.add("hash.memory_kib", "must not exceed %d (1 GiB) (got %d)", maxMemoryKiB, h.MemoryKiB)
	}
	switch {
	case h.Time < 1 || h.Time < minTime && h.MemoryKiB < minMemoryKiBTime1:
		e.add("hash.time", "must be at least %d, or 1 with memory_kib >= %d (the OWASP minimum) (got %d)", minTime, minMemoryKiBTime1, h.Time)
	case h.Time > maxTime:
		e.add("hash.time", "must not exceed %d (got %d)", maxTime, h.Time)
	}
	if h.Threads < 1 || h.Threads > maxThreads {
		e.add("hash.threads", "must be from 1 to %d (got %d)", maxThreads, h.Threads)
	}
	if h.MaxBcryptCost < minBcryptCost || h.MaxBcryptCost > maxBcryptCost {
		e.add("hash.max_bcrypt_cost", "must be from %d to %d (got %d)", minBcryptCost, maxBcryptCost, h.MaxBcryptCost)
	}
	if h.MaxConcurrent < 0 {
		e.add("hash.max_concurrent", "must be 0 (number of CPUs) or more (got %d)", h.MaxConcurrent)
	}
	if h.MaxQueue < 0 {
		e.add("hash.max_queue", "must not be negative (got %d)", h.MaxQueue)
	}
}

func (c Config) checkThrottle(e *Errors) {
	t := c.Throttle
	for _, n := range []struct {
		key string
		v   int
	}{
		{"throttle.account_failures", t.AccountFailures},
		{"throttle.ip_failures", t.IPFailures},
		{"throttle.max_entries", t.MaxEntries},
	} {
		if n.v <= 0 {
			e.add(n.key, "must be positive (got %d)", n.v)
		}
	}
}

func (c Config) checkRules(e *Errors) {
	roles := map[string]bool{}
	for name, n := range c.Networks {
		k := "networks." + name
		if !validName(name) {
			e.add(k, "network names must be of [a-z0-9._@-] (got %q)", name)
		}
		if len(n.CIDRs) == 0 {
			e.add(k+".cidrs", "must list at least one range (got none)")
		}
		for j, s := range n.CIDRs {
			if isMapped(s) {
				e.add(index(k+".cidrs", j), mappedProblem, s)
			} else if _, ok := parseNet(s); !ok {
				e.add(index(k+".cidrs", j), "must be a CIDR or an IP address (got %q)", s)
			}
		}
		if n.Role != "" {
			if !validName(n.Role) {
				e.add(k+".role", "must be a name of [a-z0-9._@-] (got %q)", n.Role)
			}
			roles[n.Role] = true
		}
	}
	if len(c.Rules) == 0 {
		e.add("rules", "must define at least one rule: an empty rule set denies every request (got none)")
	}
	for i, r := range c.Rules {
		k := index("rules", i)
		if !cleanPrefix(r.Path) {
			e.add(k+".path", `must be a clean absolute path of [A-Za-z0-9._~/-] without a trailing "/", such as "/admin" (got %q)`, r.Path)
		}
		if r.Host != "" && !validHostPattern(r.Host) {
			e.add(k+".host", `must be a lower-case host name, or "*." and a domain (got %q)`, r.Host)
		}
		for j, m := range r.Methods {
			if !validMethod(m) {
				e.add(index(k+".methods", j), "must be an upper-case method such as GET (got %q)", m)
			}
		}
		for j, n := range r.Networks {
			if _, ok := c.Networks[n]; !ok {
				if isMapped(n) {
					e.add(index(k+".networks", j), mappedProblem, n)
				} else if _, ok := parseNet(n); !ok {
					e.add(index(k+".networks", j), "must name a [networks] entry or be a CIDR (got %q)", n)
				}
			}
		}
		switch r.Allow {
		case "", "authenticated":
		case "public", "deny":
			for key, list := range map[string][]string{"groups": r.Groups, "users": r.Users, "roles": r.Roles} {
				if len(list) > 0 {
					e.add(k+"."+key, `are allowed only when allow is "authenticated" (got allow = %q)`, r.Allow)
				}
			}
		default:
			e.add(k+".allow", `must be "authenticated", "public" or "deny" (got %q)`, r.Allow)
		}
		for j, g := range r.Groups {
			if !validName(g) {
				e.add(index(k+".groups", j), "must be a non-empty name of [a-z0-9._@-] (got %q)", g)
			}
		}
		for j, u := range r.Users {
			if !validName(u) {
				e.add(index(k+".users", j), "must be a non-empty name of [a-z0-9._@-] (got %q)", u)
			}
		}
		for j, role := range r.Roles {
			if !roles[role] {
				e.add(index(k+".roles", j), "must be the role of some [networks] entry (got %q)", role)
			}
		}
		switch r.Factor {
		case "", "one":
			if r.FactorMaxAge.Duration != 0 {
				e.add(k+".factor_max_age", `applies only with factor = "two" (got %v)`, r.FactorMaxAge.Duration)
			}
		case "two":
			if r.Allow != "" && r.Allow != "authenticated" {
				e.add(k+".factor", `"two" applies only when allow is "authenticated" (got allow = %q)`, r.Allow)
			}
			if d := r.FactorMaxAge.Duration; d < 0 || (d > 0 && d < time.Minute) {
				e.add(k+".factor_max_age", "must be 0 (any time in the session) or at least 1m (got %v)", d)
			}
		default:
			e.add(k+".factor", `must be "one" or "two" (got %q)`, r.Factor)
		}
	}
	for j, g := range c.MFA.RequiredGroups {
		if !validName(g) {
			e.add(index("mfa.required_groups", j), "must be a non-empty name of [a-z0-9._@-] (got %q)", g)
		}
	}
	if len(c.MFA.Issuer) > 64 || strings.ContainsAny(c.MFA.Issuer, ":\x00") {
		e.add("mfa.issuer", "must be at most 64 characters without \":\" (got %q)", c.MFA.Issuer)
	}
}

func validMethod(m string) bool {
	return m != "" && len(m) <= 16 && !strings.ContainsFunc(m, func(r rune) bool { return r < 'A' || r > 'Z' })
}

func validHostPattern(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return false
	}
	return !strings.ContainsFunc(h, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-')
	})
}

// NetworkPrefixes resolves a rule's networks entries (names or CIDRs) to
// prefixes. Call it only after Validate.
func (c Config) NetworkPrefixes(entries []string) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range entries {
		if nw, ok := c.Networks[n]; ok {
			for _, s := range nw.CIDRs {
				p, _ := parseNet(s)
				out = append(out, p)
			}
			continue
		}
		if p, ok := parseNet(n); ok {
			out = append(out, p)
		}
	}
	return out
}

func index(key string, i int) string { return key + "[" + strconv.Itoa(i) + "]" }

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && s[0] != '+'
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// pathChars reports whether p uses only unreserved URL characters and "/",
// so that nginx and authd cannot read it two ways.
func pathChars(p string) bool {
	return !strings.ContainsFunc(p, func(r rune) bool { return !isAlnum(r) && !strings.ContainsRune("._~/-", r) })
}

// cleanDir accepts "/" and clean paths like "/authd/" that end in "/".
func cleanDir(p string) bool {
	return strings.HasPrefix(p, "/") && strings.HasSuffix(p, "/") && pathChars(p) &&
		(p == "/" || path.Clean(p)+"/" == p)
}

// cleanPrefix accepts "/" and clean paths like "/admin" without a trailing "/".
func cleanPrefix(p string) bool {
	return strings.HasPrefix(p, "/") && pathChars(p) && path.Clean(p) == p
}

func validName(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r))
	})
}

func unsafeInURL(r rune) bool { return r == '\\' || unicode.IsSpace(r) || unicode.IsControl(r) }

// parseNet parses a CIDR, or a plain IP as a single-address prefix. It
// refuses IPv4-mapped ranges (see isMapped).
func parseNet(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err == nil {
		p = p.Masked()
	} else if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		p = netip.PrefixFrom(a, a.BitLen())
	} else {
		return netip.Prefix{}, false
	}
	if p.Bits() >= 96 && p.Addr().Is4In6() {
		return netip.Prefix{}, false
	}
	return p, true
}

// isMapped reports whether s is an IPv4-mapped IPv6 range or address
// (::ffff:10.0.0.0/104, ::ffff:10.0.0.1). authd matches client addresses
// with IPv4-mapped ones unmapped, so such a range could never match: a deny
// rule with it would deny no one.
func isMapped(s string) bool {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return p.Bits() >= 96 && p.Masked().Addr().Is4In6()
}

const mappedProblem = "must not be IPv4-mapped: client addresses are matched as IPv4, so write the range as IPv4, e.g. 10.0.0.0/8 for ::ffff:10.0.0.0/104 (got %q)"

// fmtDuration drops the zero units time.Duration.String adds ("24h0m0s" → "24h").
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// maxReauth bounds admin.reauth: a password prompt an hour old no longer
// says the admin is at the keyboard.
const maxReauth = time.Hour

func (c Config) checkAdmin(e *Errors) {
	if len(c.Admin.Groups) == 0 {
		e.add("admin.groups", "must name at least one group (got [])")
	}
	for i, g := range c.Admin.Groups {
		if g == "" || strings.ContainsAny(g, ", ") || strings.ContainsFunc(g, unicode.IsControl) || len(g) > 64 {
			e.add(index("admin.groups", i), "must be a group name without commas, spaces or control characters (got %q)", g)
		}
	}
	if d := c.Admin.Reauth.Duration; d <= 0 || d > maxReauth {
		e.add("admin.reauth", "must be positive and at most %s (got %s)", fmtDuration(maxReauth), fmtDuration(d))
	}
}
