package config

import (
	"strings"
	"testing"
	"time"
)

func dur(s string) Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return Duration{d}
}

func TestValidateDefaultsNeedPublicURL(t *testing.T) {
	e := problems(t, Default().Validate())
	if got := keys(e); len(got) != 1 || got[0] != "public_url" {
		t.Errorf("got %q, want [public_url]", got)
	}
	if err := valid().Validate(); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}

func TestValidateRejects(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*Config)
		want string // the one problem's key
	}{
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, "listen"},
		{"admin groups empty", func(c *Config) { c.Admin.Groups = nil }, "admin.groups"},
		{"admin group with comma", func(c *Config) { c.Admin.Groups = []string{"admin", "a,b"} }, "admin.groups[1]"},
		{"admin reauth zero", func(c *Config) { c.Admin.Reauth = dur("0s") }, "admin.reauth"},
		{"admin reauth above an hour", func(c *Config) { c.Admin.Reauth = dur("2h") }, "admin.reauth"},
		{"listen port zero", func(c *Config) { c.Listen = "127.0.0.1:0" }, "listen"},
		{"listen port too big", func(c *Config) { c.Listen = "127.0.0.1:70000" }, "listen"},
		{"listen named port", func(c *Config) { c.Listen = "127.0.0.1:http" }, "listen"},
		{"listen relative socket", func(c *Config) { c.Listen = "unix:run/authd.sock" }, "listen"},
		{"listen unclean socket", func(c *Config) { c.Listen = "unix:/run/../authd.sock" }, "listen"},
		{"socket_mode not octal", func(c *Config) { c.SocketMode = "0680" }, "socket_mode"},
		{"socket_mode above 0777", func(c *Config) { c.SocketMode = "1777" }, "socket_mode"},
		{"socket_mode empty", func(c *Config) { c.SocketMode = "" }, "socket_mode"},
		{"public_url empty", func(c *Config) { c.PublicURL = "" }, "public_url"},
		{"public_url relative", func(c *Config) { c.PublicURL = "app.example.com" }, "public_url"},
		{"public_url ftp", func(c *Config) { c.PublicURL = "ftp://app.example.com" }, "public_url"},
		{"public_url no host", func(c *Config) { c.PublicURL = "https://" }, "public_url"},
		{"public_url opaque", func(c *Config) { c.PublicURL = "https:app.example.com" }, "public_url"},
		{"public_url path", func(c *Config) { c.PublicURL = "https://app.example.com/app" }, "public_url"},
		{"public_url query", func(c *Config) { c.PublicURL = "https://app.example.com/?a=b" }, "public_url"},
		{"public_url empty query", func(c *Config) { c.PublicURL = "https://app.example.com?" }, "public_url"},
		{"public_url fragment", func(c *Config) { c.PublicURL = "https://app.example.com#x" }, "public_url"},
		{"public_url userinfo", func(c *Config) { c.PublicURL = "https://u:p@app.example.com" }, "public_url"},
		{"public_url bad port", func(c *Config) { c.PublicURL = "https://app.example.com:99999" }, "public_url"},
		{"http without insecure cookie", func(c *Config) { c.PublicURL = "http://localhost:8080" }, "cookie.insecure"},
		{"https with insecure cookie", func(c *Config) { c.Cookie.Insecure = true }, "cookie.insecure"},
		{"prefix no leading slash", func(c *Config) { c.Prefix = "authd/" }, "prefix"},
		{"prefix no trailing slash", func(c *Config) { c.Prefix = "/authd" }, "prefix"},
		{"prefix double slash", func(c *Config) { c.Prefix = "/a//b/" }, "prefix"},
		{"prefix dot segment", func(c *Config) { c.Prefix = "/a/../b/" }, "prefix"},
		{"prefix single dot", func(c *Config) { c.Prefix = "/./" }, "prefix"},
		{"prefix percent", func(c *Config) { c.Prefix = "/a%2fb/" }, "prefix"},
		{"prefix empty", func(c *Config) { c.Prefix = "" }, "prefix"},
		{"data_dir empty", func(c *Config) { c.DataDir = "" }, "data_dir"},
		{"users_file empty", func(c *Config) { c.UsersFile = "" }, "users_file"},
		{"trusted proxy garbage", func(c *Config) { c.TrustedProxies = []string{"127.0.0.1", "localhost"} }, "trusted_proxies[1]"},
		{"trusted proxy bad mask", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, "trusted_proxies[0]"},
		{"trusted proxy everyone v4", func(c *Config) { c.TrustedProxies = []string{"0.0.0.0/0"} }, "trusted_proxies[0]"},
		{"trusted proxy everyone v6", func(c *Config) { c.TrustedProxies = []string{"::/0"} }, "trusted_proxies[0]"},
		{"trusted proxy zone", func(c *Config) { c.TrustedProxies = []string{"fe80::1%eth0"} }, "trusted_proxies[0]"},
		{"trusted proxy v4-mapped", func(c *Config) { c.TrustedProxies = []string{"127.0.0.1", "::ffff:127.0.0.1"} }, "trusted_proxies[1]"},
		{"default_redirect empty", func(c *Config) { c.DefaultRedirect = "" }, "default_redirect"},
		{"default_redirect absolute", func(c *Config) { c.DefaultRedirect = "https://evil.example" }, "default_redirect"},
		{"default_redirect protocol-relative", func(c *Config) { c.DefaultRedirect = "//evil.example" }, "default_redirect"},
		{"default_redirect backslash", func(c *Config) { c.DefaultRedirect = `/\evil.example` }, "default_redirect"},
		{"default_redirect newline", func(c *Config) { c.DefaultRedirect = "/a\r\nSet-Cookie: x" }, "default_redirect"},
		{"redirect host http", func(c *Config) { c.RedirectHosts = []string{"http://other.example.com"} }, "redirect_hosts[0]"},
		{"redirect host path", func(c *Config) { c.RedirectHosts = []string{"https://ok.example", "https://other.example.com/x"} }, "redirect_hosts[1]"},
		{"redirect host slash", func(c *Config) { c.RedirectHosts = []string{"https://other.example.com/"} }, "redirect_hosts[0]"},
		{"redirect host bare", func(c *Config) { c.RedirectHosts = []string{"other.example.com"} }, "redirect_hosts[0]"},
		{"redirect host userinfo", func(c *Config) { c.RedirectHosts = []string{"https://a@other.example.com"} }, "redirect_hosts[0]"},
		{"redirect host javascript", func(c *Config) { c.RedirectHosts = []string{"javascript:alert(1)"} }, "redirect_hosts[0]"},
		{"cookie name empty", func(c *Config) { c.Cookie.Name = "" }, "cookie.name"},
		{"cookie name bad char", func(c *Config) { c.Cookie.Name = "a;b" }, "cookie.name"},
		{"cookie name space", func(c *Config) { c.Cookie.Name = "a b" }, "cookie.name"},
		{"cookie name too long", func(c *Config) { c.Cookie.Name = strings.Repeat("a", 65) }, "cookie.name"},
		{"cookie name with prefix", func(c *Config) { c.Cookie.Name = "__Host-s" }, "cookie.name"},
		{"touch negative", func(c *Config) { c.Session.TouchInterval = dur("-1m") }, "session.touch_interval"},
		{"queue_timeout zero", func(c *Config) { c.Hash.QueueTimeout = Duration{} }, "hash.queue_timeout"},
		{"window zero", func(c *Config) { c.Throttle.Window = Duration{} }, "throttle.window"},
		{"read_header zero", func(c *Config) { c.Timeouts.ReadHeader = Duration{} }, "timeouts.read_header"},
		{"read zero", func(c *Config) { c.Timeouts.Read = Duration{} }, "timeouts.read"},
		{"write zero", func(c *Config) { c.Timeouts.Write = Duration{} }, "timeouts.write"},
		{"idle zero", func(c *Config) { c.Timeouts.Idle = Duration{} }, "timeouts.idle"},
		{"shutdown zero", func(c *Config) { c.Timeouts.Shutdown = Duration{} }, "timeouts.shutdown"},
		{"idle above lifetime", func(c *Config) { c.Session.IdleTimeout = dur("24h") }, "session.idle_timeout"},
		{"remember idle above lifetime", func(c *Config) { c.Session.RememberIdleTimeout = dur("1000h") }, "session.remember_idle_timeout"},
		{"lifetime above remember", func(c *Config) { c.Session.Lifetime = dur("1000h") }, "session.lifetime"},
		{"touch not below idle", func(c *Config) { c.Session.TouchInterval = dur("30m") }, "session.touch_interval"},
		{"base above max delay", func(c *Config) { c.Throttle.BaseDelay = dur("1h") }, "throttle.base_delay"},
		{"hash memory weak", func(c *Config) { c.Hash.MemoryKiB = 19455 }, "hash.memory_kib"},
		{"hash memory huge", func(c *Config) { c.Hash.MemoryKiB = 1<<20 + 1 }, "hash.memory_kib"},
		{"hash time weak", func(c *Config) { c.Hash.Time = 1 }, "hash.time"},
		{"hash time zero", func(c *Config) { c.Hash.MemoryKiB = 65536; c.Hash.Time = 0 }, "hash.time"},
		{"hash time huge", func(c *Config) { c.Hash.Time = 21 }, "hash.time"},
		{"hash threads zero", func(c *Config) { c.Hash.Threads = 0 }, "hash.threads"},
		{"hash threads many", func(c *Config) { c.Hash.Threads = 17 }, "hash.threads"},
		{"max_bcrypt_cost below 10", func(c *Config) { c.Hash.MaxBcryptCost = 9 }, "hash.max_bcrypt_cost"},
		{"max_bcrypt_cost above 14", func(c *Config) { c.Hash.MaxBcryptCost = 15 }, "hash.max_bcrypt_cost"},
		{"max_concurrent negative", func(c *Config) { c.Hash.MaxConcurrent = -1 }, "hash.max_concurrent"},
		{"max_queue negative", func(c *Config) { c.Hash.MaxQueue = -1 }, "hash.max_queue"},
		{"account_failures zero", func(c *Config) { c.Throttle.AccountFailures = 0 }, "throttle.account_failures"},
		{"ip_failures negative", func(c *Config) { c.Throttle.IPFailures = -1 }, "throttle.ip_failures"},
		{"max_entries zero", func(c *Config) { c.Throttle.MaxEntries = 0 }, "throttle.max_entries"},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, "log.level"},
		{"log level case", func(c *Config) { c.Log.Level = "INFO" }, "log.level"},
		{"no rules", func(c *Config) { c.Rules = nil }, "rules"},
		{"rule path relative", func(c *Config) { c.Rules[0].Path = "admin" }, "rules[0].path"},
		{"rule path empty", func(c *Config) { c.Rules[0].Path = "" }, "rules[0].path"},
		{"rule path trailing slash", func(c *Config) { c.Rules = []Rule{{Path: "/admin/"}, {Path: "/"}} }, "rules[0].path"},
		{"rule path dot dot", func(c *Config) { c.Rules = []Rule{{Path: "/"}, {Path: "/a/../b"}} }, "rules[1].path"},
		{"rule path encoded", func(c *Config) { c.Rules[0].Path = "/a%2e" }, "rules[0].path"},
		{"rule path query", func(c *Config) { c.Rules[0].Path = "/a?b" }, "rules[0].path"},
		{"rule allow unknown", func(c *Config) { c.Rules[0].Allow = "everyone" }, "rules[0].allow"},
		{"groups on public", func(c *Config) { c.Rules[0] = Rule{Path: "/", Allow: "public", Groups: []string{"a"}} }, "rules[0].groups"},
		{"users on deny", func(c *Config) { c.Rules[0] = Rule{Path: "/", Allow: "deny", Users: []string{"a"}} }, "rules[0].users"},
		{"group empty", func(c *Config) { c.Rules[0].Groups = []string{"ok", ""} }, "rules[0].groups[1]"},
		{"group upper case", func(c *Config) { c.Rules[0].Groups = []string{"Admin"} }, "rules[0].groups[0]"},
		{"rule host upper case", func(c *Config) { c.Rules[0].Host = "App.example.com" }, "rules[0].host"},
		{"rule host with port", func(c *Config) { c.Rules[0].Host = "app.example.com:443" }, "rules[0].host"},
		{"rule host bare wildcard", func(c *Config) { c.Rules[0].Host = "*" }, "rules[0].host"},
		{"rule method lower case", func(c *Config) { c.Rules[0].Methods = []string{"get"} }, "rules[0].methods[0]"},
		{"rule network unknown", func(c *Config) { c.Rules[0].Networks = []string{"office"} }, "rules[0].networks[0]"},
		{"rule role unknown", func(c *Config) { c.Rules[0].Roles = []string{"office"} }, "rules[0].roles[0]"},
		{"roles on public", func(c *Config) {
			c.Networks = map[string]Network{"office": {CIDRs: []string{"192.0.2.0/24"}, Role: "office"}}
			c.Rules[0] = Rule{Path: "/", Allow: "public", Roles: []string{"office"}}
		}, "rules[0].roles"},
		{"network without cidrs", func(c *Config) { c.Networks = map[string]Network{"office": {}} }, "networks.office.cidrs"},
		{"network bad cidr", func(c *Config) { c.Networks = map[string]Network{"office": {CIDRs: []string{"10.0.0.0/33"}}} }, "networks.office.cidrs[0]"},
		{"network v4-mapped range", func(c *Config) {
			c.Networks = map[string]Network{"office": {CIDRs: []string{"10.0.0.0/8", "::ffff:192.0.2.0/120"}}}
		}, "networks.office.cidrs[1]"},
		{"network v4-mapped address", func(c *Config) { c.Networks = map[string]Network{"office": {CIDRs: []string{"::ffff:192.0.2.1"}}} }, "networks.office.cidrs[0]"},
		{"rule network v4-mapped", func(c *Config) { c.Rules[0].Networks = []string{"::ffff:10.0.0.0/104"} }, "rules[0].networks[0]"},
		{"network bad name", func(c *Config) { c.Networks = map[string]Network{"Office": {CIDRs: []string{"10.0.0.0/8"}}} }, "networks.Office"},
		{"network bad role", func(c *Config) {
			c.Networks = map[string]Network{"office": {CIDRs: []string{"10.0.0.0/8"}, Role: "A B"}}
		}, "networks.office.role"},
		{"user bad char", func(c *Config) { c.Rules[0].Users = []string{"a b"} }, "rules[0].users[0]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.set(&c)
			e := problems(t, c.Validate())
			if got := keys(e); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("got keys %q, want [%s] (error: %v)", got, tt.want, &e)
			}
			if msg := e[0].String(); !strings.HasPrefix(msg, tt.want+": ") || !strings.Contains(msg, "(got ") {
				t.Errorf("got %q, want %q: … (got …)", msg, tt.want)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*Config)
	}{
		{"unix socket", func(c *Config) { c.Listen = "unix:/run/authd/authd.sock" }},
		{"ipv6 listen", func(c *Config) { c.Listen = "[::1]:9091" }},
		{"all interfaces", func(c *Config) { c.Listen = ":9091" }},
		{"plain http for development", func(c *Config) { c.PublicURL = "http://localhost:8080"; c.Cookie.Insecure = true }},
		{"http redirect host in development", func(c *Config) {
			c.PublicURL = "http://localhost:8080"
			c.Cookie.Insecure = true
			c.RedirectHosts = []string{"http://localhost:8501"}
		}},
		{"public_url trailing slash", func(c *Config) { c.PublicURL = "https://app.example.com/" }},
		{"public_url port", func(c *Config) { c.PublicURL = "https://app.example.com:8443" }},
		{"redirect host with port", func(c *Config) { c.RedirectHosts = []string{"https://other.example.com:8443"} }},
		{"root prefix", func(c *Config) { c.Prefix = "/" }},
		{"nested prefix", func(c *Config) { c.Prefix = "/_auth/v1.0~x/" }},
		{"relative paths", func(c *Config) { c.DataDir = "data"; c.UsersFile = "users.toml" }},
		{"plain ip proxies", func(c *Config) { c.TrustedProxies = []string{"10.0.0.5", "fd00::1"} }},
		{"no trusted proxies", func(c *Config) { c.TrustedProxies = nil }},
		{"deep default redirect", func(c *Config) { c.DefaultRedirect = "/app/?page=1" }},
		{"stronger hash", func(c *Config) { c.Hash.MemoryKiB = 65536; c.Hash.Time = 3; c.Hash.Threads = 4 }},
		{"owasp memory-heavy alternative", func(c *Config) { c.Hash.MemoryKiB = 47104; c.Hash.Time = 1 }},
		{"hash ceilings", func(c *Config) { c.Hash.MemoryKiB = 1 << 20; c.Hash.Time = 20; c.Hash.Threads = 16 }},
		{"no hashing queue", func(c *Config) { c.Hash.MaxQueue = 0; c.Hash.MaxConcurrent = 2 }},
		{"equal timeouts", func(c *Config) {
			c.Session.IdleTimeout = c.Session.Lifetime
			c.Throttle.BaseDelay = c.Throttle.MaxDelay
		}},
		{"rule forms", func(c *Config) {
			c.Rules = []Rule{
				{Path: "/admin", Groups: []string{"admin", "ops-team"}, Users: []string{"alice@example.com", "bob.smith_1"}},
				{Path: "/admin/v1.0/x~y", Allow: "deny"},
				{Path: "/_stcore/health", Allow: "public"},
				{Path: "/", Allow: "authenticated"},
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.set(&c)
			if err := c.Validate(); err != nil {
				t.Errorf("got %v, want nil", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := valid()
	c.Listen = "nowhere"
	c.Session.IdleTimeout = dur("24h")
	c.Hash.MemoryKiB = 1024
	c.Log.Level = "loud"
	c.Rules = []Rule{{Path: "/x/", Allow: "maybe"}}
	e := problems(t, c.Validate())
	want := []string{
		`listen: must be host:port or unix:/absolute/path (got "nowhere")`,
		"session.idle_timeout: must not exceed session.lifetime (got 24h > 12h)",
		"hash.memory_kib: must be at least 19456 (19 MiB, the OWASP minimum) (got 1024)",
		`log.level: must be one of debug, info, warn, error (got "loud")`,
		`rules[0].path: must be a clean absolute path of [A-Za-z0-9._~/-] without a trailing "/", such as "/admin" (got "/x/")`,
		`rules[0].allow: must be "authenticated", "public" or "deny" (got "maybe")`,
	}
	if got := strings.Split(e.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
