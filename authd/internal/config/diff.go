package config

import (
	"reflect"
	"slices"
	"strings"
)

// liveKeys are the keys a running authd applies on reload (SIGHUP or the
// admin socket). Every other key needs a restart, so a key added later and
// not listed here is reported as needing one rather than ignored in silence.
var liveKeys = []string{
	"trusted_proxies", "login_title", "default_redirect", "redirect_hosts",
	"session.idle_timeout", "session.lifetime", "session.remember_idle_timeout", "session.remember_lifetime", "session.touch_interval",
	"hash.memory_kib", "hash.time", "hash.threads", "hash.max_bcrypt_cost", "hash.max_concurrent", "hash.max_queue", "hash.queue_timeout",
	"throttle.account_failures", "throttle.ip_failures", "throttle.base_delay", "throttle.max_delay", "throttle.window", "throttle.max_entries",
	"log.level", "networks", "rules",
	"branding.product_name", "branding.logo_file", "branding.accent_color", "branding.footer_links",
}

// Diff lists the keys whose values differ between old and new, split into
// those a reload applies (live) and those that take effect only after a
// restart. Tables of networks and the rule list count as one key each.
func Diff(old, new Config) (live, restart []string) {
	for _, k := range changedKeys("", reflect.ValueOf(old), reflect.ValueOf(new)) {
		if slices.Contains(liveKeys, k) {
			live = append(live, k)
		} else {
			restart = append(restart, k)
		}
	}
	return live, restart
}

var durationType = reflect.TypeOf(Duration{})

// changedKeys walks two values of one struct type and returns the TOML key
// of every leaf that differs, in declaration order.
func changedKeys(prefix string, a, b reflect.Value) []string {
	var out []string
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		fa, fb := a.Field(i), b.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			out = append(out, changedKeys(key+".", fa, fb)...)
			continue
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			out = append(out, key)
		}
	}
	return out
}
