package session

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/redistest"
)

var _ store = (*Redis)(nil)

var testRedis redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Run(m, &testRedis)) }

// openRedis returns a client for the test server and a key prefix no other
// test uses, or skips the test when redis-server is not installed.
func openRedis(tb testing.TB) (redis.UniversalClient, string) { return testRedis.OpenDeclared(tb) }

func TestRedisStore(t *testing.T) {
	testStore(t, func(t *testing.T) store {
		c, prefix := openRedis(t)
		return NewRedis(c, prefix, time.Now)
	})
}

func TestRedisStoreBatched(t *testing.T) {
	testStore(t, func(t *testing.T) store {
		c, prefix := openRedis(t)
		s := NewRedis(c, prefix, time.Now, WithBatching(2, 16))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestRedisTTLOnRedisClock(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	// An instance whose clock is an hour slow: its sessions expire at their
	// lifetime on Redis's clock all the same.
	slow := func() time.Time { return time.Now().Add(-time.Hour) }
	s := NewRedis(c, prefix, slow)
	base := slow()
	sess := newTestSession("alice", base)
	sess.Expires = base.Add(2 * time.Second)
	mustCreate(t, s, testKey("a"), sess)
	pttl, err := c.PTTL(ctx, s.sessKey(new(testKey("a")))).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pttl <= 0 || pttl > 2*time.Second {
		t.Fatalf("PTTL: got %v, want (0, 2s]", pttl)
	}
	// A touch later, from a clock an hour fast, cannot push past the deadline.
	fast := NewRedis(c, prefix, nil)
	if err := fast.Touch(ctx, testKey("a"), base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if pttl, _ = c.PTTL(ctx, s.sessKey(new(testKey("a")))).Result(); pttl > 2*time.Second {
		t.Fatalf("PTTL after touch: got %v, want at most 2s", pttl)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, ok := mustGet(t, s, testKey("a")); ok {
		t.Fatal("after its lifetime on Redis's clock: got found, want gone")
	}
}

func TestRedisIdleTTL(t *testing.T) {
	c, prefix := openRedis(t)
	s := NewRedis(c, prefix, nil)
	sess := newTestSession("alice", time.Now())
	sess.Idle = 300 * time.Millisecond
	mustCreate(t, s, testKey("a"), sess)
	time.Sleep(150 * time.Millisecond)
	if err := s.Touch(context.Background(), testKey("a"), time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // 350ms after login, 200ms after the touch
	if _, ok := mustGet(t, s, testKey("a")); !ok {
		t.Fatal("touched session: got gone, want found")
	}
	time.Sleep(400 * time.Millisecond)
	if _, ok := mustGet(t, s, testKey("a")); ok {
		t.Fatal("idle session: got found, want gone")
	}
}

func TestRedisUserCheck(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	var gotUser string
	var gotVer int64
	s := NewRedis(c, prefix, nil, WithUserCheck(func(_ context.Context, u string, v int64) error {
		gotUser, gotVer = u, v
		if v == 13 {
			return fmt.Errorf("refresh failed")
		}
		return nil
	}))
	mustCreate(t, s, testKey("a"), newTestSession("alice", suiteBase()))
	mustGet(t, s, testKey("a"))
	if gotUser != "alice" || gotVer != 0 {
		t.Fatalf("check without a user record: got %q, %d, want alice, 0", gotUser, gotVer)
	}
	// Create copies the user's version; the user store rewrites it (w) when
	// the user changes.
	c.HSet(ctx, prefix+"u:alice", "ver", 12)
	mustCreate(t, s, testKey("b"), newTestSession("alice", suiteBase()))
	mustGet(t, s, testKey("b"))
	if gotVer != 12 {
		t.Fatalf("check: got version %d, want 12", gotVer)
	}
	c.HSet(ctx, s.sessKey(new(testKey("b"))), "w", 13)
	if _, ok, err := s.Get(ctx, testKey("b")); err == nil || ok {
		t.Fatalf("Get with a failing check: got %v, %v, want not found and an error", ok, err)
	}
}

func TestRedisDownFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Accepts connections and never answers, like a SIGSTOPped Redis.
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{ln.Addr().String()}, Protocol: 2, DisableIdentity: true,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		PoolTimeout: 100 * time.Millisecond, PoolSize: 4, MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	s := NewRedis(c, "x:", nil, WithBatching(2, 8))
	defer s.Close()
	start := time.Now()
	_, ok, err := s.Get(context.Background(), testKey("a"))
	if err == nil || ok {
		t.Fatalf("Get against a stalled server: got %v, %v, want an error", ok, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Get against a stalled server took %v, want under 1s", took)
	}
}

// BenchmarkRedisGet is the Redis store's share of a verify: one HMGET
// round trip to a local redis-server, and the decoding.
func BenchmarkRedisGet(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchRedisGet(b) })
	b.Run("batched", func(b *testing.B) { benchRedisGet(b, WithBatching(4, 32)) })
}

func benchRedisGet(b *testing.B, opts ...RedisOption) {
	c, prefix := openRedis(b)
	s := NewRedis(c, prefix, nil, opts...)
	defer s.Close()
	b.SetParallelism(16)
	mustCreate(b, s, testKey("a"), newTestSession("alice", time.Now()))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok, err := s.Get(ctx, testKey("a")); !ok || err != nil {
				b.Fatalf("Get: %v, %v", ok, err)
			}
		}
	})
}

// TestRedisCreateOverAnotherUsersSession checks that a session created over a
// key that holds another user's session leaves the indexes right, including
// the previous user's, which the create learns only by reading the session.
func TestRedisCreateOverAnotherUsersSession(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	s := NewRedis(c, prefix, nil)
	k := testKey("shared")
	mustCreate(t, s, k, newTestSession("alice", suiteBase()))
	mustCreate(t, s, testKey("other"), newTestSession("alice", suiteBase()))
	mustCreate(t, s, k, newTestSession("bob", suiteBase()))
	for _, tt := range []struct {
		user string
		want int
	}{{"alice", 1}, {"bob", 1}, {"", 2}} {
		got, err := s.List(ctx, tt.user)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.want {
			t.Errorf("List(%q): got %d sessions, want %d", tt.user, len(got), tt.want)
		}
	}
	if n, err := c.ZCard(ctx, s.userIndex("alice")).Result(); err != nil || n != 1 {
		t.Errorf("alice's index: got %d entries (%v), want 1", n, err)
	}
	if err := s.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if n, err := c.ZCard(ctx, s.userIndex("bob")).Result(); err != nil || n != 0 {
		t.Errorf("bob's index after Delete: got %d entries (%v), want 0", n, err)
	}
}
