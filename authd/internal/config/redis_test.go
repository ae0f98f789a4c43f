package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func redisConfig() Config {
	c := valid()
	c.Store = "redis"
	return c
}

func TestRedisValid(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*Redis)
		mode string
	}{
		{"defaults", func(*Redis) {}, RedisStandalone},
		{"sentinel", func(r *Redis) {
			r.Addrs = []string{"10.0.0.1:26379", "10.0.0.2:26379"}
			r.MasterName = "authd"
		}, RedisSentinel},
		{"cluster with hash tag", func(r *Redis) {
			r.Addrs = []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"}
			r.KeyPrefix = "{authd}:"
		}, RedisCluster},
		{"tls with ca and name", func(r *Redis) {
			r.TLS, r.CAFile, r.ServerName = true, "/etc/authd/redis-ca.pem", "redis.internal"
		}, RedisStandalone},
		{"password from env", func(r *Redis) { r.PasswordEnv = "AUTHD_REDIS_PASSWORD" }, RedisStandalone},
		{"wait for a replica", func(r *Redis) { r.WaitReplicas, r.WaitTimeout = 1, dur("150ms") }, RedisStandalone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := redisConfig()
			tt.set(&c.Redis)
			if err := c.Validate(); err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if got := c.Redis.Mode(); got != tt.mode {
				t.Fatalf("Mode: got %q, want %q", got, tt.mode)
			}
		})
	}
}

func TestRedisRejects(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"unknown store", func(c *Config) { c.Store = "memcached" }, "store"},
		{"no addrs", func(c *Config) { c.Redis.Addrs = nil }, "redis.addrs"},
		{"addr without port", func(c *Config) { c.Redis.Addrs = []string{"localhost"} }, "redis.addrs[0]"},
		{"addr bad port", func(c *Config) { c.Redis.Addrs = []string{"a:1", "b:0"}; c.Redis.KeyPrefix = "{a}" }, "redis.addrs[1]"},
		{"both password sources", func(c *Config) { c.Redis.PasswordFile, c.Redis.PasswordEnv = "/etc/p", "P" }, "redis.password_file"},
		{"relative password file", func(c *Config) { c.Redis.PasswordFile = "pw" }, "redis.password_file"},
		{"bad env name", func(c *Config) { c.Redis.PasswordEnv = "1PASS" }, "redis.password_env"},
		{"negative db", func(c *Config) { c.Redis.DB = -1 }, "redis.db"},
		{"db with cluster", func(c *Config) {
			c.Redis.Addrs = []string{"a:1", "b:1"}
			c.Redis.KeyPrefix = "{authd}:"
			c.Redis.DB = 2
		}, "redis.db"},
		{"cluster without hash tag", func(c *Config) { c.Redis.Addrs = []string{"a:1", "b:1"} }, "redis.key_prefix"},
		{"empty hash tag", func(c *Config) { c.Redis.Addrs = []string{"a:1", "b:1"}; c.Redis.KeyPrefix = "{}authd:" }, "redis.key_prefix"},
		{"empty prefix", func(c *Config) { c.Redis.KeyPrefix = "" }, "redis.key_prefix"},
		{"prefix with space", func(c *Config) { c.Redis.KeyPrefix = "auth d:" }, "redis.key_prefix"},
		{"ca file without tls", func(c *Config) { c.Redis.CAFile = "/etc/ca.pem" }, "redis.tls"},
		{"zero dial timeout", func(c *Config) { c.Redis.DialTimeout = dur("0s") }, "redis.dial_timeout"},
		{"slow read timeout", func(c *Config) { c.Redis.ReadTimeout = dur("2s") }, "redis.read_timeout"},
		{"slow write timeout", func(c *Config) { c.Redis.WriteTimeout = dur("1s") }, "redis.write_timeout"},
		{"slow pool timeout", func(c *Config) { c.Redis.PoolTimeout = dur("1s") }, "redis.pool_timeout"},
		{"zero pool", func(c *Config) { c.Redis.PoolSize = 0 }, "redis.pool_size"},
		{"negative wait_replicas", func(c *Config) { c.Redis.WaitReplicas = -1 }, "redis.wait_replicas"},
		{"too many wait_replicas", func(c *Config) { c.Redis.WaitReplicas = 17 }, "redis.wait_replicas"},
		{"zero wait timeout", func(c *Config) { c.Redis.WaitTimeout = dur("0s") }, "redis.wait_timeout"},
		{"wait timeout as long as a read", func(c *Config) { c.Redis.WaitTimeout = dur("200ms") }, "redis.wait_timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := redisConfig()
			tt.set(&c)
			e := problems(t, c.Validate())
			if got := keys(e); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("got %q, want [%s]", got, tt.want)
			}
		})
	}
}

func TestRedisBlockIgnoredForEmbedded(t *testing.T) {
	c := valid()
	c.Redis.Addrs = nil
	c.Redis.PoolSize = 0
	if err := c.Validate(); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

func TestRedisPasswordInlineIsUnknownKey(t *testing.T) {
	_, err := Parse(strings.NewReader("public_url = \"https://a.example\"\nstore = \"redis\"\n[redis]\npassword = \"hunter2hunter2\"\n"))
	e := problems(t, err)
	if got := keys(e); len(got) != 1 || got[0] != "redis.password" {
		t.Fatalf("got %q, want [redis.password]", got)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestRedisPassword(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	open := filepath.Join(dir, "open")
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{good, 0o600}, {open, 0o644}} {
		if err := os.WriteFile(f.path, []byte("s3cret-value\n"), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f.path, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AUTHD_TEST_REDIS_PW", "from-env")
	for _, tt := range []struct {
		name    string
		r       Redis
		want    string
		wantErr string
	}{
		{"none", Redis{}, "", ""},
		{"file", Redis{PasswordFile: good}, "s3cret-value", ""},
		{"file open to others", Redis{PasswordFile: open}, "", "readable by others"},
		{"missing file", Redis{PasswordFile: filepath.Join(dir, "nope")}, "", "no such file"},
		{"env", Redis{PasswordEnv: "AUTHD_TEST_REDIS_PW"}, "from-env", ""},
		{"unset env", Redis{PasswordEnv: "AUTHD_TEST_REDIS_UNSET"}, "", "not set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.r.Password()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v, want error containing %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error shows the password: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v, want %q, nil", got, err, tt.want)
			}
		})
	}
}

func TestShippedRedisExamples(t *testing.T) {
	for _, tt := range []struct{ file, mode string }{
		{"redis-standalone.toml", RedisStandalone},
		{"redis-sentinel.toml", RedisSentinel},
		{"redis-cluster.toml", RedisCluster},
	} {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("../../../conf", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			c, err := Parse(f)
			if err != nil {
				t.Fatalf("got %v, want a valid config", err)
			}
			if c.Store != "redis" || c.Redis.Mode() != tt.mode {
				t.Fatalf("got store %q mode %q, want redis %s", c.Store, c.Redis.Mode(), tt.mode)
			}
		})
	}
}
