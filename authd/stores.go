package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/mfa"
	"github.com/authd/authd/authd/internal/server"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/throttle"
	"github.com/authd/authd/authd/internal/users"
)

// sessionStore is a session store as serve holds it: what the public
// listener uses (server.SessionStore), what the admin socket uses
// (server.AdminSessions), and Close.
type sessionStore interface {
	server.SessionStore
	server.AdminSessions
	Close() error
}

// userStore is a users file or the users in Redis: what the handlers use
// (server.UserStore), plus the reload and watch that serve drives.
type userStore interface {
	server.UserStore
	Reload() (changed bool, err error)
	// ReloadWithin is Reload under new bounds for stored hashes; they stay
	// the store's only if the users load under them.
	ReloadWithin(lim users.Limits) (changed bool, err error)
	Watch(ctx context.Context, every time.Duration, onReload func(changed bool, err error))
}

// throttler is a login throttle as serve holds it: what login uses
// (server.Throttler), plus SetConfig, which applies new limits on reload.
type throttler interface {
	server.Throttler
	SetConfig(cfg throttle.Config)
}

var (
	_ sessionStore = (*session.Embedded)(nil)
	_ sessionStore = (*session.Redis)(nil)
	_ userStore    = (*users.File)(nil)
	_ userStore    = (*users.Redis)(nil)
	_ throttler    = (*throttle.Memory)(nil)
	_ throttler    = (*throttle.Redis)(nil)
)

// stores are the state authd keeps: users, sessions, login throttles,
// machine credentials, signed-request nonces and the CSRF key. openStores
// builds them all for serve, on one Redis client with store = "redis". The
// CLI commands build the parts they need with the same constructors
// (openRedis, openUsers, openRedisUsers, openEmbeddedSessions,
// newRedisSessions, openCredentials, and openRedisState which combines
// them), so a command and the daemon never open a store differently.
type stores struct {
	// redis is the process's one Redis client; nil with store = "embedded".
	redis       redis.UniversalClient
	users       userStore
	sessions    sessionStore
	throttle    throttler
	nonces      machine.NonceCache
	credentials *credentials
	secret      []byte
	// mfa keeps second factors and replay the codes already used: in the
	// data directory, or in Redis with store = "redis".
	mfa    mfa.Store
	replay mfa.Replay
	// audit is data_dir's audit file, or the stream in Redis.
	audit auditLog
	// lastLogins is data_dir's last-login record, or a hash in Redis.
	lastLogins lastLogins
}

// openStores opens the configured stores but for the embedded session
// store (see openSessions); it fails before serving if one cannot be
// reached, so nothing is initialised lazily on a request. cfgPath only
// names the config in messages.
func openStores(ctx context.Context, cfg config.Config, cfgPath string, log *zap.Logger) (*stores, error) {
	st := &stores{}
	if err := st.open(ctx, cfg, cfgPath, log); err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}

func (st *stores) open(ctx context.Context, cfg config.Config, cfgPath string, log *zap.Logger) error {
	var err error
	if st.redis, err = openRedisWith(ctx, cfg, dial); err != nil {
		return err
	}
	if st.redis == nil {
		if st.users, err = openUsers(ctx, cfg, nil, cfgPath); err != nil {
			return err
		}
		st.throttle = throttle.NewMemory(throttleConfig(cfg), time.Now)
		st.nonces = machine.NewMemoryNonces(0, 0, time.Now)
	} else {
		ru, err := openRedisUsers(ctx, cfg, st.redis)
		if err != nil {
			return err
		}
		st.users = ru
		st.throttle = freshLogin{throttler: throttle.NewRedis(st.redis, cfg.Redis.KeyPrefix, throttleConfig(cfg), time.Now), users: ru}
		st.nonces = machine.NewRedisNonces(st.redis, cfg.Redis.KeyPrefix, time.Now)
		st.sessions = newRedisSessions(cfg, st.redis, ru, redisTracking(cfg, log))
	}
	if st.secret, err = loadSharedSecret(ctx, cfg, st.redis); err != nil {
		return err
	}
	if st.credentials, err = openCredentials(ctx, cfg, st.redis); err != nil {
		return err
	}
	if st.mfa, err = openMFA(cfg, st.redis); err != nil {
		return err
	}
	if st.redis != nil {
		st.replay = mfa.NewRedisReplay(st.redis, cfg.Redis.KeyPrefix)
	} else if st.replay, err = mfa.OpenReplayFile(cfg.DataDir, nil); err != nil {
		return fmt.Errorf("mfa: %w", err)
	}
	if st.audit, err = openAudit(cfg, st.redis); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	st.lastLogins = openLastLogins(cfg, st.redis)
	return nil
}

// openMFA opens the second-factor store: mfa.json in data_dir, or Redis on rc.
func openMFA(cfg config.Config, rc redis.UniversalClient) (mfa.Store, error) {
	if rc != nil {
		return mfa.NewRedis(rc, cfg.Redis.KeyPrefix), nil
	}
	f, err := mfa.OpenFile(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	return f, nil
}

// openSessions opens the embedded session store; with Redis, open made the
// sessions already. serve calls it after the rules are checked, because
// it locks data_dir: a config problem should be reported as that, not as
// the lock of an authd still running on the old config.
func (st *stores) openSessions(cfg config.Config) error {
	if st.sessions != nil {
		return nil
	}
	es, err := openEmbeddedSessions(cfg)
	if err != nil {
		return err
	}
	st.sessions = es
	return nil
}

// Close releases the stores: the sessions first (the embedded store
// flushes and unlocks data_dir; Redis's stops its batching), then the
// Redis client they used.
func (st *stores) Close() error {
	var errs []error
	if st.sessions != nil {
		errs = append(errs, st.sessions.Close())
	}
	if st.audit != nil {
		errs = append(errs, st.audit.Close())
	}
	if st.lastLogins != nil {
		errs = append(errs, st.lastLogins.Close())
	}
	if st.redis != nil {
		errs = append(errs, st.redis.Close())
	}
	return errors.Join(errs...)
}

// openRedis returns the Redis client with store = "redis", checked to
// answer, and nil otherwise. It is the only place a Redis client is made.
func openRedis(ctx context.Context, cfg config.Config) (redis.UniversalClient, error) {
	return openRedisWith(ctx, cfg, dialRedis)
}

func openRedisWith(ctx context.Context, cfg config.Config, dialer func(context.Context, config.Config) (redis.UniversalClient, error)) (redis.UniversalClient, error) {
	if cfg.Store != "redis" {
		return nil, nil
	}
	return dialer(ctx, cfg)
}

// dialRedis is the client of a CLI command. The configured timeouts are
// serve's, short so a request fails fast; a command is one person waiting
// for one answer, and a moment's stall of a loaded machine must not fail
// it, so each timeout is at least commandTimeout.
func dialRedis(ctx context.Context, cfg config.Config) (redis.UniversalClient, error) {
	const commandTimeout = 3 * time.Second
	for _, d := range []*config.Duration{&cfg.Redis.DialTimeout, &cfg.Redis.ReadTimeout, &cfg.Redis.WriteTimeout, &cfg.Redis.PoolTimeout} {
		d.Duration = max(d.Duration, commandTimeout)
	}
	return dial(ctx, cfg)
}

// closeRedis closes c, if any, for commands that opened it with openRedis.
func closeRedis(c redis.UniversalClient) {
	if c != nil {
		_ = c.Close()
	}
}

// usersSource names where the configured users live, for messages.
func usersSource(cfg config.Config) string {
	if cfg.Store == "redis" {
		return "redis"
	}
	return cfg.UsersFile
}

// openUsers opens the configured users: the users file, or the users in
// Redis on rc. cfgPath, if known, goes into the hint for a missing file.
func openUsers(ctx context.Context, cfg config.Config, rc redis.UniversalClient, cfgPath string) (userStore, error) {
	if rc != nil {
		u, err := openRedisUsers(ctx, cfg, rc)
		if err != nil {
			return nil, err
		}
		return u, nil
	}
	if _, err := os.Stat(cfg.UsersFile); errors.Is(err, fs.ErrNotExist) {
		flag := ""
		if cfgPath != "" {
			flag = " -config " + cfgPath
		}
		return nil, fmt.Errorf("users_file: %s does not exist; create it with 'authd user add%s NAME'", cfg.UsersFile, flag)
	}
	u, err := users.OpenFile(cfg.UsersFile, userLimits(cfg))
	if err != nil {
		return nil, fmt.Errorf("users_file: %w", err)
	}
	return u, nil
}

// openRedisUsers loads every user from Redis on rc.
func openRedisUsers(ctx context.Context, cfg config.Config, rc redis.UniversalClient) (*users.Redis, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u, err := users.OpenRedis(ctx, rc, cfg.Redis.KeyPrefix, userLimits(cfg))
	if err != nil {
		return nil, fmt.Errorf("users in redis: %w", err)
	}
	return u, nil
}

// openEmbeddedSessions opens data_dir's session store, which only one
// process at a time may hold.
func openEmbeddedSessions(cfg config.Config) (*session.Embedded, error) {
	s, err := session.OpenEmbedded(cfg.DataDir, time.Now)
	if err != nil {
		return nil, fmt.Errorf("open session store: %w", err)
	}
	return s, nil
}

// newRedisSessions puts sessions in Redis on rc. A verify is one round trip
// that also reads the session user's version, and the user snapshot is
// refreshed before the answer when that version moved (session.WithUserCheck
// → users.Ensure); serve adds redisTracking, which answers from a local copy
// that Redis invalidates. Concurrent
// verifies share round trips (a few pipelines in flight at once), which
// halves Redis's and authd's cost per verify under load.
func newRedisSessions(cfg config.Config, rc redis.UniversalClient, u *users.Redis, more ...session.RedisOption) *session.Redis {
	opts := append([]session.RedisOption{session.WithUserCheck(u.Ensure), session.WithBatching(4, 32), redisWait(cfg)}, more...)
	return session.NewRedis(rc, cfg.Redis.KeyPrefix, time.Now, opts...)
}

func throttleConfig(cfg config.Config) throttle.Config {
	return throttle.Config{
		AccountFailures: cfg.Throttle.AccountFailures, IPFailures: cfg.Throttle.IPFailures,
		BaseDelay: cfg.Throttle.BaseDelay.Duration, MaxDelay: cfg.Throttle.MaxDelay.Duration,
		Window: cfg.Throttle.Window.Duration, MaxEntries: cfg.Throttle.MaxEntries,
	}
}

// redisState is what the user and session commands edit in Redis: the
// users and the sessions, opened as serve opens them, on one client. It
// dials even when store is not "redis": "user import -to redis" fills
// Redis before the config is switched to it.
type redisState struct {
	client   redis.UniversalClient
	users    *users.Redis
	sessions *session.Redis
}

func openRedisState(ctx context.Context, cfg config.Config) (*redisState, error) {
	rc, err := dialRedis(ctx, cfg)
	if err != nil {
		return nil, err
	}
	u, err := openRedisUsers(ctx, cfg, rc)
	if err != nil {
		closeRedis(rc)
		return nil, err
	}
	return &redisState{client: rc, users: u, sessions: newRedisSessions(cfg, rc, u)}, nil
}

func (r *redisState) Close() {
	_ = r.sessions.Close()
	closeRedis(r.client)
}

// machineFile is the records file of API tokens and signing keys.
func machineFile(cfg config.Config) string { return filepath.Join(cfg.DataDir, machine.FileName) }

// credentials are API tokens and signing keys: data_dir's records file, or
// Redis with store = "redis" so that every instance shares them. serve's
// verifier reads source; the token and key commands list and edit them.
type credentials struct {
	source  machine.Source
	records func() machine.Records
	reload  func(ctx context.Context) (changed bool, err error)
	watch   func(ctx context.Context, every time.Duration, onReload func(changed bool, err error))
	edit    func(ctx context.Context, fn func(*machine.Records) error) error
}

// openCredentials loads the machine credentials: from Redis on rc, or from
// data_dir's records file when rc is nil (a missing file holds none).
func openCredentials(ctx context.Context, cfg config.Config, rc redis.UniversalClient) (*credentials, error) {
	if rc != nil {
		p := cfg.Redis.KeyPrefix
		mr, err := machine.OpenRedisRecords(ctx, rc, p)
		if err != nil {
			return nil, fmt.Errorf("machine credentials: %w", err)
		}
		return &credentials{
			source: mr, records: mr.Records, reload: mr.Reload, watch: mr.Watch,
			edit: func(ctx context.Context, fn func(*machine.Records) error) error {
				return machine.EditRedis(ctx, rc, p, fn)
			},
		}, nil
	}
	path := machineFile(cfg)
	mf, err := machine.OpenFile(path)
	if err != nil {
		return nil, fmt.Errorf("machine credentials: %w", err)
	}
	return &credentials{
		source: mf, records: mf.Records, watch: mf.Watch,
		reload: func(context.Context) (bool, error) { return mf.Reload() },
		edit: func(_ context.Context, fn func(*machine.Records) error) error {
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return fmt.Errorf("data_dir: %w", err)
			}
			return machine.Edit(path, fn)
		},
	}, nil
}

// freshLogin reads the user from Redis before each login's throttle check,
// which the login handler runs before it looks the user up: a password
// changed or a user locked on another instance a moment ago is what the
// password is checked against. Any Redis error fails the login (503).
type freshLogin struct {
	throttler
	users *users.Redis
}

func (f freshLogin) Reserve(ctx context.Context, user, ip string) (throttle.Verdict, error) {
	if _, err := users.Canonical(user); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
		err := f.users.Refresh(cctx, user)
		cancel()
		if err != nil {
			return throttle.Verdict{}, err
		}
	}
	return f.throttler.Reserve(ctx, user, ip)
}

// redisOptions turns the [redis] block into client options: short timeouts,
// one quick retry (a pooled connection may be dead after a Redis restart),
// and a bounded pool, so a missing or stalled Redis makes callers fail in
// well under a second instead of queueing.
func redisOptions(cfg config.Config) (*redis.UniversalOptions, error) {
	r := cfg.Redis
	pw, err := r.Password()
	if err != nil {
		return nil, err
	}
	o := &redis.UniversalOptions{
		Addrs: r.Addrs, MasterName: r.MasterName, DB: r.DB, ClientName: "authd",
		Username: r.Username, Password: pw,
		Protocol: 2, DisableIdentity: true,
		DialTimeout: r.DialTimeout.Duration, ReadTimeout: r.ReadTimeout.Duration, WriteTimeout: r.WriteTimeout.Duration,
		PoolTimeout: r.PoolTimeout.Duration, PoolSize: r.PoolSize, ContextTimeoutEnabled: true,
		MaxRetries: 1, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 10 * time.Millisecond,
		DialerRetries: 1, DialerRetryTimeout: 10 * time.Millisecond,
	}
	if r.MasterName != "" {
		o.SentinelUsername, o.SentinelPassword = r.Username, pw
	}
	if r.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.ServerName}
		if r.CAFile != "" {
			pem, err := os.ReadFile(r.CAFile)
			if err != nil {
				return nil, fmt.Errorf("redis.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("redis.ca_file: %s holds no PEM certificate", r.CAFile)
			}
		}
		o.TLSConfig = tc
	}
	return o, nil
}

// quietRedis drops go-redis's own log lines: they are plain text on stderr,
// amid authd's JSON log, and every failure they report reaches authd as an
// error that it logs itself.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// dialRedis connects to the configured Redis and checks that it answers.
// dial makes the Redis client with the configured timeouts (serve's).
func dial(ctx context.Context, cfg config.Config) (redis.UniversalClient, error) {
	o, err := redisOptions(cfg)
	if err != nil {
		return nil, err
	}
	redis.SetLogger(quietRedis{})
	c := newRedisClient(o, cfg.Redis)
	// The serving timeouts are short (fail fast per request); a moment's
	// stall of a loaded machine must not fail a start or a CLI command, so
	// the first contact is retried for up to 3 seconds.
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err = c.Ping(pctx).Err()
	cause := err // the last error that says why, not that the 3 s ran out
	for err != nil && pctx.Err() == nil {
		select {
		case <-pctx.Done():
		case <-time.After(100 * time.Millisecond):
			if err = c.Ping(pctx).Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				cause = err
			}
		}
	}
	if err != nil {
		if cause != nil {
			err = cause
		}
		c.Close()
		return nil, fmt.Errorf("redis (%s %v) unreachable: %w", cfg.Redis.Mode(), cfg.Redis.Addrs, explainRedisTLS(err, cfg.Redis))
	}
	return c, nil
}

// loadSharedSecret returns the key for CSRF tokens. Behind a load balancer
// a login form fetched from one instance may be posted to another, so with
// Redis every instance uses one key kept there (created by the first);
// otherwise it lives in data_dir.
func loadSharedSecret(ctx context.Context, cfg config.Config, c redis.UniversalClient) ([]byte, error) {
	if c == nil {
		return loadSecret(cfg.DataDir)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	key := cfg.Redis.KeyPrefix + "secret"
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if err := c.SetNX(ctx, key, fresh, 0).Err(); err != nil {
		return nil, fmt.Errorf("redis: store the shared secret: %w", err)
	}
	b, err := c.Get(ctx, key).Bytes()
	if err != nil {
		return nil, fmt.Errorf("redis: read the shared secret: %w", err)
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("redis: the shared secret under %s is shorter than 32 bytes; delete it to generate a new one", key)
	}
	return b, nil
}
