package session

import (
	"sync"
	"time"
)

// Reason says why a session ended, so the login page can tell the person
// whose cookie stopped working why they are there. Stores remember it in a
// tombstone keyed by the session's key for TombstoneTTL (End, EndUser,
// EndAll, and the embedded store's sweep of expired sessions) and return it
// from Ended.
type Reason uint8

// The reasons a session ends. The zero Reason, NotEnded, means the store
// has no record of why (or that) the session ended.
const (
	NotEnded Reason = iota
	// SignedOut: the user signed out (of this session, or of all their
	// sessions from another one).
	SignedOut
	// Expired: the idle timeout or the absolute lifetime ran out.
	Expired
	// Revoked: an administrator ended the session, or deleted the user.
	Revoked
	// PasswordChanged: the user's password (or credential generation)
	// changed after the session began.
	PasswordChanged
	// Locked: the account was locked.
	Locked
	numReasons
)

var reasonNames = [numReasons]string{"", "signed_out", "expired", "revoked", "password_changed", "locked"}

// String returns the reason's stable snake_case name ("" for NotEnded).
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return ""
}

// ParseReason returns the Reason named s, or NotEnded for an unknown name.
func ParseReason(s string) Reason {
	for i, n := range reasonNames {
		if n == s && s != "" {
			return Reason(i)
		}
	}
	return NotEnded
}

// TombstoneTTL is how long a store remembers why a session ended. A cookie
// older than that finds no reason and the login page just asks to sign in.
const TombstoneTTL = 24 * time.Hour

// MaxTombstones bounds the embedded store's memory of ended sessions; the
// oldest are forgotten first. A tombstone costs about 100 bytes.
const MaxTombstones = 100_000

// tombs is the embedded store's memory of ended sessions: a map for lookups
// and a FIFO of the same keys, oldest first, for eviction by age and count.
// The store persists them in its log (opTombs frames) and snapshot.
type tombs struct {
	mu    sync.Mutex
	m     map[Key]tomb
	queue []queued // insertion order, oldest first
	head  int
	seq   uint64
	max   int
}

type tomb struct {
	why Reason
	at  time.Time
	seq uint64 // the queue slot that holds this key's latest addition
}

type queued struct {
	k   Key
	seq uint64
}

func newTombs(max int) *tombs {
	return &tombs{m: make(map[Key]tomb), max: max}
}

// add records why for each key at now, forgetting the oldest tombstones
// beyond the limit and those older than TombstoneTTL.
func (t *tombs) add(now time.Time, why Reason, keys ...Key) {
	if why == NotEnded || len(keys) == 0 {
		return
	}
	if len(keys) > t.max {
		keys = keys[len(keys)-t.max:]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if tb, ok := t.m[k]; ok {
			// Ended twice (rare): keep its place in the queue, so the
			// queue never holds more slots than the map has keys.
			tb.why = why
			t.m[k] = tb
			continue
		}
		t.seq++
		t.m[k] = tomb{why: why, at: now, seq: t.seq}
		t.queue = append(t.queue, queued{k: k, seq: t.seq})
	}
	t.evict(now)
}

// evict drops tombstones from the front of the queue while there are too
// many or they are too old. Callers hold mu.
func (t *tombs) evict(now time.Time) {
	for t.head < len(t.queue) {
		q := t.queue[t.head]
		tb, ok := t.m[q.k]
		if ok && tb.seq == q.seq && len(t.m) <= t.max && now.Sub(tb.at) < TombstoneTTL {
			break
		}
		// A slot whose key was added again later is stale: the map
		// entry belongs to the later slot.
		if ok && tb.seq == q.seq {
			delete(t.m, q.k)
		}
		t.queue[t.head] = queued{}
		t.head++
	}
	if t.head > 1024 && t.head*2 > len(t.queue) {
		t.queue = append(t.queue[:0:0], t.queue[t.head:]...)
		t.head = 0
	}
}

// prune forgets the tombstones that are too old at now.
func (t *tombs) prune(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.evict(now)
}

// each calls fn for every tombstone younger than TombstoneTTL at now,
// oldest first, on a copy taken under the lock.
func (t *tombs) each(now time.Time, fn func(k Key, why Reason, at time.Time)) {
	type entry struct {
		k Key
		tomb
	}
	t.mu.Lock()
	out := make([]entry, 0, len(t.m))
	for _, q := range t.queue[t.head:] {
		if tb, ok := t.m[q.k]; ok && tb.seq == q.seq && now.Sub(tb.at) < TombstoneTTL {
			out = append(out, entry{q.k, tb})
		}
	}
	t.mu.Unlock()
	for i := range out {
		fn(out[i].k, out[i].why, out[i].at)
	}
}

// get returns why k ended, if it ended within TombstoneTTL of now.
func (t *tombs) get(now time.Time, k Key) Reason {
	t.mu.Lock()
	defer t.mu.Unlock()
	tb, ok := t.m[k]
	if !ok || now.Sub(tb.at) >= TombstoneTTL {
		return NotEnded
	}
	return tb.why
}
