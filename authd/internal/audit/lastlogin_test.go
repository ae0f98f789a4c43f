package audit

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestLastLoginsFileRedis(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), LastLoginFile)
	l := OpenLastLogins(path, clock)
	l.Seen(ctx, "ann", now)
	now = now.Add(time.Second)
	l.Seen(ctx, "bob", now) // within 30s of the last write: memory only
	m, _ := l.LastLogin(ctx)
	if !m["ann"].Equal(now.Add(-time.Second)) || !m["bob"].Equal(now) {
		t.Fatalf("got %v", m)
	}
	if m2, _ := OpenLastLogins(path, clock).LastLogin(ctx); len(m2) != 1 {
		t.Errorf("before Close the file has %v, want ann only", m2)
	}
	l.Close()
	if m2, _ := OpenLastLogins(path, clock).LastLogin(ctx); len(m2) != 2 || !m2["bob"].Equal(now) {
		t.Errorf("after Close: got %v", m2)
	}
	if srv.Addr() == "" {
		t.Skip("no redis-server")
	}
	c, prefix := srv.Open(t)
	r := NewRedisLastLogins(c, prefix, clock)
	r.Seen(ctx, "ann", now)
	if m, err := NewRedisLastLogins(c, prefix, clock).LastLogin(ctx); err != nil || !m["ann"].Equal(now) {
		t.Errorf("redis: got %v, %v", m, err)
	}
}
