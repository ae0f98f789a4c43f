package server

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
)

// Page rendering under a burst. A login flood is mostly page work: every
// attempt fetches the form and posts it, and beyond the hashing gate the
// post is answered with the form again. Rendered as fast as they arrive, a
// wave of a few hundred such pages takes every core for tens of
// milliseconds, and verify requests, the ones that matter to every signed-in
// user, queue behind them. So pages are rendered in a lane: a few at a time,
// and while others wait, each slot keeps to a duty cycle, so a burst is
// spread over a longer time instead of taking the cores all at once.
const (
	// laneDuty is the share of one core a busy slot may use: after a render
	// that took d, that slot's next render starts no sooner than
	// d·(1/laneDuty − 1) later. A render with nobody waiting never waits.
	laneDuty = 0.2
	// laneMaxWaiting bounds the requests waiting for a slot; beyond it a
	// page request gets a plain 503 at once.
	laneMaxWaiting = 1024
)

type lane struct {
	// slots hold the time each slot may next start a render.
	slots   chan time.Time
	waiting atomic.Int64
}

// newLane returns a lane with n slots; 0 means a quarter of the CPUs, at
// least one.
func newLane(n int) *lane {
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)/4)
	}
	l := &lane{slots: make(chan time.Time, n)}
	for range n {
		l.slots <- time.Time{}
	}
	return l
}

// enter waits for a slot and its turn; it returns the slot's start, to be
// handed to leave, and false when the lane is full or ctx ended first.
func (l *lane) enter(ctx context.Context) (time.Time, bool) {
	var next time.Time
	select {
	case next = <-l.slots:
	default:
		if l.waiting.Add(1) > laneMaxWaiting {
			l.waiting.Add(-1)
			return time.Time{}, false
		}
		select {
		case next = <-l.slots:
			l.waiting.Add(-1)
		case <-ctx.Done():
			l.waiting.Add(-1)
			return time.Time{}, false
		}
	}
	// With nobody queued behind it, a render need not be spread out.
	if wait := time.Until(next); wait > 0 && l.waiting.Load() > 0 {
		time.Sleep(wait)
	}
	return time.Now(), true
}

// leave gives the slot back, with its next start set by the duty cycle.
func (l *lane) leave(start time.Time) {
	now := time.Now()
	l.slots <- now.Add(time.Duration(float64(now.Sub(start)) * (1/laneDuty - 1)))
}
