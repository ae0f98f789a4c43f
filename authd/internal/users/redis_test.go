package users

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
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

// TestRedisUsersRefuseHashBeyondLimits: a user written to Redis with a hash beyond the configured
// bounds (here by a writer with generous limits, as an older authd or another tool could) makes
// OpenRedis fail naming the user, and a Refresh of that user fails without replacing the last good
// copy in the snapshot.
func TestRedisUsersRefuseHashBeyondLimits(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	lim := LimitsFor(DefaultParams(), 12)
	w, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	must(t, err)
	addRedisUser(t, w, User{Name: "heavy", Hash: testHash(t), Generation: 1})
	r, err := OpenRedis(ctx, c, prefix, lim)
	must(t, err)
	over := "$2b$13$" + strings.Repeat("a", 53)
	must(t, w.Update(ctx, "heavy", func(u User, _ bool) (User, bool, error) {
		u.Hash, u.Generation = over, 2
		return u, false, nil
	}))
	err = r.Refresh(ctx, "heavy")
	if err == nil || !strings.Contains(err.Error(), "user heavy") || !strings.Contains(err.Error(), "bcrypt cost 13 is above the limit 12") || strings.Contains(err.Error(), over[7:27]) {
		t.Errorf("Refresh of an over-bound user: got %v, want an error naming heavy and the limit, not the hash", err)
	}
	if e, ok := r.DB().Lookup("heavy"); !ok || e.Generation != 1 {
		t.Errorf("after the refused Refresh: got %+v, %v, want the last good copy (generation 1)", e, ok)
	}
	if _, err := OpenRedis(ctx, c, prefix, lim); err == nil || !strings.Contains(err.Error(), "heavy") {
		t.Errorf("OpenRedis with an over-bound user: got %v, want an error naming heavy", err)
	}
}

// TestRedisUsersReloadKeepsNewerChanges checks that a full reload, whose
// reads are not one moment, never installs an older copy of a user over a
// newer one that reached the snapshot meanwhile (through a Refresh, as the
// change announcement does), and does not keep a user deleted meanwhile.
func TestRedisUsersReloadKeepsNewerChanges(t *testing.T) {
	ctx := context.Background()
	h := testHash(t)
	disable := func(u User, ok bool) (User, bool, error) { u.Disabled = true; return u, false, nil }
	remove := func(u User, ok bool) (User, bool, error) { return u, true, nil }
	tests := []struct {
		name   string
		during func(t *testing.T, a, w *Redis) // between the reload's read and its install
		want   map[string]bool                 // user → disabled, for the users a must hold
	}{
		{"user changed", func(t *testing.T, a, w *Redis) {
			must(t, w.Update(ctx, "alice", disable))
			must(t, a.Refresh(ctx, "alice"))
		}, map[string]bool{"alice": true, "bob": false}},
		{"user added", func(t *testing.T, a, w *Redis) {
			addRedisUser(t, w, User{Name: "carol", Hash: h, Generation: 3})
			must(t, a.Refresh(ctx, "carol"))
		}, map[string]bool{"alice": false, "bob": false, "carol": false}},
		{"user added and deleted", func(t *testing.T, a, w *Redis) {
			addRedisUser(t, w, User{Name: "dave", Hash: h, Generation: 4})
			must(t, a.Refresh(ctx, "dave"))
			must(t, w.Update(ctx, "dave", remove)) // its announcement has not reached a
		}, map[string]bool{"alice": false, "bob": false}},
		{"user deleted", func(t *testing.T, a, w *Redis) {
			must(t, w.Update(ctx, "bob", remove))
			must(t, a.Refresh(ctx, "bob"))
		}, map[string]bool{"alice": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, prefix := openRedis(t)
			w, err := OpenRedis(ctx, c, prefix, DefaultLimits())
			must(t, err)
			addRedisUser(t, w, User{Name: "alice", Hash: h, Generation: 1})
			addRedisUser(t, w, User{Name: "bob", Hash: h, Generation: 2})
			a, err := OpenRedis(ctx, c, prefix, DefaultLimits())
			must(t, err)
			a.afterRead = func(name string) {
				if name == "" {
					a.afterRead = nil
					tt.during(t, a, w)
				}
			}
			_, err = a.Reload()
			must(t, err)
			checkUsers(t, a, w, tt.want)
		})
	}
}

// TestRedisUsersRefreshKeepsNewerChanges checks the same for one user: a
// Refresh whose read is overtaken by a later change never undoes it.
func TestRedisUsersRefreshKeepsNewerChanges(t *testing.T) {
	ctx := context.Background()
	h := testHash(t)
	tests := []struct {
		name   string
		user   string
		during func(t *testing.T, a, w *Redis)
		want   map[string]bool
	}{
		{"read absent, then added", "carol", func(t *testing.T, a, w *Redis) {
			addRedisUser(t, w, User{Name: "carol", Hash: h, Generation: 3})
			must(t, a.Refresh(ctx, "carol"))
		}, map[string]bool{"alice": false, "carol": false}},
		{"read, then disabled", "alice", func(t *testing.T, a, w *Redis) {
			must(t, w.Update(ctx, "alice", func(u User, ok bool) (User, bool, error) { u.Disabled = true; return u, false, nil }))
			must(t, a.Refresh(ctx, "alice"))
		}, map[string]bool{"alice": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, prefix := openRedis(t)
			w, err := OpenRedis(ctx, c, prefix, DefaultLimits())
			must(t, err)
			addRedisUser(t, w, User{Name: "alice", Hash: h, Generation: 1})
			a, err := OpenRedis(ctx, c, prefix, DefaultLimits())
			must(t, err)
			a.afterRead = func(name string) {
				if name == tt.user {
					a.afterRead = nil
					tt.during(t, a, w)
				}
			}
			must(t, a.Refresh(ctx, tt.user))
			checkUsers(t, a, w, tt.want)
		})
	}
}

// checkUsers checks that a holds exactly the users in want, with their
// disabled flags, at the versions Redis (read by a fresh instance) has.
func checkUsers(t *testing.T, a, w *Redis, want map[string]bool) {
	t.Helper()
	fresh, err := OpenRedis(context.Background(), w.c, w.prefix, DefaultLimits())
	must(t, err)
	if got := a.DB().Len(); got != len(want) {
		t.Errorf("users held: got %d, want %d (%v)", got, len(want), want)
	}
	for name, disabled := range want {
		e, ok := a.DB().Lookup(name)
		if !ok {
			t.Errorf("user %s: missing", name)
			continue
		}
		if e.Disabled != disabled {
			t.Errorf("user %s: disabled %v, want %v", name, e.Disabled, disabled)
		}
		if got, want := a.Version(name), fresh.Version(name); got != want {
			t.Errorf("user %s: version %d, want %d (Redis's)", name, got, want)
		}
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// TestRedisUsersAddNeverClobbers checks that Add (the import without
// -overwrite) refuses a user that another instance added after this one's
// snapshot was taken, and leaves that user as it was.
func TestRedisUsersAddNeverClobbers(t *testing.T) {
	ctx := context.Background()
	c, prefix := openRedis(t)
	h := testHash(t)
	a, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	must(t, err)
	w, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	must(t, err)
	addRedisUser(t, w, User{Name: "erin", Hash: h, Email: "erin@example.com", Generation: 5})
	if _, ok := a.DB().Lookup("erin"); ok {
		t.Fatal("a's snapshot already holds erin: the test does not test the race")
	}
	if err := a.Add(ctx, User{Name: "erin", Hash: h, Email: "imported@example.com", Generation: 6}); !errors.Is(err, ErrExists) {
		t.Fatalf("Add over a user added meanwhile: got %v, want %v", err, ErrExists)
	}
	must(t, a.Add(ctx, User{Name: "fred", Hash: h, Generation: 7}))
	checkUsers(t, a, w, map[string]bool{"fred": false})
	fresh, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	must(t, err)
	if e, ok := fresh.DB().Lookup("erin"); !ok || e.Email != "erin@example.com" {
		t.Fatalf("erin in redis after the refused Add: got %+v (found %v), want the original", e, ok)
	}
}

// TestRedisUsersRefreshUnknownRemembersNothing checks that refreshing names
// that do not exist (every login with any name does) leaves no trace in the
// snapshot, so they cannot grow it.
func TestRedisUsersRefreshUnknownRemembersNothing(t *testing.T) {
	ctx := context.Background()
	c, prefix := openRedis(t)
	a, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	must(t, err)
	before := a.snap.Load()
	for i := range 50 {
		must(t, a.Refresh(ctx, fmt.Sprint("nobody", i)))
	}
	if s := a.snap.Load(); s != before || len(s.gone) != 0 {
		t.Fatalf("snapshot after refreshing unknown names: replaced %v, %d remembered; want untouched", s != before, len(s.gone))
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
