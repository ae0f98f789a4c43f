package main

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/server"
)

// auditLog is an audit.Log that may hold a file to close.
type auditLog interface {
	audit.Log
	Close() error
}

// openAudit opens the audit log of the configured store kind, the one
// serve and every CLI command write: the stream in Redis with store =
// "redis" (rc is its client), else data_dir's audit file, which several
// processes may append to at once.
func openAudit(cfg config.Config, rc redis.UniversalClient) (auditLog, error) {
	if cfg.Store == "redis" {
		return redisAudit{audit.NewRedis(rc, cfg.Redis.KeyPrefix, 0)}, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data_dir: %w", err)
	}
	l, err := audit.OpenFile(filepath.Join(cfg.DataDir, audit.FileName), 0)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// lastLogins is where the console's "last login" comes from.
type lastLogins interface {
	server.LastLogins
	Close() error
}

// openLastLogins opens the last-login record of the store kind: a hash in
// Redis, or a file in data_dir (openAudit made the directory).
func openLastLogins(cfg config.Config, rc redis.UniversalClient) lastLogins {
	if rc != nil {
		return redisLastLogins{audit.NewRedisLastLogins(rc, cfg.Redis.KeyPrefix, time.Now)}
	}
	return audit.OpenLastLogins(filepath.Join(cfg.DataDir, audit.LastLoginFile), time.Now)
}

type redisLastLogins struct{ *audit.RedisLastLogins }

func (redisLastLogins) Close() error { return nil }

// redisAudit is the Redis log, whose client its opener closes.
type redisAudit struct{ *audit.Redis }

func (redisAudit) Close() error { return nil }

// cliAudit records the CLI's changes, naming the unix user who made them.
// A command opens it before it changes anything, so a change it cannot
// record is not made.
type cliAudit struct {
	log   auditLog
	rc    redis.UniversalClient
	actor string
}

func openCLIAudit(ctx context.Context, cfg config.Config) (*cliAudit, error) {
	a := &cliAudit{actor: unixActor()}
	if cfg.Store == "redis" {
		rc, err := dialRedis(ctx, cfg)
		if err != nil {
			return nil, err
		}
		a.rc = rc
	}
	l, err := openAudit(cfg, a.rc)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	a.log = l
	return a, nil
}

// record writes e as the CLI's, with the time, actor and source filled in.
func (a *cliAudit) record(ctx context.Context, e audit.Event) error {
	e.Time, e.Actor, e.Source = time.Now().UTC(), a.actor, "cli"
	if err := a.log.Record(ctx, e); err != nil {
		return fmt.Errorf("record audit event %s: %w", e.Event, err)
	}
	return nil
}

func (a *cliAudit) Close() {
	if a.log != nil {
		a.log.Close()
	}
	if a.rc != nil {
		closeRedis(a.rc)
	}
}

// unixActor names the unix user running the command, and the one who ran
// sudo when that is how: "unix:root (sudo alice)".
func unixActor() string {
	name := fmt.Sprint(os.Getuid())
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if s := os.Getenv("SUDO_USER"); s != "" && os.Getuid() == 0 {
		return "unix:" + name + " (sudo " + s + ")"
	}
	return "unix:" + name
}
