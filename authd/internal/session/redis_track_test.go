package session

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func dialTestRedis(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", testRedis.Addr())
}

// openTracked returns a store with WithTracking whose tracking connection is up.
func openTracked(t *testing.T, c redis.UniversalClient, prefix string, opts ...RedisOption) *Redis {
	t.Helper()
	s := NewRedis(c, prefix, time.Now, append(opts, WithTracking(dialTestRedis, "", "", "authd", func(err error) { t.Log(err) }))...)
	t.Cleanup(func() { s.Close() })
	waitTracking(t, s)
	return s
}

func waitTracking(t *testing.T, s *Redis) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !s.track.live.Load() || !s.track.fresh(); {
		if time.Now().After(deadline) {
			t.Fatal("tracking connection never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedisStoreTracked(t *testing.T) {
	testStore(t, func(t *testing.T) store {
		c, prefix := openRedis(t)
		return openTracked(t, c, prefix, WithBatching(2, 16))
	})
}

// hmgets is how many HMGETs the test Redis has run.
func hmgets(t *testing.T, c redis.UniversalClient) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_hmget:calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// TestRedisTrackingChangesElsewhere: instance B keeps a local copy (its Gets stop reaching Redis),
// yet a logout, revocation or re-login on instance A is refused by B at its very next Get, every
// time; and when B's tracking connection is killed, B stops using its copies at once.
func TestRedisTrackingChangesElsewhere(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	a := NewRedis(c, prefix, time.Now)
	b := openTracked(t, c, prefix)
	now := time.Now()
	sess := Session{User: "ada", Created: now, LastSeen: now, Expires: now.Add(time.Hour), Idle: time.Hour}

	mustGet := func(s *Redis, k Key, want bool, what string) {
		t.Helper()
		_, ok, err := s.Get(ctx, k)
		if err != nil || ok != want {
			t.Fatalf("%s: got found=%v err=%v, want found=%v", what, ok, err, want)
		}
	}

	// Copies are used: 50 Gets of a known session cost Redis no HMGET.
	_, k, _ := New()
	if err := a.Create(ctx, k, sess); err != nil {
		t.Fatal(err)
	}
	mustGet(b, k, true, "first get on B")
	before := hmgets(t, c)
	for range 50 {
		mustGet(b, k, true, "repeated get on B")
	}
	if got := hmgets(t, c) - before; got > 5 {
		t.Fatalf("50 gets of one session on B ran %d HMGETs in Redis; want the local copy used", got)
	}

	for i := range 300 {
		_, k, _ := New()
		if err := a.Create(ctx, k, sess); err != nil {
			t.Fatal(err)
		}
		mustGet(b, k, true, "get on B after login on A")
		mustGet(b, k, true, "second get on B")
		switch i % 3 {
		case 0:
			if err := a.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		case 1:
			if _, err := a.DeleteUser(ctx, "ada"); err != nil {
				t.Fatal(err)
			}
		case 2:
			// The same key now holds another user's session: B must not answer with ada's.
			other := sess
			other.User = "bob"
			if err := a.Create(ctx, k, other); err != nil {
				t.Fatal(err)
			}
			got, ok, err := b.Get(ctx, k)
			if err != nil || !ok || got.User != "bob" {
				t.Fatalf("round %d: get on B after the key was re-created for bob on A: got %q %v %v", i, got.User, ok, err)
			}
			if err := a.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		mustGet(b, k, false, "get on B right after the change on A (round "+strconv.Itoa(i)+")")
	}

	// The tracking connection dies: B's copies go, and B reads Redis again.
	_, k, _ = New()
	if err := a.Create(ctx, k, sess); err != nil {
		t.Fatal(err)
	}
	mustGet(b, k, true, "get on B")
	mustGet(b, k, true, "get on B")
	if err := c.Do(ctx, "CLIENT", "KILL", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	mustGet(b, k, false, "get on B after its tracking connection was killed and A logged out")
	waitTracking(t, b)
}

// BenchmarkRedisGetTracked is a Get answered from the local copy: what a verify costs the Redis
// store while nothing changes.
func BenchmarkRedisGetTracked(b *testing.B) {
	c, prefix := testRedis.Open(b)
	s := NewRedis(c, prefix, time.Now, WithTracking(dialTestRedis, "", "", "", nil))
	defer s.Close()
	for deadline := time.Now().Add(5 * time.Second); !s.track.live.Load() || !s.track.fresh(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("tracking connection never came up")
		}
	}
	ctx := context.Background()
	now := time.Now()
	_, k, _ := New()
	if err := s.Create(ctx, k, Session{User: "ada", Created: now, LastSeen: now, Expires: now.Add(time.Hour), Idle: time.Hour}); err != nil {
		b.Fatal(err)
	}
	if _, ok, err := s.Get(ctx, k); !ok || err != nil {
		b.Fatal(ok, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, ok, err := s.Get(ctx, k); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
