package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

type accounts struct{ users, groups []string }

func (a accounts) HasUser(n string) bool  { return slices.Contains(a.users, n) }
func (a accounts) HasGroup(g string) bool { return slices.Contains(a.groups, g) }

func TestWarnings(t *testing.T) {
	acc := accounts{users: []string{"alice"}, groups: []string{"staff"}}
	for _, tt := range []struct {
		name string
		set  func(*Config)
		want []string // the key each warning starts with
	}{
		{"none", func(*Config) {}, nil},
		{"unix socket is fine", func(c *Config) { c.Listen = "unix:/run/authd/authd.sock" }, nil},
		{"localhost is fine", func(c *Config) { c.Listen = "localhost:9091" }, nil},
		{"ipv6 loopback is fine", func(c *Config) { c.Listen = "[::1]:9091" }, nil},
		{"listen on all addresses", func(c *Config) { c.Listen = "0.0.0.0:9091" }, []string{"listen"}},
		{"listen without host", func(c *Config) { c.Listen = ":9091" }, []string{"listen"}},
		{"listen on a LAN address", func(c *Config) { c.Listen = "192.0.2.10:9091" }, []string{"listen"}},
		{"group nobody holds", func(c *Config) {
			c.Rules = []Rule{{Path: "/admin", Groups: []string{"staff", "admins"}}, {Path: "/"}}
		}, []string{"rules[0].groups[1]"}},
		{"unknown user", func(c *Config) {
			c.Rules = []Rule{{Path: "/", Users: []string{"alice", "bob"}}}
		}, []string{"rules[0].users[1]"}},
		{"no final catch-all", func(c *Config) {
			c.Rules = []Rule{{Path: "/"}, {Path: "/app"}}
		}, []string{"rules[1]"}},
		{"final rule limited to a host", func(c *Config) {
			c.Rules = []Rule{{Path: "/", Host: "app.example.com"}}
		}, []string{"rules[0]"}},
		{"sentinel without wait_replicas", func(c *Config) {
			c.Store, c.Redis.Addrs, c.Redis.MasterName = "redis", []string{"a:26379", "b:26379"}, "authd"
		}, []string{"redis.wait_replicas"}},
		{"cluster without wait_replicas", func(c *Config) {
			c.Store, c.Redis.Addrs, c.Redis.KeyPrefix = "redis", []string{"a:6379", "b:6379"}, "{authd}:"
		}, []string{"redis.wait_replicas"}},
		{"sentinel with wait_replicas is fine", func(c *Config) {
			c.Store, c.Redis.Addrs, c.Redis.MasterName, c.Redis.WaitReplicas = "redis", []string{"a:26379"}, "authd", 1
		}, nil},
		{"standalone without wait_replicas is fine", func(c *Config) { c.Store = "redis" }, nil},
		{"embedded ignores the redis block", func(c *Config) { c.Redis.Addrs, c.Redis.MasterName = []string{"a:26379"}, "authd" }, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			c.Rules = []Rule{{Path: "/"}}
			tt.set(&c)
			got := Warnings(c, acc)
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want warnings for %q", got, tt.want)
			}
			for i, k := range tt.want {
				if !strings.HasPrefix(got[i], k+": ") {
					t.Errorf("warning %d: got %q, want it to start with %q", i, got[i], k+": ")
				}
			}
		})
	}
}

func TestDiff(t *testing.T) {
	for _, tt := range []struct {
		name          string
		set           func(*Config)
		live, restart []string
	}{
		{"nothing", func(*Config) {}, nil, nil},
		{"live settings", func(c *Config) {
			c.Session.IdleTimeout = Duration{time.Minute}
			c.Throttle.BaseDelay = Duration{5 * time.Second}
			c.Hash.MaxConcurrent = 7
			c.Log.Level = "debug"
			c.LoginTitle = "x"
			c.Rules = append(c.Rules, Rule{Path: "/x"})
			c.Networks = map[string]Network{"office": {CIDRs: []string{"192.0.2.0/24"}}}
		}, []string{"login_title", "session.idle_timeout", "hash.max_concurrent", "throttle.base_delay", "log.level", "networks", "rules"}, nil},
		{"restart settings", func(c *Config) {
			c.Listen = "127.0.0.1:9999"
			c.DataDir = "/elsewhere"
			c.Store = "redis"
			c.Redis.Addrs = []string{"10.0.0.1:6379"}
			c.Redis.PoolSize = 3
			c.Cookie.Name = "other"
			c.Timeouts.Read = Duration{time.Hour}
		}, nil, []string{"listen", "data_dir", "store", "cookie.name", "timeouts.read", "redis.addrs", "redis.pool_size"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old := valid()
			c := valid()
			c.Rules = slices.Clone(c.Rules)
			tt.set(&c)
			live, restart := Diff(old, c)
			if !slices.Equal(live, tt.live) || !slices.Equal(restart, tt.restart) {
				t.Errorf("got live %q restart %q, want live %q restart %q", live, restart, tt.live, tt.restart)
			}
		})
	}
}

// TestDiffCoversEveryKey makes a new config key a conscious choice: each
// key either sits in liveKeys or is reported as needing a restart, and
// liveKeys names only keys that exist.
func TestDiffCoversEveryKey(t *testing.T) {
	all := allKeys()
	for _, k := range liveKeys {
		if !slices.Contains(all, k) {
			t.Errorf("liveKeys names %q, which is no config key", k)
		}
	}
}

// allKeys lists every key Diff can report.
func allKeys() []string {
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(prefix+name+".", f.Type)
				continue
			}
			keys = append(keys, prefix+name)
		}
	}
	walk("", reflect.TypeOf(Config{}))
	return keys
}

// TestShippedConfigMarksRestartKeys keeps conf/authd.toml's "# restart"
// marks in step with what a reload applies.
func TestShippedConfigMarksRestartKeys(t *testing.T) {
	b, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	keyRE := regexp.MustCompile(`^([a-z_]+) = `)
	tableRE := regexp.MustCompile(`^\[([a-z_]+)\]`)
	inTable := false
	for _, line := range strings.Split(string(b), "\n") {
		marked := strings.Contains(line, "# restart")
		if m := tableRE.FindStringSubmatch(line); m != nil {
			inTable = true
			live := slices.Contains(liveKeys, m[1]) || slices.ContainsFunc(liveKeys, func(k string) bool { return strings.HasPrefix(k, m[1]+".") })
			if live == marked {
				t.Errorf("[%s]: marked restart %v, but live keys in it: %v", m[1], marked, live)
			}
			continue
		}
		if m := keyRE.FindStringSubmatch(line); m != nil && !inTable {
			if live := slices.Contains(liveKeys, m[1]); live == marked {
				t.Errorf("%s: marked restart %v, but live %v", m[1], marked, live)
			}
		}
	}
}
