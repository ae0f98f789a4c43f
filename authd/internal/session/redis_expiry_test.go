package session

import (
	"context"
	"encoding/hex"
	"testing"
	"time"
)

// A session whose Redis key expires reads as Expired for TombstoneTTL (its
// expiry marker outlives it by that much, and a touch moves both); every
// way of deleting a session deletes its marker, so only a real expiry says
// Expired, and a tombstone's reason wins.
func TestRedisExpiryMarker(t *testing.T) {
	c, prefix := openRedis(t)
	ctx := context.Background()
	s := NewRedis(c, prefix, nil)
	ended := func(k Key) Reason {
		t.Helper()
		why, err := s.Ended(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return why
	}
	mark := func(k Key) time.Duration {
		t.Helper()
		return c.PTTL(ctx, s.markKey(hex.EncodeToString(k[:]))).Val()
	}

	// Idle expiry, after a touch moved the deadline.
	sess := newTestSession("alice", time.Now())
	sess.Idle = 400 * time.Millisecond
	mustCreate(t, s, testKey("idle"), sess)
	if why := ended(testKey("idle")); why != NotEnded {
		t.Errorf("live session: Ended = %v, want NotEnded", why)
	}
	if d := mark(testKey("idle")); d < TombstoneTTL || d > TombstoneTTL+sess.Idle {
		t.Errorf("marker PTTL %v, want within (TombstoneTTL, TombstoneTTL+idle]", d)
	}
	time.Sleep(250 * time.Millisecond)
	if err := s.Touch(ctx, testKey("idle"), time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	if _, ok := mustGet(t, s, testKey("idle")); !ok {
		t.Fatal("touched session gone before its new idle deadline")
	}
	time.Sleep(300 * time.Millisecond)
	if _, ok := mustGet(t, s, testKey("idle")); ok {
		t.Fatal("session still in Redis after its idle deadline")
	}
	if why := ended(testKey("idle")); why != Expired {
		t.Errorf("after the idle timeout: Ended = %v, want Expired", why)
	}

	// Absolute lifetime.
	sess = newTestSession("alice", time.Now())
	sess.Expires = time.Now().Add(300 * time.Millisecond)
	mustCreate(t, s, testKey("life"), sess)
	time.Sleep(400 * time.Millisecond)
	if _, ok := mustGet(t, s, testKey("life")); ok {
		t.Fatal("session still in Redis after its lifetime")
	}
	if why := ended(testKey("life")); why != Expired {
		t.Errorf("after the lifetime: Ended = %v, want Expired", why)
	}

	// Deletes take the marker along; End's tombstone gives its reason.
	for _, k := range []string{"del", "user1", "user2", "all", "end"} {
		mustCreate(t, s, testKey(k), newTestSession(map[string]string{"user1": "bob", "user2": "bob"}[k]+"x", time.Now()))
	}
	if err := s.Delete(ctx, testKey("del")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUser(ctx, "bobx"); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, testKey("end"), Revoked); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"del", "user1", "user2", "all"} {
		if why := ended(testKey(k)); why != NotEnded || mark(testKey(k)) != -2*time.Nanosecond {
			t.Errorf("%s: after a delete Ended = %v (marker PTTL %v), want NotEnded and no marker", k, why, mark(testKey(k)))
		}
	}
	if why := ended(testKey("end")); why != Revoked {
		t.Errorf("ended by an administrator: Ended = %v, want Revoked", why)
	}
}
