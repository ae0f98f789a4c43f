package config

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParse feeds config.Parse any text. It never panics, and whatever it accepts keeps the
// promises serve relies on: an absolute public URL, secure cookies unless it is plain HTTP, at
// least one rule, idle ≤ lifetime, argon2id at or above the OWASP minimum, trusted proxies that
// all parse.
func FuzzParse(f *testing.F) {
	base := "public_url = \"https://app.example.com\"\ndata_dir = \"/var/lib/authd\"\nusers_file = \"/etc/authd/users.toml\"\n"
	for _, s := range []string{
		base,
		base + "[[rules]]\npath = \"/admin\"\ngroups = [\"admins\"]\n[[rules]]\npath = \"/\"\n",
		base + "rules = []\n",
		base + "[session]\nidle_timeout = \"2h\"\nlifetime = \"1h\"\n",
		base + "[hash]\nmemory_kib = 1024\n",
		base + "[cookie]\ninsecure = true\n",
		strings.Replace(base, "https", "http", 1) + "[cookie]\ninsecure = true\n",
		base + "trusted_proxies = [\"0.0.0.0/0\", \"x\"]\n",
		base + "bogus = 1\n[bogus]\nx = 1\n",
		base + "[networks.office]\ncidrs = [\"10.0.0.0/8\"]\nrole = \"office\"\n[[rules]]\npath = \"/o\"\nroles = [\"office\"]\n",
		base + "[redis]\naddrs = [\"127.0.0.1:6379\"]\npassword_env = \"X\"\n",
		base + "[[oidc]]\nid = \"corp\"\nissuer = \"https://sso.example.com\"\nclient_id = \"authd\"\ncreate_users = true\nallowed_groups = [\"a\"]\n",
		"", "[[rules]", "public_url = 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse(strings.NewReader(text))
		if err != nil {
			return
		}
		u, perr := url.Parse(c.PublicURL)
		if perr != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			t.Fatalf("accepted public_url %q", c.PublicURL)
		}
		if (u.Scheme == "https") == c.Cookie.Insecure {
			t.Fatalf("accepted cookie.insecure = %v with public_url %q", c.Cookie.Insecure, c.PublicURL)
		}
		if len(c.Rules) == 0 {
			t.Fatalf("accepted an empty rule set")
		}
		if c.Session.IdleTimeout.Duration > c.Session.Lifetime.Duration || c.Session.IdleTimeout.Duration <= 0 {
			t.Fatalf("accepted idle %v with lifetime %v", c.Session.IdleTimeout, c.Session.Lifetime)
		}
		// OWASP: m ≥ 19 MiB with t ≥ 2, or m ≥ 46 MiB with t = 1; p ≥ 1.
		if c.Hash.MemoryKiB < 19456 || c.Hash.Time < 1 || c.Hash.Time < 2 && c.Hash.MemoryKiB < 47104 || c.Hash.Threads < 1 {
			t.Fatalf("accepted weak hash parameters %+v", c.Hash)
		}
		if n := len(c.TrustedNets()); n != len(c.TrustedProxies) {
			t.Fatalf("accepted trusted_proxies %q of which only %d parse", c.TrustedProxies, n)
		}
	})
}
