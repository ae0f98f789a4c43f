package throttle

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/redistest"
)

var testRedis redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Run(m, &testRedis)) }

// openRedis returns a client for the test server and a key prefix no other
// test uses, or skips the test when redis-server is not installed.
func openRedis(tb testing.TB) (redis.UniversalClient, string) { return testRedis.OpenDeclared(tb) }

// throttler is what the login handler uses; Memory and Redis both are.
type throttler interface {
	Check(ctx context.Context, user, ip string) (Verdict, error)
	Fail(ctx context.Context, user, ip string) error
	Success(ctx context.Context, user, ip string) error
	Reserve(ctx context.Context, user, ip string) (Verdict, error)
	Refund(ctx context.Context, user, ip string) error
	SetConfig(cfg Config)
}

var (
	_ throttler = (*Memory)(nil)
	_ throttler = (*Redis)(nil)
)

// testThrottle is behaviour Memory and Redis share.
func testThrottle(t *testing.T, open func(t *testing.T, c *clock) throttler) {
	ctx := context.Background()
	fail := func(t *testing.T, th throttler, user, ip string) {
		t.Helper()
		if err := th.Fail(ctx, user, ip); err != nil {
			t.Fatalf("Fail: %v", err)
		}
	}
	check := func(t *testing.T, th throttler, user, ip string) Verdict {
		t.Helper()
		v, err := th.Check(ctx, user, ip)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return v
	}
	t.Run("delays grow and cap", func(t *testing.T) {
		c := newClock()
		th := open(t, c)
		want := []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
		for i, w := range want {
			fail(t, th, "alice", "192.0.2.1")
			if got := check(t, th, "alice", "192.0.2.1"); got.Wait != w || (w > 0 && got.Scope != ScopeAccount) {
				t.Fatalf("after %d failures: got %+v, want wait %v (account)", i+1, got, w)
			}
		}
		c.advance(4 * time.Second)
		if got := check(t, th, "alice", "192.0.2.1"); got.Wait != 6*time.Second {
			t.Fatalf("4s later: got %v, want 6s", got.Wait)
		}
	})
	t.Run("window forgets", func(t *testing.T) {
		c := newClock()
		th := open(t, c)
		for range 4 {
			fail(t, th, "alice", "192.0.2.1")
		}
		c.advance(time.Hour)
		if got := check(t, th, "alice", "192.0.2.1"); got.Wait != 0 {
			t.Fatalf("after the window: got %v, want 0", got.Wait)
		}
		fail(t, th, "alice", "192.0.2.1")
		if got := check(t, th, "alice", "192.0.2.1"); got.Wait != 0 {
			t.Fatalf("one failure after the window: got %v, want 0", got.Wait)
		}
	})
	t.Run("account isolated by ip; spray trips the ip", func(t *testing.T) {
		c := newClock()
		th := open(t, c)
		for range 5 {
			fail(t, th, "alice", "192.0.2.1")
		}
		if got := check(t, th, "alice", "198.51.100.9"); got.Wait != 0 {
			t.Fatalf("alice from another IP: got %v, want 0", got.Wait)
		}
		for i := range 10 {
			fail(t, th, fmt.Sprint("user", i), "203.0.113.5")
		}
		if got := check(t, th, "someone", "203.0.113.5"); got.Wait == 0 || got.Scope != ScopeIP {
			t.Fatalf("after a spray: got %+v, want an ip wait", got)
		}
	})
	t.Run("concurrent reservations stay within the budget", func(t *testing.T) {
		th := open(t, newClock())
		if got := reserveConcurrently(t, []throttler{th}, 50, "alice", "192.0.2.1"); got != testConfig().AccountFailures {
			t.Fatalf("50 concurrent attempts: got %d go-aheads, want %d (the account budget)", got, testConfig().AccountFailures)
		}
		if got := check(t, th, "alice", "192.0.2.1"); got.Wait != time.Second || got.Scope != ScopeAccount {
			t.Fatalf("after the flood: got %+v, want a 1s account wait", got)
		}
	})
	t.Run("concurrent spray stays within the ip budget", func(t *testing.T) {
		th := open(t, newClock())
		ok := 0
		for i := range 5 {
			ok += reserveConcurrently(t, []throttler{th}, 10, fmt.Sprint("user", i), "203.0.113.5")
		}
		if ok != testConfig().IPFailures {
			t.Fatalf("50 concurrent attempts on 5 users from one IP: got %d go-aheads, want %d (the ip budget)", ok, testConfig().IPFailures)
		}
	})
	t.Run("reserve counts, refund takes back", func(t *testing.T) {
		c := newClock()
		th := open(t, c)
		want := []time.Duration{0, 0, 0, time.Second}
		for i, w := range want {
			v, err := th.Reserve(ctx, "alice", "192.0.2.1")
			if err != nil || v.Wait != w {
				t.Fatalf("reservation %d: got %+v, %v, want wait %v", i+1, v, err, w)
			}
		}
		if err := th.Refund(ctx, "alice", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		if got := check(t, th, "alice", "192.0.2.1"); got.Wait != 0 {
			t.Fatalf("after a refund: got %+v, want go ahead (2 of 3 failures used)", got)
		}
		if err := th.Refund(ctx, "nobody", "192.0.2.9"); err != nil {
			t.Fatalf("refund of nothing: %v", err)
		}
		if got := check(t, th, "nobody", "192.0.2.9"); got.Wait != 0 {
			t.Fatalf("refund of nothing: got %+v, want go ahead", got)
		}
	})
	t.Run("set config applies to counted failures", func(t *testing.T) {
		c := newClock()
		th := open(t, c)
		for range 2 {
			fail(t, th, "alice", "192.0.2.1")
		}
		if got := check(t, th, "alice", "192.0.2.1"); got.Wait != 0 {
			t.Fatalf("2 failures under 3 free: got %v, want 0", got.Wait)
		}
		cfg := testConfig()
		cfg.AccountFailures, cfg.BaseDelay = 1, 5*time.Second
		th.SetConfig(cfg)
		if got := check(t, th, "alice", "192.0.2.1"); got.Wait != 10*time.Second || got.Scope != ScopeAccount {
			t.Fatalf("same 2 failures under 1 free, 5s base: got %+v, want 10s (account)", got)
		}
		cfg.Window = time.Minute
		th.SetConfig(cfg)
		c.advance(2 * time.Minute)
		if got := check(t, th, "alice", "192.0.2.1"); got.Wait != 0 {
			t.Fatalf("after a window shortened to 1m: got %v, want 0", got.Wait)
		}
	})
	t.Run("success resets the pair only", func(t *testing.T) {
		c := newClock()
		th := open(t, c)
		for range 3 {
			fail(t, th, "alice", "192.0.2.1")
		}
		if err := th.Success(ctx, "alice", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		if got := check(t, th, "alice", "192.0.2.1"); got.Wait != 0 {
			t.Fatalf("after success: got %v, want 0", got.Wait)
		}
	})
}

func TestThrottleMemory(t *testing.T) {
	testThrottle(t, func(_ *testing.T, c *clock) throttler { return NewMemory(testConfig(), c.now) })
}

func TestThrottleRedis(t *testing.T) {
	testThrottle(t, func(t *testing.T, c *clock) throttler {
		rc, prefix := openRedis(t)
		return NewRedis(rc, prefix, testConfig(), c.now)
	})
}

func TestRedisCountersAreShared(t *testing.T) {
	rc, prefix := openRedis(t)
	c := newClock()
	a := NewRedis(rc, prefix, testConfig(), c.now)
	b := NewRedis(rc, prefix, testConfig(), c.now)
	ctx := context.Background()
	for i := range 3 {
		th := a
		if i%2 == 1 {
			th = b
		}
		if err := th.Fail(ctx, "alice", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	for name, th := range map[string]*Redis{"a": a, "b": b} {
		if v, err := th.Check(ctx, "alice", "192.0.2.1"); err != nil || v.Wait != time.Second {
			t.Fatalf("instance %s after 3 failures spread over two: got %+v, %v, want 1s", name, v, err)
		}
	}
}

// reserveConcurrently fires n reservations for user from ip at once, spread
// over ths (instances sharing one store), and returns how many went ahead.
func reserveConcurrently(t *testing.T, ths []throttler, n int, user, ip string) int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		ok    atomic.Int64
		start = make(chan struct{})
		errs  = make(chan error, n)
	)
	for i := range n {
		th := ths[i%len(ths)]
		wg.Go(func() {
			<-start
			v, err := th.Reserve(context.Background(), user, ip)
			if err != nil {
				errs <- err
				return
			}
			if v.Wait == 0 {
				ok.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Reserve: %v", err)
	}
	return int(ok.Load())
}

func TestRedisReservationsAreSharedAcrossInstances(t *testing.T) {
	rc, prefix := openRedis(t)
	c := newClock()
	// Two "nodes": separate throttles and separate clients on one Redis.
	rc2, _ := openRedis(t)
	a := NewRedis(rc, prefix, testConfig(), c.now)
	b := NewRedis(rc2, prefix, testConfig(), c.now)
	if got := reserveConcurrently(t, []throttler{a, b}, 50, "alice", "192.0.2.1"); got != testConfig().AccountFailures {
		t.Fatalf("50 concurrent attempts over two instances: got %d go-aheads, want %d", got, testConfig().AccountFailures)
	}
}

func TestRedisDownIsAnError(t *testing.T) {
	rc := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer rc.Close()
	th := NewRedis(rc, "x:", testConfig(), nil)
	if _, err := th.Check(context.Background(), "alice", "192.0.2.1"); err == nil {
		t.Fatal("Check with Redis down: got nil, want an error")
	}
}
