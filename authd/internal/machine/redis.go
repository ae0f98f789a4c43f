package machine

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisNonces is a NonceCache in Redis, shared by every authd instance, so a
// signed request accepted by one instance is a replay at every other.
//
// Keys, under the prefix P: "P n:<key id>:<nonce>" (neither part can hold a
// ":"), set with NX and expiring at until. Redis must not evict them: run it
// with maxmemory-policy noeviction, so that a full Redis refuses writes (and
// authd refuses signed requests) rather than forgetting nonces.
type RedisNonces struct {
	c       redis.UniversalClient
	prefix  string
	now     func() time.Time
	timeout time.Duration
}

// NewRedisNonces returns a nonce cache on c with keys under prefix. now is the
// clock (nil means time.Now).
func NewRedisNonces(c redis.UniversalClient, prefix string, now func() time.Time) *RedisNonces {
	if now == nil {
		now = time.Now
	}
	return &RedisNonces{c: c, prefix: prefix, now: now, timeout: 900 * time.Millisecond}
}

// Seen implements NonceCache with one SET NX PX.
func (r *RedisNonces) Seen(ctx context.Context, keyID, nonce string, until time.Time) (bool, error) {
	ttl := until.Sub(r.now())
	if ttl < time.Millisecond {
		return false, nil // already outside its window: nothing to remember
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	set, err := r.c.SetNX(ctx, r.prefix+"n:"+keyID+":"+nonce, "1", ttl.Truncate(time.Millisecond)).Result()
	if err != nil {
		return false, fmt.Errorf("redis nonce cache: %w", err)
	}
	return !set, nil
}
