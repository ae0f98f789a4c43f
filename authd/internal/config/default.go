package config

import "time"

// Default returns the production defaults. PublicURL is left empty on
// purpose: it has no sensible default, so a file that omits it fails Validate.
func Default() Config {
	return Config{
		Listen:          "127.0.0.1:9091",
		SocketMode:      "0660",
		Prefix:          "/authd/",
		DataDir:         "/var/lib/authd",
		UsersFile:       "/etc/authd/users.toml",
		TrustedProxies:  []string{"127.0.0.0/8", "::1/128"},
		LoginTitle:      "Sign in",
		DefaultRedirect: "/",
		RedirectHosts:   []string{},
		Store:           "embedded",
		Cookie:          Cookie{Name: "authd_session"},
		Session: Session{
			IdleTimeout:         Duration{30 * time.Minute},
			Lifetime:            Duration{12 * time.Hour},
			RememberIdleTimeout: Duration{168 * time.Hour},
			RememberLifetime:    Duration{720 * time.Hour},
			TouchInterval:       Duration{time.Minute},
		},
		Hash: Hash{
			MemoryKiB:     19456,
			Time:          2,
			Threads:       1,
			MaxBcryptCost: 12,
			MaxQueue:      32,
			QueueTimeout:  Duration{2 * time.Second},
		},
		Throttle: Throttle{
			AccountFailures: 5,
			IPFailures:      20,
			BaseDelay:       Duration{time.Second},
			MaxDelay:        Duration{15 * time.Minute},
			Window:          Duration{15 * time.Minute},
			MaxEntries:      100000,
		},
		Timeouts: Timeouts{
			ReadHeader: Duration{5 * time.Second},
			Read:       Duration{10 * time.Second},
			Write:      Duration{10 * time.Second},
			Idle:       Duration{120 * time.Second},
			Shutdown:   Duration{10 * time.Second},
		},
		Log:          Log{Level: "info"},
		Redis:        DefaultRedis(),
		MFA:          MFA{RequiredGroups: []string{}},
		Admin:        Admin{Groups: []string{"admin"}, Reauth: Duration{5 * time.Minute}},
		LDAP:         DefaultLDAP(),
		Networks:     map[string]Network{},
		Rules:        []Rule{{Path: "/", Allow: "authenticated"}},
		SMTP:         defaultSMTP(),
		Registration: defaultRegistration(),
		OIDC:         []OIDC{},
	}
}
