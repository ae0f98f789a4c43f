package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/fsutil"
)

// LastLoginFile is the name of the embedded store's last-login record in data_dir.
const LastLoginFile = "lastlogin.json"

// lastLoginFlush is how stale the file may get behind memory: a login
// writes it at most this often, so a login flood costs no write each.
const lastLoginFlush = 30 * time.Second

// LastLogins remembers when each user last signed in, in memory, written to
// a file in data_dir at most every 30s and on Close: never the users file,
// which no login writes. A crash loses at most the last 30s of it.
type LastLogins struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	m       map[string]time.Time
	dirty   bool
	flushed time.Time
}

// OpenLastLogins reads path (a missing or broken file is an empty record:
// last logins are informative, never a reason not to start).
func OpenLastLogins(path string, now func() time.Time) *LastLogins {
	l := &LastLogins{path: path, now: now, m: map[string]time.Time{}}
	if data, err := os.ReadFile(path); err == nil {
		var raw map[string]int64
		if json.Unmarshal(data, &raw) == nil {
			for u, t := range raw {
				l.m[u] = time.Unix(t, 0).UTC()
			}
		}
	}
	return l
}

// Seen records a login of user at t.
func (l *LastLogins) Seen(_ context.Context, user string, t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[user] = t.UTC()
	l.dirty = true
	if l.now().Sub(l.flushed) >= lastLoginFlush {
		return l.flushLocked()
	}
	return nil
}

// LastLogin returns every user's last login.
func (l *LastLogins) LastLogin(context.Context) (map[string]time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.m), nil
}

// Close writes what is not yet on disk.
func (l *LastLogins) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.dirty {
		return nil
	}
	return l.flushLocked()
}

func (l *LastLogins) flushLocked() error {
	raw := make(map[string]int64, len(l.m))
	for u, t := range l.m {
		raw[u] = t.Unix()
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	l.flushed = l.now()
	if err := fsutil.WriteFile(l.path, data, fsutil.Options{Perm: 0o600}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write last logins: %w", err)
	}
	l.dirty = false
	return nil
}

// RedisLastLogins keeps last logins in one Redis hash (prefix+"lastlogin"),
// shared by every node; LastLogin caches the hash for a few seconds, so a
// console page does not read 10,000 fields each time.
type RedisLastLogins struct {
	c   redis.UniversalClient
	key string
	now func() time.Time

	mu     sync.Mutex
	cache  map[string]time.Time
	cached time.Time
}

// NewRedisLastLogins returns the last logins in Redis under prefix.
func NewRedisLastLogins(c redis.UniversalClient, prefix string, now func() time.Time) *RedisLastLogins {
	return &RedisLastLogins{c: c, key: prefix + "lastlogin", now: now}
}

// Seen records a login of user at t.
func (r *RedisLastLogins) Seen(ctx context.Context, user string, t time.Time) error {
	return r.c.HSet(ctx, r.key, user, t.Unix()).Err()
}

// LastLogin returns every user's last login, at most 5s old.
func (r *RedisLastLogins) LastLogin(ctx context.Context) (map[string]time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cache != nil && r.now().Sub(r.cached) < 5*time.Second {
		return r.cache, nil
	}
	h, err := r.c.HGetAll(ctx, r.key).Result()
	if err != nil {
		return nil, fmt.Errorf("read last logins: %w", err)
	}
	m := make(map[string]time.Time, len(h))
	for u, v := range h {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			m[u] = time.Unix(n, 0).UTC()
		}
	}
	r.cache, r.cached = m, r.now()
	return m, nil
}
