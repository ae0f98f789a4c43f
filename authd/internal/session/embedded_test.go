package session

import (
	"context"
	"testing"
	"time"
)

// openTestStore opens an embedded store in a fresh directory and closes it at
// the end of the test.
func openTestStore(tb testing.TB, dir string, now func() time.Time, opts ...Option) *Embedded {
	tb.Helper()
	s, err := OpenEmbedded(dir, now, opts...)
	if err != nil {
		tb.Fatalf("OpenEmbedded: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestEmbedded(t *testing.T) {
	testStore(t, func(t *testing.T) store {
		return openTestStore(t, t.TempDir(), nil)
	})
}

func TestEmbeddedSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	base := suiteBase()
	s, err := OpenEmbedded(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Key]Session{}
	for i := range 50 {
		k := testKey(string(rune('a' + i)))
		sess := newTestSession([]string{"alice", "bob", "carol"}[i%3], base.Add(time.Duration(i)*time.Second))
		mustCreate(t, s, k, sess)
		want[k] = sess
	}
	touched := testKey("a")
	tt := base.Add(20 * time.Minute)
	if err := s.Touch(ctx, touched, tt); err != nil {
		t.Fatal(err)
	}
	s1 := want[touched]
	s1.LastSeen = tt
	want[touched] = s1
	if err := s.Delete(ctx, testKey("b")); err != nil {
		t.Fatal(err)
	}
	delete(want, testKey("b"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTestStore(t, dir, nil)
	if got := s.Len(); got != len(want) {
		t.Fatalf("Len after reopen: got %d, want %d", got, len(want))
	}
	for k, w := range want {
		got, ok := mustGet(t, s, k)
		if !ok {
			t.Fatalf("session %s after reopen: got not found", k.Short())
		}
		sameSession(t, got, w)
	}
}
