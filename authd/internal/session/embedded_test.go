package session

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
	"unique"
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
		if i%2 == 0 {
			sess.SecondFactor = sess.Created.Add(time.Second)
		}
		if i%3 == 0 {
			sess.User, sess.External = "dora", headerOnly()
		}
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

// crash drops the store the way kill -9 would: nothing buffered is written,
// no snapshot, and the lock goes away with the file descriptor.
func crash(s *Embedded) {
	s.closed.Store(true)
	close(s.stop)
	s.wg.Wait()
	s.wal.mu.Lock()
	_ = s.wal.f.Close()
	s.wal.err = errClosed
	s.wal.mu.Unlock()
	_ = s.lock.Close()
}

// TestEmbeddedReplaysLog checks that every durable change survives a crash
// (replayed from the log, no snapshot) as well as a clean close.
func TestEmbeddedReplaysLog(t *testing.T) {
	ctx := context.Background()
	base := suiteBase()
	users := []string{"alice", "bob", "carol", "alice"}
	tests := []struct {
		name   string
		change func(t *testing.T, s *Embedded)
		want   []int // indexes of the sessions left
	}{
		{"nothing", func(*testing.T, *Embedded) {}, []int{0, 1, 2, 3}},
		{"delete", func(t *testing.T, s *Embedded) {
			if err := s.Delete(ctx, testKey("1")); err != nil {
				t.Fatal(err)
			}
		}, []int{0, 2, 3}},
		{"delete user", func(t *testing.T, s *Embedded) {
			if _, err := s.DeleteUser(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
		}, []int{1, 2}},
		{"delete all then create", func(t *testing.T, s *Embedded) {
			if _, err := s.DeleteAll(ctx); err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, testKey("2"), newTestSession("carol", base))
		}, []int{2}},
	}
	for _, tt := range tests {
		for _, how := range []string{"crash", "close"} {
			t.Run(tt.name+" then "+how, func(t *testing.T) {
				dir := t.TempDir()
				s, err := OpenEmbedded(dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, u := range users {
					mustCreate(t, s, testKey(fmt.Sprint(i)), newTestSession(u, base))
				}
				tt.change(t, s)
				if how == "crash" {
					crash(s)
				} else if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openTestStore(t, dir, nil)
				var got []int
				for i := range users {
					if _, ok := mustGet(t, s, testKey(fmt.Sprint(i))); ok {
						got = append(got, i)
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("sessions after reopen: got %v, want %v", got, tt.want)
				}
				if s.Len() != len(tt.want) {
					t.Fatalf("Len: got %d, want %d", s.Len(), len(tt.want))
				}
			})
		}
	}
}

func TestEmbeddedTouchIsFlushedInBackground(t *testing.T) {
	dir := t.TempDir()
	base := suiteBase()
	s, err := OpenEmbedded(dir, nil, func(o *options) { o.flushEvery = 10 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, testKey("a"), newTestSession("alice", base))
	touch := base.Add(time.Minute)
	if err := s.Touch(context.Background(), testKey("a"), touch); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.wal.synced.Load() < s.wal.appended && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	crash(s)
	s = openTestStore(t, dir, nil)
	got, ok := mustGet(t, s, testKey("a"))
	if !ok || !got.LastSeen.Equal(touch) {
		t.Fatalf("LastSeen after crash: got %v (found %v), want %v", got.LastSeen, ok, touch)
	}
}

func TestEmbeddedTornLogTail(t *testing.T) {
	base := suiteBase()
	frame := appendCreate(nil, &record{user: unique.Make("x"), meta: makeMeta("ip", false), idle: 1})
	badCRC := append([]byte(nil), frame...)
	badCRC[len(badCRC)-1] ^= 0xff
	tests := []struct {
		name string
		tail []byte
	}{
		{"garbage", []byte("\xff\xff\xff\xff garbage after a crash")},
		{"half a record", frame[:len(frame)/2]},
		{"part of a header", frame[:3]},
		{"bad checksum", badCRC},
		{"zero length", make([]byte, 16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenEmbedded(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				mustCreate(t, s, testKey(fmt.Sprint(i)), newTestSession("alice", base))
			}
			name := logPath(dir, s.gen)
			crash(s)
			st, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			appendFile(t, name, tt.tail)

			s, err = OpenEmbedded(dir, nil)
			if err != nil {
				t.Fatalf("OpenEmbedded with a torn log: %v", err)
			}
			if s.Len() != 5 {
				t.Fatalf("Len: got %d, want 5", s.Len())
			}
			if st2, _ := os.Stat(name); st2.Size() != st.Size() {
				t.Fatalf("log size after open: got %d, want %d (torn tail cut off)", st2.Size(), st.Size())
			}
			// Appends after the cut are readable: the tail is gone, not skipped.
			mustCreate(t, s, testKey("after"), newTestSession("bob", base))
			crash(s)
			s = openTestStore(t, dir, nil)
			if s.Len() != 6 {
				t.Fatalf("Len after a create past the cut: got %d, want 6", s.Len())
			}
		})
	}
}

func appendFile(tb testing.TB, name string, b []byte) {
	tb.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		tb.Fatal(err)
	}
}

// checkUnlocked checks the directory lock is free by taking and dropping it.
func checkUnlocked(tb testing.TB, dir string) {
	tb.Helper()
	f, err := lockDir(dir)
	if err != nil {
		tb.Fatalf("lock after failed open: %v", err)
	}
	_ = unlockDir(f)
}
