package users

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/redistest"
)

var testRedis redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Run(m, &testRedis)) }

// openRedis returns a client for the test server and a key prefix no other
// test uses, or skips the test when redis-server is not installed.
func openRedis(tb testing.TB) (redis.UniversalClient, string) { return testRedis.Open(tb) }

func testHash(tb testing.TB) string {
	tb.Helper()
	h, err := Hash("correct horse battery", Params{MemoryKiB: 19456, Time: 2, Threads: 1})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func addRedisUser(tb testing.TB, r *Redis, u User) {
	tb.Helper()
	err := r.Update(context.Background(), u.Name, func(_ User, exists bool) (User, bool, error) {
		if exists {
			return u, false, fmt.Errorf("exists")
		}
		return u, false, nil
	})
	if err != nil {
		tb.Fatalf("add %s: %v", u.Name, err)
	}
}

func TestRedisUsers(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	a, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if a.DB().Len() != 0 {
		t.Fatalf("empty redis: got %d users, want 0", a.DB().Len())
	}
	h := testHash(t)
	addRedisUser(t, a, User{Name: "alice", Hash: h, Groups: []string{"admins", "staff"}, Email: "a@example.com", Generation: 7})
	addRedisUser(t, a, User{Name: "bob", Hash: h, Generation: 8})

	b, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	e, ok := b.DB().Lookup("alice")
	if !ok || e.GroupsHeader != "admins,staff" || e.Email != "a@example.com" || e.Fingerprint != Fingerprint(User{Hash: h, Generation: 7}) {
		t.Fatalf("alice on b: got %+v, %v", e, ok)
	}
	if !b.DB().HasGroup("admins") {
		t.Fatal("HasGroup(admins): got false, want true")
	}

	// A lock on a is seen by b at the next Ensure with Redis's version.
	err = a.Update(ctx, "alice", func(u User, _ bool) (User, bool, error) {
		u.Disabled, u.Generation = true, 9
		return u, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ver, _ := c.HGet(ctx, prefix+"u:alice", "ver").Int64()
	if ver != a.Version("alice") || ver == b.Version("alice") {
		t.Fatalf("versions: redis %d, a %d, b %d; want a equal to redis and b behind", ver, a.Version("alice"), b.Version("alice"))
	}
	if err := b.Ensure(ctx, "alice", ver); err != nil {
		t.Fatal(err)
	}
	if e, _ := b.DB().Lookup("alice"); !e.Disabled {
		t.Fatal("alice on b after Ensure: got enabled, want disabled")
	}

	// Delete and re-add: the version never repeats.
	err = a.Update(ctx, "bob", func(u User, _ bool) (User, bool, error) { return u, true, nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ensure(ctx, "bob", 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.DB().Lookup("bob"); ok {
		t.Fatal("deleted bob on b: got found")
	}
	oldVer := b.Version("alice")
	addRedisUser(t, a, User{Name: "bob", Hash: h, Generation: 10})
	if v := a.Version("bob"); v <= oldVer {
		t.Fatalf("re-added bob: got version %d, want above %d", v, oldVer)
	}

	// SetHash keeps the generation.
	if err := a.SetHash("bob", h); err != nil {
		t.Fatal(err)
	}
	if e, _ := a.DB().Lookup("bob"); e.Generation != 10 {
		t.Fatalf("generation after SetHash: got %d, want 10", e.Generation)
	}

	// Invalid users are refused before they reach Redis.
	err = a.Update(ctx, "carol", func(User, bool) (User, bool, error) { return User{Name: "carol", Hash: "plain"}, false, nil })
	if err == nil {
		t.Fatal("user with a plaintext hash: got nil, want an error")
	}
	if n, _ := c.Exists(ctx, prefix+"u:carol").Result(); n != 0 {
		t.Fatal("refused user: got written to redis")
	}
}

func TestRedisUsersWatch(t *testing.T) {
	c, prefix := openRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	go b.Watch(ctx, 50*time.Millisecond, nil)
	time.Sleep(100 * time.Millisecond) // subscribed
	addRedisUser(t, a, User{Name: "dave", Hash: testHash(t), Generation: 1})
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := b.DB().Lookup("dave"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never saw dave")
		}
	}
}

// TestRedisUserChangeReachesSessions checks the contract with
// session.Redis: a change writes the user's new version (field w) into each
// live session listed in P su:<name>, and creates none.
func TestRedisUserChangeReachesSessions(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	r, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	addRedisUser(t, r, User{Name: "erin", Hash: testHash(t), Generation: 1})
	c.HSet(ctx, prefix+"s:live", "u", "erin", "w", r.Version("erin"))
	c.ZAdd(ctx, prefix+"su:erin", redis.Z{Score: 1, Member: "live"}, redis.Z{Score: 1, Member: "gone"})
	err = r.Update(ctx, "erin", func(u User, _ bool) (User, bool, error) {
		u.Groups = []string{"ops"}
		return u, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := c.HGet(ctx, prefix+"s:live", "w").Int64(); w != r.Version("erin") {
		t.Fatalf("w of a live session: got %d, want the new version %d", w, r.Version("erin"))
	}
	if n, _ := c.Exists(ctx, prefix+"s:gone").Result(); n != 0 {
		t.Fatal("an expired session was recreated")
	}
}

// TestRedisEnsureCurrent: an instance that missed an announcement (b has no
// Watch running) catches up on one user when asked, reading the version from
// Redis itself: a lock, a delete and a password change on another instance
// all count at once. A Redis that cannot answer is an error, never the stale copy.
func TestRedisEnsureCurrent(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	a, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	h := testHash(t)
	addRedisUser(t, a, User{Name: "alice", Hash: h, Generation: 7})
	addRedisUser(t, a, User{Name: "bob", Hash: h, Generation: 8})
	b, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		change func() error
		user   string
		check  func(e *Entry, ok bool) bool
	}{
		{"unchanged", func() error { return nil }, "alice", func(e *Entry, ok bool) bool { return ok && e.Generation == 7 }},
		{"password changed", func() error {
			return a.Update(ctx, "alice", func(u User, _ bool) (User, bool, error) { u.Generation = 70; return u, false, nil })
		}, "alice", func(e *Entry, ok bool) bool { return ok && e.Generation == 70 }},
		{"locked", func() error {
			return a.Update(ctx, "alice", func(u User, _ bool) (User, bool, error) { u.Disabled = true; return u, false, nil })
		}, "alice", func(e *Entry, ok bool) bool { return ok && e.Disabled }},
		{"deleted", func() error {
			return a.Update(ctx, "bob", func(u User, _ bool) (User, bool, error) { return u, true, nil })
		}, "bob", func(e *Entry, ok bool) bool { return !ok }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.change(); err != nil {
				t.Fatal(err)
			}
			if err := b.EnsureCurrent(ctx, st.user); err != nil {
				t.Fatal(err)
			}
			if e, ok := b.DB().Lookup(st.user); !st.check(e, ok) {
				t.Errorf("%s on b: got %+v, %v", st.user, e, ok)
			}
		})
	}
	t.Run("redis gone", func(t *testing.T) {
		dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		defer dead.Close()
		b.c = dead
		if err := b.EnsureCurrent(ctx, "alice"); err == nil {
			t.Error("got nil, want an error")
		}
	})
}
