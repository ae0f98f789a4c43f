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
// ":"), set with NX. Redis must not evict them: run it with maxmemory-policy
// noeviction, so that a full Redis refuses writes (and authd refuses signed
// requests) rather than forgetting nonces.
//
// Expiry: the key's TTL runs on Redis's clock, as a duration, from until as
// the recording instance's clock sees it, plus the clock skew allowed between
// instances: an instance whose clock lags the recording one's by d still
// accepts the request's timestamp for d after until (as the recorder
// measures), and the nonce must outlive that.
type RedisNonces struct {
	c       redis.UniversalClient
	prefix  string
	now     func() time.Time
	skew    time.Duration
	timeout time.Duration
}

// DefaultClockSkew is how far apart RedisNonces assumes instances' clocks can
// be: the default timestamp window. An instance further off than the window
// from its clients refuses their fresh requests anyway.
const DefaultClockSkew = DefaultWindow

// RedisNoncesOption configures NewRedisNonces.
type RedisNoncesOption func(*RedisNonces)

// WithClockSkew sets the clock skew allowed between instances; d < 0 keeps
// DefaultClockSkew.
func WithClockSkew(d time.Duration) RedisNoncesOption {
	return func(r *RedisNonces) {
		if d >= 0 {
			r.skew = d
		}
	}
}

// NewRedisNonces returns a nonce cache on c with keys under prefix. now is the
// clock (nil means time.Now).
func NewRedisNonces(c redis.UniversalClient, prefix string, now func() time.Time, opts ...RedisNoncesOption) *RedisNonces {
	if now == nil {
		now = time.Now
	}
	r := &RedisNonces{c: c, prefix: prefix, now: now, skew: DefaultClockSkew, timeout: 900 * time.Millisecond}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Seen implements NonceCache with one SET NX PX. The TTL holds the nonce
// through until (inclusive) plus the allowed clock skew, rounded up to the
// next millisecond.
func (r *RedisNonces) Seen(ctx context.Context, keyID, nonce string, until time.Time) (bool, error) {
	ttl := until.Sub(r.now()) + r.skew
	if ttl < 0 {
		return false, nil // outside its window on every clock: nothing to remember
	}
	ttl = ttl.Truncate(time.Millisecond) + time.Millisecond
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	set, err := r.c.SetNX(ctx, r.prefix+"n:"+keyID+":"+nonce, "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis nonce cache: %w", err)
	}
	return !set, nil
}
