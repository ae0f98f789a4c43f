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
	"github.com/authd/authd/authd/internal/fsutil"
	"github.com/authd/authd/authd/internal/hasher"
	"github.com/authd/authd/authd/internal/idp"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/server"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("serve", stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	h, err := newHandover(os.Getenv, os.Getpid())
	if err != nil {
		return err
	}
	m := NewMain(*cfgPath, stdout)
	m.handover = h
	// Caught from here to the exit or the exec, never released: with Go's
	// default action a SIGHUP or SIGUSR2 sent while authd is still opening
	// (systemd's ExecReload right after a start, since Type=simple is
	// "started" at once; a second USR2 during a handover) or while it
	// drains would kill it, and the socket with it.
	m.catchSignals()
	if err := m.Open(ctx); err != nil {
		return err
	}
	err = m.Run(ctx)
	if errors.Is(err, errHandover) {
		// Drained and the stores closed: the new image can lock data_dir.
		// Connections arriving meanwhile wait in the kept socket's backlog.
		// A drain cut short by timeouts.shutdown still hands over: exiting
		// instead would also close the socket.
		if err := m.Close(); err != nil {
			m.log.Warn("handover: requests still in flight are cut off", zap.String("event", "handover_drain_cut"), zap.Error(err))
		}
		if ctx.Err() != nil {
			return nil // SIGTERM came during the drain: stop, as asked
		}
		return h.exec(m.exe, os.Args, os.Environ())
	}
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

	// cfg is the config Open started with: what listen, data_dir, store,
	// redis.* … still are until a restart. applied is the last config whose
	// live settings a reload applied (cfg until the first reload).
	cfg, applied config.Config
	log          *zap.Logger
	level        zap.AtomicLevel // log.level, which a reload may change
	build        server.BuildInfo
	stores       *stores
	dir          *idp.LDAP // [ldap]; nil when off
	srv          *server.Server
	http         *http.Server // the public listener (behind nginx)
	admin        *http.Server // the admin socket in data_dir, for the CLI
	ln           net.Listener
	adminLn      net.Listener
	reloadMu     sync.Mutex
	handover     *handover      // the socket a SIGUSR2 passes on
	exe          string         // the binary a handover execs; set once Run accepted one
	hup, usr2    chan os.Signal // caught before Open by serve (see catchSignals)
	hasher       *hasher.Proc   // the child that runs password hashes
}

// hasherCommand is the hidden subcommand serve runs as its hashing child.
const hasherCommand = "hash-worker"

// catchSignals starts catching SIGHUP and SIGUSR2. One that arrives before
// Run waits in its channel and is acted on once authd is ready.
func (m *Main) catchSignals() {
	m.hup = make(chan os.Signal, 1)
	signal.Notify(m.hup, syscall.SIGHUP)
	m.usr2 = make(chan os.Signal, 1)
	signal.Notify(m.usr2, syscall.SIGUSR2)
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
	m.cfg, m.applied = cfg, cfg
	bv := currentBuild()
	m.build = server.BuildInfo{Version: bv.Version, Commit: bv.Commit, Go: bv.Go}
	if m.log, m.level, err = newLogger(cfg.Log.Level, m.stdout); err != nil {
		return err
	}
	if m.stores, err = openStores(ctx, cfg, m.cfgPath, m.log); err != nil {
		return err
	}
	st := m.stores
	rules, err := policyRules(cfg)
	if err != nil {
		return err
	}
	// Users and groups the rules name but nobody has are warnings, not
	// errors: editing users must never stop authd from starting.
	m.logWarnings(config.Warnings(cfg, st.users.DB()))
	if err := st.openSessions(cfg); err != nil {
		return err
	}
	// One verifier per process: its nonce cache and start time must outlive reloads.
	verifier := machine.NewVerifier(st.credentials.source, st.nonces, machine.DefaultWindow, time.Now)
	// Password hashes run in a child at the lowest CPU priority, so a login
	// flood takes only the CPU verify leaves (see package hasher).
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("hashing process: %w", err)
	}
	m.hasher = hasher.New(exe, hasherCommand)
	if err := m.hasher.Start(); err != nil {
		return fmt.Errorf("hashing process: %w", err)
	}
	acct, err := accountDeps(cfg, st)
	if err != nil {
		return err
	}
	providers, err := openOIDC(ctx, cfg, m.log)
	if err != nil {
		return err
	}
	deps := server.Deps{
		Users: st.users, Sessions: st.sessions, Throttle: st.throttle, Machine: verifier, Logger: m.log, Now: time.Now, Redis: st.redis,
		MFA: st.mfa, Replay: st.replay,
		Audit: st.audit, AdminSessions: st.sessions, Credentials: consoleCredentials{st.credentials}, LastLogins: st.lastLogins,
		Account: acct,
		OIDC:    providers,
		Hasher:  m.hasher,
	}
	if m.dir, err = openDirectory(cfg.LDAP); err != nil {
		return err
	}
	if m.dir != nil {
		deps.Directory = m.dir
	}
	m.srv, err = server.New(serverOptions(cfg, st.secret, m.build), deps, rules)
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
	m.admin = &http.Server{Handler: server.NewAdmin(st.sessions, st.users, reload, m.log, time.Now).Handler(), ReadHeaderTimeout: 5 * time.Second}

	// Bind before serving so a port clash is an error at start; with
	// LISTEN_FDS (or a handover) the socket is inherited instead.
	if m.handover == nil {
		m.handover = &handover{fd: -1}
	}
	if m.ln, err = m.handover.listener(func() (net.Listener, error) { return listen(cfg) }); err != nil {
		return err
	}
	logInherited(m.log, m.handover, m.ln, cfg.Listen)
	if m.adminLn, err = listenUnix(filepath.Join(cfg.DataDir, "admin.sock"), 0o600); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	return nil
}

// Run serves on the listeners Open bound and watches the users and
// credentials for changes, until ctx ends (nil) or a listener fails.
// SIGHUP reloads; SIGUSR2 returns errHandover once the binary at
// authd's path accepts the config (see handover.go).
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
	if m.hup == nil {
		// Not caught by serve (a test's Main): only while Run runs.
		m.catchSignals()
		defer func() {
			signal.Stop(m.hup)
			signal.Stop(m.usr2)
			m.hup, m.usr2 = nil, nil
		}()
	}
	hup, usr2 := m.hup, m.usr2

	m.log.Info("authd ready", zap.String("event", "ready"), zap.String("listen", m.cfg.Listen), zap.String("public_url", m.cfg.PublicURL),
		zap.Int("users", m.stores.users.DB().Len()), zap.Int("sessions", m.stores.sessions.Len()),
		zap.String("version", m.build.Version), zap.String("commit", m.build.Commit), zap.String("go", m.build.Go))
	for {
		select {
		case <-hup:
			_, _ = m.Reload(ctx)
		case <-usr2:
			exe, err := os.Executable()
			if err == nil {
				err = m.handover.check(ctx, exe, m.cfgPath)
			}
			if err != nil {
				m.log.Error("handover refused, still serving", zap.String("event", "handover_failed"), zap.Error(err))
				continue
			}
			m.exe = exe
			m.log.Info("handing over to a new process image", zap.String("event", "handover"), zap.String("exe", exe))
			return errHandover
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
		m.srv.ReloadDone(false)
	} else if changed {
		m.log.Info("users file reloaded", zap.String("event", "reload"), zap.Int("users", m.stores.users.DB().Len()))
		m.srv.ReloadDone(true)
		// A user edit can empty a group a rule names: say so now, not at
		// the next SIGHUP.
		m.reloadMu.Lock()
		m.logWarnings(config.Warnings(m.applied, m.stores.users.DB()))
		m.reloadMu.Unlock()
	}
}

func (m *Main) onCredentialsReload(changed bool, err error) {
	if err != nil {
		m.log.Error("machine credentials reload failed, keeping the last good copy", zap.String("event", "reload_failed"), zap.Error(err))
		m.srv.ReloadDone(false)
	} else if changed {
		m.log.Info("machine credentials reloaded", zap.String("event", "reload"))
		m.srv.ReloadDone(true)
	}
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
	// The kept copy of the socket outlives Close only for a handover (Run
	// set exe): otherwise the address must be free when Close returns.
	if m.handover != nil && m.exe == "" {
		m.handover.close()
	}
	if m.hasher != nil {
		_ = m.hasher.Close()
	}
	if m.dir != nil {
		_ = m.dir.Close()
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
		if err := fsutil.WriteFile(path, b, fsutil.Options{Perm: 0o600}); err != nil {
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

// newLogger returns the JSON logger and the level a reload may change.
func newLogger(level string, out io.Writer) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, lvl, fmt.Errorf("log.level: %w", err)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "time"
	ec.EncodeTime = func(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
		enc.AppendString(t.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.AddSync(out), lvl)
	return zap.New(core), lvl, nil
}
