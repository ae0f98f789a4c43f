package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/server"
	"github.com/authd/authd/authd/internal/users"
)

// loadConfig reads, validates and checks the files of the config at path;
// every problem is reported at once.
func loadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path)
	if err == nil {
		err = config.CheckFiles(cfg)
	}
	if err != nil {
		var ce *config.Errors
		if errors.As(err, &ce) {
			return cfg, fmt.Errorf("%s has problems:\n%s", path, ce.Error())
		}
		return cfg, err
	}
	return cfg, nil
}

// loadAll reads and checks what serve checks at start — config, users
// (opened as serve opens them), rules — for check-config and explain.
func loadAll(ctx context.Context, path string) (config.Config, *users.DB, *policy.Rules, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return cfg, nil, nil, err
	}
	rc, err := openRedis(ctx, cfg)
	if err != nil {
		return cfg, nil, nil, err
	}
	defer closeRedis(rc)
	u, err := openUsers(ctx, cfg, rc, path)
	if err != nil {
		return cfg, nil, nil, err
	}
	// Users and groups the rules name but nobody has are warnings
	// (config.Warnings), not errors: editing users must never stop authd
	// from starting or reloading.
	rules, err := policyRules(cfg)
	if err != nil {
		return cfg, nil, nil, err
	}
	// The CA file and the bind password are read as serve reads them; the
	// directory itself is not asked (it may be down: that is not a config error).
	dir, err := openDirectory(cfg.LDAP)
	if err != nil {
		return cfg, nil, nil, err
	}
	if dir != nil {
		_ = dir.Close()
	}
	return cfg, u.DB(), rules, nil
}

func policyRules(cfg config.Config) (*policy.Rules, error) {
	rs := make([]policy.Rule, 0, len(cfg.Rules))
	for i, r := range cfg.Rules {
		pr := policy.Rule{Host: r.Host, Path: r.Path, Methods: r.Methods, Networks: cfg.NetworkPrefixes(r.Networks),
			Groups: r.Groups, Users: r.Users, Roles: r.Roles, Label: fmt.Sprintf("rules[%d]", i),
			Factor: policy.Factor{Two: r.Factor == "two", MaxAge: r.FactorMaxAge.Duration}}
		switch r.Allow {
		case "public":
			pr.Access = policy.Public
		case "deny":
			pr.Access = policy.Denied
		}
		rs = append(rs, pr)
	}
	var nets []policy.Network
	for _, name := range slices.Sorted(maps.Keys(cfg.Networks)) {
		n := cfg.Networks[name]
		nets = append(nets, policy.Network{Name: name, Prefixes: cfg.NetworkPrefixes([]string{name}), Role: n.Role})
	}
	rules, err := policy.New(rs, nets)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return rules, nil
}

// serverOptions are the server's settings from cfg; secret and build stay
// as New was given them whatever a reload passes (server.SetOptions).
func serverOptions(cfg config.Config, secret []byte, build server.BuildInfo) server.Options {
	return server.Options{
		PublicURL: cfg.PublicURL, Prefix: cfg.Prefix, CookieName: cfg.CookieName(), InsecureCookies: cfg.Cookie.Insecure,
		TrustedProxies: cfg.TrustedNets(), LoginTitle: cfg.LoginTitle, DefaultRedirect: cfg.DefaultRedirect,
		RedirectHosts: cfg.RedirectHosts,
		Idle:          cfg.Session.IdleTimeout.Duration, Lifetime: cfg.Session.Lifetime.Duration,
		RememberIdle: cfg.Session.RememberIdleTimeout.Duration, RememberLifetime: cfg.Session.RememberLifetime.Duration,
		TouchInterval: cfg.Session.TouchInterval.Duration,
		HashParams:    hashParams(cfg), HashLimits: userLimits(cfg),
		MaxHashing: cfg.Hash.MaxConcurrent, MaxHashQueue: cfg.Hash.MaxQueue, HashQueueTimeout: cfg.Hash.QueueTimeout.Duration,
		Secret: secret, Build: build, FormOrigins: oidcOrigins(cfg),
		MFA:         server.MFAOptions{Issuer: cfg.MFA.Issuer, RequiredGroups: cfg.MFA.RequiredGroups, Passwordless: cfg.MFA.Passwordless},
		AdminGroups: cfg.Admin.Groups, Reauth: cfg.Admin.Reauth.Duration,
		ForgotLink:   cfg.SMTP.Enabled(),
		RegisterLink: cfg.Registration.Mode == "open" || cfg.Registration.Mode == "approval",
	}
}

func hashParams(cfg config.Config) users.Params {
	return users.Params{MemoryKiB: cfg.Hash.MemoryKiB, Time: cfg.Hash.Time, Threads: cfg.Hash.Threads}
}

// userLimits bounds the hash parameters a stored hash may carry, relative to
// the configured ones, so that no user's hash can make a login many times
// slower than a new hash's. Every store, the login handler and the CLI take
// them from here.
func userLimits(cfg config.Config) users.Limits {
	return users.LimitsFor(hashParams(cfg), cfg.Hash.MaxBcryptCost)
}

func cmdCheckConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("check-config", stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	cfg, db, _, err := loadAll(ctx, *cfgPath)
	if err != nil {
		return err
	}
	// A client secret serve could not read stops it at start: say so now.
	for _, p := range cfg.OIDC {
		if _, err := p.ClientSecret(); err != nil {
			return err
		}
	}
	// Warnings go to stderr and leave the exit code 0: the config works.
	for _, w := range config.Warnings(cfg, db) {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: ok (%d users)\n", *cfgPath, db.Len())
	return nil
}
