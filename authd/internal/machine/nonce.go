package machine

import (
	"container/heap"
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

// NonceCache remembers the nonces of accepted signed requests.
type NonceCache interface {
	// Seen records nonce for keyID until the given time, inclusive (the last
	// moment the request is acceptable on the caller's clock), and reports
	// whether it was already recorded and not yet expired. An error means the nonce could
	// not be checked; the request is then refused.
	Seen(ctx context.Context, keyID, nonce string, until time.Time) (replayed bool, err error)
}

// ErrNonceCacheFull is returned by MemoryNonces when it may not remember another nonce.
var ErrNonceCacheFull = errors.New("nonce cache full")

// MemoryNonces is a bounded in-memory NonceCache for a single authd instance.
//
// When full it refuses new nonces instead of evicting unexpired ones: an
// evicted nonce could be replayed for the rest of its window, and an attacker
// holding one valid key could flood the cache precisely to evict other
// clients' nonces. Refusing fails closed: signed requests get 401 until entries
// expire (at most two windows), sessions and tokens are unaffected. Only
// requests with a valid signature reach the cache, and a per-key quota keeps one
// key from filling it for everyone.
type MemoryNonces struct {
	now      func() time.Time
	max, per int
	mu       sync.Mutex
	until    map[string]int64 // keyID "\n" nonce → expiry, unix milliseconds
	perKey   map[string]int
	byExpiry expiryHeap
}

// NewMemoryNonces returns a cache holding at most limit nonces, and at most
// maxPerKey for one key. Values ≤ 0 mean 1<<18 and limit/4.
func NewMemoryNonces(limit, maxPerKey int, now func() time.Time) *MemoryNonces {
	if limit <= 0 {
		limit = 1 << 18
	}
	if maxPerKey <= 0 {
		maxPerKey = limit / 4
	}
	return &MemoryNonces{now: now, max: limit, per: max(1, maxPerKey),
		until: make(map[string]int64), perKey: make(map[string]int)}
}

// Seen implements NonceCache. An entry is held through its until, inclusive
// (the Verifier accepts a timestamp exactly a window old), and dropped once
// until has passed, when the timestamp window refuses the request anyway.
// until is rounded up to the millisecond and now down, so rounding never
// shortens the hold.
func (m *MemoryNonces) Seen(_ context.Context, keyID, nonce string, until time.Time) (bool, error) {
	now := m.now().UnixMilli()
	u := ceilMilli(until)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(now)
	k := keyID + "\n" + nonce
	if _, ok := m.until[k]; ok {
		return true, nil
	}
	if u < now {
		return false, nil // already outside its window: nothing to remember
	}
	if len(m.until) >= m.max {
		return false, ErrNonceCacheFull
	}
	if m.perKey[keyID] >= m.per {
		return false, ErrNonceCacheFull
	}
	id := strings.Clone(keyID) // keyID may point into a request header
	m.until[k] = u
	m.perKey[id]++
	heap.Push(&m.byExpiry, pending{until: u, key: k, id: id})
	return false, nil
}

// Len returns the number of nonces held.
func (m *MemoryNonces) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.until)
}

func (m *MemoryNonces) expire(now int64) {
	for len(m.byExpiry) > 0 && m.byExpiry[0].until < now {
		e := heap.Pop(&m.byExpiry).(pending)
		delete(m.until, e.key)
		if m.perKey[e.id]--; m.perKey[e.id] <= 0 {
			delete(m.perKey, e.id)
		}
	}
}

// ceilMilli is t in unix milliseconds, rounded up.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

type pending struct {
	until   int64
	key, id string
}

type expiryHeap []pending

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(pending)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = pending{}
	*h = old[:len(old)-1]
	return e
}
