package throttle

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a throttle whose counters live in Redis, so that every authd
// instance sharing it counts the same failures: attempts spread over several
// instances count once. Verdicts are those of Memory. Each counter expires
// Window after its last failure, which bounds what Redis holds instead of
// MaxEntries.
//
// Keys, under the prefix P: "P ta:<len(ip)>:<ip><user>" for an account and
// "P ti:<ip>" for an IP, each a hash of n (failures) and l (last failure,
// Unix ms on the clock of the instance that counted it).
type Redis struct {
	cfg     atomic.Pointer[Config]
	now     func() time.Time
	c       redis.UniversalClient
	prefix  string
	timeout time.Duration
}

// NewRedis returns a throttle on c with keys under prefix; cfg is clamped as
// NewMemory does. now is the clock (nil means time.Now).
func NewRedis(c redis.UniversalClient, prefix string, cfg Config, now func() time.Time) *Redis {
	m := NewMemory(cfg, now)
	r := &Redis{now: m.now, c: c, prefix: prefix, timeout: 900 * time.Millisecond}
	r.cfg.Store(&m.cfg)
	return r
}

// SetConfig applies cfg, clamped as NewMemory does, from the next call on.
// Counters in Redis are kept and judged by the new limits.
func (r *Redis) SetConfig(cfg Config) {
	c := cfg.clamped()
	r.cfg.Store(&c)
}

func (r *Redis) keys(user, ip string) []string {
	user, ip = cut(user, maxUser), cut(ip, maxIP)
	return []string{r.prefix + "ta:" + strconv.Itoa(len(ip)) + ":" + ip + user, r.prefix + "ti:" + ip}
}

// KEYS: counters. ARGV: now (ms), window (ms). Counts a failure on each.
var failScript = redis.NewScript(`
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
for _, k in ipairs(KEYS) do
  local l = tonumber(redis.call('HGET', k, 'l'))
  if l and now - l >= window then redis.call('DEL', k) end
  redis.call('HINCRBY', k, 'n', 1)
  if not l or now > l then redis.call('HSET', k, 'l', now) end
  redis.call('PEXPIRE', k, window)
end
return 1
`)

// KEYS: account counter, IP counter. ARGV: now (ms), window (ms), then for
// the account and the IP: free failures; then base and max delay (ms).
// Returns {wait ms, scope index (1 account, 2 ip)}; when the wait is 0 the
// attempt has been counted on both keys. Reading and counting in one script
// is what makes the reservation atomic across every authd instance. A run's
// "last" is the latest time any instance counted, as in failScript.
var reserveScript = redis.NewScript(`
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local base, cap = tonumber(ARGV[5]), tonumber(ARGV[6])
local best, scope = 0, 0
for i, k in ipairs(KEYS) do
  local free = tonumber(ARGV[2 + i])
  local v = redis.call('HMGET', k, 'n', 'l')
  local n, l = tonumber(v[1]), tonumber(v[2])
  if n and l and now - l < window and n >= free then
    local d = base
    local e = n - free
    while e > 0 and d < cap do d = d * 2; e = e - 1 end
    if d > cap then d = cap end
    local w = l + d - now
    if w > best then best, scope = w, i end
  end
end
if best > 0 then return {best, scope} end
for _, k in ipairs(KEYS) do
  local l = tonumber(redis.call('HGET', k, 'l'))
  if l and now - l >= window then redis.call('DEL', k) end
  redis.call('HINCRBY', k, 'n', 1)
  if not l or now > l then redis.call('HSET', k, 'l', now) end
  redis.call('PEXPIRE', k, window)
end
return {0, 0}
`)

// KEYS: counters. Takes one failure back from each that has one.
var refundScript = redis.NewScript(`
for _, k in ipairs(KEYS) do
  local n = tonumber(redis.call('HGET', k, 'n'))
  if n then
    if n <= 1 then redis.call('DEL', k) else redis.call('HINCRBY', k, 'n', -1) end
  end
end
return 1
`)

// Reserve is Check and Fail in one atomic step on Redis, as Memory.Reserve:
// concurrent attempts on any number of instances sharing the Redis get at
// most the budget's worth of password checks.
func (r *Redis) Reserve(ctx context.Context, user, ip string) (Verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cfg := r.cfg.Load()
	res, err := reserveScript.Run(ctx, r.c, r.keys(user, ip), r.now().UnixMilli(), cfg.Window.Milliseconds(),
		cfg.AccountFailures, cfg.IPFailures, cfg.BaseDelay.Milliseconds(), cfg.MaxDelay.Milliseconds()).Int64Slice()
	if err != nil {
		return Verdict{}, fmt.Errorf("throttle reserve: %w", err)
	}
	if len(res) != 2 {
		return Verdict{}, fmt.Errorf("throttle reserve: unexpected reply of %d values", len(res))
	}
	switch res[1] {
	case 1:
		return Verdict{Wait: time.Duration(res[0]) * time.Millisecond, Scope: ScopeAccount}, nil
	case 2:
		return Verdict{Wait: time.Duration(res[0]) * time.Millisecond, Scope: ScopeIP}, nil
	}
	return Verdict{}, nil
}

// Refund takes back a reserved attempt whose password was never checked, as
// Memory.Refund does.
func (r *Redis) Refund(ctx context.Context, user, ip string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := refundScript.Run(ctx, r.c, r.keys(user, ip)).Err(); err != nil {
		return fmt.Errorf("throttle refund: %w", err)
	}
	return nil
}

// Check reports whether an attempt by user from ip must wait, as
// Memory.Check does. It counts nothing.
func (r *Redis) Check(ctx context.Context, user, ip string) (Verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ks := r.keys(user, ip)
	var cmds [2]*redis.SliceCmd
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range ks {
			cmds[i] = p.HMGet(ctx, k, "n", "l")
		}
		return nil
	})
	if err != nil {
		return Verdict{}, fmt.Errorf("throttle check: %w", err)
	}
	now := r.now()
	cfg := r.cfg.Load()
	v := Verdict{}
	if w := wait(cfg, cmds[0].Val(), cfg.AccountFailures, now); w > 0 {
		v = Verdict{Wait: w, Scope: ScopeAccount}
	}
	if w := wait(cfg, cmds[1].Val(), cfg.IPFailures, now); w > v.Wait {
		v = Verdict{Wait: w, Scope: ScopeIP}
	}
	return v, nil
}

func wait(cfg *Config, vals []any, free int, now time.Time) time.Duration {
	if len(vals) != 2 {
		return 0
	}
	ns, _ := vals[0].(string)
	ls, _ := vals[1].(string)
	n, err1 := strconv.Atoi(ns)
	l, err2 := strconv.ParseInt(ls, 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	last := time.UnixMilli(l)
	if now.Sub(last) >= cfg.Window || n < free {
		return 0
	}
	m := Memory{cfg: *cfg}
	return max(last.Add(m.delay(n-free)).Sub(now), 0)
}

// Fail counts a failed attempt for user from ip, against both the account
// and the IP, in one round trip.
func (r *Redis) Fail(ctx context.Context, user, ip string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := failScript.Run(ctx, r.c, r.keys(user, ip), r.now().UnixMilli(), r.cfg.Load().Window.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("throttle count: %w", err)
	}
	return nil
}

// Success forgets the account's failures; the IP's count stays (see
// Memory.Success).
func (r *Redis) Success(ctx context.Context, user, ip string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Del(ctx, r.keys(user, ip)[0]).Err(); err != nil {
		return fmt.Errorf("throttle reset: %w", err)
	}
	return nil
}
