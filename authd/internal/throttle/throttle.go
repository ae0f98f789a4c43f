// Package throttle slows down password guessing: it counts failed logins per
// account (a user from one client IP) and per client IP, and tells the login
// handler how long an attempt must wait.
//
// Counting the account per client IP means an attacker hammering alice from
// one address does not lock alice out from hers; counting each IP over all
// users means spraying many usernames from one address trips the IP limit.
package throttle

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Scopes of a Verdict.
const (
	// ScopeAccount is one user from one client IP.
	ScopeAccount = "account"
	// ScopeIP is one client IP, whatever the user.
	ScopeIP = "ip"
)

// Limits on the strings a throttle keys on; longer ones are cut, so an
// attacker's oversized input costs bounded memory.
const (
	maxUser = 256
	maxIP   = 64
)

// Config sets the throttle's limits. Delays start after AccountFailures
// failures for one (user, IP) pair, or IPFailures failures from one IP; each
// further failure doubles the delay from BaseDelay up to MaxDelay. A run of
// failures is forgotten once Window has passed since the last of them, so
// MaxDelay should be below Window. MaxEntries bounds the (user, IP) pairs and
// IPs tracked at once.
type Config struct {
	AccountFailures int
	IPFailures      int
	BaseDelay       time.Duration
	MaxDelay        time.Duration
	Window          time.Duration
	MaxEntries      int
}

// Verdict says whether a login attempt may go ahead. Wait 0 means go ahead;
// otherwise the attempt must not be tried for Wait, and Scope ("account" or
// "ip") says which counter asked for it.
type Verdict struct {
	Wait  time.Duration
	Scope string
}

type scope uint8

const (
	scopeAccount scope = iota
	scopeIP
)

type key struct {
	scope scope
	user  string // "" for the ip scope
	ip    string
}

// entry counts one key's recent failures. Entries sit on a list ordered by
// their last failure, oldest first, which makes both expiry and eviction a
// look at the front.
type entry struct {
	key        key
	failures   int
	last       time.Time
	prev, next *entry
}

// Memory is a throttle kept in this process. It is safe for concurrent use;
// one mutex suffices, since logins are rare and bounded by password hashing.
type Memory struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	entries map[key]*entry
	oldest  *entry
	newest  *entry
}

// NewMemory returns an in-memory throttle. cfg is expected to be validated;
// nonsense is clamped rather than obeyed: thresholds below 1 count as 1,
// MaxDelay below BaseDelay as BaseDelay, Window below MaxDelay as MaxDelay (so a
// zero window does not switch throttling off), MaxEntries below 2 as 2. now
// is the clock; nil means time.Now.
func NewMemory(cfg Config, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{cfg: cfg.clamped(), now: now, entries: make(map[key]*entry)}
}

func (cfg Config) clamped() Config {
	cfg.AccountFailures = max(cfg.AccountFailures, 1)
	cfg.IPFailures = max(cfg.IPFailures, 1)
	cfg.BaseDelay = max(cfg.BaseDelay, 0)
	cfg.MaxDelay = max(cfg.MaxDelay, cfg.BaseDelay)
	cfg.Window = max(cfg.Window, cfg.MaxDelay)
	cfg.MaxEntries = max(cfg.MaxEntries, 2)
	return cfg
}

// SetConfig applies cfg, clamped as NewMemory does, from the next call on.
// Failures counted so far are kept and judged by the new limits; when
// MaxEntries shrinks, the entries whose last failure is oldest go first.
func (m *Memory) SetConfig(cfg Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg = cfg.clamped()
	for len(m.entries) > m.cfg.MaxEntries {
		m.remove(m.oldest)
	}
}

func accountKey(user, ip string) key {
	return key{scope: scopeAccount, user: cut(user, maxUser), ip: cut(ip, maxIP)}
}

func ipKey(ip string) key { return key{scope: scopeIP, ip: cut(ip, maxIP)} }

func cut(s string, n int) string { return s[:min(len(s), n)] }

// Check reports whether an attempt by user from ip must wait, and for how
// long: the longer of the account's and the IP's delays (the account's on a
// tie). It counts nothing; a login uses Reserve, which counts atomically.
func (m *Memory) Check(_ context.Context, user, ip string) (Verdict, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	v := Verdict{}
	if w := m.wait(accountKey(user, ip), m.cfg.AccountFailures, now); w > 0 {
		v = Verdict{Wait: w, Scope: ScopeAccount}
	}
	if w := m.wait(ipKey(ip), m.cfg.IPFailures, now); w > v.Wait {
		v = Verdict{Wait: w, Scope: ScopeIP}
	}
	return v, nil
}

// Reserve is Check and the count of a failure in one step: if the attempt
// may go ahead, it is counted against the account and the IP before the
// caller checks the password, so that N concurrent attempts get at most the
// budget's worth of password checks between them. A Verdict with a Wait
// counts nothing. After a reserved attempt, call Success if the password was
// right, Refund if it was never checked, and nothing if it was wrong.
func (m *Memory) Reserve(_ context.Context, user, ip string) (Verdict, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now() // under the lock, so the list stays ordered by last failure
	ak, ik := accountKey(user, ip), ipKey(ip)
	v := Verdict{}
	if w := m.wait(ak, m.cfg.AccountFailures, now); w > 0 {
		v = Verdict{Wait: w, Scope: ScopeAccount}
	}
	if w := m.wait(ik, m.cfg.IPFailures, now); w > v.Wait {
		v = Verdict{Wait: w, Scope: ScopeIP}
	}
	if v.Wait > 0 {
		return v, nil
	}
	m.dropExpired(now)
	m.count(ak, now)
	m.count(ik, now)
	return v, nil
}

// Refund takes back a reserved attempt whose password was never checked
// (the hashing queue was full, the user store failed): it uncounts one
// failure from the account and the IP. The time of the last failure stays,
// so a refund never shortens a pending wait.
func (m *Memory) Refund(_ context.Context, user, ip string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.uncount(accountKey(user, ip))
	m.uncount(ipKey(ip))
	return nil
}

func (m *Memory) uncount(k key) {
	e := m.entries[k]
	if e == nil {
		return
	}
	if e.failures--; e.failures <= 0 {
		m.remove(e)
	}
}

// wait returns how long the next attempt under k must wait.
func (m *Memory) wait(k key, free int, now time.Time) time.Duration {
	e := m.entries[k]
	if e == nil || m.expired(e, now) || e.failures < free {
		return 0
	}
	return max(e.last.Add(m.delay(e.failures-free)).Sub(now), 0)
}

// delay is BaseDelay·2^n, capped at MaxDelay.
func (m *Memory) delay(n int) time.Duration {
	d := m.cfg.BaseDelay
	for ; n > 0 && d < m.cfg.MaxDelay; n-- {
		d *= 2
	}
	return min(d, m.cfg.MaxDelay)
}

func (m *Memory) expired(e *entry, now time.Time) bool {
	return now.Sub(e.last) >= m.cfg.Window
}

// Fail counts a failed attempt for user from ip, against both the account
// and the IP.
func (m *Memory) Fail(_ context.Context, user, ip string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now() // under the lock, so the list stays ordered by last failure
	m.dropExpired(now)
	m.count(accountKey(user, ip), now)
	m.count(ipKey(ip), now)
	return nil
}

// Success forgets the account's failures after a successful login. The IP's
// count stays: otherwise an attacker holding one valid account could log in
// between guesses at others and never trip the IP limit. (After Reserve, the
// successful attempt's own count on the IP is taken back by Refund.)
func (m *Memory) Success(_ context.Context, user, ip string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entries[accountKey(user, ip)]; e != nil {
		m.remove(e)
	}
	return nil
}

func (m *Memory) count(k key, now time.Time) {
	e := m.entries[k]
	if e == nil {
		if len(m.entries) >= m.cfg.MaxEntries {
			// Full, and nothing has expired (dropExpired ran): evict the
			// entry whose last failure is oldest. That is acceptable because
			// its delay is the one most likely over already (no delay exceeds
			// MaxDelay), so eviction mostly forgets a count, not a pending
			// wait; because flushing a chosen entry takes MaxEntries fresher
			// failures, each paid for with a password hash, and from few IPs
			// the IP entries (refreshed by every one of them) throttle that
			// long before; and because the alternative, refusing to track
			// newcomers, would let a flood switch throttling off for them or,
			// failing closed, lock out every user.
			m.remove(m.oldest)
		}
		k.user, k.ip = strings.Clone(k.user), strings.Clone(k.ip) // do not pin a request's buffers
		e = &entry{key: k}
		m.entries[k] = e
	} else {
		if m.expired(e, now) {
			e.failures = 0
		}
		m.unlink(e)
	}
	e.failures++
	e.last = now
	m.pushNewest(e)
}

// dropExpired removes entries whose failures are all older than Window; they
// sit at the front of the list.
func (m *Memory) dropExpired(now time.Time) {
	for m.oldest != nil && m.expired(m.oldest, now) {
		m.remove(m.oldest)
	}
}

func (m *Memory) remove(e *entry) {
	m.unlink(e)
	delete(m.entries, e.key)
}

func (m *Memory) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		m.oldest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		m.newest = e.prev
	}
	e.prev, e.next = nil, nil
}

func (m *Memory) pushNewest(e *entry) {
	e.prev = m.newest
	if m.newest != nil {
		m.newest.next = e
	} else {
		m.oldest = e
	}
	m.newest = e
}
