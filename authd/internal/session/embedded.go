package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"golang.org/x/sys/cpu"
)

// numShards splits the map so concurrent verifies rarely meet on a lock;
// keys are SHA-256 output, so their first byte spreads them evenly.
const numShards = 256

// ErrFull is returned by Create when the store holds its maximum number of
// sessions, so a login flood cannot exhaust memory.
var ErrFull = errors.New("session store full")

// DefaultMaxSessions is the session limit when WithMaxSessions is not given.
const DefaultMaxSessions = 2_000_000

type shard struct {
	mu sync.RWMutex
	t  table
	_  cpu.CacheLinePad // keep neighbouring shards' locks off one cache line
}

// Embedded is the default single-server session store: all sessions in
// memory, persisted to a data directory as a snapshot plus an append-only log.
// It is safe for concurrent use. Create and the deletes are durable when they
// return; Touch is written out within a second.
type Embedded struct {
	dir    string
	now    func() time.Time
	opts   options
	shards [numShards]shard
	count  atomic.Int64

	// wmu orders DeleteUser and DeleteAll (which take it exclusively and log
	// one record for many keys) against the per-key changes (which share it),
	// so replaying the log gives what memory holds. Get never takes it.
	wmu sync.RWMutex
	wal *wal

	compactMu  sync.Mutex // one compaction at a time; guards gen
	gen        uint64     // generation of the log being appended to
	compacting atomic.Bool
	bgErr      atomic.Pointer[error] // last background compaction failure

	damage Damage // set by OpenEmbedded, read-only afterwards

	ends *tombs // why recently ended sessions ended

	lock   *os.File
	closed atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// Option configures OpenEmbedded.
type Option func(*options)

type options struct {
	maxSessions int
	flushEvery  time.Duration
	sweepEvery  time.Duration
	compactMin  int64 // log size below which compaction never runs
}

// WithMaxSessions bounds the number of sessions; Create fails with ErrFull
// beyond it. n <= 0 keeps the default, DefaultMaxSessions.
func WithMaxSessions(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxSessions = n
		}
	}
}

func (s *Embedded) shard(k *Key) *shard { return &s.shards[k[0]] }

// Get returns the session stored under k, even if it has expired (the caller
// checks Valid), or false if there is none. It takes one shard's read lock
// and does not allocate.
func (s *Embedded) Get(_ context.Context, k Key) (Session, bool, error) {
	if s.closed.Load() {
		return Session{}, false, errClosed
	}
	sh := s.shard(&k)
	sh.mu.RLock()
	r := sh.t.get(&k)
	if r == nil {
		sh.mu.RUnlock()
		return Session{}, false, nil
	}
	sess := r.session()
	sh.mu.RUnlock()
	return sess, true, nil
}

// Create stores sess under k and returns once it is on disk, so a cookie sent
// after it survives a crash. IP and user agent are cut to MaxIP and
// MaxUserAgent bytes. It fails with ErrFull at the session limit and with
// ErrInvalid for a session without user, idle timeout or times.
func (s *Embedded) Create(ctx context.Context, k Key, sess Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rec, err := toRecord(k, &sess)
	if err != nil {
		return err
	}
	s.wmu.RLock()
	sh := s.shard(&k)
	sh.mu.Lock()
	exists := sh.t.get(&k) != nil
	if !exists && s.count.Load() >= int64(s.opts.maxSessions) {
		sh.mu.Unlock()
		s.wmu.RUnlock()
		return fmt.Errorf("create session: %w (%d sessions)", ErrFull, s.opts.maxSessions)
	}
	b, err := s.wal.begin()
	if err == nil {
		off := s.wal.end(appendCreate(b, &rec))
		if sh.t.put(rec) {
			s.count.Add(1)
		}
		sh.mu.Unlock()
		s.wmu.RUnlock()
		err = s.wal.sync(off)
	} else {
		sh.mu.Unlock()
		s.wmu.RUnlock()
	}
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// Touch records activity at t: it raises LastSeen to t, never lowers it, and
// never moves Expires. A session that is missing or no longer valid at t is
// left alone, so a late touch cannot revive an idle-expired session. The change
// reaches the disk within about a second, without an fsync per call.
func (s *Embedded) Touch(_ context.Context, k Key, t time.Time) error {
	tn := t.UnixNano()
	s.wmu.RLock()
	defer s.wmu.RUnlock()
	sh := s.shard(&k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.t.get(&k)
	if r == nil || tn <= r.lastSeen || !r.valid(tn) {
		return nil
	}
	b, err := s.wal.begin()
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	s.wal.end(appendTouch(b, &k, tn))
	r.lastSeen = tn
	return nil
}

// Delete removes the session under k, durably. A missing session is not an
// error.
func (s *Embedded) Delete(ctx context.Context, k Key) error {
	return s.End(ctx, k, NotEnded)
}

// End removes the session under k, durably, and remembers why (unless why
// is NotEnded) for Ended. A missing session is not an error; its tombstone
// is still written, so a reason can be given for a cookie whose session
// another request deleted first.
func (s *Embedded) End(_ context.Context, k Key, why Reason) error {
	now := s.now()
	// Memory first, then the log: a tombstone whose frame went to a log
	// that compaction retires is in the snapshot that retires it.
	s.ends.add(now, why, k)
	s.wmu.RLock()
	sh := s.shard(&k)
	sh.mu.Lock()
	// Memory forgets the session even if the log fails: a revocation takes
	// effect now either way.
	ok := sh.t.del(&k)
	var off uint64
	var err error
	if ok || why != NotEnded {
		var b []byte
		if b, err = s.wal.begin(); err == nil {
			if why != NotEnded {
				b = appendTombs(b, why, now.UnixNano(), []Key{k})
			}
			if ok {
				b = appendDelete(b, &k)
			}
			off = s.wal.end(b)
		}
	}
	if ok {
		s.count.Add(-1)
	}
	sh.mu.Unlock()
	s.wmu.RUnlock()
	if !ok {
		// Only a tombstone: written out with the next flush, like a
		// touch, so ending a session that is gone costs no fsync.
		return nil
	}
	if err == nil {
		err = s.wal.sync(off)
	}
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// Ended returns why the session under k ended, if it ended (through End,
// EndUser, EndAll or by expiring) within TombstoneTTL, before a restart
// too; NotEnded otherwise.
func (s *Embedded) Ended(_ context.Context, k Key) (Reason, error) {
	return s.ends.get(s.now(), k), nil
}

// DeleteUser removes every session of user, durably, and returns how many
// there were.
func (s *Embedded) DeleteUser(ctx context.Context, user string) (int, error) {
	return s.EndUser(ctx, user, NotEnded)
}

// EndUser is DeleteUser that also remembers why each session ended.
func (s *Embedded) EndUser(_ context.Context, user string, why Reason) (int, error) {
	h := unique.Make(user)
	var keys []Key
	s.wmu.Lock()
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.t.deleteIf(func(r *record) bool {
			if r.user != h {
				return false
			}
			if why != NotEnded && len(keys) < MaxTombstones {
				keys = append(keys, r.key)
			}
			return true
		})
		sh.mu.Unlock()
	}
	s.count.Add(int64(-n))
	now := s.now()
	s.ends.add(now, why, keys...)
	off, err := s.logMany(n, func(b []byte) []byte {
		return appendTombs(appendDeleteUser(b, user), why, now.UnixNano(), keys)
	})
	s.wmu.Unlock()
	if err == nil && n > 0 {
		err = s.wal.sync(off)
	}
	if err != nil {
		return n, fmt.Errorf("delete sessions of user: %w", err)
	}
	return n, nil
}

// DeleteAll removes every session, durably, and returns how many there were.
func (s *Embedded) DeleteAll(ctx context.Context) (int, error) {
	return s.EndAll(ctx, NotEnded)
}

// EndAll is DeleteAll that also remembers why each session ended (the
// newest MaxTombstones of them).
func (s *Embedded) EndAll(_ context.Context, why Reason) (int, error) {
	var keys []Key
	s.wmu.Lock()
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.t.n
		// Only as many as can be remembered: a store of millions
		// must not copy every key.
		for j := 0; why != NotEnded && j < sh.t.n && len(keys) < MaxTombstones; j++ {
			keys = append(keys, sh.t.rec(j).key)
		}
		sh.t.reset()
		sh.mu.Unlock()
	}
	s.count.Add(int64(-n))
	now := s.now()
	s.ends.add(now, why, keys...)
	off, err := s.logMany(n, func(b []byte) []byte {
		return appendTombs(appendDeleteAll(b), why, now.UnixNano(), keys)
	})
	s.wmu.Unlock()
	if err == nil && n > 0 {
		err = s.wal.sync(off)
	}
	if err != nil {
		return n, fmt.Errorf("delete all sessions: %w", err)
	}
	return n, nil
}

// logMany appends one record for a change to n sessions; nothing when n is 0.
func (s *Embedded) logMany(n int, enc func([]byte) []byte) (uint64, error) {
	if n == 0 {
		return 0, nil
	}
	b, err := s.wal.begin()
	if err != nil {
		return 0, err
	}
	return s.wal.end(enc(b)), nil
}

// List returns the sessions of user, or all sessions when user is "", oldest
// first.
func (s *Embedded) List(_ context.Context, user string) ([]Entry, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var out []Entry
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for i := range sh.t.n {
			if r := sh.t.rec(i); user == "" || r.user.Value() == user {
				out = append(out, Entry{Key: r.key, Session: r.session()})
			}
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := a.Session.Created.Compare(b.Session.Created); c != 0 {
			return c
		}
		return strings.Compare(string(a.Key[:]), string(b.Key[:]))
	})
	return out, nil
}

// Len returns the number of sessions held, expired ones not yet swept included.
func (s *Embedded) Len() int { return int(s.count.Load()) }

// Damage returns what the open found damaged and recovered around, and the
// copies of damaged files kept aside in the data directory now (listed at each
// call, so that moving them away is how an operator acknowledges the damage).
// The zero Damage means every file was intact and no copy is kept.
func (s *Embedded) Damage() Damage {
	d := s.damage
	if files, err := listAside(s.dir); err == nil {
		d.Files = files
	} else {
		d.Files = slices.Clone(d.Files) // what the open saw
	}
	return d
}

// Ping returns nil when the store can write: it is open, its log has not
// failed, and the last background compaction (if any) succeeded.
func (s *Embedded) Ping(_ context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := s.wal.health(); err != nil {
		return err
	}
	if p := s.bgErr.Load(); p != nil {
		return *p
	}
	return nil
}

// sweep drops sessions that are no longer valid at now. It logs nothing:
// validity only ever runs out (Touch never revives), so a replayed log drops
// the same sessions on load, tombstones included. A shard's tombstones are
// added before its lock is released, so a snapshot that misses a session
// has its tombstone.
func (s *Embedded) sweep(now time.Time) int {
	tn := now.UnixNano()
	n := 0
	var keys []Key
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.t.deleteIf(func(r *record) bool {
			if r.valid(tn) {
				return false
			}
			if len(keys) < MaxTombstones {
				keys = append(keys, r.key)
			}
			return true
		})
		s.ends.add(now, Expired, keys...)
		keys = keys[:0]
		sh.mu.Unlock()
	}
	s.count.Add(int64(-n))
	return n
}

// background flushes touches, sweeps expired sessions and starts compactions
// until Close.
func (s *Embedded) background() {
	defer s.wg.Done()
	flush := time.NewTicker(s.opts.flushEvery)
	defer flush.Stop()
	sweep := time.NewTicker(s.opts.sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-flush.C:
			// A failure is sticky in the log and reported by Ping.
			_ = s.wal.flush()
			if s.needCompact() && s.compacting.CompareAndSwap(false, true) {
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					defer s.compacting.Store(false)
					if err := s.compact(); err != nil {
						s.bgErr.Store(&err)
					} else {
						s.bgErr.Store(nil)
					}
				}()
			}
		case <-sweep.C:
			s.sweep(s.now())
		}
	}
}

// needCompact reports whether the log has grown well past the live data.
func (s *Embedded) needCompact() bool {
	size := s.wal.size()
	return size >= s.opts.compactMin && size >= 2*s.count.Load()*approxCreateSize
}

// Close stops the background work, writes a snapshot, and releases the data
// directory. The store is unusable afterwards.
func (s *Embedded) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return errClosed
	}
	close(s.stop)
	s.wg.Wait()
	err := s.compact()
	if werr := s.wal.close(); err == nil {
		err = werr
	}
	if lerr := unlockDir(s.lock); err == nil && lerr != nil {
		err = fmt.Errorf("release data directory lock: %w", lerr)
	}
	if err != nil {
		return fmt.Errorf("close session store: %w", err)
	}
	return nil
}
