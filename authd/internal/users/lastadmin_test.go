package users

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

var adminGroups = []string{"admin"}

// demote returns an UpdateGuarded fn that takes admin status from the user
// the way op does.
func demote(op string) func(u User, exists bool) (User, bool, error) {
	return func(u User, exists bool) (User, bool, error) {
		if !exists {
			return u, false, errors.New("no such user")
		}
		switch op {
		case "set":
			u.Groups = []string{"staff"}
		case "lock":
			u.Disabled = true
		case "delete":
			return u, true, nil
		}
		return u, false, nil
	}
}

// twoNodes opens two Redis user stores (two authd nodes) on one fresh Redis
// after adding users through the first.
func twoNodes(t *testing.T, us ...User) (a, b *Redis) {
	t.Helper()
	c, prefix := openRedis(t)
	a, err := OpenRedis(context.Background(), c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		addRedisUser(t, a, u)
	}
	if b, err = OpenRedis(context.Background(), c, prefix, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestRedisLastAdminRace: admins alice and bob, two authd nodes on one Redis.
// Node a demotes alice and pauses after its check read every user; node b
// demotes bob meanwhile. Node a's write must then be refused: checked again
// against Redis, alice is the last admin.
func TestRedisLastAdminRace(t *testing.T) {
	for _, op := range []string{"set", "lock", "delete"} {
		t.Run(op, func(t *testing.T) {
			ctx := context.Background()
			h := testHash(t)
			a, b := twoNodes(t, User{Name: "alice", Hash: h, Groups: []string{"admin"}, Generation: 1},
				User{Name: "bob", Hash: h, Groups: []string{"admin", "staff"}, Generation: 2},
				User{Name: "carol", Hash: h, Groups: []string{"staff"}, Generation: 3})
			var errB error
			pauses := 0
			a.beforeWrite = func(string) {
				pauses++
				if pauses == 1 {
					errB = b.UpdateGuarded(ctx, "bob", adminGroups, demote("set"))
				}
			}
			errA := a.UpdateGuarded(ctx, "alice", adminGroups, demote(op))
			if errB != nil {
				t.Fatalf("bob demoted on b: %v", errB)
			}
			if !errors.Is(errA, ErrLastAdmin) {
				t.Fatalf("alice %s on a after bob's demotion: got %v, want ErrLastAdmin", op, errA)
			}
			if pauses != 1 {
				t.Errorf("a wrote %d times, want 1 (the retry is refused before its write)", pauses)
			}
			fresh, err := OpenRedis(ctx, a.c, a.prefix, DefaultLimits()) // a third node, reading Redis afresh
			if err != nil {
				t.Fatal(err)
			}
			var admins []string
			for _, u := range fresh.DB().Users() {
				if IsAdmin(u, adminGroups) {
					admins = append(admins, u.Name)
				}
			}
			if !slices.Equal(admins, []string{"alice"}) {
				t.Fatalf("enabled admins in redis: %v, want [alice]", admins)
			}
		})
	}
}

// TestRedisLastAdminOtherWrites: writes that change no one's admin status
// (a hash upgrade, an email, a new non-admin) between the check's read and
// its write do not make it try again.
func TestRedisLastAdminOtherWrites(t *testing.T) {
	ctx := context.Background()
	h := testHash(t)
	a, b := twoNodes(t, User{Name: "alice", Hash: h, Groups: []string{"admin"}, Generation: 1},
		User{Name: "bob", Hash: h, Groups: []string{"admin"}, Generation: 2})
	pauses := 0
	a.beforeWrite = func(string) {
		pauses++
		if err := b.SetHash("bob", h); err != nil {
			t.Error(err)
		}
		if err := b.Update(ctx, "bob", func(u User, _ bool) (User, bool, error) { u.Email = "bob@example.com"; return u, false, nil }); err != nil {
			t.Error(err)
		}
	}
	if err := a.UpdateGuarded(ctx, "alice", adminGroups, demote("lock")); err != nil || pauses != 1 {
		t.Fatalf("lock alice: %v after %d attempts, want success at the first", err, pauses)
	}
	if err := a.UpdateGuarded(ctx, "alice", adminGroups, func(u User, _ bool) (User, bool, error) { u.Disabled = false; return u, false, nil }); err != nil {
		t.Fatal(err)
	}
	// Adding a user does move it: the check reads again, then writes.
	pauses = 0
	a.beforeWrite = func(string) {
		if pauses++; pauses == 1 {
			addRedisUser(t, b, User{Name: "carol", Hash: h, Generation: 3})
		}
	}
	if err := a.UpdateGuarded(ctx, "bob", adminGroups, demote("set")); err != nil || pauses != 2 {
		t.Fatalf("demote bob beside alice: %v after %d attempts, want success at the second", err, pauses)
	}
}

// TestRedisLastAdminStaleSnapshot: node b's snapshot still shows bob as an
// admin after node a demoted him; b's check reads Redis, not its snapshot.
func TestRedisLastAdminStaleSnapshot(t *testing.T) {
	ctx := context.Background()
	h := testHash(t)
	a, b := twoNodes(t, User{Name: "alice", Hash: h, Groups: []string{"admin"}, Generation: 1},
		User{Name: "bob", Hash: h, Groups: []string{"admin"}, Generation: 2})
	if err := a.UpdateGuarded(ctx, "bob", adminGroups, demote("lock")); err != nil {
		t.Fatal(err)
	}
	if e, _ := b.DB().Lookup("bob"); e.Disabled {
		t.Fatal("b's snapshot is not stale; the test proves nothing")
	}
	if err := b.UpdateGuarded(ctx, "alice", adminGroups, demote("set")); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("alice demoted on b: got %v, want ErrLastAdmin", err)
	}
	// Unguarded Update (an external sign-in's groups) and a non-admin's
	// change pass.
	if err := b.UpdateGuarded(ctx, "bob", adminGroups, demote("delete")); err != nil {
		t.Fatalf("delete locked bob: %v", err)
	}
	if err := b.Update(ctx, "alice", demote("set")); err != nil {
		t.Fatalf("unguarded update: %v", err)
	}
}

// TestFileLastAdmin: the file store checks the file as read under its lock,
// not its snapshot, which may not have caught up with another process's edit.
func TestFileLastAdmin(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.toml")
	h := testHash(t)
	if err := Edit(path, Limits{}, func([]User) ([]User, error) {
		return []User{{Name: "alice", Hash: h, Groups: []string{"admin"}, Generation: 1},
			{Name: "bob", Hash: h, Groups: []string{"admin"}, Generation: 2}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	// Another process (the CLI) demotes bob; f has not reloaded.
	if err := Edit(path, Limits{}, func(us []User) ([]User, error) {
		us[1].Groups = nil
		return us, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"set", "lock", "delete"} {
		if err := f.UpdateGuarded(ctx, "alice", adminGroups, demote(op)); !errors.Is(err, ErrLastAdmin) {
			t.Errorf("%s alice: got %v, want ErrLastAdmin", op, err)
		}
	}
	if e, ok := f.DB().Lookup("alice"); !ok || e.Disabled || !slices.Equal(e.Groups, []string{"admin"}) {
		t.Errorf("alice changed: %+v", e)
	}
	if err := f.UpdateGuarded(ctx, "bob", adminGroups, demote("lock")); err != nil {
		t.Errorf("lock bob, no admin: %v", err)
	}
}
