package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/server"
	"github.com/authd/authd/authd/internal/users"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("serve", stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	cfg, udb, rules, err := loadAll(*cfgPath)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log.Level, stdout)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	secret, err := loadSharedSecret(ctx, cfg)
	if err != nil {
		return err
	}
	_ = udb // already validated; the stores below load their own live copy
	st, err := openStores(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing stores failed", zap.Error(err))
		}
	}()
	store, usersFile, thr := st.sessions, st.users, st.throttle

	// One verifier per process: its nonce cache and start time must outlive reloads.
	verifier := machine.NewVerifier(st.credentials, st.nonces, machine.DefaultWindow, time.Now)

	var srv *server.Server
	var reloadMu sync.Mutex
	reload := func() error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		if _, err := usersFile.Reload(); err != nil {
			log.Error("reload failed, keeping the last good users", zap.String("event", "reload_failed"), zap.Error(err))
			return err
		}
		if err := st.reloadCredentials(ctx); err != nil {
			log.Error("reload failed, keeping the last good machine credentials", zap.String("event", "reload_failed"), zap.Error(err))
			return err
		}
		ncfg, _, nrules, err := loadAll(*cfgPath)
		if err != nil {
			log.Error("reload failed, keeping the last good rules", zap.String("event", "reload_failed"), zap.Error(err))
			return err
		}
		srv.SetRules(nrules)
		if ncfg.Listen != cfg.Listen || ncfg.DataDir != cfg.DataDir || ncfg.PublicURL != cfg.PublicURL {
			log.Warn("some changed settings apply only after a restart", zap.String("event", "reload"))
		}
		log.Info("reloaded", zap.String("event", "reload"), zap.Int("users", usersFile.DB().Len()))
		return nil
	}
	srv, err = server.New(serverOptions(cfg, secret), server.Deps{
		Users: usersFile, Sessions: store, Throttle: thr, Machine: verifier, Logger: log, Now: time.Now,
	}, rules)
	if err != nil {
		return err
	}

	// Bind before serving so a port clash is an error at start.
	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	adminPath := filepath.Join(cfg.DataDir, "admin.sock")
	adminLn, err := listenUnix(adminPath, 0o600)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.Duration,
		ReadTimeout:       cfg.Timeouts.Read.Duration,
		WriteTimeout:      cfg.Timeouts.Write.Duration,
		IdleTimeout:       cfg.Timeouts.Idle.Duration,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	as := &http.Server{Handler: server.NewAdmin(store, reload, log, time.Now).Handler(), ReadHeaderTimeout: 5 * time.Second}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	go func() { errc <- as.Serve(adminLn) }()
	go st.watchUsers(ctx, func(changed bool, err error) {
		if err != nil {
			log.Error("users file reload failed, keeping the last good copy", zap.String("event", "reload_failed"), zap.Error(err))
		} else if changed {
			log.Info("users file reloaded", zap.String("event", "reload"), zap.Int("users", usersFile.DB().Len()))
		}
	})
	go st.watchCredentials(ctx, time.Second, func(changed bool, err error) {
		if err != nil {
			log.Error("machine credentials reload failed, keeping the last good copy", zap.String("event", "reload_failed"), zap.Error(err))
		} else if changed {
			log.Info("machine credentials reloaded", zap.String("event", "reload"))
		}
	})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	log.Info("authd ready", zap.String("listen", cfg.Listen), zap.String("public_url", cfg.PublicURL),
		zap.Int("users", usersFile.DB().Len()), zap.Int("sessions", store.Len()), zap.String("version", version))
	for {
		select {
		case <-hup:
			_ = reload()
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				continue
			}
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
			log.Info("shutting down")
			sctx, scancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown.Duration)
			defer scancel()
			err := hs.Shutdown(sctx)
			_ = as.Shutdown(sctx)
			if err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		}
	}
}

// loadAll reads and checks everything serve and check-config need.
func loadAll(path string) (config.Config, *users.DB, *policy.Rules, error) {
	cfg, err := config.Load(path)
	if err == nil {
		err = config.CheckFiles(cfg)
	}
	if err != nil {
		var ce *config.Errors
		if errors.As(err, &ce) {
			return cfg, nil, nil, fmt.Errorf("%s has problems:\n%s", path, ce.Error())
		}
		return cfg, nil, nil, err
	}
	db, source, err := loadUsers(cfg, path)
	if err != nil {
		return cfg, nil, nil, err
	}
	rules, err := policyRules(cfg)
	if err != nil {
		return cfg, nil, nil, err
	}
	var missing []string
	for _, g := range rules.Groups() {
		if !db.HasGroup(g) {
			missing = append(missing, g)
		}
	}
	if len(missing) > 0 {
		return cfg, nil, nil, fmt.Errorf("rules: group(s) %s not held by any user in %s", strings.Join(missing, ", "), source)
	}
	return cfg, db, rules, nil
}

func policyRules(cfg config.Config) (*policy.Rules, error) {
	rs := make([]policy.Rule, 0, len(cfg.Rules))
	for i, r := range cfg.Rules {
		pr := policy.Rule{Host: r.Host, Path: r.Path, Methods: r.Methods, Networks: cfg.NetworkPrefixes(r.Networks),
			Groups: r.Groups, Users: r.Users, Roles: r.Roles, Label: fmt.Sprintf("rules[%d]", i)}
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

func serverOptions(cfg config.Config, secret []byte) server.Options {
	return server.Options{
		PublicURL: cfg.PublicURL, Prefix: cfg.Prefix, CookieName: cfg.CookieName(), InsecureCookies: cfg.Cookie.Insecure,
		TrustedProxies: cfg.TrustedNets(), LoginTitle: cfg.LoginTitle, DefaultRedirect: cfg.DefaultRedirect,
		RedirectHosts: cfg.RedirectHosts,
		Idle:          cfg.Session.IdleTimeout.Duration, Lifetime: cfg.Session.Lifetime.Duration,
		RememberIdle: cfg.Session.RememberIdleTimeout.Duration, RememberLifetime: cfg.Session.RememberLifetime.Duration,
		TouchInterval: cfg.Session.TouchInterval.Duration,
		HashParams:    hashParams(cfg), HashLimits: users.DefaultLimits(),
		MaxHashing: cfg.Hash.MaxConcurrent, MaxHashQueue: cfg.Hash.MaxQueue, HashQueueTimeout: cfg.Hash.QueueTimeout.Duration,
		Secret: secret,
	}
}

func hashParams(cfg config.Config) users.Params {
	return users.Params{MemoryKiB: cfg.Hash.MemoryKiB, Time: cfg.Hash.Time, Threads: cfg.Hash.Threads}
}

// loadSecret reads the CSRF key from the data directory, creating it on first start.
func loadSecret(dir string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	path := filepath.Join(dir, "secret")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write secret: %w", err)
		}
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret %s is readable by others (mode %04o); run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("secret %s is shorter than 32 bytes; delete it to generate a new one", path)
	}
	return b, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func listen(cfg config.Config) (net.Listener, error) {
	network, addr := cfg.ListenNetwork()
	if network == "unix" {
		ln, err := listenUnix(addr, cfg.SocketFileMode())
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
		return ln, nil
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	return ln, nil
}

// listenUnix replaces a stale socket file; the data-directory lock already
// guarantees no other authd is serving on it.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func newLogger(level string, out io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "time"
	ec.EncodeTime = func(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
		enc.AppendString(t.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.AddSync(out), lvl)
	return zap.New(core), nil
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("check-config", stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	_, db, _, err := loadAll(*cfgPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d users)\n", *cfgPath, db.Len())
	return nil
}
