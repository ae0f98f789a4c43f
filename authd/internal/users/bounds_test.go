package users

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// boundsStore is what a reload of [hash] needs from a users store; File and
// Redis both are one.
type boundsStore interface {
	DB() *DB
	Reload() (bool, error)
	ReloadWithin(Limits) (bool, error)
}

// TestReloadWithin: new bounds apply only when every user loads under them,
// and then stay for later reloads; refused bounds leave the snapshot and the
// old bounds. Run against the users file and Redis.
func TestReloadWithin(t *testing.T) {
	bcrypt := func(cost string) string { return "$2b$" + cost + "$" + strings.Repeat("a", 53) }
	lim := func(maxCost int) Limits { return LimitsFor(DefaultParams(), maxCost) }
	impls := []struct {
		name string
		// open returns a store holding alice (bcrypt 11) under lim(12), and
		// add, which writes a user past any bounds the store holds.
		open func(t *testing.T) (boundsStore, func(User))
	}{
		{"file", func(t *testing.T) (boundsStore, func(User)) {
			path := filepath.Join(t.TempDir(), "users.toml")
			must(t, Edit(path, DefaultLimits(), addUser("alice", bcrypt("11"))))
			f, err := OpenFile(path, lim(12))
			must(t, err)
			return f, func(u User) { must(t, Edit(path, DefaultLimits(), addUser(u.Name, u.Hash))) }
		}},
		{"redis", func(t *testing.T) (boundsStore, func(User)) {
			c, prefix := openRedis(t)
			w, err := OpenRedis(context.Background(), c, prefix, DefaultLimits())
			must(t, err)
			addRedisUser(t, w, User{Name: "alice", Hash: bcrypt("11"), Generation: 1})
			r, err := OpenRedis(context.Background(), c, prefix, lim(12))
			must(t, err)
			return r, func(u User) { addRedisUser(t, w, u) }
		}},
	}
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			st, add := impl.open(t)
			before := st.DB()
			if _, err := st.ReloadWithin(lim(10)); err == nil || !strings.Contains(err.Error(), "alice") ||
				!strings.Contains(err.Error(), "bcrypt cost 11 is above the limit 10") {
				t.Fatalf("bounds below alice's hash: got %v, want an error naming alice and the limit", err)
			}
			if st.DB() != before {
				t.Errorf("refused bounds replaced the snapshot")
			}
			if _, err := st.Reload(); err != nil {
				t.Errorf("reload after refused bounds: got %v, want the old bounds (12) kept", err)
			}

			add(User{Name: "carol", Hash: bcrypt("13"), Generation: 2})
			if _, err := st.Reload(); err == nil || !strings.Contains(err.Error(), "carol") {
				t.Fatalf("reload with carol at cost 13 under bounds 12: got %v, want an error naming carol", err)
			}
			if _, err := st.ReloadWithin(lim(14)); err != nil {
				t.Fatalf("bounds raised to 14: %v", err)
			}
			if _, ok := st.DB().Lookup("carol"); !ok {
				t.Errorf("carol missing after the bounds were raised")
			}
			if _, err := st.Reload(); err != nil {
				t.Errorf("reload after raised bounds: got %v, want the new bounds (14) kept", err)
			}
		})
	}
}
