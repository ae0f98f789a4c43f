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

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/throttle"
	"github.com/authd/authd/authd/internal/users"
)

// sessionStore, userStore and throttler are what serve needs from the
// stores, whichever backend holds them.
type sessionStore interface {
	Create(ctx context.Context, k session.Key, s session.Session) error
	Get(ctx context.Context, k session.Key) (session.Session, bool, error)
	Touch(ctx context.Context, k session.Key, t time.Time) error
	Delete(ctx context.Context, k session.Key) error
	DeleteUser(ctx context.Context, user string) (int, error)
	DeleteAll(ctx context.Context) (int, error)
	List(ctx context.Context, user string) ([]session.Entry, error)
	Len() int
	Ping(ctx context.Context) error
}

type userStore interface {
	DB() *users.DB
	SetHash(name, hash string) error
	Reload() (changed bool, err error)
}

type throttler interface {
	Check(ctx context.Context, user, ip string) (throttle.Verdict, error)
	Fail(ctx context.Context, user, ip string) error
	Success(ctx context.Context, user, ip string) error
	// SetConfig applies new limits on reload.
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

// stores are the state authd keeps: sessions, users and login throttles.
type stores struct {
	sessions sessionStore
	users    userStore
	throttle throttler
	// nonces remembers signed requests' nonces: in memory, or in Redis so
	// that a request accepted by one instance is a replay at every other.
	nonces machine.NonceCache
	// credentials are API tokens and signing keys: data_dir's records file,
	// or Redis so that every instance shares them.
	credentials       machine.Source
	reloadCredentials func(ctx context.Context) error
	watchCredentials  func(ctx context.Context, every time.Duration, onReload func(changed bool, err error))
	watch             func(ctx context.Context, every time.Duration, onReload func(changed bool, err error))
	close             func() error
}

// openStores opens the configured stores; it fails before serving if one
// cannot be reached, so nothing is initialised lazily on a request.
func openStores(ctx context.Context, cfg config.Config) (*stores, error) {
	if cfg.Store == "redis" {
		return openRedisStores(ctx, cfg)
	}
	sessions, err := session.OpenEmbedded(cfg.DataDir, time.Now)
	if err != nil {
		return nil, fmt.Errorf("open session store: %w", err)
	}
	u, err := users.OpenFile(cfg.UsersFile, users.DefaultLimits())
	if err != nil {
		sessions.Close()
		return nil, fmt.Errorf("users file: %w", err)
	}
	thr := throttle.NewMemory(throttleConfig(cfg), time.Now)
	mf, err := machine.OpenFile(filepath.Join(cfg.DataDir, machine.FileName))
	if err != nil {
		sessions.Close()
		return nil, fmt.Errorf("machine credentials: %w", err)
	}
	return &stores{sessions: sessions, users: u, throttle: thr, nonces: machine.NewMemoryNonces(0, 0, time.Now),
		credentials:       mf,
		reloadCredentials: func(context.Context) error { _, err := mf.Reload(); return err },
		watchCredentials:  mf.Watch,
		watch:             u.Watch, close: sessions.Close}, nil
}

func throttleConfig(cfg config.Config) throttle.Config {
	return throttle.Config{
		AccountFailures: cfg.Throttle.AccountFailures, IPFailures: cfg.Throttle.IPFailures,
		BaseDelay: cfg.Throttle.BaseDelay.Duration, MaxDelay: cfg.Throttle.MaxDelay.Duration,
		Window: cfg.Throttle.Window.Duration, MaxEntries: cfg.Throttle.MaxEntries,
	}
}

// openRedisStores puts sessions, users and throttles in Redis. Sessions
// are never cached: each verify is one round trip that also reads the
// session user's version, and the user snapshot is refreshed before the
// answer when that version moved (session.WithUserCheck → users.Ensure).
func openRedisStores(ctx context.Context, cfg config.Config) (*stores, error) {
	c, err := dialRedis(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := cfg.Redis.KeyPrefix
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	u, err := users.OpenRedis(lctx, c, p, users.DefaultLimits())
	cancel()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("users in redis: %w", err)
	}
	// Concurrent verifies share round trips (a few pipelines in flight at
	// once), which halves Redis's and authd's cost per verify under load.
	sessions := session.NewRedis(c, p, time.Now, session.WithUserCheck(u.Ensure), session.WithBatching(4, 32), redisWait(cfg))
	thr := freshLogin{throttler: throttle.NewRedis(c, p, throttleConfig(cfg), time.Now), users: u}
	mr, err := machine.OpenRedisRecords(ctx, c, p)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("machine credentials: %w", err)
	}
	return &stores{sessions: sessions, users: u, throttle: thr, nonces: machine.NewRedisNonces(c, p, time.Now),
		credentials:       mr,
		reloadCredentials: func(ctx context.Context) error { _, err := mr.Reload(ctx); return err },
		watchCredentials:  mr.Watch,
		watch:             u.Watch, close: func() error { return errors.Join(sessions.Close(), c.Close()) }}, nil
}

// freshLogin reads the user from Redis before each login's throttle check,
// which the login handler runs before it looks the user up: a password
// changed or a user locked on another instance a moment ago is what the
// password is checked against. Any Redis error fails the login (503).
type freshLogin struct {
	throttler
	users *users.Redis
}

func (f freshLogin) Check(ctx context.Context, user, ip string) (throttle.Verdict, error) {
	if _, err := users.Canonical(user); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
		err := f.users.Refresh(cctx, user)
		cancel()
		if err != nil {
			return throttle.Verdict{}, err
		}
	}
	return f.throttler.Check(ctx, user, ip)
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
func dialRedis(ctx context.Context, cfg config.Config) (redis.UniversalClient, error) {
	o, err := redisOptions(cfg)
	if err != nil {
		return nil, err
	}
	redis.SetLogger(quietRedis{})
	c := newRedisClient(o, cfg.Redis)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis (%s %v) unreachable: %w", cfg.Redis.Mode(), cfg.Redis.Addrs, explainRedisTLS(err, cfg.Redis))
	}
	return c, nil
}

// loadUsers reads the configured users for a check: the users file, or the
// users in Redis. source names where they came from, for messages.
func loadUsers(cfg config.Config, cfgPath string) (db *users.DB, source string, err error) {
	if cfg.Store == "redis" {
		source = "redis"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := dialRedis(ctx, cfg)
		if err != nil {
			return nil, source, err
		}
		defer c.Close()
		u, err := users.OpenRedis(ctx, c, cfg.Redis.KeyPrefix, users.DefaultLimits())
		if err != nil {
			return nil, source, fmt.Errorf("users in redis: %w", err)
		}
		return u.DB(), source, nil
	}
	source = cfg.UsersFile
	f, err := os.Open(cfg.UsersFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, source, fmt.Errorf("users_file: %s does not exist; create it with 'authd user add -config %s NAME'", cfg.UsersFile, cfgPath)
		}
		return nil, source, fmt.Errorf("users_file: %w", err)
	}
	defer f.Close()
	db, err = users.Parse(f, users.DefaultLimits())
	if err != nil {
		return nil, source, fmt.Errorf("users_file %s: %w", cfg.UsersFile, err)
	}
	return db, source, nil
}

// loadSharedSecret returns the key for CSRF tokens. Behind a load balancer
// a login form fetched from one instance may be posted to another, so with
// Redis every instance uses one key kept there (created by the first);
// otherwise it lives in data_dir.
func loadSharedSecret(ctx context.Context, cfg config.Config) ([]byte, error) {
	if cfg.Store != "redis" {
		return loadSecret(cfg.DataDir)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := dialRedis(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
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

// watchUsers reloads users when their source changes, until ctx ends.
func (s *stores) watchUsers(ctx context.Context, onReload func(changed bool, err error)) {
	s.watch(ctx, time.Second, onReload)
}

// Close releases the stores.
func (s *stores) Close() error {
	return s.close()
}
