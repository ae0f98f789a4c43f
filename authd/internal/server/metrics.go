package server

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// Upper bounds of the verify latency histogram, in seconds: verify answers
// from memory in microseconds, from Redis in a millisecond or so.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1}

// loginOutcomes are the outcomes /metrics shows from the start (at 0), so a
// dashboard's rate() sees the first failure. Machine outcomes appear when
// they first happen.
var loginOutcomes = []string{"success", "bad_password", "unknown_user", "disabled", "throttled_ip",
	"throttled_account", "password_too_long", "csrf", "cross_site", "bad_request", "overloaded", "unavailable"}

// BuildInfo names the running binary; /metrics reports it as
// authd_build_info{commit, go, version} 1.
type BuildInfo struct {
	Version, Commit, Go string
}

// copyReporter is a session store that keeps local copies (session.Redis
// with tracking).
type copyReporter interface {
	Copies() (hits, misses uint64, live, ok bool)
}

// RedisClient is what /metrics reads from a Redis client: its pool
// statistics, and a hook to count failed commands. redis.UniversalClient
// satisfies it.
type RedisClient interface {
	PoolStats() *redis.PoolStats
	AddHook(redis.Hook)
}

// metrics are the server's Prometheus collectors, in a registry of the
// server's own. Verify's counters are resolved once here so the hot path
// never looks up a label (a lookup allocates).
type metrics struct {
	reg *prometheus.Registry

	verifyOK, verifyUnauthorized, verifyForbidden prometheus.Counter
	verifyDuration                                prometheus.Histogram

	logins *prometheus.CounterVec
	// passwordChecks counts hash verifications, the dummy hash included:
	// the work a login flood or a throttle bypass would cost.
	passwordChecks  prometheus.Counter
	throttledIP     prometheus.Counter
	throttledUser   prometheus.Counter
	sessionsCreated prometheus.Counter
	storeErrors     prometheus.Counter
	redisErrors     prometheus.Counter
	reloadOK        prometheus.Counter
	reloadFailed    prometheus.Counter
}

// escalationReporter is a Hasher that counts its escalated hashes (hasher.Proc).
type escalationReporter interface{ Escalated() uint64 }

func newMetrics(s *Server, rc RedisClient) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg}
	verify := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authd_verify_requests_total", Help: "Verify requests by answer.",
	}, []string{"code"})
	m.verifyOK = verify.WithLabelValues("200")
	m.verifyUnauthorized = verify.WithLabelValues("401")
	m.verifyForbidden = verify.WithLabelValues("403")
	m.verifyDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "authd_verify_duration_seconds", Help: "Time spent answering verify requests.", Buckets: latencyBuckets,
	})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authd_logins_total", Help: "Login attempts by outcome (machine_* are API tokens and signed requests refused).",
	}, []string{"outcome"})
	for _, o := range loginOutcomes {
		m.logins.WithLabelValues(o)
	}
	throttles := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authd_login_throttled_total", Help: "Logins refused by throttling, by what was throttled (ip or account).",
	}, []string{"scope"})
	m.throttledIP = throttles.WithLabelValues("ip")
	m.throttledUser = throttles.WithLabelValues("account")
	m.passwordChecks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "authd_password_checks_total", Help: "Password hash verifications run by logins, dummy hashes included.",
	})
	m.sessionsCreated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "authd_sessions_created_total", Help: "Sessions started by a successful login.",
	})
	m.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "authd_store_errors_total", Help: "Session lookups that failed with a store error (each answered with a deny).",
	})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authd_reloads_total", Help: "Reloads of config, users and rules by result (ok or failed; a failed one keeps the last good copy).",
	}, []string{"result"})
	m.reloadOK = reloads.WithLabelValues("ok")
	m.reloadFailed = reloads.WithLabelValues("failed")

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo{s},
		verify, m.verifyDuration, m.logins, throttles, m.passwordChecks, m.sessionsCreated, m.storeErrors, reloads,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authd_sessions_active", Help: "Sessions in the store.",
		}, func() float64 { return float64(s.store.Len()) }),
	)
	if _, ok := s.store.(damageReporter); ok {
		reg.MustRegister(storeDamage{s})
	}
	if c, ok := s.store.(copyReporter); ok {
		if _, _, _, on := c.Copies(); on {
			reg.MustRegister(
				prometheus.NewCounterFunc(prometheus.CounterOpts{
					Name: "authd_session_copy_hits_total", Help: "Session lookups answered from a local copy that Redis invalidates (redis tracking).",
				}, func() float64 { h, _, _, _ := c.Copies(); return float64(h) }),
				prometheus.NewCounterFunc(prometheus.CounterOpts{
					Name: "authd_session_copy_misses_total", Help: "Session lookups that read Redis although tracking is configured (no copy, or tracking not current).",
				}, func() float64 { _, m, _, _ := c.Copies(); return float64(m) }),
				prometheus.NewGaugeFunc(prometheus.GaugeOpts{
					Name: "authd_session_tracking_up", Help: "1 while the Redis tracking connection is up (local copies usable), else 0.",
				}, func() float64 {
					if _, _, live, _ := c.Copies(); live {
						return 1
					}
					return 0
				}),
			)
		}
	}
	if e, ok := s.hash.(escalationReporter); ok {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authd_hash_escalated_total",
			Help: "Password hashes that waited hasher.Escalate at the lowest CPU priority and were run at authd's own too (the cores were busy for long).",
		}, func() float64 { return float64(e.Escalated()) }))
	}
	if rc != nil {
		m.redisErrors = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authd_redis_errors_total", Help: "Redis commands and dials that failed (a missing key is not a failure).",
		})
		reg.MustRegister(m.redisErrors, redisPool{rc.PoolStats})
		rc.AddHook(redisErrorHook{m.redisErrors})
	}
	return m
}

func (m *metrics) verify(code int, took float64) {
	switch code {
	case http.StatusOK:
		m.verifyOK.Inc()
	case http.StatusForbidden:
		m.verifyForbidden.Inc()
	default:
		m.verifyUnauthorized.Inc()
	}
	m.verifyDuration.Observe(took)
}

func (m *metrics) login(outcome string) {
	m.logins.WithLabelValues(outcome).Inc()
	switch outcome {
	case "throttled_ip":
		m.throttledIP.Inc()
	case "throttled_account":
		m.throttledUser.Inc()
	case "success":
		m.sessionsCreated.Inc()
	}
}

// passwordCheck counts one password hash run by a login, dummy included.
func (m *metrics) passwordCheck() { m.passwordChecks.Inc() }

// ReloadDone counts a reload of config, users or rules for /metrics; main
// calls it after each SIGHUP, admin-API or file-watch reload.
func (s *Server) ReloadDone(ok bool) {
	if ok {
		s.metrics.reloadOK.Inc()
	} else {
		s.metrics.reloadFailed.Inc()
	}
}

func (s *Server) metricsHandler() httprouter.Handle {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	}
}

// buildInfo reports the running binary from the current settings.
type buildInfo struct{ s *Server }

var buildInfoDesc = prometheus.NewDesc("authd_build_info",
	"The running authd's version, commit and Go version.", []string{"version", "commit", "go"}, nil)

func (b buildInfo) Describe(ch chan<- *prometheus.Desc) { ch <- buildInfoDesc }

func (b buildInfo) Collect(ch chan<- prometheus.Metric) {
	bi := b.s.cur.Load().Build
	ch <- prometheus.MustNewConstMetric(buildInfoDesc, prometheus.GaugeValue, 1, bi.Version, bi.Commit, bi.Go)
}

// storeDamage reports what the embedded store recovered from when it opened.
type storeDamage struct{ s *Server }

var (
	damagedRecordsDesc = prometheus.NewDesc("authd_store_damaged_records",
		"Session records lost to damaged files when the store opened (a damaged stretch counts as one).", nil, nil)
	damagedBytesDesc = prometheus.NewDesc("authd_store_damaged_bytes",
		"Bytes of damaged session files skipped when the store opened.", nil, nil)
	recoveredRecordsDesc = prometheus.NewDesc("authd_store_recovered_records",
		"Intact records recovered from damaged session files when the store opened.", nil, nil)
	damagedFilesDesc = prometheus.NewDesc("authd_store_damaged_files",
		"Copies of damaged session files kept aside in the data directory.", nil, nil)
)

func (d storeDamage) Describe(ch chan<- *prometheus.Desc) {
	ch <- damagedRecordsDesc
	ch <- damagedBytesDesc
	ch <- recoveredRecordsDesc
	ch <- damagedFilesDesc
}

func (d storeDamage) Collect(ch chan<- prometheus.Metric) {
	dm := d.s.storeDamage()
	ch <- prometheus.MustNewConstMetric(damagedRecordsDesc, prometheus.GaugeValue, float64(dm.Records))
	ch <- prometheus.MustNewConstMetric(damagedBytesDesc, prometheus.GaugeValue, float64(dm.Bytes))
	ch <- prometheus.MustNewConstMetric(recoveredRecordsDesc, prometheus.GaugeValue, float64(dm.Recovered))
	ch <- prometheus.MustNewConstMetric(damagedFilesDesc, prometheus.GaugeValue, float64(len(dm.Files)))
}

// redisPool reports go-redis's connection pool statistics.
type redisPool struct{ stats func() *redis.PoolStats }

var (
	poolHitsDesc     = prometheus.NewDesc("authd_redis_pool_hits_total", "Times a free Redis connection was found in the pool.", nil, nil)
	poolMissesDesc   = prometheus.NewDesc("authd_redis_pool_misses_total", "Times no free Redis connection was in the pool.", nil, nil)
	poolTimeoutsDesc = prometheus.NewDesc("authd_redis_pool_timeouts_total", "Times waiting for a Redis connection timed out.", nil, nil)
	poolTotalDesc    = prometheus.NewDesc("authd_redis_pool_connections", "Redis connections in the pool.", nil, nil)
	poolIdleDesc     = prometheus.NewDesc("authd_redis_pool_idle_connections", "Idle Redis connections in the pool.", nil, nil)
	poolStaleDesc    = prometheus.NewDesc("authd_redis_pool_stale_connections_total", "Stale Redis connections removed from the pool.", nil, nil)
)

func (p redisPool) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolHitsDesc, poolMissesDesc, poolTimeoutsDesc, poolTotalDesc, poolIdleDesc, poolStaleDesc} {
		ch <- d
	}
}

func (p redisPool) Collect(ch chan<- prometheus.Metric) {
	st := p.stats()
	if st == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(poolHitsDesc, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(poolMissesDesc, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(poolTimeoutsDesc, prometheus.CounterValue, float64(st.Timeouts))
	ch <- prometheus.MustNewConstMetric(poolTotalDesc, prometheus.GaugeValue, float64(st.TotalConns))
	ch <- prometheus.MustNewConstMetric(poolIdleDesc, prometheus.GaugeValue, float64(st.IdleConns))
	ch <- prometheus.MustNewConstMetric(poolStaleDesc, prometheus.CounterValue, float64(st.StaleConns))
}

// redisErrorHook counts failed Redis dials and commands. redis.Nil is a
// missing key, an answer rather than a failure; NOSCRIPT is a script's first
// EVALSHA on this server, which go-redis answers with EVAL.
type redisErrorHook struct{ errs prometheus.Counter }

func (h redisErrorHook) count(err error) {
	if err != nil && !errors.Is(err, redis.Nil) && !redis.HasErrorPrefix(err, "NOSCRIPT") {
		h.errs.Inc()
	}
}

func (h redisErrorHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		h.count(err)
		return c, err
	}
}

func (h redisErrorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.count(err)
		return err
	}
}

func (h redisErrorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.count(err)
		return err
	}
}
