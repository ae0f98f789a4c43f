package users

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCreatedRoundTripFileRedis: the creation time survives the users file and Redis,
// and a user without one stays without one (no "created" line written).
func TestCreatedRoundTripFileRedis(t *testing.T) {
	hash := testHash(t)
	when := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "users.toml")
	err := Edit(path, Limits{}, func([]User) ([]User, error) {
		return []User{{Name: "ann", Hash: hash, Generation: 1, Created: when}, {Name: "bob", Hash: hash, Generation: 2}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "created"); n != 1 {
		t.Errorf("users file has %d created lines, want 1:\n%s", n, data)
	}
	f, err := OpenFile(path, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := f.DB().Lookup("ann"); !e.Created.Equal(when) {
		t.Errorf("file: got created %v, want %v", e.Created, when)
	}
	if e, _ := f.DB().Lookup("bob"); !e.Created.IsZero() {
		t.Errorf("file: got created %v, want zero", e.Created)
	}
	if testRedis.Addr() == "" {
		t.Skip("no redis-server")
	}
	c, prefix := testRedis.Open(t)
	ctx := context.Background()
	r, err := OpenRedis(ctx, c, prefix, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(ctx, User{Name: "ann", Hash: hash, Generation: 1, Created: when}); err != nil {
		t.Fatal(err)
	}
	r2, err := OpenRedis(ctx, c, prefix, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := r2.DB().Lookup("ann"); !e.Created.Equal(when) {
		t.Errorf("redis: got created %v, want %v", e.Created, when)
	}
}
