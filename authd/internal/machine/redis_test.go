package machine

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/redistest"
)

var _ NonceCache = (*RedisNonces)(nil)

var testRedis redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Run(m, &testRedis)) }

// openRedis returns a client for the test server and a key prefix no other
// test uses, or skips the test when redis-server is not installed.
func openRedis(tb testing.TB) (redis.UniversalClient, string) { return testRedis.Open(tb) }

// testNonceCache is behaviour every NonceCache shares, on the real clock.
func testNonceCache(t *testing.T, cache NonceCache) {
	ctx := context.Background()
	const life = 300 * time.Millisecond
	steps := []struct {
		name       string
		sleep      time.Duration
		key, nonce string
		until      time.Duration
		replayed   bool
	}{
		{"first", 0, "k1", "nonce-0000000001", life, false},
		{"replay", 0, "k1", "nonce-0000000001", life, true},
		{"same nonce, other key", 0, "k2", "nonce-0000000001", life, false},
		{"past until", 0, "k1", "nonce-0000000002", -time.Second, false},
		{"past until is not stored", 0, "k1", "nonce-0000000002", life, false},
		{"expired is new", life + 100*time.Millisecond, "k1", "nonce-0000000001", life, false},
		{"and then a replay", 0, "k1", "nonce-0000000001", life, true},
	}
	for _, s := range steps {
		time.Sleep(s.sleep)
		replayed, err := cache.Seen(ctx, s.key, s.nonce, time.Now().Add(s.until))
		if err != nil || replayed != s.replayed {
			t.Fatalf("%s: got %v, %v; want %v", s.name, replayed, err, s.replayed)
		}
	}
}

func TestNonceCacheMemory(t *testing.T) {
	t.Parallel()
	testNonceCache(t, NewMemoryNonces(100, 0, time.Now))
}

func TestNonceCacheRedis(t *testing.T) {
	t.Parallel()
	c, prefix := openRedis(t)
	// Without skew the key must expire right after until, as the memory one does.
	testNonceCache(t, NewRedisNonces(c, prefix, nil, WithClockSkew(0)))
}

// Two authd instances sharing Redis: a request one accepted is a replay at the other.
func TestRedisNoncesShared(t *testing.T) {
	c, prefix := openRedis(t)
	fx := newFixture(t)
	fx.now = time.Now()
	clock := func() time.Time { return fx.now }
	a := NewVerifier(fx.file, NewRedisNonces(c, prefix, clock), 0, clock)
	b := NewVerifier(fx.file, NewRedisNonces(c, prefix, clock), 0, clock)
	r := Request{Method: "GET", URI: "/x", Host: "h", Authorization: fx.sign(t, "GET", "https://h/x", fx.now, "")}
	if _, _, err := a.Authenticate(context.Background(), r); err != nil {
		t.Fatalf("instance a: %v", err)
	}
	if _, _, err := b.Authenticate(context.Background(), r); !errors.Is(err, ErrReplay) {
		t.Fatalf("instance b: got %v, want %v", err, ErrReplay)
	}
}

func TestRedisNoncesDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}, MaxRetries: -1})
	defer c.Close()
	start := time.Now()
	_, err = NewRedisNonces(c, "x:", nil).Seen(context.Background(), "k", "nonce-0000000001", time.Now().Add(time.Minute))
	if err == nil || time.Since(start) > time.Second {
		t.Errorf("got %v after %v; want an error within a second", err, time.Since(start))
	}
}

// TestRedisNoncesCoverWindow checks that a nonce recorded near the edge of its
// window is held for as long as any instance still accepts the request: on
// the recorder's own clock up to the edge inclusive, and on an instance whose
// clock lags by up to the allowed skew.
func TestRedisNoncesCoverWindow(t *testing.T) {
	const lag = 2 * time.Second
	tests := []struct {
		name string
		// record is how long before the window's edge instance a accepts the
		// request; b's clock lags a's by lag.
		record time.Duration
		sleep  time.Duration // real time before b sees the replay
		skew   []RedisNoncesOption
	}{
		{"edge, same moment", 0, 0, nil},
		{"half a millisecond before the edge", time.Millisecond / 2, 5 * time.Millisecond, nil},
		{"lagging instance, default skew", time.Second, 1200 * time.Millisecond, nil},
		{"lagging instance, skew covers the lag", time.Second, 1200 * time.Millisecond, []RedisNoncesOption{WithClockSkew(lag)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, prefix := openRedis(t)
			fx := newFixture(t)
			ts := time.Now().Truncate(time.Second)
			nowA, nowB := ts, ts
			a := NewVerifier(fx.file, NewRedisNonces(c, prefix, func() time.Time { return nowA }, tt.skew...), 0, func() time.Time { return nowA })
			b := NewVerifier(fx.file, NewRedisNonces(c, prefix, func() time.Time { return nowB }, tt.skew...), 0, func() time.Time { return nowB })
			r := Request{Method: "GET", URI: "/x", Host: "h", Authorization: fx.sign(t, "GET", "https://h/x", ts, "")}
			nowA = ts.Add(DefaultWindow - tt.record)
			if _, _, err := a.Authenticate(context.Background(), r); err != nil {
				t.Fatalf("instance a: got %v, want accepted", err)
			}
			time.Sleep(tt.sleep)
			// b still accepts the timestamp: its clock lags a's, or it is
			// the edge itself.
			nowB = nowA.Add(tt.sleep - lag)
			if tt.sleep == 0 {
				nowB = nowA
			}
			if _, _, err := b.Authenticate(context.Background(), r); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay at instance b: got %v, want %v", err, ErrReplay)
			}
		})
	}
}
