package users

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExternalUserNeedsNoHash(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"external without hash", "[[users]]\nname = \"grace\"\nsource = \"oidc:corp\"\ngeneration = 1\n", ""},
		{"local without hash", "[[users]]\nname = \"grace\"\ngeneration = 1\n", "hash is missing"},
		{"bad source", "[[users]]\nname = \"grace\"\nsource = \"oidc corp\"\ngeneration = 1\n", "source must be"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Parse(strings.NewReader(tc.doc), DefaultLimits())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				if u, _ := db.Lookup("grace"); u.Source != "oidc:corp" {
					t.Errorf("got source %q, want oidc:corp", u.Source)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestFileUpdateExternalUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	create := func(u User, exists bool) (User, bool, error) {
		if exists {
			return u, false, errors.New("exists")
		}
		return User{Name: "grace", Source: "oidc:corp", Groups: []string{"navy"}, Generation: 7}, false, nil
	}
	if err := f.Update(ctx, "grace", create); err != nil {
		t.Fatal(err)
	}
	if u, ok := f.DB().Lookup("grace"); !ok || u.Source != "oidc:corp" || u.Generation != 7 {
		t.Fatalf("after create: got %+v, want grace from oidc:corp", u)
	}
	if err := f.Update(ctx, "grace", create); err == nil || err.Error() != "exists" {
		t.Errorf("fn's error: got %v, want it returned", err)
	}
	if err := f.Update(ctx, "grace", func(u User, _ bool) (User, bool, error) { u.Name = "other"; return u, false, nil }); err == nil {
		t.Errorf("renaming through Update: got no error")
	}
	if err := f.Update(ctx, "grace", func(u User, _ bool) (User, bool, error) { u.Source = ""; return u, false, nil }); err == nil {
		t.Errorf("a local user without a hash: got no error")
	}
	if err := f.Update(ctx, "grace", func(u User, _ bool) (User, bool, error) { return u, true, nil }); err != nil {
		t.Fatal(err)
	}
	if f.DB().HasUser("grace") {
		t.Errorf("grace still there after delete")
	}
}

func TestRedisExternalUser(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	a, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	addRedisUser(t, a, User{Name: "grace", Source: "oidc:corp", Groups: []string{"navy"}, Generation: 3})
	err = a.Update(ctx, "ada", func(User, bool) (User, bool, error) { return User{Name: "ada", Generation: 1}, false, nil })
	if err == nil || !strings.Contains(err.Error(), "hash is missing") {
		t.Errorf("local user without hash: got %v, want hash is missing", err)
	}
	b, err := OpenRedis(ctx, c, prefix, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := b.DB().Lookup("grace"); !ok || u.Source != "oidc:corp" || u.Hash != "" || u.GroupsHeader != "navy" {
		t.Errorf("grace read back from redis: got %+v, %v; want source oidc:corp, no hash, group navy", u, ok)
	}
}
