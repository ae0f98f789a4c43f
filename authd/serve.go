package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/server"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("serve", stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	m := NewMain(*cfgPath, stdout)
	if err := m.Open(ctx); err != nil {
		return err
	}
	err := m.Run(ctx)
	return errors.Join(err, m.Close())
}

// Main is the daemon: Open builds everything from the config (logger, the
// one Redis client, the stores, the server) and binds the listeners; Run
// serves until the context ends, calling Reload on SIGHUP; Close shuts
// down in order. A new long-lived piece (a store, a background job) gets a
// field here, is built in Open and released in Close.
type Main struct {
	cfgPath string
	stdout  io.Writer // the JSON log

	cfg      config.Config // as loaded by Open; Reload compares against it
	log      *zap.Logger
	stores   *stores
	srv      *server.Server
	http     *http.Server // the public listener (behind nginx)
	admin    *http.Server // the admin socket in data_dir, for the CLI
	ln       net.Listener
	adminLn  net.Listener
	reloadMu sync.Mutex
}

// NewMain returns a Main for the config at cfgPath that logs to stdout.
func NewMain(cfgPath string, stdout io.Writer) *Main {
	return &Main{cfgPath: cfgPath, stdout: stdout}
}

// Open loads and checks the config, users and rules, opens the stores and
// binds both listeners, so that every problem shows before anything is
// served. On error it closes what it opened.
func (m *Main) Open(ctx context.Context) error {
	if err := m.open(ctx); err != nil {
		_ = m.Close()
		return err
	}
	return nil
}

func (m *Main) open(ctx context.Context) error {
	cfg, err := loadConfig(m.cfgPath)
	if err != nil {
		return err
	}
	m.cfg = cfg
	if m.log, err = newLogger(cfg.Log.Level, m.stdout); err != nil {
		return err
	}
	if m.stores, err = openStores(ctx, cfg, m.cfgPath); err != nil {
		return err
	}
	st := m.stores
	rules, err := loadRules(cfg, st.users.DB(), usersSource(cfg))
	if err != nil {
		return err
	}
	if err := st.openSessions(cfg); err != nil {
		return err
	}
	// One verifier per process: its nonce cache and start time must outlive reloads.
	verifier := machine.NewVerifier(st.credentials.source, st.nonces, machine.DefaultWindow, time.Now)
	m.srv, err = server.New(serverOptions(cfg, st.secret), server.Deps{
		Users: st.users, Sessions: st.sessions, Throttle: st.throttle, Machine: verifier, Logger: m.log, Now: time.Now,
	}, rules)
	if err != nil {
		return err
	}
	reload := func() error { _, err := m.Reload(context.Background()); return err }
	m.http = &http.Server{
		Handler:           m.srv.Handler(),
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.Duration,
		ReadTimeout:       cfg.Timeouts.Read.Duration,
		WriteTimeout:      cfg.Timeouts.Write.Duration,
		IdleTimeout:       cfg.Timeouts.Idle.Duration,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(m.log.Named("http")),
	}
	m.admin = &http.Server{Handler: server.NewAdmin(st.sessions, reload, m.log, time.Now).Handler(), ReadHeaderTimeout: 5 * time.Second}

	// Bind before serving so a port clash is an error at start.
	if m.ln, err = listen(cfg); err != nil {
		return err
	}
	if m.adminLn, err = listenUnix(filepath.Join(cfg.DataDir, "admin.sock"), 0o600); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	return nil
}

// Run serves on the listeners Open bound and watches the users and
// credentials for changes, until ctx ends (nil) or a listener fails.
// SIGHUP reloads.
func (m *Main) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	defer watchers.Wait()
	defer cancel()

	errc := make(chan error, 2)
	go func() { errc <- m.http.Serve(m.ln) }()
	go func() { errc <- m.admin.Serve(m.adminLn) }()
	watchers.Add(2)
	go func() { defer watchers.Done(); m.stores.users.Watch(ctx, time.Second, m.onUsersReload) }()
	go func() { defer watchers.Done(); m.stores.credentials.watch(ctx, time.Second, m.onCredentialsReload) }()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	m.log.Info("authd ready", zap.String("listen", m.cfg.Listen), zap.String("public_url", m.cfg.PublicURL),
		zap.Int("users", m.stores.users.DB().Len()), zap.Int("sessions", m.stores.sessions.Len()), zap.String("version", version))
	for {
		select {
		case <-hup:
			_, _ = m.Reload(ctx)
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				continue
			}
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
			m.log.Info("shutting down")
			return nil
		}
	}
}

func (m *Main) onUsersReload(changed bool, err error) {
	if err != nil {
		m.log.Error("users file reload failed, keeping the last good copy", zap.String("event", "reload_failed"), zap.Error(err))
	} else if changed {
		m.log.Info("users file reloaded", zap.String("event", "reload"), zap.Int("users", m.stores.users.DB().Len()))
	}
}

func (m *Main) onCredentialsReload(changed bool, err error) {
	if err != nil {
		m.log.Error("machine credentials reload failed, keeping the last good copy", zap.String("event", "reload_failed"), zap.Error(err))
	} else if changed {
		m.log.Info("machine credentials reloaded", zap.String("event", "reload"))
	}
}

// reloadReport says what a reload applied and what it could not.
type reloadReport struct {
	Users int // users loaded after the reload
	// Restart lists the config keys whose new values apply only after a
	// restart; the running values stay.
	Restart []string
}

// Reload re-reads what may change while authd runs — users, machine
// credentials, config and rules — in three steps: load and validate
// everything (a failure keeps the last good copy and is returned), apply,
// then report. It runs on SIGHUP and on the admin socket's /reload, one at
// a time; the stores and the Redis client stay as Open made them.
func (m *Main) Reload(ctx context.Context) (reloadReport, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	st := m.stores

	// Load and validate. The users and credentials stores swap in a new
	// copy only when it loads, and keep the old one otherwise.
	if _, err := st.users.Reload(); err != nil {
		m.log.Error("reload failed, keeping the last good users", zap.String("event", "reload_failed"), zap.Error(err))
		return reloadReport{}, err
	}
	if _, err := st.credentials.reload(ctx); err != nil {
		m.log.Error("reload failed, keeping the last good machine credentials", zap.String("event", "reload_failed"), zap.Error(err))
		return reloadReport{}, err
	}
	cfg, err := loadConfig(m.cfgPath)
	var rules *policy.Rules
	if err == nil {
		rules, err = loadRules(cfg, st.users.DB(), usersSource(cfg))
	}
	if err != nil {
		m.log.Error("reload failed, keeping the last good rules", zap.String("event", "reload_failed"), zap.Error(err))
		return reloadReport{}, err
	}

	// Apply.
	m.srv.SetRules(rules)

	// Report.
	rep := reloadReport{Users: st.users.DB().Len(), Restart: restartOnly(m.cfg, cfg)}
	if len(rep.Restart) > 0 {
		m.log.Warn("some changed settings apply only after a restart", zap.String("event", "reload"), zap.Strings("keys", rep.Restart))
	}
	m.log.Info("reloaded", zap.String("event", "reload"), zap.Int("users", rep.Users))
	return rep, nil
}

// restartOnly returns the keys that differ between the running config and
// next and that a reload does not apply.
func restartOnly(running, next config.Config) []string {
	var keys []string
	if next.Listen != running.Listen {
		keys = append(keys, "listen")
	}
	if next.DataDir != running.DataDir {
		keys = append(keys, "data_dir")
	}
	if next.PublicURL != running.PublicURL {
		keys = append(keys, "public_url")
	}
	return keys
}

// Close shuts down in order: stop accepting and drain in-flight requests
// (up to timeouts.shutdown), then close the stores — the sessions, then
// the Redis client — and flush the log. Run has stopped the watchers by
// then. It is safe on a Main that Open left half built.
func (m *Main) Close() error {
	var err error
	if m.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeouts.Shutdown.Duration)
		defer cancel()
		if serr := m.http.Shutdown(sctx); serr != nil {
			err = fmt.Errorf("shutdown: %w", serr)
		}
		_ = m.admin.Shutdown(sctx)
	}
	// Listeners Open bound but Run never served (Shutdown closes served ones).
	for _, ln := range []net.Listener{m.ln, m.adminLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if m.stores != nil {
		if cerr := m.stores.Close(); cerr != nil {
			m.log.Error("closing stores failed", zap.Error(cerr))
		}
	}
	if m.log != nil {
		_ = m.log.Sync()
	}
	return err
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
