package session

import (
	"context"
	"testing"
	"time"
)

// testEnds is the part of the store suite about tombstones: why a session
// ended, as the login page asks for it.
func testEnds(t *testing.T, open func(t *testing.T) store) {
	ctx := context.Background()
	ended := func(tb testing.TB, s store, k Key) Reason {
		tb.Helper()
		why, err := s.Ended(ctx, k)
		if err != nil {
			tb.Fatalf("Ended: %v", err)
		}
		return why
	}

	t.Run("end removes the session and remembers why", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, testKey("a"), newTestSession("alice", suiteBase()))
		mustCreate(t, s, testKey("b"), newTestSession("alice", suiteBase()))
		if err := s.End(ctx, testKey("a"), Revoked); err != nil {
			t.Fatal(err)
		}
		if _, ok := mustGet(t, s, testKey("a")); ok {
			t.Fatal("Get after End: got found, want not found")
		}
		if got := ended(t, s, testKey("a")); got != Revoked {
			t.Fatalf("Ended: got %v, want %v", got, Revoked)
		}
		if got := ended(t, s, testKey("b")); got != NotEnded {
			t.Fatalf("Ended(live session): got %v, want none", got)
		}
		if got := ended(t, s, testKey("never")); got != NotEnded {
			t.Fatalf("Ended(unknown key): got %v, want none", got)
		}
	})

	t.Run("delete leaves no reason", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, testKey("a"), newTestSession("alice", suiteBase()))
		if err := s.Delete(ctx, testKey("a")); err != nil {
			t.Fatal(err)
		}
		if got := ended(t, s, testKey("a")); got != NotEnded {
			t.Fatalf("Ended after Delete: got %v, want none", got)
		}
	})

	t.Run("end user marks only that user's sessions", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, testKey("a1"), newTestSession("alice", suiteBase()))
		mustCreate(t, s, testKey("a2"), newTestSession("alice", suiteBase()))
		mustCreate(t, s, testKey("b1"), newTestSession("bob", suiteBase()))
		n, err := s.EndUser(ctx, "alice", Locked)
		if err != nil || n != 2 {
			t.Fatalf("EndUser: got %d, %v, want 2, nil", n, err)
		}
		for _, k := range []string{"a1", "a2"} {
			if got := ended(t, s, testKey(k)); got != Locked {
				t.Fatalf("Ended(%s): got %v, want %v", k, got, Locked)
			}
		}
		if got := ended(t, s, testKey("b1")); got != NotEnded {
			t.Fatalf("Ended(bob's session): got %v, want none", got)
		}
		if _, ok := mustGet(t, s, testKey("b1")); !ok {
			t.Fatal("bob's session: got gone, want kept")
		}
	})

	t.Run("end all marks every session", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, testKey("a1"), newTestSession("alice", suiteBase()))
		mustCreate(t, s, testKey("b1"), newTestSession("bob", suiteBase()))
		n, err := s.EndAll(ctx, SignedOut)
		if err != nil || n != 2 {
			t.Fatalf("EndAll: got %d, %v, want 2, nil", n, err)
		}
		for _, k := range []string{"a1", "b1"} {
			if got := ended(t, s, testKey(k)); got != SignedOut {
				t.Fatalf("Ended(%s): got %v, want %v", k, got, SignedOut)
			}
		}
	})
}

func TestReasonNames(t *testing.T) {
	for r := NotEnded + 1; r < numReasons; r++ {
		if r.String() == "" || ParseReason(r.String()) != r {
			t.Errorf("reason %d: name %q parses back to %v", r, r.String(), ParseReason(r.String()))
		}
	}
	if ParseReason("") != NotEnded || ParseReason("nonsense") != NotEnded {
		t.Error("unknown names: got a reason, want NotEnded")
	}
}

func TestTombsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tb := newTombs(3)
	for i, l := range []string{"a", "b", "c", "d"} {
		tb.add(now.Add(time.Duration(i)*time.Second), Revoked, testKey(l))
	}
	if got := tb.get(now, testKey("a")); got != NotEnded {
		t.Errorf("oldest beyond the limit: got %v, want forgotten", got)
	}
	for _, l := range []string{"b", "c", "d"} {
		if got := tb.get(now, testKey(l)); got != Revoked {
			t.Errorf("%s: got %v, want %v", l, got, Revoked)
		}
	}
	if len(tb.m) != 3 || len(tb.queue)-tb.head != 3 {
		t.Errorf("size: got map %d queue %d, want 3 and 3", len(tb.m), len(tb.queue)-tb.head)
	}
	// Ending a session twice keeps one slot and the newer reason.
	tb.add(now.Add(5*time.Second), Locked, testKey("d"))
	if got := tb.get(now, testKey("d")); got != Locked || len(tb.queue)-tb.head != 3 {
		t.Errorf("re-ended: got %v with %d slots, want %v with 3", got, len(tb.queue)-tb.head, Locked)
	}
	later := now.Add(TombstoneTTL + time.Minute)
	if got := tb.get(later, testKey("d")); got != NotEnded {
		t.Errorf("after the TTL: got %v, want forgotten", got)
	}
	tb.add(later, Expired, testKey("e"))
	if len(tb.m) != 1 {
		t.Errorf("after the TTL: got %d tombstones kept, want 1", len(tb.m))
	}
	many := make([]Key, 10)
	for i := range many {
		many[i] = testKey(string(rune('A' + i)))
	}
	tb.add(later, Revoked, many...)
	if len(tb.m) != 3 || tb.get(later, many[9]) != Revoked || tb.get(later, many[0]) != NotEnded {
		t.Errorf("bulk add: got %d kept, want the newest 3", len(tb.m))
	}
}

func TestEmbeddedSweepRemembersExpiry(t *testing.T) {
	base := suiteBase()
	clock := newFakeClock(base)
	s := openTestStore(t, t.TempDir(), clock.now)
	mustCreate(t, s, testKey("a"), newTestSession("alice", base))
	clock.set(base.Add(2 * time.Hour)) // past the idle timeout
	if n := s.sweep(clock.now()); n != 1 {
		t.Fatalf("sweep: got %d, want 1", n)
	}
	if got, _ := s.Ended(context.Background(), testKey("a")); got != Expired {
		t.Fatalf("Ended after sweep: got %v, want %v", got, Expired)
	}
}
