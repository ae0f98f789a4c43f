package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps factors in Redis, one JSON value per user under
// prefix+"mfa:"+user, for several authd instances sharing one user store.
type Redis struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedis returns a factor store on c under prefix.
func NewRedis(c redis.UniversalClient, prefix string) *Redis {
	return &Redis{c: c, prefix: prefix}
}

func (r *Redis) key(user string) string { return r.prefix + "mfa:" + user }

// Get implements Store.
func (r *Redis) Get(ctx context.Context, user string) (Factors, error) {
	var f Factors
	b, err := r.c.Get(ctx, r.key(user)).Bytes()
	if errors.Is(err, redis.Nil) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("get factors: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("parse factors of %s: %w", user, err)
	}
	return f, nil
}

// Update implements Store with an optimistic transaction (WATCH), retried
// a few times when another instance changed the same user meanwhile.
func (r *Redis) Update(ctx context.Context, user string, fn func(f *Factors) error) error {
	k := r.key(user)
	for i := range 50 {
		if i > 0 {
			time.Sleep(time.Duration(rand.IntN(i*2)+1) * time.Millisecond)
		}
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			var f Factors
			b, err := tx.Get(ctx, k).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return err
			default:
				if err := json.Unmarshal(b, &f); err != nil {
					return fmt.Errorf("parse factors of %s: %w", user, err)
				}
			}
			if err := fn(&f); err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				if f.empty() {
					p.Del(ctx, k)
					return nil
				}
				nb, err := json.Marshal(&f)
				if err != nil {
					return err
				}
				p.Set(ctx, k, nb, 0)
				return nil
			})
			return err
		}, k)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return err
	}
	return fmt.Errorf("update factors of %s: too much contention", user)
}

// Users implements Store (SCAN over the prefix; for the admin console).
func (r *Redis) Users(ctx context.Context) (map[string]Factors, error) {
	out := map[string]Factors{}
	pat := r.prefix + "mfa:*"
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		it := c.Scan(ctx, 0, pat, 500).Iterator()
		for it.Next(ctx) {
			user := strings.TrimPrefix(it.Val(), r.prefix+"mfa:")
			f, err := r.Get(ctx, user)
			if err != nil {
				return err
			}
			out[user] = f
		}
		return it.Err()
	}
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		var mu = make(chan struct{}, 1)
		mu <- struct{}{}
		return out, cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			<-mu
			defer func() { mu <- struct{}{} }()
			return scan(ctx, m)
		})
	}
	return out, scan(ctx, r.c)
}

// RedisReplay is the replay record shared through Redis: SET NX with an
// expiry, so a code used on one node is refused on every other.
type RedisReplay struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedisReplay returns a replay record on c under prefix.
func NewRedisReplay(c redis.UniversalClient, prefix string) *RedisReplay {
	return &RedisReplay{c: c, prefix: prefix}
}

// Claim implements Replay.
func (r *RedisReplay) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := r.c.SetNX(ctx, r.prefix+"mfaused:"+key, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	return ok, nil
}
