package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisRecords keeps the records in Redis, so every authd instance sees the
// same tokens and keys: the document (the same JSON as the records file) under
// "P machine" and a version counter under "P machine:v", which every edit
// raises. Readers use a local snapshot that Reload refreshes when the version
// moved. Each successful Reload also confirms the snapshot current as of the
// moment it asked Redis; a Verifier refuses a snapshot last confirmed more than
// MaxStale ago, so an instance cut off from Redis fails closed.
type RedisRecords struct {
	c           redis.UniversalClient
	key, verKey string
	snap        atomic.Pointer[snapshot]
	// confirmed is when (unix nanoseconds) the last successful Reload sent its
	// read: every edit acknowledged before then is in the snapshot.
	confirmed atomic.Int64
	now       func() time.Time
	timeout   time.Duration

	mu  sync.Mutex // serialises Reload; guards ver
	ver int64
}

// reloadTimeout bounds each Reload however Redis fails: a connection that
// silently drops packets must not hold the watcher past its next tick.
const reloadTimeout = 900 * time.Millisecond

// OpenRedisRecords loads the records under prefix from c.
func OpenRedisRecords(ctx context.Context, c redis.UniversalClient, prefix string) (*RedisRecords, error) {
	r := &RedisRecords{c: c, key: prefix + "machine", verKey: prefix + "machine:v", ver: -1, now: time.Now, timeout: reloadTimeout}
	if _, err := r.Reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// current returns the snapshot and when it was last confirmed; a live
// RedisRecords always has a confirmation (OpenRedisRecords needs one read).
func (r *RedisRecords) current() (*snapshot, time.Time) {
	if r == nil {
		return nil, time.Time{}
	}
	return r.snap.Load(), time.Unix(0, r.confirmed.Load())
}

// Records returns a copy of the current records.
func (r *RedisRecords) Records() Records {
	s := r.snap.Load()
	return Records{Tokens: append([]Token(nil), s.recs.Tokens...), Keys: append([]Key(nil), s.recs.Keys...)}
}

// Reload reads the records' version and, when it moved, the records. Either
// way a success confirms the snapshot current as of the read. On error the
// last good snapshot stays, unconfirmed.
func (r *RedisRecords) Reload(ctx context.Context) (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	asked := r.now()
	ver, err := r.c.Get(ctx, r.verKey).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("read machine credentials version from redis: %w", err)
	}
	if ver == r.ver && r.snap.Load() != nil {
		r.confirm(asked)
		return false, nil
	}
	// Version and document in one read, so they belong together.
	vals, err := r.c.MGet(ctx, r.verKey, r.key).Result()
	if err != nil {
		return false, fmt.Errorf("read machine credentials from redis: %w", err)
	}
	ver, data := int64(0), ""
	if s, ok := vals[0].(string); ok {
		fmt.Sscan(s, &ver)
	}
	if s, ok := vals[1].(string); ok {
		data = s
	}
	recs, err := decode([]byte(data))
	if err != nil {
		return false, fmt.Errorf("machine credentials in redis (%s): %w", r.key, err)
	}
	r.snap.Store(index(recs))
	r.ver = ver
	r.confirm(asked)
	return true, nil
}

// confirm records that the snapshot was current at t; it never moves back.
func (r *RedisRecords) confirm(t time.Time) {
	if n := t.UnixNano(); n > r.confirmed.Load() {
		r.confirmed.Store(n)
	}
}

// Watch reloads every interval (at most MaxStale/3) until ctx ends, reporting each reload that
// changed something or failed (a failure once until it recovers).
func (r *RedisRecords) Watch(ctx context.Context, every time.Duration, onReload func(changed bool, err error)) {
	// Verifiers refuse a snapshot older than MaxStale: poll at least three
	// times within it, so one slow or lost read does not refuse everyone.
	if every <= 0 || every > MaxStale/3 {
		every = MaxStale / 3
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := r.Reload(ctx)
		if onReload != nil && (changed || (err != nil && !failing)) {
			onReload(changed, err)
		}
		failing = err != nil
	}
}

// EditRedis changes the records under prefix like Edit changes the file:
// read, fn, validate, write — as one compare-and-set, retried when another
// edit got in between. On any error nothing is written.
func EditRedis(ctx context.Context, c redis.UniversalClient, prefix string, fn func(*Records) error) error {
	key, verKey := prefix+"machine", prefix+"machine:v"
	for attempt := 0; attempt < 20; attempt++ {
		err := c.Watch(ctx, func(tx *redis.Tx) error {
			data, err := tx.Get(ctx, key).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			recs, err := decode([]byte(data))
			if err != nil {
				return fmt.Errorf("machine credentials in redis (%s): %w", key, err)
			}
			if err := fn(&recs); err != nil {
				return err
			}
			if err := recs.validate(); err != nil {
				return err
			}
			if recs.Tokens == nil {
				recs.Tokens = []Token{}
			}
			if recs.Keys == nil {
				recs.Keys = []Key{}
			}
			out, err := json.Marshal(recs)
			if err != nil {
				return fmt.Errorf("encode machine credentials: %w", err)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, out, 0)
				p.Incr(ctx, verKey)
				return nil
			})
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return errors.New("machine credentials in redis: too many concurrent edits; try again")
}
