package users

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestFileUpdate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.toml")
	h, err := Hash("correct horse battery", DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := Edit(path, Limits{}, func([]User) ([]User, error) {
		return []User{{Name: "alice", Hash: h, Generation: 1}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	// Add, change, refuse, delete: each visible in the snapshot at once.
	if err := f.Update(ctx, "bob", func(u User, exists bool) (User, bool, error) {
		if exists {
			t.Fatal("bob exists before he was added")
		}
		return User{Name: "bob", Hash: h, Groups: []string{"ops"}, Generation: 2}, false, nil
	}); err != nil {
		t.Fatal(err)
	}
	if u, ok := f.DB().Lookup("bob"); !ok || u.GroupsHeader != "ops" {
		t.Fatalf("bob after add: %+v %v", u, ok)
	}
	if err := f.Update(ctx, "alice", func(u User, exists bool) (User, bool, error) {
		u.Disabled = true
		return u, false, nil
	}); err != nil {
		t.Fatal(err)
	}
	if u, _ := f.DB().Lookup("alice"); !u.Disabled {
		t.Fatal("alice not disabled after update")
	}
	refuse := errors.New("no")
	if err := f.Update(ctx, "alice", func(u User, _ bool) (User, bool, error) { return u, false, refuse }); !errors.Is(err, refuse) {
		t.Fatalf("got %v, want fn's error", err)
	}
	if err := f.Update(ctx, "alice", func(u User, _ bool) (User, bool, error) {
		u.Name = "mallory"
		return u, false, nil
	}); err == nil {
		t.Fatal("renaming through Update was accepted")
	}
	if err := f.Update(ctx, "alice", func(u User, _ bool) (User, bool, error) {
		u.Hash = "not a hash"
		return u, false, nil
	}); err == nil {
		t.Fatal("an invalid user was written")
	}
	if err := f.Update(ctx, "bob", func(u User, _ bool) (User, bool, error) { return u, true, nil }); err != nil {
		t.Fatal(err)
	}
	if f.DB().HasUser("bob") {
		t.Fatal("bob still there after delete")
	}
}
