package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/throttle"
)

var _ RedisClient = redis.UniversalClient(nil)

// deadRedis is a real go-redis client pointed at a port nobody listens on:
// every command fails to dial, as when Redis is down.
func deadRedis(t testing.TB) redis.UniversalClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// withRedis rebuilds the harness's server with a Redis client for /metrics.
func (h *harness) withRedis(rc RedisClient) {
	h.t.Helper()
	rs, err := policy.New([]policy.Rule{{Path: "/"}}, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	thr := throttle.NewMemory(throttle.Config{AccountFailures: 3, IPFailures: 10, BaseDelay: time.Second, MaxDelay: time.Minute, Window: 15 * time.Minute, MaxEntries: 1000}, h.clock.now)
	srv, err := New(testOptions(), Deps{Users: h.users, Sessions: h.store, Throttle: thr, Now: h.clock.now, Redis: rc}, rs)
	if err != nil {
		h.t.Fatal(err)
	}
	h.srv, h.h = srv, srv.Handler()
}

// series returns the value of every series /metrics shows, keyed by the
// series as written (name and labels).
func (h *harness) series() map[string]float64 {
	h.t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(h.do(req{target: "/metrics"}).Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			h.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestRedisMetrics(t *testing.T) {
	h := newHarness(t, nil, nil)
	rc := deadRedis(t)
	h.withRedis(rc)
	before := h.series()
	for _, name := range []string{"authd_redis_errors_total", "authd_redis_pool_misses_total", "authd_redis_pool_connections"} {
		if _, ok := before[name]; !ok {
			t.Errorf("/metrics lacks %s before any Redis traffic", name)
		}
	}
	for range 3 {
		if err := rc.Get(context.Background(), "k").Err(); err == nil {
			t.Fatal("a dead Redis answered")
		}
	}
	after := h.series()
	if got, want := after["authd_redis_errors_total"]-before["authd_redis_errors_total"], 3.0; got < want {
		t.Errorf("authd_redis_errors_total grew by %v, want at least %v", got, want)
	}
	if got := after["authd_redis_pool_misses_total"]; got < 3 {
		t.Errorf("authd_redis_pool_misses_total = %v, want at least 3", got)
	}

	plain := newHarness(t, nil, nil).series()
	for s := range plain {
		if strings.HasPrefix(s, "authd_redis_") {
			t.Errorf("/metrics without Redis shows %s", s)
		}
	}
}

// promqlNames returns the metric names a PromQL expression reads: what is
// left after dropping strings, label matchers, ranges, grouping clauses,
// numbers, durations, functions (a name before "(") and keywords.
func promqlNames(expr string) []string {
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"`),
		regexp.MustCompile(`\{[^}]*\}`),
		regexp.MustCompile(`\[[^\]]*\]`),
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`),
		regexp.MustCompile(`\b[0-9][0-9a-zA-Z.]*`), // numbers and durations (5m)
	} {
		expr = re.ReplaceAllString(expr, " ")
	}
	keywords := []string{"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool", "inf", "nan"}
	var names []string
	for _, m := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`).FindAllString(expr, -1) {
		if strings.HasSuffix(m, "(") || slices.Contains(keywords, strings.ToLower(m)) {
			continue
		}
		names = append(names, m)
	}
	return names
}

func TestPromqlNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`histogram_quantile(0.99, sum by (le) (rate(authd_verify_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`,
			[]string{"authd_verify_duration_seconds_bucket"}},
		{`label_values(authd_build_info, instance)`, []string{"authd_build_info", "instance"}},
		{`sum without (code) (a_total) / on (instance) b offset 5m`, []string{"a_total", "b"}},
		{`max(x{l="}"})`, []string{"x"}},
	}
	for _, tt := range tests {
		if got := promqlNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("promqlNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// TestDashboardMetricsExist loads the shipped Grafana dashboard and checks
// that every metric its queries read is one a running server exports, after
// a login, a failed login, verifies, reloads and Redis traffic, so a renamed
// metric cannot leave a panel silently empty.
func TestDashboardMetricsExist(t *testing.T) {
	b, err := os.ReadFile("../../../conf/grafana/authd-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name  string
				Query any
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	exprs := map[string]string{} // expression → where it is
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs[tg.Expr] = "panel " + p.Title
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				// label_values(metric, label): only the metric is a name.
				exprs[strings.SplitN(s, ",", 2)[0]+")"] = "variable " + v.Name
			}
		}
	}

	h := newHarness(t, nil, nil)
	rc := deadRedis(t)
	h.withRedis(rc)
	c := h.login("alice")
	h.verify("/", c)
	h.verify("/", "")
	h.postLogin("alice", "wrong password", "/", "203.0.113.1", nil)
	h.srv.ReloadDone(true)
	_ = rc.Get(context.Background(), "k").Err()
	exported := map[string]bool{}
	for s := range h.series() {
		name, _, _ := strings.Cut(s, "{")
		exported[name] = true
	}

	read := map[string]bool{}
	for expr, where := range exprs {
		names := promqlNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: query %q reads no metric", where, expr)
		}
		for _, n := range names {
			read[n] = true
			if !exported[n] {
				t.Errorf("%s: query %q reads %s, which /metrics does not export", where, expr, n)
			}
		}
	}
	// The panels the issue asks for, by the metric each must read.
	for _, n := range []string{"authd_build_info", "authd_verify_requests_total", "authd_verify_duration_seconds_bucket",
		"authd_logins_total", "authd_login_throttled_total", "authd_sessions_active", "authd_redis_pool_connections",
		"authd_redis_errors_total", "authd_reloads_total", "authd_store_damaged_records", "process_resident_memory_bytes"} {
		if !read[n] {
			t.Errorf("the dashboard reads no %s", n)
		}
	}
}

// escalatingHasher is the in-process hasher that reports escalations, as
// hasher.Proc does.
type escalatingHasher struct{ inProcess }

func (escalatingHasher) Escalated() uint64 { return 3 }

// TestHashEscalatedMetric: a hasher that counts escalated hashes has them in
// /metrics; the in-process one has no such series.
func TestHashEscalatedMetric(t *testing.T) {
	h := newHarness(t, nil, nil)
	if _, ok := h.series()["authd_hash_escalated_total"]; ok {
		t.Fatal("the in-process hasher shows authd_hash_escalated_total")
	}
	rs, err := policy.New([]policy.Rule{{Path: "/"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(testOptions(), Deps{Users: h.users, Sessions: h.store, Now: h.clock.now, Hasher: escalatingHasher{}}, rs)
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.h = srv, srv.Handler()
	if v, ok := h.series()["authd_hash_escalated_total"]; !ok || v != 3 {
		t.Fatalf("authd_hash_escalated_total = %v (present %v), want 3", v, ok)
	}
}
