package audit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisMax is how many events the Redis stream keeps (approximately).
const DefaultRedisMax = 100000

// Redis is the Redis store's Log: a capped stream (XADD MAXLEN ~) under the
// configured key prefix, shared by every authd instance and the CLI.
type Redis struct {
	c   redis.UniversalClient
	key string
	max int64
}

// NewRedis returns the Log in the stream prefix+"audit", keeping about max
// events (max <= 0: DefaultRedisMax).
func NewRedis(c redis.UniversalClient, prefix string, max int64) *Redis {
	if max <= 0 {
		max = DefaultRedisMax
	}
	return &Redis{c: c, key: prefix + "audit", max: max}
}

// Key returns the stream's key.
func (r *Redis) Key() string { return r.key }

// Record appends e to the stream.
func (r *Redis) Record(ctx context.Context, e Event) error {
	line, err := encode(e)
	if err != nil {
		return err
	}
	err = r.c.XAdd(ctx, &redis.XAddArgs{Stream: r.key, MaxLen: r.max, Approx: true, Values: []any{"e", line[:len(line)-1]}}).Err()
	if err != nil {
		return fmt.Errorf("record audit event: %w", err)
	}
	return nil
}

// scanBatch is how many stream entries Recent reads per round trip.
const scanBatch = 500

// Recent reads the stream newest first until it has f's limit of matching
// events or has looked at every entry.
func (r *Redis) Recent(ctx context.Context, f Filter) ([]Event, error) {
	var out []Event
	end := "+"
	for {
		msgs, err := r.c.XRevRangeN(ctx, r.key, end, "-", scanBatch).Result()
		if err != nil {
			return nil, fmt.Errorf("read audit events: %w", err)
		}
		for _, m := range msgs {
			s, _ := m.Values["e"].(string)
			var e Event
			if json.Unmarshal([]byte(s), &e) != nil {
				continue
			}
			if f.Match(e) {
				out = append(out, e)
				if len(out) >= f.limit() {
					return out, nil
				}
			}
		}
		if len(msgs) < scanBatch {
			return out, nil
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
}
