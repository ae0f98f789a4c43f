package session

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a session store shared by several authd instances through Redis
// (standalone, Sentinel or Cluster, through go-redis's UniversalClient).
// Without WithTracking it caches nothing: every Get is one round trip, so a
// logout or revocation on one instance is seen by every other at its next
// request. WithTracking keeps that guarantee with local copies that Redis
// invalidates (see tracker).
//
// Keys, under the prefix P:
//
//	P s:<hex key>   hash: u user, v record, t last seen (ms), i idle (ms),
//	                e expires (ms), d deadline on Redis's clock (ms),
//	                w the user's current version (see below)
//	P su:<user>     sorted set of the user's session keys, scored by deadline
//	P sa            sorted set of all session keys, scored by deadline
//
// All of them must share a Cluster slot (a hash tag in the prefix), because
// the scripts below touch several at once.
//
// Freshness of the user: w is the "ver" of the user's hash P u:<user>
// (users.Redis), copied in when the session is created, and rewritten in
// every live session of the user by the same script that changes the user
// (it walks P su:<user>). So Get is a single HMGET, with no script, and still
// returns the user's current version with the session, atomically.
//
// Clock skew: a session's Redis TTL is computed on Redis's own clock, from
// durations (time left until Expires and until the idle deadline, as the
// creating instance measures them), never from an instance's absolute
// time. The absolute deadline is then stamped with Redis's TIME and the
// key expires at it, so an instance whose clock runs slow cannot stretch a
// session past its lifetime: the record is gone from Redis. Instances also
// check Valid with their own clock, which can only end a session earlier.
type Redis struct {
	c       redis.UniversalClient
	prefix  string
	now     func() time.Time
	timeout time.Duration
	// check, if set, is called by Get with the session's user and that
	// user's version in Redis (0 if the user does not exist), read in the
	// same round trip; an error fails the Get.
	check func(ctx context.Context, user string, version int64) error
	// batch, if set, pipelines concurrent Gets (WithBatching).
	batch  *getBatcher
	batchN [2]int
	// waitN replicas must acknowledge each write within waitFor (WithWait).
	waitN   int
	waitFor time.Duration
	// track, if set, keeps local copies valid until Redis invalidates them
	// (WithTracking).
	track    *tracker
	trackOpt func(prefix string) *tracker
}

// RedisOption configures NewRedis.
type RedisOption func(*Redis)

// WithUserCheck makes Get pass each session's user and the user's current
// version (the "ver" field of the hash P u:<user>, 0 when there was none
// when the session was created), read in the same round trip as the
// session, to check before Get returns. The user store
// uses it to refresh a stale local copy of that user first.
func WithUserCheck(check func(ctx context.Context, user string, version int64) error) RedisOption {
	return func(r *Redis) { r.check = check }
}

// WithBatching makes concurrent Gets share Redis round trips: workers
// goroutines each send up to max waiting lookups as one pipeline. Call Close
// to stop them.
func WithBatching(workers, max int) RedisOption {
	return func(r *Redis) {
		if workers > 0 && max > 0 {
			r.batchN = [2]int{workers, max}
		}
	}
}

// WithTracking makes Get keep a local copy of each session it read and use
// it until Redis reports that the session's key changed (RESP3 client-side
// caching in broadcast mode, on a connection of its own that dial opens to
// the same Redis as the client, authenticated as username/password when a
// password is set, and named name in CLIENT LIST when it is not ""). A logout, revocation or user change on any instance is
// then still refused at the next request everywhere; see tracker. Only for
// a standalone Redis reachable without TLS; onErr hears why tracking is off
// (then Get reads Redis every time). Call Close to stop it.
func WithTracking(dial func(ctx context.Context) (net.Conn, error), username, password, name string, onErr func(error)) RedisOption {
	return func(r *Redis) {
		r.trackOpt = func(prefix string) *tracker { return newTracker(dial, username, password, name, prefix, onErr) }
	}
}

// WithTimeout bounds every store call, whatever the caller's context; 0
// keeps the default of 900ms, so that verify denies within a second.
func WithTimeout(d time.Duration) RedisOption {
	return func(r *Redis) {
		if d > 0 {
			r.timeout = d
		}
	}
}

// WithWait makes every write (Create, Delete, DeleteUser, DeleteAll) return
// only once n replicas have acknowledged it (Redis WAIT, on the connection
// that wrote), waiting at most timeout; fewer acknowledgements fail the call.
// A failover that promotes one of those replicas then cannot undo a confirmed
// login or, worse, a confirmed logout. n = 0 does not wait.
func WithWait(n int, timeout time.Duration) RedisOption {
	return func(r *Redis) { r.waitN, r.waitFor = n, max(timeout, time.Millisecond) }
}

// errNotReplicated is a write the primary holds but not enough replicas
// acknowledged in time: a failover now could lose it.
var errNotReplicated = errors.New("not acknowledged by enough replicas in time")

// run runs a writing script and, with WithWait, WAIT on the same
// connection: WAIT covers only writes made by the connection that asks, so
// both go in one pipeline to the primary that serves keys[0] (with a
// Cluster, the primary of the slot every key shares).
//
// After the script, run makes one more round trip (barrier) before it
// returns, so the write's invalidations have reached the instances that
// keep local copies (WithTracking) before this one can tell anyone the
// write is done.
func (r *Redis) run(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmd := r.runScript(ctx, s, keys, args...)
	if cmd.Err() == nil {
		r.barrier(ctx)
	}
	return cmd
}

// barrier waits for one more round trip to Redis. Redis sends the
// invalidations a script caused only after the script, possibly after its
// reply to the writer; every reply and invalidation of one pass of its event
// loop is written before it reads the next command, so once a later command
// is answered, they have all been handed to the network. Its error is
// ignored: the write itself succeeded.
func (r *Redis) barrier(ctx context.Context) {
	if _, ok := r.c.(*redis.ClusterClient); ok {
		return // no tracking with a Cluster
	}
	_ = r.c.Ping(ctx).Err()
}

func (r *Redis) runScript(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	if r.waitN == 0 {
		return s.Run(ctx, r.c, keys, args...)
	}
	var c redis.Cmdable = r.c
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd
		}
		c = m
	}
	p := c.Pipeline()
	// EVALSHA's NOSCRIPT fallback cannot happen inside a pipeline; EVAL
	// sends the source, a few hundred bytes, on these rare writes.
	cmd := s.Eval(ctx, p, keys, args...)
	wait := p.Do(ctx, "WAIT", r.waitN, r.waitFor.Milliseconds())
	if _, err := p.Exec(ctx); err != nil {
		if cmd.Err() == nil {
			cmd.SetErr(err)
		}
		return cmd
	}
	if n, err := wait.Int(); err != nil || n < r.waitN {
		cmd.SetErr(fmt.Errorf("%w (%d of %d replicas)", errNotReplicated, n, r.waitN))
	}
	return cmd
}

// NewRedis returns a session store on c with keys under prefix. now is the
// clock (nil means time.Now).
func NewRedis(c redis.UniversalClient, prefix string, now func() time.Time, opts ...RedisOption) *Redis {
	if now == nil {
		now = time.Now
	}
	r := &Redis{c: c, prefix: prefix, now: now, timeout: 900 * time.Millisecond}
	for _, o := range opts {
		o(r)
	}
	if r.trackOpt != nil {
		r.track = r.trackOpt(prefix)
	}
	if r.batchN[0] > 0 {
		// A batch gets less time than a single call: lookups queued behind a
		// stalled batch wait for it, and verify must still deny within a second.
		r.batch = newGetBatcher(c, r.batchN[0], r.batchN[1], min(r.timeout, 500*time.Millisecond))
	}
	return r
}

// Copies reports how many Gets the local copies answered and how many read
// Redis, and whether tracking is up; ok is false without WithTracking.
func (r *Redis) Copies() (hits, misses uint64, live, ok bool) {
	if r.track == nil {
		return 0, 0, false, false
	}
	return r.track.hits.Load(), r.track.misses.Load(), r.track.live.Load(), true
}

// Close stops the batching goroutines, if any; the client stays open.
func (r *Redis) Close() error {
	if r.batch != nil {
		r.batch.close()
	}
	if r.track != nil {
		r.track.close()
	}
	return nil
}

func (r *Redis) sessKey(k *Key) string {
	var b [64]byte
	hex.Encode(b[:], k[:])
	return r.prefix + "s:" + string(b[:])
}

func (r *Redis) userIndex(user string) string { return r.prefix + "su:" + user }
func (r *Redis) userKey(user string) string   { return r.prefix + "u:" + user }
func (r *Redis) allIndex() string             { return r.prefix + "sa" }

func (r *Redis) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// deadlineCtx is ctx with a deadline that Deadline reports but that does not
// close Done: go-redis (ContextTimeoutEnabled) turns it into the socket
// deadlines of the commands it sends, which bounds them, and it costs no
// timer. Waiting for a pooled connection stays bounded by the pool timeout.
type deadlineCtx struct {
	context.Context
	d time.Time
}

func (c deadlineCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.d) {
		return d, true
	}
	return c.d, true
}

// encodeRecord packs the fields Lua never reads: created, expires, idle (ms),
// fingerprint, remember, IP and user agent.
func encodeRecord(rec *record) string {
	b := make([]byte, 0, 48+len(rec.meta)+len(rec.userAgent()))
	b = binary.LittleEndian.AppendUint64(b, uint64(rec.created/1e6))
	b = binary.LittleEndian.AppendUint64(b, uint64(rec.expires/1e6))
	b = binary.LittleEndian.AppendUint64(b, uint64(rec.idle/1e6))
	b = binary.LittleEndian.AppendUint64(b, rec.fp)
	flags := rec.meta[0]
	if rec.factor != 0 {
		flags |= metaFactor
	}
	if rec.ext != nil {
		flags |= metaExternal
	}
	if flags != rec.meta[0] {
		b = appendString(b, string(flags)+rec.meta[1:])
	} else {
		b = appendString(b, rec.meta)
	}
	if rec.factor != 0 {
		// Flag 2 in the meta's first byte: an 8-byte second factor time (ms)
		// follows the meta. Records without it decode as before.
		b = binary.LittleEndian.AppendUint64(b, uint64(rec.factor/1e6))
	}
	if rec.ext != nil {
		// Flag 4: the header-only identity follows (after the factor time).
		b = appendExternal(b, rec.ext)
	}
	b = append(b, rec.userAgent()...)
	return string(b)
}

// Flags in the first byte of a Redis record's meta: it carries a second
// factor time, a header-only identity.
const (
	metaFactor   = 2
	metaExternal = 4
)

var errBadRecord = errors.New("malformed session record in redis")

func decodeRecord(user, v, lastSeen string) (Session, error) {
	if len(v) < 33 {
		return Session{}, errBadRecord
	}
	created, expires, idle := int64(le64(v[0:])), int64(le64(v[8:])), int64(le64(v[16:]))
	fp := le64(v[24:])
	n, w := uvarint(v[32:])
	if w <= 0 || uint64(len(v)-32-w) < n {
		return Session{}, errBadRecord
	}
	meta := v[32+w : 32+w+int(n)]
	rest := v[32+w+int(n):]
	var factor time.Time
	if len(meta) > 0 && meta[0]&metaFactor != 0 {
		if len(rest) < 8 {
			return Session{}, errBadRecord
		}
		ms := int64(le64(rest))
		if ms <= 0 || ms > maxUnixNano/1e6 {
			return Session{}, errBadRecord
		}
		factor = time.UnixMilli(ms).UTC()
		meta, rest = string(meta[0]&^metaFactor)+meta[1:], rest[8:]
	}
	var ext *External
	if len(meta) > 0 && meta[0]&metaExternal != 0 {
		d := decoder{b: []byte(rest)}
		if ext = d.external(); d.bad {
			return Session{}, errBadRecord
		}
		meta, rest = string(meta[0]&^metaExternal)+meta[1:], rest[len(rest)-len(d.b):]
	}
	if !validMeta(meta) {
		return Session{}, errBadRecord
	}
	ls, err := strconv.ParseInt(lastSeen, 10, 64)
	if err != nil {
		return Session{}, errBadRecord
	}
	return Session{
		User:         user,
		Created:      time.UnixMilli(created).UTC(),
		LastSeen:     time.UnixMilli(ls).UTC(),
		Expires:      time.UnixMilli(expires).UTC(),
		Idle:         time.Duration(idle) * time.Millisecond,
		Remember:     meta[0] == 1,
		IP:           meta[1:],
		UserAgent:    rest,
		Fingerprint:  fp,
		SecondFactor: factor,
		External:     ext,
	}, nil
}

// le64 reads a little-endian uint64 from the start of s without copying it.
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// uvarint is binary.Uvarint on a string.
func uvarint(s string) (uint64, int) {
	var x uint64
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<(7*i), i + 1
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	return 0, 0
}

// redisNowMs is Redis's clock in milliseconds, inside a script.
const redisNowMs = `local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
`

// Every script below touches only keys passed in KEYS, never a name it builds
// (Redis Cluster routes a script by its declared keys, and ACLs check them):
// where a script needs a key it learns only from a value (a session's user,
// an index's members), the caller reads the value first and passes the key,
// and the script checks the value is still what the caller read, returning
// -1 for the caller to read again.

// KEYS: session, user index, all index, user hash, and the user index of the
// session's previous user when it had another. ARGV: hex key, user, record,
// last seen, idle, expires, ms to absolute deadline, ms to idle deadline, the
// previous user the caller read ("" for none).
var createScript = redis.NewScript(redisNowMs + `
local old = redis.call('HGET', KEYS[1], 'u') or ''
if old ~= ARGV[9] then return -1 end
if old ~= '' and old ~= ARGV[2] then redis.call('ZREM', KEYS[5], ARGV[1]) end
local left = tonumber(ARGV[7])
local d = now + left
local ttl = math.min(left, tonumber(ARGV[8]))
local w = tonumber(redis.call('HGET', KEYS[4], 'ver')) or 0
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'u', ARGV[2], 'v', ARGV[3], 't', ARGV[4], 'i', ARGV[5], 'e', ARGV[6], 'd', d, 'w', w)
redis.call('PEXPIRE', KEYS[1], ttl)
for i = 2, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  redis.call('ZADD', KEYS[i], d, ARGV[1])
  if redis.call('PTTL', KEYS[i]) < left then redis.call('PEXPIRE', KEYS[i], left) end
end
return 1
`)

// KEYS: session. ARGV: time of activity (ms, the caller's clock).
var touchScript = redis.NewScript(redisNowMs + `
local h = redis.call('HMGET', KEYS[1], 't', 'i', 'd', 'e')
if not h[1] then return 0 end
local t, last, idle = tonumber(ARGV[1]), tonumber(h[1]), tonumber(h[2])
if t <= last or t >= last + idle or t >= tonumber(h[4]) then return 0 end
local ttl = math.min(tonumber(h[3]) - now, idle)
if ttl <= 0 then return 0 end
redis.call('HSET', KEYS[1], 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// KEYS: session, all index, and the user index of the session's user when it
// has one. ARGV: hex key, the user the caller read ("" for none).
var deleteScript = redis.NewScript(`
local u = redis.call('HGET', KEYS[1], 'u') or ''
if u ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if u ~= '' then redis.call('ZREM', KEYS[3], ARGV[1]) end
return 1
`)

// KEYS: user index, all index, then the sessions the caller read from the
// user index. ARGV: their hex keys. Deletes them; returns {deleted, left in
// the user index}.
var deleteUserScript = redis.NewScript(`
local n = 0
for i, h in ipairs(ARGV) do
  n = n + redis.call('DEL', KEYS[2 + i])
  redis.call('ZREM', KEYS[1], h)
  redis.call('ZREM', KEYS[2], h)
end
return {n, redis.call('ZCARD', KEYS[1])}
`)

// KEYS: all index, then for each session the caller read from it the session
// and its user's index (the all index again when it had no user). ARGV: the
// number of sessions m, their hex keys, then their users as read ("" for
// none). Deletes the sessions whose user is still the one read (the others
// wait for the next batch); returns {deleted, left in the all index}.
var deleteBatchScript = redis.NewScript(`
local m = tonumber(ARGV[1])
local n = 0
for i = 1, m do
  local h, want = ARGV[1 + i], ARGV[1 + m + i]
  local s, idx = KEYS[2 * i], KEYS[2 * i + 1]
  local u = redis.call('HGET', s, 'u') or ''
  if u == want then
    if u ~= '' then redis.call('ZREM', idx, h) end
    n = n + redis.call('DEL', s)
    redis.call('ZREM', KEYS[1], h)
  end
end
return {n, redis.call('ZCARD', KEYS[1])}
`)

// Get returns the session under k, or false. With WithUserCheck, the
// session's user is checked against the user's version first.
func (r *Redis) Get(ctx context.Context, k Key) (Session, bool, error) {
	var seq uint64
	tracking := false
	if r.track != nil {
		if c, ok := r.track.get(&k); ok {
			if r.check != nil {
				// The check reads Redis only when the user changed, which is
				// rare: bound its I/O with a deadline alone, without the
				// timer context.WithTimeout starts (a tenth of a hit's cost).
				cctx := deadlineCtx{ctx, time.Now().Add(r.timeout)}
				if err := r.check(cctx, c.sess.User, c.ver); err != nil {
					return Session{}, false, fmt.Errorf("get session: check user: %w", err)
				}
			}
			return c.sess, true, nil
		}
		seq, tracking = r.track.begin()
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	var res []any
	var err error
	if r.batch != nil {
		res, err = r.batch.get(ctx, r.sessKey(&k))
	} else {
		res, err = r.c.HMGet(ctx, r.sessKey(&k), "u", "v", "t", "w").Result()
	}
	if err != nil {
		return Session{}, false, fmt.Errorf("get session: %w", err)
	}
	if len(res) != 4 || res[0] == nil {
		return Session{}, false, nil
	}
	user, _ := res[0].(string)
	v, _ := res[1].(string)
	t, _ := res[2].(string)
	ws, _ := res[3].(string)
	ver, _ := strconv.ParseInt(ws, 10, 64)
	sess, err := decodeRecord(user, v, t)
	if err != nil {
		return Session{}, false, fmt.Errorf("get session: %w", err)
	}
	if r.check != nil {
		if err := r.check(ctx, user, ver); err != nil {
			return Session{}, false, fmt.Errorf("get session: check user: %w", err)
		}
	}
	if tracking {
		r.track.put(&k, seq, tracked{sess: sess, ver: ver})
	}
	return sess, true, nil
}

// Create stores sess under k. Its Redis TTL runs on Redis's clock for as
// long as sess has left until Expires or its idle deadline, whichever is
// first, as measured on the local clock; a session with nothing left is not
// stored.
func (r *Redis) Create(ctx context.Context, k Key, sess Session) error {
	rec, err := toRecord(k, &sess)
	if err != nil {
		return err
	}
	now := r.now().UnixMilli()
	left := rec.expires/1e6 - now
	idleLeft := (rec.lastSeen+rec.idle)/1e6 - now
	if left <= 0 || idleLeft <= 0 {
		return nil
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	hk := hex.EncodeToString(k[:])
	sk := r.sessKey(&k)
	// A new key holds no session: try that first, and read the previous user
	// only if the script finds one.
	prev := ""
	for range 5 {
		keys := []string{sk, r.userIndex(sess.User), r.allIndex(), r.userKey(sess.User)}
		if prev != "" && prev != sess.User {
			keys = append(keys, r.userIndex(prev))
		}
		res, err := r.run(ctx, createScript, keys, hk, sess.User, encodeRecord(&rec), rec.lastSeen/1e6,
			rec.idle/1e6, rec.expires/1e6, left, idleLeft, prev).Int()
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		if res == 1 {
			return nil
		}
		if prev, err = r.c.HGet(ctx, sk, "u").Result(); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("create session: %w", err)
		}
	}
	return fmt.Errorf("create session: %w", errRaced)
}

// Touch raises LastSeen to t and restarts the idle TTL, never past the
// absolute deadline; a missing or no longer valid session is left alone.
func (r *Redis) Touch(ctx context.Context, k Key, t time.Time) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := touchScript.Run(ctx, r.c, []string{r.sessKey(&k)}, t.UnixMilli()).Err(); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// Delete removes the session under k. A missing session is not an error.
func (r *Redis) Delete(ctx context.Context, k Key) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	sk, hk := r.sessKey(&k), hex.EncodeToString(k[:])
	for range 5 {
		u, err := r.c.HGet(ctx, sk, "u").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("delete session: %w", err)
		}
		keys := []string{sk, r.allIndex()}
		if u != "" {
			keys = append(keys, r.userIndex(u))
		}
		res, err := r.run(ctx, deleteScript, keys, hk, u).Int()
		if err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
		if res == 1 {
			return nil
		}
	}
	return fmt.Errorf("delete session: %w", errRaced)
}

// errRaced is returned when a session kept changing between a read and the
// script that acts on it.
var errRaced = errors.New("session changed concurrently; try again")

// deleteBatch is how many sessions one script deletes, so Redis never blocks
// long.
const deleteBatch = 500

// DeleteUser removes every session of user and returns how many there were.
func (r *Redis) DeleteUser(ctx context.Context, user string) (int, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	idx, total := r.userIndex(user), 0
	for {
		hexes, err := r.c.ZRange(ctx, idx, 0, deleteBatch-1).Result()
		if err != nil {
			return total, fmt.Errorf("delete sessions of user: %w", err)
		}
		if len(hexes) == 0 {
			return total, nil
		}
		keys := []string{idx, r.allIndex()}
		args := make([]any, len(hexes))
		for i, h := range hexes {
			keys = append(keys, r.prefix+"s:"+h)
			args[i] = h
		}
		res, err := r.run(ctx, deleteUserScript, keys, args...).Int64Slice()
		if err != nil {
			return total, fmt.Errorf("delete sessions of user: %w", err)
		}
		total += int(res[0])
		if res[1] == 0 {
			return total, nil
		}
	}
}

// DeleteAll removes every session, in batches so Redis never blocks long,
// and returns how many there were.
func (r *Redis) DeleteAll(ctx context.Context) (int, error) {
	total := 0
	for {
		n, left, err := r.deleteAllBatch(ctx)
		total += n
		if err != nil {
			return total, fmt.Errorf("delete all sessions: %w", err)
		}
		if left == 0 {
			return total, nil
		}
	}
}

// deleteAllBatch deletes up to deleteBatch sessions named by the all index
// and returns how many it deleted and how many the index still names.
func (r *Redis) deleteAllBatch(ctx context.Context) (int, int64, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	all := r.allIndex()
	hexes, err := r.c.ZRange(ctx, all, 0, deleteBatch-1).Result()
	if err != nil || len(hexes) == 0 {
		return 0, 0, err
	}
	users := make([]*redis.StringCmd, len(hexes))
	_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hexes {
			users[i] = p.HGet(ctx, r.prefix+"s:"+h, "u")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, err
	}
	keys := []string{all}
	args := make([]any, 1, 1+2*len(hexes))
	args[0] = len(hexes)
	for _, h := range hexes {
		args = append(args, h)
	}
	for i, h := range hexes {
		u := users[i].Val()
		idx := all
		if u != "" {
			idx = r.userIndex(u)
		}
		keys = append(keys, r.prefix+"s:"+h, idx)
		args = append(args, u)
	}
	res, err := r.run(ctx, deleteBatchScript, keys, args...).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	return int(res[0]), res[1], nil
}

// List returns the live sessions of user, or all sessions when user is "",
// oldest first.
func (r *Redis) List(ctx context.Context, user string) ([]Entry, error) {
	idx := r.allIndex()
	if user != "" {
		idx = r.userIndex(user)
	}
	hexes, err := r.c.ZRange(ctx, idx, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	var out []Entry
	for batch := range slices.Chunk(hexes, 500) {
		cmds := make([]*redis.SliceCmd, len(batch))
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, h := range batch {
				cmds[i] = p.HMGet(ctx, r.prefix+"s:"+h, "u", "v", "t")
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		for i, cmd := range cmds {
			vals := cmd.Val()
			if len(vals) != 3 || vals[0] == nil {
				continue // expired since the index was read
			}
			u, _ := vals[0].(string)
			v, _ := vals[1].(string)
			t, _ := vals[2].(string)
			sess, err := decodeRecord(u, v, t)
			var k Key
			if n, herr := hex.Decode(k[:], []byte(batch[i])); err != nil || herr != nil || n != len(k) {
				continue
			}
			if user != "" && sess.User != user {
				continue
			}
			out = append(out, Entry{Key: k, Session: sess})
		}
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := a.Session.Created.Compare(b.Session.Created); c != 0 {
			return c
		}
		return strings.Compare(string(a.Key[:]), string(b.Key[:]))
	})
	return out, nil
}

// Len returns the number of sessions whose absolute deadline has not
// passed (idle-expired ones may be counted), or 0 if Redis cannot say.
func (r *Redis) Len() int {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	n, err := r.c.ZCount(ctx, r.allIndex(), strconv.FormatInt(r.now().UnixMilli(), 10), "+inf").Result()
	if err != nil {
		return 0
	}
	return int(n)
}

// Ping returns nil when Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}
