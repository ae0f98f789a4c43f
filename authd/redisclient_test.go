package main

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/config"
)

// TestNewRedisClientClusterReload: a Cluster client re-reads the slot map
// every second, so a replica promoted after its primary died is used about a
// second later rather than after go-redis's default minute (the symptom, a
// minute of denials after a Cluster failover, is TestRedisCluster in
// tests/cluster).
func TestNewRedisClientClusterReload(t *testing.T) {
	tests := []struct {
		name    string
		r       config.Redis
		cluster bool
	}{
		{"standalone", config.Redis{Addrs: []string{"127.0.0.1:6379"}}, false},
		{"sentinel", config.Redis{Addrs: []string{"127.0.0.1:26379", "127.0.0.2:26379"}, MasterName: "authd"}, false},
		{"cluster", config.Redis{Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRedisClient(&redis.UniversalOptions{Addrs: tt.r.Addrs, MasterName: tt.r.MasterName}, tt.r)
			defer c.Close()
			cc, isCluster := c.(*redis.ClusterClient)
			if isCluster != tt.cluster {
				t.Fatalf("got a %T, want a Cluster client: %v", c, tt.cluster)
			}
			if isCluster {
				if got := cc.Options().ClusterStateReloadInterval; got != clusterStateReload {
					t.Errorf("got a slot map reload every %v, want %v", got, clusterStateReload)
				}
			}
		})
	}
}
