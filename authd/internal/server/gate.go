package server

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
)

// gate bounds concurrent password hashing. A few logins may queue briefly;
// beyond that they are refused at once, so a login flood costs bounded CPU
// and memory and never slows verify.
type gate struct {
	slots   chan struct{}
	waiting atomic.Int64
	queue   int64
	timeout time.Duration
}

func newGate(n, queue int, timeout time.Duration) *gate {
	if n <= 0 {
		// Half the CPUs: a login flood then leaves the rest to verify.
		n = max(1, runtime.NumCPU()/2)
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	g := &gate{slots: make(chan struct{}, n), queue: int64(queue), timeout: timeout}
	return g
}

// acquire takes a hashing slot; false means "overloaded, answer 503".
func (g *gate) acquire(ctx context.Context) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	if g.waiting.Add(1) > g.queue {
		g.waiting.Add(-1)
		return false
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(g.timeout)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (g *gate) release() { <-g.slots }

// releaseAfter releases the slot d from now (at once for d <= 0).
func (g *gate) releaseAfter(d time.Duration) {
	if d <= 0 {
		g.release()
		return
	}
	time.AfterFunc(d, g.release)
}

// saturated reports whether every slot is taken and the queue is full, so
// that acquire would refuse now. It is a snapshot: a slot may free a moment
// later.
func (g *gate) saturated() bool {
	return len(g.slots) == cap(g.slots) && g.waiting.Load() >= g.queue
}
