package config

import (
	"fmt"
	"net"
	"net/netip"
)

// Accounts is what Warnings needs to know about the users a config's rules
// name; *users.DB provides it.
type Accounts interface {
	HasUser(name string) bool
	HasGroup(group string) bool
}

// Warnings returns what is legal in c but probably not meant, each as
// "key: what is odd". None of them stops authd from starting or reloading:
// users change while authd runs (removing the last member of a group is an
// ordinary edit), and a rule that names a group nobody holds then simply
// admits nobody through that group.
func Warnings(c Config, a Accounts) []string {
	var w []string
	if network, addr := c.ListenNetwork(); network == "tcp" && !loopback(addr) {
		w = append(w, fmt.Sprintf("listen: %s is not a loopback address: anyone who can reach it can ask authd directly; only nginx should", c.Listen))
	}
	for i, r := range c.Rules {
		k := index("rules", i)
		// With a directory, users and groups appear when directory users
		// first sign in: a name no record holds yet is not a mistake.
		if a != nil && !c.LDAP.Enabled() {
			for j, g := range r.Groups {
				if !a.HasGroup(g) {
					w = append(w, fmt.Sprintf("%s: no user is in group %q, so this rule admits nobody through it", index(k+".groups", j), g))
				}
			}
			for j, u := range r.Users {
				if !a.HasUser(u) {
					w = append(w, fmt.Sprintf("%s: there is no user %q, so this rule admits nobody by that name", index(k+".users", j), u))
				}
			}
		}
	}
	if m := c.Redis.Mode(); c.Store == "redis" && m != RedisStandalone && c.Redis.WaitReplicas == 0 {
		w = append(w, fmt.Sprintf("redis.wait_replicas: 0 with a Redis %s: a failover can lose a logout or revocation the primary confirmed but had not yet replicated, and the old cookie works again; set 1 to confirm them only once a replica holds them", m))
	}
	if n := len(c.Rules); n > 0 && !catchAll(c.Rules[n-1]) {
		w = append(w, fmt.Sprintf(`%s: the last rule is not a catch-all rule for path "/": requests no rule matches are refused (401, or 403 after login); end with one to make that choice visible`, index("rules", n-1)))
	}
	return w
}

// catchAll reports whether r matches every request.
func catchAll(r Rule) bool {
	return (r.Path == "/" || r.Path == "") && r.Host == "" && len(r.Methods) == 0 && len(r.Networks) == 0
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
