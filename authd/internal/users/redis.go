package users

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// NewDB validates users (as Parse does) and returns them as a DB.
func NewDB(list []User, lim Limits) (*DB, error) {
	return build(list, nil, "", lim)
}

// Redis is a user store shared by several authd instances. Every instance
// keeps a snapshot for the hot path; freshness comes from versions, not from
// message timing: every change gives the user a new version (from one
// counter, so versions never repeat, even across delete and re-add), and
// the session store reads the user's version in the same round trip as
// each session (see session.WithUserCheck) and calls Ensure, which reloads
// that user before the answer when the snapshot's version differs. Pub/sub
// and a poll of the counter only make other snapshots fresh sooner.
//
// Keys, under the prefix P:
//
//	P u:<name>    hash: name, hash, groups (comma-separated), email,
//	              display_name, disabled ("1" or "0"), generation, source, ver
//	P users       set of user names
//	P users:ver   counter that versions come from
//	P users:adm   version of the last write that added or deleted a user or
//	              changed their groups or lock (what admin status rests on)
//
// and changes are announced on the channel "P users" (message: the name).
// A change also writes the new version into each of the user's live
// sessions (session.Redis's keys P su:<name> and P s:<hex>, field w), so a
// verify reads the session and its user's version with one HMGET.
type Redis struct {
	c       redis.UniversalClient
	prefix  string
	lim     atomic.Pointer[Limits] // replaced under mu with the snapshot it checked
	timeout time.Duration

	snap atomic.Pointer[redisSnap]
	mu   sync.Mutex // serialises snapshot replacement
	seen atomic.Int64

	// reloading counts full reloads between their first read and their
	// install: only then must the absence of a user the snapshot lacks be
	// remembered (in redisSnap.gone).
	reloading atomic.Int32

	// afterRead, if set, runs between a read from Redis and its install
	// (name "" for a full reload), so tests can interleave a change there.
	afterRead func(name string)
	// beforeWrite, if set, runs in UpdateGuarded between its read of every
	// user and its write.
	beforeWrite func(name string)
}

type redisSnap struct {
	db  *DB
	ver map[string]int64
	// gone holds, for users deleted by a single-user change since the last
	// full reload began, the version as of which each was gone, so that a
	// slower read cannot bring one back.
	gone map[string]int64
}

// OpenRedis loads every user from Redis. It fails if Redis cannot be
// reached or holds a user that does not validate.
func OpenRedis(ctx context.Context, c redis.UniversalClient, prefix string, lim Limits) (*Redis, error) {
	r := &Redis{c: c, prefix: prefix, timeout: 900 * time.Millisecond}
	if _, err := r.reload(ctx, &lim); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Redis) userKey(name string) string { return r.prefix + "u:" + name }
func (r *Redis) setKey() string             { return r.prefix + "users" }
func (r *Redis) counterKey() string         { return r.prefix + "users:ver" }
func (r *Redis) adminKey() string           { return r.prefix + "users:adm" }

// Channel is the pub/sub channel that announces user changes.
func (r *Redis) Channel() string { return r.prefix + "users" }

// DB returns the current snapshot without locking.
func (r *Redis) DB() *DB { return r.snap.Load().db }

// Version returns the snapshot's version of name, 0 if it has none.
func (r *Redis) Version(name string) int64 { return r.snap.Load().ver[name] }

// Reload reads every user from Redis again. changed reports whether any
// version differs from the snapshot's. On error the snapshot stays.
func (r *Redis) Reload() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.reload(ctx, nil)
}

// ReloadWithin is Reload under new bounds for stored hashes (a reload of
// [hash]): every user is checked against lim, and lim becomes the bounds of
// later refreshes and edits with the snapshot it checked. On error the
// snapshot and the old bounds stay.
func (r *Redis) ReloadWithin(lim Limits) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.reload(ctx, &lim)
}

func (r *Redis) limits() Limits { return *r.lim.Load() }

// reload reads every user; lim, when not nil, replaces the bounds if they load.
func (r *Redis) reload(ctx context.Context, lim *Limits) (bool, error) {
	r.reloading.Add(1)
	defer r.reloading.Add(-1)
	counter, err := r.c.Get(ctx, r.counterKey()).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("load users from redis: %w", err)
	}
	list, vers, err := r.readUsers(ctx)
	if err != nil {
		return false, fmt.Errorf("load users from redis: %w", err)
	}
	read := make(map[string]User, len(list))
	readVer := make(map[string]int64, len(list))
	for i, u := range list {
		read[u.Name], readVer[u.Name] = u, vers[i]
	}
	if r.afterRead != nil {
		r.afterRead("")
	}
	changed, recheck, err := r.install(read, readVer, counter, lim)
	if err != nil {
		return false, err
	}
	// A user added since the read began may have been deleted again before
	// its deletion reached the snapshot: read each such user once more.
	for _, name := range recheck {
		if err := r.Refresh(ctx, name); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// install puts a full read into the snapshot, keeping newer single-user
// changes, and returns the names kept although the read lacked them.
func (r *Redis) install(read map[string]User, readVer map[string]int64, counter int64, lim *Limits) (bool, []string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lim == nil {
		lim = r.lim.Load()
	}
	// The reads above are not one moment: a single-user change may have been
	// applied to the snapshot since (by Refresh, Ensure or Update). A version
	// never goes back, so keep whichever copy is newer: the snapshot's for a
	// user it holds at a later version than the read, or holds at a version
	// after the counter the read started from (added since; absent from the
	// read). A user the snapshot holds at a version up to that counter and the
	// read lacks was deleted; one the snapshot saw deleted after the version
	// read stays deleted.
	old := r.snap.Load()
	var recheck []string
	var gone map[string]int64
	if old != nil {
		for name, g := range old.gone {
			if v, inRead := readVer[name]; inRead && g > v {
				delete(read, name) // deleted after the read
				delete(readVer, name)
			}
			if g > counter {
				if gone == nil {
					gone = make(map[string]int64)
				}
				gone[name] = g // the next reload may still read it
			}
		}
		for name, cur := range old.ver {
			v, inRead := readVer[name]
			if (inRead && cur > v) || (!inRead && cur > counter) {
				read[name], readVer[name] = old.db.byName[name].User, cur
				if !inRead {
					recheck = append(recheck, name)
				}
			}
		}
	}
	list := make([]User, 0, len(read))
	for _, u := range read {
		list = append(list, u)
	}
	slices.SortFunc(list, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	db, err := build(list, nil, "redis", *lim)
	if err != nil {
		return false, nil, err
	}
	r.lim.Store(lim)
	changed := old == nil || !maps.Equal(old.ver, readVer)
	r.snap.Store(&redisSnap{db: db, ver: readVer, gone: gone})
	r.seen.Store(max(r.seen.Load(), counter))
	return changed, recheck, nil
}

// fromHash turns a user hash into a User and its version.
func fromHash(h map[string]string) (User, int64, bool) {
	if h["name"] == "" {
		return User{}, 0, false
	}
	gen, _ := strconv.ParseUint(h["generation"], 10, 64)
	ver, _ := strconv.ParseInt(h["ver"], 10, 64)
	u := User{Name: h["name"], Hash: h["hash"], Email: h["email"], DisplayName: h["display_name"],
		Disabled: h["disabled"] == "1", Generation: gen, Source: h["source"]}
	if g := h["groups"]; g != "" {
		u.Groups = strings.Split(g, ",")
	}
	if c, err := strconv.ParseInt(h["created"], 10, 64); err == nil && c > 0 {
		u.Created = time.Unix(c, 0).UTC()
	}
	return u, ver, true
}

func toHash(u User) []any {
	disabled := "0"
	if u.Disabled {
		disabled = "1"
	}
	created := ""
	if !u.Created.IsZero() {
		created = strconv.FormatInt(u.Created.Unix(), 10)
	}
	return []any{"name", u.Name, "hash", u.Hash, "groups", strings.Join(u.Groups, ","), "email", u.Email,
		"display_name", u.DisplayName, "disabled", disabled, "generation", strconv.FormatUint(u.Generation, 10), "source", u.Source,
		"created", created}
}

// Ensure makes the snapshot's copy of name at least as new as version
// (0: the user does not exist in Redis), reading the user from Redis when
// the snapshot's version differs. It does not allocate when it agrees.
func (r *Redis) Ensure(ctx context.Context, name string, version int64) error {
	s := r.snap.Load()
	if v, ok := s.ver[name]; ok == (version != 0) && v == version {
		return nil
	}
	return r.Refresh(ctx, name)
}

// EnsureCurrent reads name's version from Redis and makes the snapshot's copy
// at least that new (see Ensure), within the store's timeout. Machine clients
// use it: they carry no session whose read brings the user's version along.
func (r *Redis) EnsureCurrent(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ver, err := r.c.HGet(ctx, r.userKey(name), "ver").Int64()
	if errors.Is(err, redis.Nil) {
		ver, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("read user version from redis: %w", err)
	}
	return r.Ensure(ctx, name, ver)
}

// Refresh reads name from Redis and puts it into the snapshot (or takes it
// out if it is gone).
//
// The user and the version counter are read in one transaction, so a user
// found missing is known to be missing as of that counter: a newer copy the
// snapshot got meanwhile (the user deleted and added again) stays.
func (r *Redis) Refresh(ctx context.Context, name string) error {
	var hc *redis.MapStringStringCmd
	var cc *redis.StringCmd
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		hc = p.HGetAll(ctx, r.userKey(name))
		cc = p.Get(ctx, r.counterKey())
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read user from redis: %w", err)
	}
	u, ver, ok := fromHash(hc.Val())
	if ok && u.Name != name {
		return fmt.Errorf("user %q in redis holds name %q", name, u.Name)
	}
	if !ok {
		ver, _ = cc.Int64() // absent as of this version; 0 when there never was a counter
	}
	if r.afterRead != nil {
		r.afterRead(name)
	}
	return r.apply(name, u, ver, ok)
}

// apply replaces name in the snapshot with u at version ver (ok false:
// removes it, ver being a version as of which it was gone), unless the
// snapshot already holds a newer version: a slow read never undoes a later
// change.
func (r *Redis) apply(name string, u User, ver int64, ok bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Checked under mu, so a change of the bounds (ReloadWithin) and the
	// snapshot it checked are never interleaved with this user's check.
	var e *Entry
	if ok {
		if msgs := checkUser(u, r.limits()); len(msgs) > 0 {
			return fmt.Errorf("user %s in redis: %s", printableName(name), strings.Join(msgs, "; "))
		}
		e = newEntry(u, r.limits())
	}
	old := r.snap.Load()
	if cur, has := old.ver[name]; has && cur > ver {
		return nil
	}
	if g, has := old.gone[name]; has && g > ver {
		return nil
	}
	if _, has := old.ver[name]; !ok && !has && r.reloading.Load() == 0 {
		// Nothing to remove and no full read in flight that could hold it:
		// remembering every name looked up (a login with any name refreshes
		// it) would grow without bound.
		return nil
	}
	byName := maps.Clone(old.db.byName)
	vers := maps.Clone(old.ver)
	gone := maps.Clone(old.gone)
	if gone == nil {
		gone = make(map[string]int64)
	}
	if ok {
		byName[name], vers[name] = e, ver
		delete(gone, name)
	} else {
		delete(byName, name)
		delete(vers, name)
		gone[name] = ver
	}
	db := &DB{byName: byName, groups: make(map[string]struct{})}
	for _, x := range byName {
		for _, g := range x.Groups {
			db.groups[g] = struct{}{}
		}
	}
	r.snap.Store(&redisSnap{db: db, ver: vers, gone: gone})
	return nil
}

// ErrConflict is returned by Update when the user changed in between, more
// than a few times in a row.
var ErrConflict = errors.New("user changed concurrently; try again")

// KEYS: user, users set, counter, admin version (P users:adm), the user's
// session index (session.Redis's P su:<name>), then the sessions the caller
// read from that index (P s:<hex>). ARGV: expected version ("*": any),
// delete ("1"), channel, name, expected admin version ("*": any), the number
// of sessions m, their hex keys, then field/value pairs. Returns the new
// version, -1 when the expected version did not match, -3 when the expected
// admin version did not, or -2 when the index no longer names exactly the
// sessions passed (the caller reads it again): the script touches only
// declared keys. The new version is also written into every live session of
// the user (field w), so that session.Redis reads it with the session in one
// HMGET, and into the admin version when the user appears, goes, or has new
// groups or lock.
var putScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'ver')) or 0
if ARGV[1] ~= '*' and tonumber(ARGV[1]) ~= cur then return -1 end
if ARGV[5] ~= '*' and tonumber(ARGV[5]) ~= (tonumber(redis.call('GET', KEYS[4])) or 0) then return -3 end
local m = tonumber(ARGV[6])
local members = redis.call('ZRANGE', KEYS[5], 0, -1)
if #members ~= m then return -2 end
local declared = {}
for i = 1, m do declared[ARGV[6 + i]] = true end
for _, h in ipairs(members) do
  if not declared[h] then return -2 end
end
local v = redis.call('INCR', KEYS[3])
for i = 1, m do
  local s = KEYS[5 + i]
  if redis.call('EXISTS', s) == 1 then redis.call('HSET', s, 'w', v) end
end
local old = redis.call('HMGET', KEYS[1], 'name', 'groups', 'disabled')
local adm
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then
  redis.call('SREM', KEYS[2], ARGV[4])
  adm = old[1] ~= false
else
  local f = {}
  local nf = {}
  for i = 7 + m, #ARGV, 2 do
    f[#f + 1] = ARGV[i]
    f[#f + 1] = ARGV[i + 1]
    nf[ARGV[i]] = ARGV[i + 1]
  end
  f[#f + 1] = 'ver'
  f[#f + 1] = v
  redis.call('HSET', KEYS[1], unpack(f))
  redis.call('SADD', KEYS[2], ARGV[4])
  adm = old[1] == false or old[2] ~= nf['groups'] or old[3] ~= nf['disabled']
end
if adm then redis.call('SET', KEYS[4], v) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return v
`)

// Update reads user name from Redis, passes it to fn (exists false: no such
// user), and writes what fn returns atomically, giving the user a new
// version; del true deletes the user. It retries when the user changed in
// between. fn's user must be valid and keep the name.
func (r *Redis) Update(ctx context.Context, name string, fn func(u User, exists bool) (nu User, del bool, err error)) error {
	return r.update(ctx, name, nil, fn)
}

// UpdateGuarded is Update that refuses, with an error wrapping ErrLastAdmin,
// a change that would leave no enabled member of adminGroups (see
// CheckAdminsLeft). When the change takes admin status from the user, every
// user is read from Redis for the check, and the write goes through only if
// no user was added, deleted, or given new groups or lock since that read;
// else it is tried again on fresh data. So of two admins demoting each other
// on two nodes at once, one is refused.
func (r *Redis) UpdateGuarded(ctx context.Context, name string, adminGroups []string, fn func(u User, exists bool) (nu User, del bool, err error)) error {
	return r.update(ctx, name, adminGroups, fn)
}

func (r *Redis) update(ctx context.Context, name string, adminGroups []string, fn func(u User, exists bool) (nu User, del bool, err error)) error {
	for range 5 {
		h, err := r.c.HGetAll(ctx, r.userKey(name)).Result()
		if err != nil {
			return fmt.Errorf("read user from redis: %w", err)
		}
		u, ver, ok := fromHash(h)
		nu, del, err := fn(u, ok)
		if err != nil {
			return err
		}
		if !del {
			if nu.Name != name {
				return fmt.Errorf("user %s: name cannot change", name)
			}
			if msgs := checkUser(nu, r.limits()); len(msgs) > 0 {
				return fmt.Errorf("user %s: %s", printableName(name), strings.Join(msgs, "; "))
			}
		}
		adm := "*"
		// Only a change that takes admin status away can leave none.
		if ok && IsAdmin(u, adminGroups) && (del || !IsAdmin(nu, adminGroups)) {
			av, all, err := r.readAll(ctx)
			if err != nil {
				return err
			}
			all = slices.DeleteFunc(all, func(x User) bool { return x.Name == name })
			if err := CheckAdminsLeft(append(all, u), adminGroups, name, nu, del); err != nil {
				return err
			}
			adm = strconv.FormatInt(av, 10)
		}
		if r.beforeWrite != nil && adminGroups != nil {
			r.beforeWrite(name)
		}
		nv, err := r.put(ctx, strconv.FormatInt(ver, 10), adm, nu, name, del)
		if err != nil {
			return err
		}
		if nv < 0 {
			continue
		}
		return r.apply(name, nu, nv, !del)
	}
	return ErrConflict
}

// readAll reads the admin version, then every user: a write conditional on
// that version finds every user's groups and lock as read.
func (r *Redis) readAll(ctx context.Context) (int64, []User, error) {
	av, err := r.c.Get(ctx, r.adminKey()).Int64()
	if errors.Is(err, redis.Nil) {
		av, err = 0, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read users from redis: %w", err)
	}
	all, _, err := r.readUsers(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("read users from redis: %w", err)
	}
	return av, all, nil
}

// readUsers reads every user in the users set, with their versions: one
// SMEMBERS, then one pipeline of HGETALLs. A user deleted in between is left
// out.
func (r *Redis) readUsers(ctx context.Context) ([]User, []int64, error) {
	names, err := r.c.SMembers(ctx, r.setKey()).Result()
	if err != nil {
		return nil, nil, err
	}
	cmds := make([]*redis.MapStringStringCmd, len(names))
	if len(names) > 0 {
		if _, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, n := range names {
				cmds[i] = p.HGetAll(ctx, r.userKey(n))
			}
			return nil
		}); err != nil {
			return nil, nil, err
		}
	}
	list, vers := make([]User, 0, len(names)), make([]int64, 0, len(names))
	for _, cmd := range cmds {
		if u, ver, ok := fromHash(cmd.Val()); ok {
			list, vers = append(list, u), append(vers, ver)
		}
	}
	return list, vers, nil
}

// ErrExists is returned by Add when the user already exists.
var ErrExists = errors.New("user already exists")

// Add writes u only if Redis holds no user of its name, checked in the same
// script that writes, so an import never clobbers a user added meanwhile.
func (r *Redis) Add(ctx context.Context, u User) error {
	if msgs := checkUser(u, r.limits()); len(msgs) > 0 {
		return fmt.Errorf("user %s: %s", printableName(u.Name), strings.Join(msgs, "; "))
	}
	nv, err := r.put(ctx, "0", "*", u, u.Name, false)
	if err != nil {
		return err
	}
	if nv < 0 {
		return fmt.Errorf("user %s: %w", printableName(u.Name), ErrExists)
	}
	return r.apply(u.Name, u, nv, true)
}

// Put writes u whatever Redis held under its name (for imports).
func (r *Redis) Put(ctx context.Context, u User) error {
	if msgs := checkUser(u, r.limits()); len(msgs) > 0 {
		return fmt.Errorf("user %s: %s", printableName(u.Name), strings.Join(msgs, "; "))
	}
	nv, err := r.put(ctx, "*", "*", u, u.Name, false)
	if err != nil {
		return err
	}
	return r.apply(u.Name, u, nv, true)
}

func (r *Redis) put(ctx context.Context, expect, adm string, u User, name string, del bool) (int64, error) {
	d := "0"
	if del {
		d = "1"
	}
	idx := r.prefix + "su:" + name
	for range 5 {
		hexes, err := r.c.ZRange(ctx, idx, 0, -1).Result()
		if err != nil {
			return 0, fmt.Errorf("write user to redis: %w", err)
		}
		keys := []string{r.userKey(name), r.setKey(), r.counterKey(), r.adminKey(), idx}
		args := []any{expect, d, r.Channel(), name, adm, len(hexes)}
		for _, h := range hexes {
			keys = append(keys, r.prefix+"s:"+h)
			args = append(args, h)
		}
		nv, err := putScript.Run(ctx, r.c, keys, append(args, toHash(u)...)...).Int64()
		if err != nil {
			return 0, fmt.Errorf("write user to redis: %w", err)
		}
		if nv != -2 {
			// One more round trip before telling anyone the user changed:
			// the script's invalidations of the sessions it rewrote then
			// have reached every authd that keeps local copies of them
			// (session.WithTracking; see session's barrier).
			_ = r.c.Ping(ctx).Err()
			return nv, nil
		}
	}
	return 0, fmt.Errorf("write user to redis: %w", ErrConflict)
}

// SetHash replaces the password hash of user name (after a hash upgrade at
// login). Its generation stays.
func (r *Redis) SetHash(name, hash string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return r.Update(ctx, name, func(u User, ok bool) (User, bool, error) {
		if !ok {
			return u, false, fmt.Errorf("no user %s", name)
		}
		u.Hash = hash
		return u, false, nil
	})
}

// Watch keeps the snapshot fresh until ctx ends: it refreshes a user as soon
// as a change is announced, and reloads everything when the version counter
// moved without an announcement reaching it (after a disconnect), checked
// every interval. onReload is called after each reload with whether anything
// changed; it may be nil.
func (r *Redis) Watch(ctx context.Context, every time.Duration, onReload func(changed bool, err error)) {
	ps := r.c.Subscribe(ctx, r.Channel())
	defer ps.Close()
	msgs := ps.Channel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, r.timeout)
			_ = r.Refresh(cctx, m.Payload) // the next poll or verify retries
			cancel()
		case <-tick.C:
			cctx, cancel := context.WithTimeout(ctx, r.timeout)
			counter, err := r.c.Get(cctx, r.counterKey()).Int64()
			cancel()
			if errors.Is(err, redis.Nil) {
				counter, err = 0, nil
			}
			if err != nil || counter == r.seen.Load() {
				continue
			}
			cctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			changed, err := r.reload(cctx, nil)
			cancel()
			if onReload != nil {
				onReload(changed, err)
			}
		}
	}
}
