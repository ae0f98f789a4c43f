package main

import (
	"context"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/session"
)

// clusterStateReload is how often a Cluster client re-reads the slot map
// (CLUSTER SLOTS, one small reply per second per instance) while requests
// flow. go-redis re-reads it at once only on a MOVED or READONLY reply,
// which a dead primary never sends: its default of 60s kept every verify
// dialing the killed primary, denying, for up to a minute after its replica
// had taken over. With 1s, authd follows a failover about a second after
// the cluster completes it.
const clusterStateReload = time.Second

// newRedisClient returns the client for o: a Cluster client when the
// [redis] block describes a Cluster, else go-redis's choice (standalone or
// Sentinel failover client).
func newRedisClient(o *redis.UniversalOptions, r config.Redis) redis.UniversalClient {
	if r.Mode() != config.RedisCluster {
		return redis.NewUniversalClient(o)
	}
	co := o.Cluster()
	co.ClusterStateReloadInterval = clusterStateReload
	return redis.NewClusterClient(co)
}

// redisWait makes session writes wait for redis.wait_replicas replicas, in
// the server and in the CLI alike: a revocation is a write like a logout.
func redisWait(cfg config.Config) session.RedisOption {
	return session.WithWait(cfg.Redis.WaitReplicas, cfg.Redis.WaitTimeout.Duration)
}

// redisTracking lets serve's session store keep local copies of sessions
// that Redis invalidates on every change (session.WithTracking), so most
// verifies need no round trip while a logout on any instance is still
// refused at the next request everywhere. It supports a standalone Redis
// without TLS; with Sentinel, Cluster or TLS every verify reads Redis.
func redisTracking(cfg config.Config, log *zap.Logger) session.RedisOption {
	r := cfg.Redis
	pw, err := r.Password()
	if r.Mode() != config.RedisStandalone || r.TLS || len(r.Addrs) != 1 || err != nil {
		return func(*session.Redis) {}
	}
	addr := r.Addrs[0]
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	// Named like the client's pooled connections (redisOptions), so CLIENT
	// LIST shows it as authd's.
	return session.WithTracking(dial, r.Username, pw, "authd", func(err error) {
		log.Warn("redis session tracking off: every verify reads redis until it is back", zap.Error(err))
	})
}
