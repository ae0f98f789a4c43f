package policy

import "strings"

// HostOnly is a Host value as rules match it: its ASCII letters lower-cased,
// its port and an IPv6 literal's brackets dropped. verify and authd explain
// both read hosts with it. Only ASCII letters fold: strings.ToLower would
// turn the Kelvin sign (U+212A), which nginx passes through unchanged, into
// "k", and a host no server_name names would then match the rules of one
// that has a "k" in it.
func HostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	for i := 0; i < len(h); i++ {
		if 'A' <= h[i] && h[i] <= 'Z' {
			b := []byte(h)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return h
}
