package policy

import (
	"net/netip"
	"strings"
)

// ClientAddr reads one client address as a trusted proxy reports it (an
// X-Forwarded-For hop, X-Real-IP): surrounding spaces and tabs aside, it must
// be one plain IP. Anything else — a port, brackets, an IPv6 zone, a list,
// an empty string — gives the zero Addr, which rules treat as an unknown
// client (see Request.IP); nothing is guessed or substituted. An
// IPv4-mapped IPv6 address (::ffff:10.1.2.3) is returned as the IPv4
// address it carries, so IPv4 ranges match it whichever socket family the
// proxy used.
func ClientAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(strings.Trim(s, " \t"))
	if err != nil {
		return netip.Addr{}
	}
	return Usable(a)
}

// Usable returns a as rules match it: IPv4-mapped addresses unmapped, and the
// zero Addr for a zoned IPv6 address. A zone names a link, not a host —
// fe80::1 on eth0 and on eth1 are different machines — so no range can
// vouch for it.
func Usable(a netip.Addr) netip.Addr {
	if !a.IsValid() || a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}
