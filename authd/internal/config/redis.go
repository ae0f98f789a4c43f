package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Redis configures the shared store used when Store is "redis".
type Redis struct {
	// Addrs are host:port addresses: one is a standalone Redis; several,
	// without MasterName, are seeds of a Redis Cluster; with MasterName they
	// are Sentinels.
	Addrs []string `toml:"addrs"`
	// MasterName is the Sentinel master's name; empty when not using Sentinel.
	MasterName string `toml:"master_name"`
	// Username is the Redis ACL user; empty means the default user.
	Username string `toml:"username"`
	// PasswordFile and PasswordEnv name where the password is read from (a
	// file not readable by others, or an environment variable). A password is
	// never written in the config itself. Both empty means no password.
	PasswordFile string `toml:"password_file"`
	PasswordEnv  string `toml:"password_env"`
	// DB is the database number (standalone and Sentinel only; Cluster has only 0).
	DB int `toml:"db"`
	// TLS turns on TLS to Redis; CAFile (PEM) replaces the system roots and
	// ServerName the name checked in the certificate.
	TLS        bool   `toml:"tls"`
	CAFile     string `toml:"ca_file"`
	ServerName string `toml:"server_name"`
	// KeyPrefix starts every key authd writes. With a Cluster it must hold a
	// hash tag ("{authd}:") so that all of authd's keys share one slot.
	KeyPrefix string `toml:"key_prefix"`
	// Timeouts for one connection attempt, one reply, one write, and the wait
	// for a free pooled connection. They bound how long verify can wait.
	DialTimeout  Duration `toml:"dial_timeout"`
	ReadTimeout  Duration `toml:"read_timeout"`
	WriteTimeout Duration `toml:"write_timeout"`
	PoolTimeout  Duration `toml:"pool_timeout"`
	// PoolSize bounds connections per Redis node, and so requests in flight.
	PoolSize int `toml:"pool_size"`
	// WaitReplicas is how many replicas must have acknowledged a session
	// write (login, logout, revocation) before authd confirms it (Redis
	// WAIT): a failover that promotes such a replica then cannot lose it.
	// 0 confirms once the primary has it. WaitTimeout bounds the wait; a
	// write not acknowledged in time fails (login and logout answer 503).
	WaitReplicas int      `toml:"wait_replicas"`
	WaitTimeout  Duration `toml:"wait_timeout"`
}

// DefaultRedis returns the [redis] defaults: a local standalone Redis.
func DefaultRedis() Redis {
	return Redis{
		Addrs:        []string{"127.0.0.1:6379"},
		KeyPrefix:    "authd:",
		DialTimeout:  Duration{200 * time.Millisecond},
		ReadTimeout:  Duration{200 * time.Millisecond},
		WriteTimeout: Duration{200 * time.Millisecond},
		PoolTimeout:  Duration{100 * time.Millisecond},
		PoolSize:     64,
		WaitTimeout:  Duration{100 * time.Millisecond},
	}
}

// Modes of a Redis deployment, as Redis.Mode returns them.
const (
	RedisStandalone = "standalone"
	RedisSentinel   = "sentinel"
	RedisCluster    = "cluster"
)

// Mode says which kind of Redis deployment Addrs and MasterName describe.
func (r Redis) Mode() string {
	switch {
	case r.MasterName != "":
		return RedisSentinel
	case len(r.Addrs) > 1:
		return RedisCluster
	}
	return RedisStandalone
}

// Password returns the Redis password from PasswordFile or PasswordEnv, or ""
// when neither is set. The file must not be accessible to other users; one
// trailing newline is dropped.
func (r Redis) Password() (string, error) {
	switch {
	case r.PasswordFile != "":
		fi, err := os.Stat(r.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("redis.password_file: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o007 != 0 {
			return "", fmt.Errorf("redis.password_file: %s is %s by others (mode %04o); run chmod 600 %s",
				r.PasswordFile, access(perm), perm, r.PasswordFile)
		}
		b, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("redis.password_file: %w", err)
		}
		p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if p == "" {
			return "", fmt.Errorf("redis.password_file: %s is empty", r.PasswordFile)
		}
		return p, nil
	case r.PasswordEnv != "":
		p, ok := os.LookupEnv(r.PasswordEnv)
		if !ok || p == "" {
			return "", fmt.Errorf("redis.password_env: environment variable %s is not set", r.PasswordEnv)
		}
		return p, nil
	}
	return "", nil
}

// checkStore validates store and, when it is "redis", the [redis] block.
func (c Config) checkStore(e *Errors) {
	switch c.Store {
	case "embedded":
		return
	case "redis":
	default:
		e.add("store", `must be "embedded" or "redis" (got %q)`, c.Store)
		return
	}
	r := c.Redis
	if len(r.Addrs) == 0 {
		e.add("redis.addrs", "must list at least one host:port (got [])")
	}
	for i, a := range r.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || !validPort(port) {
			e.add(index("redis.addrs", i), "must be host:port with a port from 1 to 65535 (got %q)", a)
		}
	}
	if r.MasterName != "" && !printable(r.MasterName) {
		e.add("redis.master_name", "must be printable text without spaces (got %q)", r.MasterName)
	}
	if r.Username != "" && !printable(r.Username) {
		e.add("redis.username", "must be printable text without spaces (got %q)", r.Username)
	}
	if r.PasswordFile != "" && r.PasswordEnv != "" {
		e.add("redis.password_file", "set password_file or password_env, not both")
	}
	if r.PasswordFile != "" && !filepath.IsAbs(r.PasswordFile) {
		e.add("redis.password_file", "must be an absolute path (got %q)", r.PasswordFile)
	}
	if r.PasswordEnv != "" && !validEnvName(r.PasswordEnv) {
		e.add("redis.password_env", "must be an environment variable name such as AUTHD_REDIS_PASSWORD (got %q)", r.PasswordEnv)
	}
	switch {
	case r.DB < 0 || r.DB > 1023:
		e.add("redis.db", "must be from 0 to 1023 (got %d)", r.DB)
	case r.DB != 0 && r.Mode() == RedisCluster:
		e.add("redis.db", "must be 0 with a Redis Cluster (several addrs and no master_name) (got %d)", r.DB)
	}
	if !r.TLS && (r.CAFile != "" || r.ServerName != "") {
		e.add("redis.tls", "must be true when ca_file or server_name is set (got false)")
	}
	if r.CAFile != "" && !filepath.IsAbs(r.CAFile) {
		e.add("redis.ca_file", "must be an absolute path (got %q)", r.CAFile)
	}
	switch {
	case r.KeyPrefix == "" || len(r.KeyPrefix) > 64 || !printable(r.KeyPrefix):
		e.add("redis.key_prefix", "must be 1 to 64 printable characters without spaces (got %q)", r.KeyPrefix)
	case r.Mode() == RedisCluster && !hasHashTag(r.KeyPrefix):
		e.add("redis.key_prefix", `must contain a hash tag such as "{authd}:" with a Redis Cluster, so authd's keys share one slot (got %q)`, r.KeyPrefix)
	}
	// Verify must deny within a second when Redis is gone: a dial, a write
	// and a read (or a pool wait) must fit in it with room to spare.
	within(e, "redis.dial_timeout", r.DialTimeout, time.Millisecond, time.Second)
	within(e, "redis.read_timeout", r.ReadTimeout, time.Millisecond, 500*time.Millisecond)
	within(e, "redis.write_timeout", r.WriteTimeout, time.Millisecond, 500*time.Millisecond)
	within(e, "redis.pool_timeout", r.PoolTimeout, time.Millisecond, 500*time.Millisecond)
	if r.PoolSize < 1 || r.PoolSize > 4096 {
		e.add("redis.pool_size", "must be from 1 to 4096 (got %d)", r.PoolSize)
	}
	if r.WaitReplicas < 0 || r.WaitReplicas > 16 {
		e.add("redis.wait_replicas", "must be from 0 to 16 (got %d)", r.WaitReplicas)
	}
	// WAIT's reply must arrive within one read.
	switch {
	case r.WaitTimeout.Duration < time.Millisecond:
		e.add("redis.wait_timeout", "must be at least 1ms (got %s)", fmtDuration(r.WaitTimeout.Duration))
	case r.WaitTimeout.Duration >= r.ReadTimeout.Duration:
		e.add("redis.wait_timeout", "must be shorter than redis.read_timeout (%s) (got %s)",
			fmtDuration(r.ReadTimeout.Duration), fmtDuration(r.WaitTimeout.Duration))
	}
}

func within(e *Errors, key string, d Duration, lo, hi time.Duration) {
	if d.Duration < lo || d.Duration > hi {
		e.add(key, "must be from %s to %s (got %s)", fmtDuration(lo), fmtDuration(hi), fmtDuration(d.Duration))
	}
}

// printable reports whether s is non-empty visible ASCII.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return s != ""
}

func validEnvName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// hasHashTag reports whether Redis Cluster would hash s by a {tag}: the
// first "{" followed later by a "}" with at least one byte between.
func hasHashTag(s string) bool {
	i := strings.IndexByte(s, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(s[i+1:], '}')
	return j > 0
}
