package throttle

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func testConfig() Config {
	return Config{
		AccountFailures: 3,
		IPFailures:      10,
		BaseDelay:       time.Second,
		MaxDelay:        10 * time.Second,
		Window:          time.Hour,
		MaxEntries:      1000,
	}
}

func mustFail(tb testing.TB, m *Memory, user, ip string) {
	tb.Helper()
	if err := m.Fail(context.Background(), user, ip); err != nil {
		tb.Fatalf("Fail: %v", err)
	}
}

func mustCheck(tb testing.TB, m *Memory, user, ip string) Verdict {
	tb.Helper()
	v, err := m.Check(context.Background(), user, ip)
	if err != nil {
		tb.Fatalf("Check: %v", err)
	}
	return v
}

func TestDelaysGrowAndCap(t *testing.T) {
	c := newClock()
	m := NewMemory(testConfig(), c.now)
	tests := []struct {
		failures int // total failures so far
		want     time.Duration
	}{
		{1, 0},
		{2, 0},
		{3, time.Second},
		{4, 2 * time.Second},
		{5, 4 * time.Second},
		{6, 8 * time.Second},
		{7, 10 * time.Second}, // capped
		{8, 10 * time.Second},
		{40, 10 * time.Second},
		{200, 10 * time.Second}, // no overflow however long it goes on
	}
	done := 0
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.failures, " failures"), func(t *testing.T) {
			for ; done < tt.failures; done++ {
				c.advance(time.Minute) // wait out any delay, as the handler would
				mustFail(t, m, "alice", "192.0.2.1")
			}
			got := mustCheck(t, m, "alice", "192.0.2.1")
			if got.Wait != tt.want {
				t.Fatalf("Wait: got %v, want %v", got.Wait, tt.want)
			}
			if tt.want > 0 && got.Scope != ScopeAccount {
				t.Fatalf("Scope: got %q, want %q", got.Scope, ScopeAccount)
			}
			if tt.want == 0 && got != (Verdict{}) {
				t.Fatalf("Verdict: got %+v, want go ahead", got)
			}
			// The wait runs from the last failure.
			c.advance(tt.want / 2)
			if got := mustCheck(t, m, "alice", "192.0.2.1").Wait; got != tt.want-tt.want/2 {
				t.Fatalf("Wait halfway: got %v, want %v", got, tt.want-tt.want/2)
			}
			c.advance(tt.want - tt.want/2)
			if got := mustCheck(t, m, "alice", "192.0.2.1").Wait; got != 0 {
				t.Fatalf("Wait after the delay: got %v, want 0", got)
			}
		})
	}
}

func TestCheckCountsNothing(t *testing.T) {
	m := NewMemory(testConfig(), newClock().now)
	for range 100 {
		if v := mustCheck(t, m, "alice", "192.0.2.1"); v.Wait != 0 {
			t.Fatalf("Check after only checks: got %+v, want go ahead", v)
		}
	}
}

func TestWindow(t *testing.T) {
	tests := []struct {
		name  string
		gap   time.Duration // between failures
		quiet time.Duration // after the last failure, before checking
		want  bool          // still throttled
	}{
		{"within the window", time.Minute, 59 * time.Minute, false}, // its 1s delay is long over
		{"slow guessing keeps the count", 50 * time.Minute, 0, true},
		{"forgotten after a quiet window", time.Minute, time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			m := NewMemory(testConfig(), c.now)
			for range 5 {
				c.advance(tt.gap)
				mustFail(t, m, "alice", "192.0.2.1")
			}
			c.advance(tt.quiet)
			if got := mustCheck(t, m, "alice", "192.0.2.1").Wait > 0; got != tt.want {
				t.Fatalf("throttled: got %v, want %v", got, tt.want)
			}
			// One more failure: after a quiet window the count starts again.
			mustFail(t, m, "alice", "192.0.2.1")
			e := m.entries[accountKey("alice", "192.0.2.1")]
			wantCount := 6
			if tt.quiet >= time.Hour {
				wantCount = 1
			}
			if e.failures != wantCount {
				t.Fatalf("failures after one more: got %d, want %d", e.failures, wantCount)
			}
		})
	}
}

func TestAccountIsolatedByIP(t *testing.T) {
	m := NewMemory(testConfig(), newClock().now)
	for range 8 { // past the account limit, below the IP limit
		mustFail(t, m, "alice", "198.51.100.66")
	}
	tests := []struct {
		name, user, ip string
		scope          string // "" = go ahead
	}{
		{"attacker's pair", "alice", "198.51.100.66", ScopeAccount},
		{"the real alice elsewhere", "alice", "192.0.2.1", ""},
		{"another user from the attacker's IP", "bob", "198.51.100.66", ""},
		{"an IPv6 neighbour", "alice", "2001:db8::1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustCheck(t, m, tt.user, tt.ip)
			if v.Scope != tt.scope || (v.Wait > 0) != (tt.scope != "") {
				t.Fatalf("Verdict: got %+v, want scope %q", v, tt.scope)
			}
		})
	}
	t.Run("hammering on trips the IP scope too", func(t *testing.T) {
		for range 10 {
			mustFail(t, m, "alice", "198.51.100.66")
		}
		if v := mustCheck(t, m, "bob", "198.51.100.66"); v.Scope != ScopeIP || v.Wait == 0 {
			t.Fatalf("another user from the attacker's IP: got %+v, want an ip wait", v)
		}
		if v := mustCheck(t, m, "alice", "192.0.2.1"); v.Wait != 0 {
			t.Fatalf("the real alice elsewhere: got %+v, want go ahead", v)
		}
	})
}

func TestSprayTripsIP(t *testing.T) {
	c := newClock()
	m := NewMemory(testConfig(), c.now)
	for i := range 9 {
		mustFail(t, m, fmt.Sprint("user", i), "203.0.113.9")
	}
	if v := mustCheck(t, m, "victim", "203.0.113.9"); v.Wait != 0 {
		t.Fatalf("after 9 sprayed failures (limit 10): got %+v, want go ahead", v)
	}
	mustFail(t, m, "user9", "203.0.113.9")
	tests := []struct {
		name, user, ip string
		want           Verdict
	}{
		{"a new name from the sprayer", "victim", "203.0.113.9", Verdict{time.Second, ScopeIP}},
		{"a sprayed name from the sprayer", "user3", "203.0.113.9", Verdict{time.Second, ScopeIP}},
		{"a sprayed name from elsewhere", "user3", "192.0.2.1", Verdict{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustCheck(t, m, tt.user, tt.ip); got != tt.want {
				t.Fatalf("Verdict: got %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("the longer wait wins", func(t *testing.T) {
		for range 4 { // user9 now has 5 failures: account wait 4s > ip wait 2s...
			c.advance(time.Minute)
			mustFail(t, m, "user9", "203.0.113.9")
		}
		// account: 5 failures -> 4s; ip: 14 failures -> 16s, capped at 10s.
		if got, want := mustCheck(t, m, "user9", "203.0.113.9"), (Verdict{10 * time.Second, ScopeIP}); got != want {
			t.Fatalf("Verdict: got %+v, want %+v", got, want)
		}
		cfg := testConfig()
		cfg.IPFailures = 100
		m := NewMemory(cfg, c.now)
		for range 5 {
			mustFail(t, m, "user9", "203.0.113.9")
		}
		if got, want := mustCheck(t, m, "user9", "203.0.113.9"), (Verdict{4 * time.Second, ScopeAccount}); got != want {
			t.Fatalf("Verdict: got %+v, want %+v", got, want)
		}
	})
}

func TestSuccessResetsThePairOnly(t *testing.T) {
	m := NewMemory(testConfig(), newClock().now)
	for range 10 {
		mustFail(t, m, "alice", "192.0.2.1")
	}
	if v := mustCheck(t, m, "alice", "192.0.2.1"); v.Wait == 0 {
		t.Fatal("after 10 failures: got go ahead, want a wait")
	}
	if err := m.Success(context.Background(), "alice", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	// The pair is clear, but the IP saw 10 failures: its limit holds.
	if v := mustCheck(t, m, "alice", "192.0.2.1"); v.Scope != ScopeIP {
		t.Fatalf("after Success: got %+v, want only the ip scope to remain", v)
	}
	if e := m.entries[accountKey("alice", "192.0.2.1")]; e != nil {
		t.Fatalf("account entry after Success: got %+v, want none", e)
	}
	cfg := testConfig()
	cfg.IPFailures = 1000
	m = NewMemory(cfg, newClock().now)
	for range 10 {
		mustFail(t, m, "alice", "192.0.2.1")
	}
	_ = m.Success(context.Background(), "alice", "192.0.2.1")
	if v := mustCheck(t, m, "alice", "192.0.2.1"); v.Wait != 0 {
		t.Fatalf("after Success, IP limit not reached: got %+v, want go ahead", v)
	}
	mustFail(t, m, "alice", "192.0.2.1")
	if v := mustCheck(t, m, "alice", "192.0.2.1"); v.Wait != 0 {
		t.Fatalf("one failure after Success: got %+v, want go ahead (count restarted)", v)
	}
}

func TestMemoryBound(t *testing.T) {
	const maxEntries = 100
	t.Run("distinct IPs", func(t *testing.T) {
		c := newClock()
		cfg := testConfig()
		cfg.MaxEntries = maxEntries
		m := NewMemory(cfg, c.now)
		for i := range 10 * maxEntries {
			c.advance(time.Millisecond)
			mustFail(t, m, fmt.Sprint("user", i), fmt.Sprintf("10.0.%d.%d", i/256, i%256))
			if n := len(m.entries); n > maxEntries {
				t.Fatalf("entries after %d failures: got %d, want at most %d", i+1, n, maxEntries)
			}
		}
		checkList(t, m)
	})
	t.Run("oldest go first, the newest stay", func(t *testing.T) {
		c := newClock()
		cfg := testConfig()
		cfg.MaxEntries = maxEntries
		cfg.AccountFailures = 1
		cfg.IPFailures = 1 << 30
		m := NewMemory(cfg, c.now)
		for i := range 10 * maxEntries {
			c.advance(time.Millisecond)
			mustFail(t, m, fmt.Sprint("user", i), "203.0.113.9")
		}
		if n := len(m.entries); n != maxEntries {
			t.Fatalf("entries: got %d, want %d", n, maxEntries)
		}
		// The sprayer's own IP entry is refreshed by every failure and stays.
		if m.entries[ipKey("203.0.113.9")] == nil {
			t.Fatal("IP entry: got evicted, want kept")
		}
		newest := fmt.Sprint("user", 10*maxEntries-1)
		if v := mustCheck(t, m, newest, "203.0.113.9"); v.Scope != ScopeAccount {
			t.Fatalf("newest pair: got %+v, want an account wait", v)
		}
		if e := m.entries[accountKey("user0", "203.0.113.9")]; e != nil {
			t.Fatal("oldest pair: got kept, want evicted")
		}
		checkList(t, m)
	})
	t.Run("expired entries are dropped", func(t *testing.T) {
		c := newClock()
		cfg := testConfig()
		cfg.MaxEntries = maxEntries
		m := NewMemory(cfg, c.now)
		for i := range maxEntries / 2 {
			mustFail(t, m, "u", fmt.Sprint("10.0.0.", i))
		}
		c.advance(time.Hour)
		mustFail(t, m, "u", "192.0.2.1")
		if n := len(m.entries); n != 2 {
			t.Fatalf("entries after the window: got %d, want 2", n)
		}
		checkList(t, m)
	})
	t.Run("oversized input is cut", func(t *testing.T) {
		m := NewMemory(testConfig(), newClock().now)
		long := string(make([]byte, 1<<20))
		mustFail(t, m, long, long)
		for k := range m.entries {
			if len(k.user) > maxUser || len(k.ip) > maxIP {
				t.Fatalf("key lengths: got user %d, ip %d, want at most %d, %d", len(k.user), len(k.ip), maxUser, maxIP)
			}
		}
	})
}

// checkList checks the eviction list holds exactly the map's entries, oldest
// first.
func checkList(tb testing.TB, m *Memory) {
	tb.Helper()
	n := 0
	var prev *entry
	for e := m.oldest; e != nil; e = e.next {
		if e.prev != prev {
			tb.Fatal("list: broken back link")
		}
		if prev != nil && e.last.Before(prev.last) {
			tb.Fatal("list: not ordered by last failure")
		}
		if m.entries[e.key] != e {
			tb.Fatal("list: entry not in the map")
		}
		prev = e
		n++
	}
	if prev != m.newest || n != len(m.entries) {
		tb.Fatalf("list: got %d entries, map has %d", n, len(m.entries))
	}
}

func TestSetConfigShrinksMemory(t *testing.T) {
	c := newClock()
	m := NewMemory(testConfig(), c.now)
	for i := range 10 {
		mustFail(t, m, fmt.Sprint("user", i), fmt.Sprint("192.0.2.", i))
		c.advance(time.Second)
	}
	cfg := testConfig()
	cfg.MaxEntries = 4
	m.SetConfig(cfg)
	if got := len(m.entries); got != 4 {
		t.Fatalf("entries after MaxEntries 4: got %d, want 4", got)
	}
	if _, ok := m.entries[accountKey("user9", "192.0.2.9")]; !ok {
		t.Errorf("the newest entry was evicted; want the oldest gone first")
	}
}

func TestClamps(t *testing.T) {
	c := newClock()
	m := NewMemory(Config{BaseDelay: time.Second}, c.now) // a zero config must still throttle
	mustFail(t, m, "alice", "192.0.2.1")
	if v := mustCheck(t, m, "alice", "192.0.2.1"); v.Wait != time.Second {
		t.Fatalf("Verdict with zero limits: got %+v, want a 1s wait", v)
	}
}

func TestConcurrent(t *testing.T) {
	m := NewMemory(Config{AccountFailures: 3, IPFailures: 10, BaseDelay: time.Millisecond, MaxDelay: time.Second, Window: time.Minute, MaxEntries: 50}, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				user, ip := fmt.Sprint("u", i%7), fmt.Sprint("10.0.", w, ".", i%30)
				_, _ = m.Check(ctx, user, ip)
				_ = m.Fail(ctx, user, ip)
				if i%11 == 0 {
					_ = m.Success(ctx, user, ip)
				}
			}
		})
	}
	wg.Wait()
	if len(m.entries) > 50 {
		t.Fatalf("entries: got %d, want at most 50", len(m.entries))
	}
	checkList(t, m)
}

func BenchmarkCheck(b *testing.B) {
	m := NewMemory(testConfig(), nil)
	ctx := context.Background()
	for i := range 1000 {
		_ = m.Fail(ctx, fmt.Sprint("user", i), "192.0.2.1")
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = m.Check(ctx, "user7", "192.0.2.1")
	}
}

func BenchmarkFail(b *testing.B) {
	cfg := testConfig()
	cfg.MaxEntries = 10000
	m := NewMemory(cfg, nil)
	ctx := context.Background()
	users := make([]string, 50000)
	for i := range users {
		users[i] = fmt.Sprint("user", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = m.Fail(ctx, users[i%len(users)], "192.0.2.1")
		i++
	}
}
