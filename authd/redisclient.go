package main

import (
	"time"

	"github.com/redis/go-redis/v9"

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
