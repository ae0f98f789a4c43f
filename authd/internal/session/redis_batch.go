package session

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// errBusy is returned by a batched Get when its queue is full: Redis is not
// keeping up (or is stalled), and waiting would only build a queue.
var errBusy = errors.New("redis: too many session lookups waiting")

// getBatcher sends the HMGETs of concurrent Gets to Redis as pipelines:
// under load, several verifies share one write and one read on each side,
// which is most of a lookup's cost; alone, a Get goes out at once. The
// queue is bounded and every wait has a deadline, so a stalled Redis fails
// lookups quickly instead of piling them up.
type getBatcher struct {
	c       redis.UniversalClient
	in      chan *getReq
	max     int
	timeout time.Duration
	stop    chan struct{}
}

type getReq struct {
	key  string
	vals []any
	err  error
	done chan struct{}
}

func newGetBatcher(c redis.UniversalClient, workers, max int, timeout time.Duration) *getBatcher {
	b := &getBatcher{c: c, in: make(chan *getReq, workers*max), max: max, timeout: timeout, stop: make(chan struct{})}
	for range workers {
		go b.run()
	}
	return b
}

func (b *getBatcher) run() {
	batch := make([]*getReq, 0, b.max)
	cmds := make([]*redis.SliceCmd, b.max)
	for {
		select {
		case r := <-b.in:
			batch = append(batch[:0], r)
		case <-b.stop:
			return
		}
	fill:
		for len(batch) < b.max {
			select {
			case r := <-b.in:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.do(batch, cmds[:len(batch)])
	}
}

func (b *getBatcher) do(batch []*getReq, cmds []*redis.SliceCmd) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	if len(batch) == 1 {
		r := batch[0]
		r.vals, r.err = b.c.HMGet(ctx, r.key, "u", "v", "t", "w").Result()
		close(r.done)
		if r.err != nil && !errors.Is(r.err, redis.Nil) {
			b.failQueued(r.err)
		}
		return
	}
	_, err := b.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range batch {
			cmds[i] = p.HMGet(ctx, r.key, "u", "v", "t", "w")
		}
		return nil
	})
	for i, r := range batch {
		r.vals, r.err = cmds[i].Result()
		if r.err == nil && err != nil {
			r.err = err
		}
		close(r.done)
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		b.failQueued(err)
	}
}

// failQueued fails the lookups waiting in the queue with err: after a batch
// failed (Redis down, stalled or timing out), they would most likely fail the
// same way, only later. New lookups still try, so recovery is immediate.
func (b *getBatcher) failQueued(err error) {
	for {
		select {
		case r := <-b.in:
			r.err = err
			close(r.done)
		default:
			return
		}
	}
}

// get returns HMGET key u v t w through a batch.
func (b *getBatcher) get(ctx context.Context, key string) ([]any, error) {
	r := &getReq{key: key, done: make(chan struct{})}
	select {
	case b.in <- r:
	default:
		return nil, errBusy
	}
	select {
	case <-r.done:
		return r.vals, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *getBatcher) close() { close(b.stop) }
