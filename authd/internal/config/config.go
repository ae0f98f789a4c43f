// Package config turns authd's TOML configuration into a validated Config.
package config

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is authd's whole configuration. Default returns the values used for
// every key the file leaves out.
type Config struct {
	// Listen is a TCP address ("127.0.0.1:9091") or a unix socket ("unix:/run/authd/authd.sock").
	Listen string `toml:"listen"`
	// SocketMode is the permission of a unix socket, as an octal string ("0660").
	SocketMode string `toml:"socket_mode"`
	// PublicURL is the site's origin as browsers see it ("https://app.example.com").
	// Absolute URLs and Origin checks use it, never the Host header.
	PublicURL string `toml:"public_url"`
	// Prefix is the public path authd's pages live under ("/authd/"); it starts and ends with "/".
	Prefix string `toml:"prefix"`
	// DataDir holds the embedded session store, the CSRF secret and the admin socket.
	DataDir string `toml:"data_dir"`
	// UsersFile is the TOML users file.
	UsersFile string `toml:"users_file"`
	// TrustedProxies are CIDRs whose forwarded headers (X-Original-URI, X-Forwarded-For, …) are believed.
	TrustedProxies []string `toml:"trusted_proxies"`
	// LoginTitle is shown on the login page.
	LoginTitle string `toml:"login_title"`
	// DefaultRedirect is the local path users land on when no valid return path was given.
	DefaultRedirect string `toml:"default_redirect"`
	// RedirectHosts are extra "scheme://host[:port]" origins that return URLs may point to.
	RedirectHosts []string `toml:"redirect_hosts"`
	// Store is where sessions, users and login throttles live: "embedded"
	// (this server only) or "redis" (shared by several authd instances).
	Store string `toml:"store"`

	Cookie   Cookie   `toml:"cookie"`
	Session  Session  `toml:"session"`
	Hash     Hash     `toml:"hash"`
	Throttle Throttle `toml:"throttle"`
	Timeouts Timeouts `toml:"timeouts"`
	Log      Log      `toml:"log"`
	Redis    Redis    `toml:"redis"`
	MFA      MFA      `toml:"mfa"`
	Admin    Admin    `toml:"admin"`
	// SMTP, Registration and Account configure mail, self-registration and the account page.
	SMTP         SMTP         `toml:"smtp"`
	Registration Registration `toml:"registration"`
	Account      Account      `toml:"account"`
	// LDAP is sign-in against an LDAP directory, beside the local users.
	LDAP LDAP `toml:"ldap"`
	// Networks name client address ranges that rules refer to.
	Networks map[string]Network `toml:"networks"`
	// Rules are matched in order; the first rule whose conditions all match decides.
	Rules []Rule `toml:"rules"`
	// OIDC are the OpenID Connect providers offered on the login page.
	OIDC []OIDC `toml:"oidc"`
}

// Network is a named set of client addresses.
type Network struct {
	// CIDRs are the network's ranges ("192.0.2.0/24", "2001:db8::/32") or single addresses.
	CIDRs []string `toml:"cidrs"`
	// Role, if set, is carried by every request from this network, with or
	// without a login; rules grant access to it with roles = [...].
	Role string `toml:"role"`
}

// Cookie configures the session cookie.
type Cookie struct {
	// Name is the cookie's base name; "__Host-" is prepended unless Insecure is set.
	Name string `toml:"name"`
	// Insecure drops Secure and the __Host- prefix: for plain-HTTP development only.
	Insecure bool `toml:"insecure"`
}

// Session configures session lifetimes.
type Session struct {
	// IdleTimeout ends a session after this long without a request.
	IdleTimeout Duration `toml:"idle_timeout"`
	// Lifetime ends a session this long after login, however active.
	Lifetime Duration `toml:"lifetime"`
	// RememberIdleTimeout and RememberLifetime replace the two above for
	// "remember me" logins.
	RememberIdleTimeout Duration `toml:"remember_idle_timeout"`
	RememberLifetime    Duration `toml:"remember_lifetime"`
	// TouchInterval is how stale "last seen" may get before a verify writes it again.
	TouchInterval Duration `toml:"touch_interval"`
}

// Hash configures password hashing for new hashes and the bounds for stored ones.
type Hash struct {
	// MemoryKiB, Time and Threads are the argon2id m, t and p parameters.
	MemoryKiB uint32 `toml:"memory_kib"`
	Time      uint32 `toml:"time"`
	Threads   uint8  `toml:"threads"`
	// MaxBcryptCost is the highest bcrypt cost an imported hash may have. Stored argon2id
	// hashes may use at most 4 times MemoryKiB and Time, and at most Threads.
	MaxBcryptCost int `toml:"max_bcrypt_cost"`
	// MaxConcurrent bounds simultaneous hash computations; 0 means half the CPUs (at least one).
	MaxConcurrent int `toml:"max_concurrent"`
	// MaxQueue bounds logins waiting for a hashing slot; beyond it logins get 503 at once.
	MaxQueue int `toml:"max_queue"`
	// QueueTimeout bounds how long a login waits for a slot before 503.
	QueueTimeout Duration `toml:"queue_timeout"`
}

// Throttle configures login throttling.
type Throttle struct {
	// AccountFailures is how many failures for one user from one IP are free before delays start.
	AccountFailures int `toml:"account_failures"`
	// IPFailures is how many failures from one IP (any user) are free before delays start.
	IPFailures int `toml:"ip_failures"`
	// BaseDelay is the first delay; each further failure doubles it up to MaxDelay.
	BaseDelay Duration `toml:"base_delay"`
	// MaxDelay caps the delay.
	MaxDelay Duration `toml:"max_delay"`
	// Window is how long a failure is remembered.
	Window Duration `toml:"window"`
	// MaxEntries bounds the memory the throttle may use.
	MaxEntries int `toml:"max_entries"`
}

// Timeouts are the HTTP server's timeouts.
type Timeouts struct {
	ReadHeader Duration `toml:"read_header"`
	Read       Duration `toml:"read"`
	Write      Duration `toml:"write"`
	Idle       Duration `toml:"idle"`
	Shutdown   Duration `toml:"shutdown"`
}

// Log configures logging.
type Log struct {
	// Level is "debug", "info", "warn" or "error".
	Level string `toml:"level"`
}

// Admin configures the admin console.
type Admin struct {
	// Groups are the groups whose enabled members may use the admin console;
	// the last enabled member of them cannot be locked, deleted or demoted.
	Groups []string `toml:"groups"`
	// Reauth is how long after entering their password an admin may take
	// sensitive actions (delete, reset, token creation, granting an admin
	// group) without entering it again.
	Reauth Duration `toml:"reauth"`
}

// Rule grants or refuses access to requests that match all of its conditions.
type Rule struct {
	// Host matches the request's host exactly, or any subdomain with "*.example.com"; empty matches any.
	Host string `toml:"host"`
	// Path is a canonical path prefix ("/admin"); it matches "/admin" and "/admin/…", not "/administrator".
	Path string `toml:"path"`
	// Methods, when set, are the upper-case methods the rule matches.
	Methods []string `toml:"methods"`
	// Networks, when set, are network names or CIDRs the client address must be in.
	Networks []string `toml:"networks"`
	// Allow is "authenticated" (default), "public" or "deny".
	Allow string `toml:"allow"`
	// Groups and Users, when set, restrict an "authenticated" rule to members.
	Groups []string `toml:"groups"`
	Users  []string `toml:"users"`
	// Roles, for an "authenticated" rule, admit requests from networks with these roles, without a login.
	Roles []string `toml:"roles"`
	// Factor is "one" (default: a password is enough) or "two": a session must
	// also have proved a second factor (TOTP, recovery code or passkey).
	Factor string `toml:"factor"`
	// FactorMaxAge, with factor = "two", is how recent the second factor must
	// be ("15m"); zero means any time during the session.
	FactorMaxAge Duration `toml:"factor_max_age"`
}

// MFA configures second factors.
type MFA struct {
	// Issuer names the site in authenticator apps; empty uses login_title.
	Issuer string `toml:"issuer"`
	// RequiredGroups are groups whose members must enrol a second factor at
	// their next login and use it for every path.
	RequiredGroups []string `toml:"required_groups"`
	// Passwordless lets a discoverable passkey sign in without a password.
	Passwordless bool `toml:"passwordless"`
}

// Duration is a time.Duration written as a string ("30m") in TOML.
type Duration struct{ time.Duration }

// CookieName is the session cookie's name as sent to browsers: Name with the
// "__Host-" prefix, which pins the cookie to this host over HTTPS, unless
// Insecure is set.
func (c Config) CookieName() string {
	if c.Cookie.Insecure {
		return c.Cookie.Name
	}
	return "__Host-" + c.Cookie.Name
}

// TrustedNets returns TrustedProxies parsed, a plain IP as a single-address
// prefix. Call it only on a validated Config: it skips entries it cannot parse.
func (c Config) TrustedNets() []netip.Prefix {
	nets := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for _, s := range c.TrustedProxies {
		if p, ok := parseNet(s); ok {
			nets = append(nets, p)
		}
	}
	return nets
}

// ListenNetwork splits Listen into arguments for net.Listen: ("unix", path)
// for "unix:/path", otherwise ("tcp", Listen).
func (c Config) ListenNetwork() (network, address string) {
	if p, ok := strings.CutPrefix(c.Listen, "unix:"); ok {
		return "unix", p
	}
	return "tcp", c.Listen
}

// SocketFileMode returns SocketMode as a file mode, or 0 if it does not parse
// (which Validate rejects).
func (c Config) SocketFileMode() os.FileMode {
	m, err := strconv.ParseUint(c.SocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return 0
	}
	return os.FileMode(m)
}
