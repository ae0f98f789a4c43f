package machine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Compile-time check: the in-memory cache is a NonceCache.
var _ NonceCache = (*MemoryNonces)(nil)

func TestMemoryNonces(t *testing.T) {
	ctx := context.Background()
	now := t0
	m := NewMemoryNonces(4, 3, func() time.Time { return now })
	seen := func(key, nonce string, until time.Time) (bool, error) {
		return m.Seen(ctx, key, nonce, until)
	}
	steps := []struct {
		name     string
		advance  time.Duration
		key      string
		nonce    string
		until    time.Duration // from now
		replayed bool
		err      error
		size     int
	}{
		{"first", 0, "k1", "n1", time.Minute, false, nil, 1},
		{"replay", 0, "k1", "n1", time.Minute, true, nil, 1},
		{"same nonce, other key", 0, "k2", "n1", time.Minute, false, nil, 2},
		{"key quota", 0, "k1", "n2", 2 * time.Minute, false, nil, 3},
		{"key quota reached", 0, "k1", "n3", 2 * time.Minute, false, nil, 4},
		{"per-key limit refuses", 0, "k1", "n4", 2 * time.Minute, false, ErrNonceCacheFull, 4},
		{"full refuses, evicts nothing", 0, "k3", "n1", time.Minute, false, ErrNonceCacheFull, 4},
		{"replay still caught when full", 0, "k2", "n1", time.Minute, true, nil, 4},
		{"expired until is not stored", 0, "k4", "n1", -time.Second, false, nil, 4},
		{"held through until", time.Minute, "k2", "n1", time.Minute, true, nil, 4},
		{"first entries expire", time.Millisecond, "k3", "n1", time.Minute, false, nil, 3},
		{"expired nonce is new again", 0, "k1", "n1", time.Minute, false, nil, 4},
		{"later ones are still held", 0, "k1", "n2", time.Minute, true, nil, 4},
		{"all expire", 10 * time.Minute, "k5", "n1", time.Minute, false, nil, 1},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		replayed, err := seen(s.key, s.nonce, now.Add(s.until))
		if replayed != s.replayed || !errors.Is(err, s.err) || (s.err == nil) != (err == nil) {
			t.Fatalf("%s: got %v, %v; want %v, %v", s.name, replayed, err, s.replayed, s.err)
		}
		if got := m.Len(); got != s.size {
			t.Fatalf("%s: size %d, want %d", s.name, got, s.size)
		}
	}
}

func TestMemoryNoncesBound(t *testing.T) {
	now := t0
	m := NewMemoryNonces(1000, 1000, func() time.Time { return now })
	refused := 0
	for i := range 5000 {
		if _, err := m.Seen(context.Background(), "k", fmt.Sprintf("nonce-%012d", i), now.Add(time.Minute)); err != nil {
			refused++
		}
	}
	if m.Len() != 1000 || refused != 4000 {
		t.Fatalf("size %d, refused %d; want 1000, 4000", m.Len(), refused)
	}
	now = now.Add(time.Minute + time.Millisecond) // held through until, inclusive
	if _, err := m.Seen(context.Background(), "k", "fresh-nonce-0000", now.Add(time.Minute)); err != nil || m.Len() != 1 {
		t.Fatalf("after expiry: %v, size %d; want nil, 1", err, m.Len())
	}
}

func BenchmarkMemoryNonces(b *testing.B) {
	now := t0
	m := NewMemoryNonces(1<<18, 0, func() time.Time { return now })
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%10000 == 0 {
			now = now.Add(time.Second)
		}
		m.Seen(context.Background(), fmt.Sprintf("k%d", i&7), fmt.Sprintf("nonce-%012d", i), now.Add(time.Minute))
	}
}

// TestNonceHeldThroughWindowEdge checks that a signed request whose timestamp
// is exactly a window old, the last moment it is accepted, is still a replay
// when sent again at that moment, and at a moment not on a millisecond.
func TestNonceHeldThroughWindowEdge(t *testing.T) {
	for _, late := range []time.Duration{0, -time.Millisecond / 2} {
		t.Run(fmt.Sprint(late), func(t *testing.T) {
			fx := newFixture(t)
			r := Request{Method: "GET", URI: "/x", Host: "h", Authorization: fx.sign(t, "GET", "https://h/x", fx.now, "")}
			fx.now = fx.now.Add(DefaultWindow + late)
			if _, _, err := fx.v.Authenticate(context.Background(), r); err != nil {
				t.Fatalf("at the window's edge: got %v, want accepted", err)
			}
			if _, _, err := fx.v.Authenticate(context.Background(), r); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay at the window's edge: got %v, want %v", err, ErrReplay)
			}
		})
	}
}
