package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// spin keeps the CPU busy for d, as a template render does.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

func TestLaneAloneNeverWaits(t *testing.T) {
	l := newLane(1)
	start, ok := l.enter(context.Background())
	if !ok {
		t.Fatal("enter refused on an idle lane")
	}
	spin(60 * time.Millisecond)
	l.leave(start)
	// The slot's next start is about 140 ms ahead, but nobody is waiting:
	// the next render goes at once.
	t0 := time.Now()
	start, ok = l.enter(context.Background())
	if !ok {
		t.Fatal("enter refused")
	}
	l.leave(start)
	if took := time.Since(t0); took > 100*time.Millisecond {
		t.Fatalf("a lone render waited %v for the duty cycle", took)
	}
}

// A burst is spread out: n renders of d each, queued at once on one slot,
// take at least (n-1)·d/laneDuty, since every render but the first waits out
// the previous one's share. time.Sleep never sleeps less than asked, so the
// bound holds on a loaded machine too.
func TestLaneSpreadsABurst(t *testing.T) {
	l := newLane(1)
	const n, d = 12, 2 * time.Millisecond
	// Hold the slot until every other render is queued, so each of them
	// sees someone waiting.
	first, _ := l.enter(context.Background())
	var wg sync.WaitGroup
	t0 := time.Now()
	for range n {
		wg.Go(func() {
			start, ok := l.enter(context.Background())
			if !ok {
				t.Error("enter refused")
				return
			}
			spin(d)
			l.leave(start)
		})
	}
	for l.waiting.Load() < n {
		time.Sleep(time.Millisecond)
	}
	spin(d)
	l.leave(first)
	wg.Wait()
	// The last render does not wait for anyone (nobody queues behind it),
	// so n-1 waits of at least d·(1/laneDuty-1) each.
	queued := (n - 1) * d
	min := time.Duration(float64(queued) * (1/laneDuty - 1))
	if took := time.Since(t0); took < min {
		t.Fatalf("%d queued renders of %v took %v, want at least %v", n, d, took, min)
	}
}

func TestLaneFullRefuses(t *testing.T) {
	l := newLane(1)
	held, _ := l.enter(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range laneMaxWaiting {
		wg.Go(func() {
			if start, ok := l.enter(ctx); ok {
				l.leave(start)
			}
		})
	}
	for l.waiting.Load() < laneMaxWaiting {
		time.Sleep(time.Millisecond)
	}
	if _, ok := l.enter(context.Background()); ok {
		t.Fatal("enter admitted a request beyond laneMaxWaiting")
	}
	cancel() // the waiters give up
	wg.Wait()
	if w := l.waiting.Load(); w != 0 {
		t.Fatalf("%d still counted as waiting after they gave up", w)
	}
	l.leave(held)
	start, ok := l.enter(context.Background())
	if !ok {
		t.Fatal("lane stayed refused after the queue drained")
	}
	l.leave(start)
}

// TestPagesGoThroughTheLane: a page of authd's own waits for the lane, and
// with the lane full gets the plain 503 at once, while verify never enters it.
func TestPagesGoThroughTheLane(t *testing.T) {
	h := newHarness(t, nil, nil)
	c := h.login("alice")
	l := h.srv.cur.Load().pages.lane
	held, _ := l.enter(context.Background())
	l.waiting.Store(laneMaxWaiting)
	resp := h.do(req{target: "/authd/login"})
	if resp.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Body.String(), "busy") {
		t.Errorf("login page with the lane full: %d %q, want 503 busy", resp.Code, resp.Body.String())
	}
	if code := h.verify("/", c).Code; code != http.StatusOK {
		t.Errorf("verify with the lane full: %d, want 200", code)
	}
	l.waiting.Store(0)
	l.leave(held)
	if resp := h.do(req{target: "/authd/login"}); resp.Code != http.StatusOK {
		t.Errorf("login page after the lane drained: %d, want 200", resp.Code)
	}
}
