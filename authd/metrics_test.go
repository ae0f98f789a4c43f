package main

import (
	"bufio"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// metrics returns every series of the running authd's /metrics by its
// written form (name and labels).
func (s *stack) metrics() map[string]float64 {
	s.t.Helper()
	resp, err := http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			s.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric waits until a series reaches at least want.
func (s *stack) waitMetric(series string, want float64) {
	s.t.Helper()
	var got float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = s.metrics()[series]; got >= want {
			return
		}
	}
	s.t.Fatalf("%s = %v, want at least %v", series, got, want)
}

// TestServedMetricsRedis checks what an operator's Prometheus scrapes from
// authd on Redis: the pool, no errors while Redis answers (a missing key and
// a script not yet cached are answers), errors once it is gone, and reloads.
func TestServedMetricsRedis(t *testing.T) {
	rd := startTestRedis(t)
	s := redisStack(t, rd)
	s.mustCLI("first password 123\n", "user", "add", "alice")
	s.start()
	cookie, _ := s.login("alice", "first password 123", "/")
	if r := s.verify(cookie); r.StatusCode != 200 {
		t.Fatalf("verify: got %d, want 200", r.StatusCode)
	}
	if r := s.verify("__Host-authd_session=" + strings.Repeat("A", 43)); r.StatusCode != 401 {
		t.Fatalf("verify with an unknown session: got %d, want 401", r.StatusCode)
	}
	_ = s.proc.Process.Signal(syscall.SIGHUP)
	s.waitMetric(`authd_reloads_total{result="ok"}`, 1)

	m := s.metrics()
	for series, min := range map[string]float64{
		"authd_redis_pool_connections": 1, "authd_redis_pool_hits_total": 1,
		`authd_logins_total{outcome="success"}`: 1, "authd_sessions_active": 1, `authd_verify_requests_total{code="200"}`: 1,
		"process_resident_memory_bytes": 1, "go_goroutines": 1,
	} {
		if got, ok := m[series]; !ok || got < min {
			t.Errorf("%s = %v (exported: %v), want at least %v", series, got, ok, min)
		}
	}
	if got := m["authd_redis_errors_total"]; got != 0 {
		t.Errorf("authd_redis_errors_total = %v while Redis answers, want 0", got)
	}
	if _, ok := m["authd_store_damaged_records"]; ok {
		t.Error("a Redis store reports embedded store damage")
	}

	rd.stop(syscall.SIGKILL)
	if r := s.verify(cookie); r.StatusCode != 401 {
		t.Fatalf("verify with Redis down: got %d, want 401", r.StatusCode)
	}
	s.waitMetric("authd_redis_errors_total", 1)
	s.waitMetric("authd_store_errors_total", 1)
}

// TestServedMetricsEmbedded checks the embedded store's series and that a
// reload that keeps the last good users counts as failed.
func TestServedMetricsEmbedded(t *testing.T) {
	s := newStack(t, "")
	s.mustCLI("first password 123\n", "user", "add", "alice")
	s.start()
	m := s.metrics()
	for _, series := range []string{"authd_store_damaged_records", "authd_store_recovered_records", `authd_reloads_total{result="failed"}`} {
		if _, ok := m[series]; !ok {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	for series := range m {
		if strings.HasPrefix(series, "authd_redis_") {
			t.Errorf("an embedded store exports %s", series)
		}
	}
	if err := os.WriteFile(s.dir+"/users.toml", []byte("[[users]\nbroken"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = s.proc.Process.Signal(syscall.SIGHUP)
	s.waitMetric(`authd_reloads_total{result="failed"}`, 1)
}
