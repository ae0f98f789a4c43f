package server

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
)

// Upper bounds of the verify latency histogram, in seconds.
var latencyBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1}

// BuildInfo names the running binary; /metrics reports it as
// authd_build_info{version, commit, go} 1.
type BuildInfo struct {
	Version, Commit, Go string
}

// metrics are counters kept with atomics so verify never takes a lock.
type metrics struct {
	allowed, unauthorized, forbidden atomic.Uint64
	buckets                          [len(latencyBuckets) + 1]atomic.Uint64
	latencySum                       atomic.Int64 // ns

	mu     sync.Mutex
	logins map[string]uint64 // by outcome; logins are rare
}

func (m *metrics) verify(code int, took time.Duration) {
	switch code {
	case http.StatusOK:
		m.allowed.Add(1)
	case http.StatusForbidden:
		m.forbidden.Add(1)
	default:
		m.unauthorized.Add(1)
	}
	sec := took.Seconds()
	i := 0
	for i < len(latencyBuckets) && sec > latencyBuckets[i] {
		i++
	}
	m.buckets[i].Add(1)
	m.latencySum.Add(int64(took))
}

func (m *metrics) login(outcome string) {
	m.mu.Lock()
	if m.logins == nil {
		m.logins = map[string]uint64{}
	}
	m.logins[outcome]++
	m.mu.Unlock()
}

func (s *Server) handleMetrics(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	m := &s.metrics
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	b := s.cur.Load().Build
	fmt.Fprintln(w, "# HELP authd_build_info The running authd's version, commit and Go version.")
	fmt.Fprintln(w, "# TYPE authd_build_info gauge")
	fmt.Fprintf(w, "authd_build_info{version=%q,commit=%q,go=%q} 1\n", b.Version, b.Commit, b.Go)
	fmt.Fprintln(w, "# HELP authd_verify_requests_total Verify requests by answer.")
	fmt.Fprintln(w, "# TYPE authd_verify_requests_total counter")
	fmt.Fprintf(w, "authd_verify_requests_total{code=\"200\"} %d\n", m.allowed.Load())
	fmt.Fprintf(w, "authd_verify_requests_total{code=\"401\"} %d\n", m.unauthorized.Load())
	fmt.Fprintf(w, "authd_verify_requests_total{code=\"403\"} %d\n", m.forbidden.Load())
	fmt.Fprintln(w, "# HELP authd_verify_duration_seconds Time spent answering verify requests.")
	fmt.Fprintln(w, "# TYPE authd_verify_duration_seconds histogram")
	var cum uint64
	for i, le := range latencyBuckets {
		cum += m.buckets[i].Load()
		fmt.Fprintf(w, "authd_verify_duration_seconds_bucket{le=\"%g\"} %d\n", le, cum)
	}
	cum += m.buckets[len(latencyBuckets)].Load()
	fmt.Fprintf(w, "authd_verify_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(w, "authd_verify_duration_seconds_sum %g\n", time.Duration(m.latencySum.Load()).Seconds())
	fmt.Fprintf(w, "authd_verify_duration_seconds_count %d\n", cum)
	fmt.Fprintln(w, "# HELP authd_logins_total Login attempts by outcome.")
	fmt.Fprintln(w, "# TYPE authd_logins_total counter")
	m.mu.Lock()
	outcomes := make([]string, 0, len(m.logins))
	for k := range m.logins {
		outcomes = append(outcomes, k)
	}
	sort.Strings(outcomes)
	for _, k := range outcomes {
		fmt.Fprintf(w, "authd_logins_total{outcome=%q} %d\n", k, m.logins[k])
	}
	m.mu.Unlock()
	fmt.Fprintln(w, "# HELP authd_sessions_active Sessions in the store.")
	fmt.Fprintln(w, "# TYPE authd_sessions_active gauge")
	fmt.Fprintf(w, "authd_sessions_active %d\n", s.store.Len())
	if _, ok := s.store.(damageReporter); ok {
		d := s.storeDamage()
		fmt.Fprintln(w, "# HELP authd_store_damaged_records Session records lost to damaged files when the store opened (a damaged stretch counts as one).")
		fmt.Fprintln(w, "# TYPE authd_store_damaged_records gauge")
		fmt.Fprintf(w, "authd_store_damaged_records %d\n", d.Records)
		fmt.Fprintln(w, "# HELP authd_store_damaged_bytes Bytes of damaged session files skipped when the store opened.")
		fmt.Fprintln(w, "# TYPE authd_store_damaged_bytes gauge")
		fmt.Fprintf(w, "authd_store_damaged_bytes %d\n", d.Bytes)
		fmt.Fprintln(w, "# HELP authd_store_recovered_records Intact records recovered from damaged session files when the store opened.")
		fmt.Fprintln(w, "# TYPE authd_store_recovered_records gauge")
		fmt.Fprintf(w, "authd_store_recovered_records %d\n", d.Recovered)
		fmt.Fprintln(w, "# HELP authd_store_damaged_files Copies of damaged session files kept aside in the data directory.")
		fmt.Fprintln(w, "# TYPE authd_store_damaged_files gauge")
		fmt.Fprintf(w, "authd_store_damaged_files %d\n", len(d.Files))
	}
}
