package session

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for the store's sweeps.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}

func (c *fakeClock) now() time.Time  { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }

func TestEmbeddedMaxSessions(t *testing.T) {
	s := openTestStore(t, t.TempDir(), nil, WithMaxSessions(3))
	base := suiteBase()
	for i := range 3 {
		mustCreate(t, s, testKey(fmt.Sprint(i)), newTestSession("alice", base))
	}
	err := s.Create(context.Background(), testKey("3"), newTestSession("alice", base))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Create beyond the limit: got %v, want ErrFull", err)
	}
	if _, ok := mustGet(t, s, testKey("3")); ok {
		t.Fatal("refused session: got found, want not found")
	}
	// Replacing an existing key does not grow the store.
	mustCreate(t, s, testKey("0"), newTestSession("bob", base))
	if err := s.Delete(context.Background(), testKey("1")); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, testKey("3"), newTestSession("alice", base))
	if s.Len() != 3 {
		t.Fatalf("Len: got %d, want 3", s.Len())
	}
}

func TestEmbeddedSweep(t *testing.T) {
	base := suiteBase()
	clock := newFakeClock(base)
	dir := t.TempDir()
	s, err := OpenEmbedded(dir, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	short := newTestSession("alice", base) // idle 1h, lifetime 12h
	long := newTestSession("bob", base)
	long.Idle = 24 * time.Hour
	long.Expires = base.Add(48 * time.Hour)
	mustCreate(t, s, testKey("short"), short)
	mustCreate(t, s, testKey("long"), long)

	steps := []struct {
		at    time.Duration
		swept int
		left  int
	}{
		{30 * time.Minute, 0, 2},
		{61 * time.Minute, 1, 1},
		{47 * time.Hour, 1, 0}, // bob idle for 47h
	}
	for _, st := range steps {
		if got := s.sweep(base.Add(st.at)); got != st.swept {
			t.Fatalf("sweep at +%v: got %d, want %d", st.at, got, st.swept)
		}
		if s.Len() != st.left {
			t.Fatalf("Len after sweep at +%v: got %d, want %d", st.at, s.Len(), st.left)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("open drops sessions that expired while stopped", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenEmbedded(dir, clock.now)
		if err != nil {
			t.Fatal(err)
		}
		clock.set(base)
		mustCreate(t, s, testKey("short"), short)
		mustCreate(t, s, testKey("long"), long)
		crash(s)
		clock.set(base.Add(2 * time.Hour))
		s = openTestStore(t, dir, clock.now)
		if _, ok := mustGet(t, s, testKey("short")); ok {
			t.Fatal("expired session after reopen: got found, want dropped")
		}
		if _, ok := mustGet(t, s, testKey("long")); !ok {
			t.Fatal("live session after reopen: got not found")
		}
	})
}

func TestEmbeddedSweepsInBackground(t *testing.T) {
	base := suiteBase()
	clock := newFakeClock(base)
	s := openTestStore(t, t.TempDir(), clock.now, func(o *options) { o.sweepEvery = 5 * time.Millisecond })
	mustCreate(t, s, testKey("a"), newTestSession("alice", base))
	clock.set(base.Add(2 * time.Hour))
	deadline := time.Now().Add(5 * time.Second)
	for s.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s.Len() != 0 {
		t.Fatalf("Len long after expiry: got %d, want 0", s.Len())
	}
}

func TestEmbeddedFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "authd")
	s, err := OpenEmbedded(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, testKey("a"), newTestSession("alice", suiteBase()))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700 | fs.ModeDir
		}
		if info.Mode() != want {
			t.Errorf("%s: got mode %v, want %v", path, info.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != 3 { // lock, snapshot, one empty log
		t.Errorf("files after Close: got %v, want lock, snapshot and one log", names)
	}
}

func TestEmbeddedCompaction(t *testing.T) {
	ctx := context.Background()
	base := suiteBase()
	fill := func(t *testing.T, s *Embedded) {
		for i := range 100 {
			mustCreate(t, s, testKey(fmt.Sprint(i)), newTestSession(fmt.Sprint("u", i%3), base))
		}
		for i := 0; i < 100; i += 2 {
			if err := s.Delete(ctx, testKey(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.DeleteUser(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
	}
	// 50 odd keys left, minus the u1 ones among them.
	want := 0
	for i := 1; i < 100; i += 2 {
		if i%3 != 1 {
			want++
		}
	}
	check := func(t *testing.T, s *Embedded) {
		t.Helper()
		if s.Len() != want {
			t.Fatalf("Len: got %d, want %d", s.Len(), want)
		}
		for i := range 100 {
			_, ok := mustGet(t, s, testKey(fmt.Sprint(i)))
			if wantOK := i%2 == 1 && i%3 != 1; ok != wantOK {
				t.Fatalf("session %d: got found %v, want %v", i, ok, wantOK)
			}
		}
	}

	t.Run("compact then crash", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenEmbedded(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, s)
		before := s.wal.size()
		if err := s.compact(); err != nil {
			t.Fatal(err)
		}
		if after := s.wal.size(); after != magicLen {
			t.Fatalf("log size after compaction: got %d, want %d (was %d)", after, magicLen, before)
		}
		if gens, _ := listLogs(dir); len(gens) != 1 {
			t.Fatalf("logs after compaction: got %v, want one", gens)
		}
		crash(s)
		s = openTestStore(t, dir, nil)
		check(t, s)
	})

	t.Run("crash after the new log began, before the snapshot", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenEmbedded(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, s)
		f, err := createLog(dir, s.gen+1)
		if err != nil {
			t.Fatal(err)
		}
		old, err := s.wal.rotate(f, magicLen)
		if err != nil {
			t.Fatal(err)
		}
		old.Close()
		s.gen++
		mustCreate(t, s, testKey("3"), newTestSession("u0", base.Add(time.Second))) // a change in the new log
		crash(s)
		s = openTestStore(t, dir, nil)
		check(t, s)
	})

	t.Run("crash after the snapshot, before old logs were removed", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenEmbedded(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, s)
		oldName := logPath(dir, s.gen)
		oldLog, err := os.ReadFile(oldName)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.compact(); err != nil {
			t.Fatal(err)
		}
		crash(s)
		if err := os.WriteFile(oldName, oldLog, 0o600); err != nil {
			t.Fatal(err)
		}
		s = openTestStore(t, dir, nil)
		check(t, s)
		if _, err := os.Stat(oldName); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stale log after open: got %v, want it removed", err)
		}
	})

	t.Run("runs in the background when the log outgrows the data", func(t *testing.T) {
		dir := t.TempDir()
		s := openTestStore(t, dir, nil, func(o *options) {
			o.flushEvery = 5 * time.Millisecond
			o.compactMin = 4 << 10
		})
		gen := s.gen
		k := testKey("a")
		mustCreate(t, s, k, newTestSession("alice", base))
		// Touches grow the log while the live data stays one session.
		for i := 1; i < 200; i++ {
			if err := s.Touch(ctx, k, base.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			s.compactMu.Lock()
			g := s.gen
			s.compactMu.Unlock()
			if g > gen {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("log size %d: no compaction happened", s.wal.size())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping after compaction: %v", err)
		}
	})
}

// TestEmbeddedConcurrent runs every operation at once (meant for -race) and
// checks the store replays to what memory held.
func TestEmbeddedConcurrent(t *testing.T) {
	ctx := context.Background()
	base := suiteBase()
	dir := t.TempDir()
	s, err := OpenEmbedded(dir, nil, func(o *options) {
		o.flushEvery = time.Millisecond
		o.compactMin = 1 << 10
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				k := testKey(fmt.Sprint(w, "/", i))
				mustCreate(t, s, k, newTestSession(fmt.Sprint("u", i%5), base))
				_ = s.Touch(ctx, k, base.Add(time.Second))
				if _, ok := mustGet(t, s, k); !ok && i%5 != 0 {
					t.Errorf("session %d/%d: got not found", w, i)
				}
				if i%7 == 0 {
					_ = s.Delete(ctx, k)
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			_, _ = s.DeleteUser(ctx, "u0")
			_, _ = s.List(ctx, "")
			_ = s.compact()
		}
	})
	wg.Wait()
	want, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	crash(s)
	s = openTestStore(t, dir, nil)
	got, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("sessions after crash: got %d, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Key != want[i].Key {
			t.Fatalf("entry %d: got %s, want %s", i, got[i].Key.Short(), want[i].Key.Short())
		}
	}
}

func TestEmbeddedGetDoesNotAllocate(t *testing.T) {
	s := openTestStore(t, t.TempDir(), nil)
	mustCreate(t, s, testKey("a"), newTestSession("alice", suiteBase()))
	ctx := context.Background()
	for _, k := range []Key{testKey("a"), testKey("missing")} {
		if got := testing.AllocsPerRun(100, func() { _, _, _ = s.Get(ctx, k) }); got != 0 {
			t.Errorf("Get allocations: got %v, want 0", got)
		}
	}
}

func TestEmbeddedAfterClose(t *testing.T) {
	ctx := context.Background()
	s, err := OpenEmbedded(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping on an open store: got %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping after Close: got nil, want an error")
	}
	if _, _, err := s.Get(ctx, testKey("a")); err == nil {
		t.Error("Get after Close: got nil error")
	}
	if err := s.Create(ctx, testKey("a"), newTestSession("alice", suiteBase())); err == nil {
		t.Error("Create after Close: got nil error")
	}
	if err := s.Close(); err == nil {
		t.Error("second Close: got nil error")
	}
}
