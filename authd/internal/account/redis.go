package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Backend in Redis: one hash per kind under prefix
// ("account:invites"), field = key, value = the record with its expiry.
// Each operation touches one key, so it works on Redis Cluster; Take is a
// script that reads and deletes the field in one step.
type Redis struct {
	c      redis.UniversalClient
	prefix string
	now    func() time.Time
}

// NewRedis returns a Redis backend on c under prefix; now is the clock.
func NewRedis(c redis.UniversalClient, prefix string, now func() time.Time) *Redis {
	if now == nil {
		now = time.Now
	}
	return &Redis{c: c, prefix: prefix, now: now}
}

func (r *Redis) key(kind string) string { return r.prefix + "account:" + kind }

type redisRecord struct {
	Expires int64           `json:"exp"`
	Rec     json.RawMessage `json:"rec"`
}

// Put implements Backend. It also drops the kind's expired records, which
// keeps the hash as small as the open links.
func (r *Redis) Put(ctx context.Context, kind, key string, rec []byte, expires time.Time) error {
	v, err := json.Marshal(redisRecord{Expires: expires.UnixMilli(), Rec: rec})
	if err != nil {
		return err
	}
	if _, err := r.List(ctx, kind); err != nil {
		return err
	}
	if err := r.c.HSet(ctx, r.key(kind), key, v).Err(); err != nil {
		return fmt.Errorf("redis: store %s record: %w", kind, err)
	}
	return nil
}

func (r *Redis) decode(v string) ([]byte, bool) {
	var rec redisRecord
	if json.Unmarshal([]byte(v), &rec) != nil || r.now().UnixMilli() >= rec.Expires {
		return nil, false
	}
	return rec.Rec, true
}

// Get implements Backend.
func (r *Redis) Get(ctx context.Context, kind, key string) ([]byte, error) {
	v, err := r.c.HGet(ctx, r.key(kind), key).Result()
	if errors.Is(err, redis.Nil) {
		return nil, errMissing
	}
	if err != nil {
		return nil, fmt.Errorf("redis: read %s record: %w", kind, err)
	}
	b, ok := r.decode(v)
	if !ok {
		return nil, errMissing
	}
	return b, nil
}

// takeScript reads and deletes one field: KEYS[1] the hash, ARGV[1] the field.
var takeScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then redis.call('HDEL', KEYS[1], ARGV[1]) end
return v
`)

// Take implements Backend.
func (r *Redis) Take(ctx context.Context, kind, key string) ([]byte, error) {
	v, err := takeScript.Run(ctx, r.c, []string{r.key(kind)}, key).Text()
	if errors.Is(err, redis.Nil) {
		return nil, errMissing
	}
	if err != nil {
		return nil, fmt.Errorf("redis: take %s record: %w", kind, err)
	}
	b, ok := r.decode(v)
	if !ok {
		return nil, errMissing
	}
	return b, nil
}

// Delete implements Backend.
func (r *Redis) Delete(ctx context.Context, kind, key string) error {
	if err := r.c.HDel(ctx, r.key(kind), key).Err(); err != nil {
		return fmt.Errorf("redis: delete %s record: %w", kind, err)
	}
	return nil
}

// List implements Backend, deleting the expired records it finds.
func (r *Redis) List(ctx context.Context, kind string) (map[string][]byte, error) {
	all, err := r.c.HGetAll(ctx, r.key(kind)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: list %s: %w", kind, err)
	}
	out := make(map[string][]byte, len(all))
	var stale []string
	for k, v := range all {
		if b, ok := r.decode(v); ok {
			out[k] = b
		} else {
			stale = append(stale, k)
		}
	}
	if len(stale) > 0 {
		if err := r.c.HDel(ctx, r.key(kind), stale...).Err(); err != nil {
			return nil, fmt.Errorf("redis: drop expired %s: %w", kind, err)
		}
	}
	return out, nil
}
