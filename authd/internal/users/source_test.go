package users

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSourceAllowsEmptyHash(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"directory user without hash", "[[users]]\nname = 'dora'\nhash = ''\nsource = 'ldap'\ngeneration = 1\n", ""},
		{"directory user, hash key absent", "[[users]]\nname = 'dora'\nsource = 'oidc'\n", ""},
		{"local user without hash", "[[users]]\nname = 'dora'\nhash = ''\n", "hash is missing"},
		{"bad source", "[[users]]\nname = 'dora'\nsource = 'LDAP server'\n", "source must be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Parse(strings.NewReader(tt.src), DefaultLimits())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				u, _ := db.Lookup("dora")
				if u == nil || u.Source == "" {
					t.Fatalf("got %+v, want dora with a source", u)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestFileUpdateKeepsSource(t *testing.T) {
	path := writeTestFile(t)
	f, err := OpenFile(path, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	create := func(u User, exists bool) (User, bool, error) {
		if exists {
			return User{}, false, errors.New("exists already")
		}
		return User{Name: "dora", Source: "ldap", Groups: []string{"staff"}, Generation: 7}, false, nil
	}
	if err := f.Update(ctx, "dora", create); err != nil {
		t.Fatal(err)
	}
	u, ok := f.DB().Lookup("dora")
	if !ok || u.Source != "ldap" || u.Generation != 7 || !slices.Equal(u.Groups, []string{"staff"}) {
		t.Fatalf("after create: got %+v, want dora from ldap in staff", u)
	}
	if err := f.Update(ctx, "dora", create); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("fn's error: got %v, want it passed on", err)
	}
	err = f.Update(ctx, "dora", func(u User, exists bool) (User, bool, error) {
		u.Groups = []string{"admins"}
		return u, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := f.DB().Lookup("dora"); !slices.Equal(u.Groups, []string{"admins"}) || u.Generation != 7 {
		t.Fatalf("after update: got %+v, want groups [admins], generation 7", u)
	}
	err = f.Update(ctx, "dora", func(u User, exists bool) (User, bool, error) {
		u.Name = "eve"
		return u, false, nil
	})
	if err == nil {
		t.Fatal("renaming: got no error")
	}
	if err := f.Update(ctx, "dora", func(User, bool) (User, bool, error) { return User{}, true, nil }); err != nil {
		t.Fatal(err)
	}
	if f.DB().HasUser("dora") {
		t.Fatal("after delete: dora still there")
	}
	if f.DB().Len() != 2 {
		t.Fatalf("got %d users, want the file's 2 untouched", f.DB().Len())
	}
}

func TestRedisKeepsSource(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	a, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	addRedisUser(t, a, User{Name: "dora", Source: "ldap", Groups: []string{"analysts"}, Generation: 9})
	if err := a.Update(ctx, "eve", func(User, bool) (User, bool, error) { return User{Name: "eve", Generation: 1}, false, nil }); err == nil {
		t.Fatal("a local user without hash: got no error")
	}
	b, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	u, ok := b.DB().Lookup("dora")
	if !ok || u.Source != "ldap" || u.Hash != "" || u.Generation != 9 {
		t.Fatalf("dora read back: got %+v, %v; want source ldap, no hash, generation 9", u, ok)
	}
}
