// Package policy decides whether a request may pass: ordered access rules
// over host, canonical path, method and client network, first match wins,
// default deny.
package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Decision is the outcome of evaluating a request.
type Decision uint8

// The zero Decision is Login, so a forgotten branch never allows.
const (
	Login Decision = iota // no acceptable credentials: 401
	Deny                  // credentials present but refused: 403
	Allow                 // 200
)

func (d Decision) String() string {
	return [...]string{"login required (401)", "deny (403)", "allow (200)"}[d]
}

// Access says whom a rule admits.
type Access uint8

const (
	Authenticated Access = iota
	Public
	Denied
)

// Network is a named set of client addresses. Requests from it carry Role,
// if set, whether or not they come with a login.
type Network struct {
	Name     string
	Prefixes []netip.Prefix
	Role     string
}

// Rule admits requests that match all of its conditions. Empty conditions
// match anything. An Authenticated rule admits any logged-in user, or with
// Groups or Users only members of a group and the named users. Roles add
// access without a login for requests from networks carrying one of them.
type Rule struct {
	Host     string // "app.example.com", or "*.example.com" for any subdomain
	Path     string // canonical prefix: "/admin" covers "/admin/x", not "/administrator"
	Methods  []string
	Networks []netip.Prefix
	Access   Access
	Groups   []string
	Users    []string
	Roles    []string
	// Label names the rule in explanations, e.g. "rules[2]".
	Label string
	// Factor is what an Authenticated rule asks of the session beyond a
	// login; the zero Factor asks nothing.
	Factor Factor
}

// Factor is a rule's second-factor requirement.
type Factor struct {
	// Two demands a second factor in the session.
	Two bool
	// MaxAge, with Two, is how long ago the second factor may have been
	// proved; zero means any time during the session.
	MaxAge time.Duration
}

// String describes f for explanations.
func (f Factor) String() string {
	switch {
	case !f.Two:
		return "one factor"
	case f.MaxAge > 0:
		return fmt.Sprintf("two factors, the second within %v", f.MaxAge)
	}
	return "two factors"
}

// Request is what rules look at. User is empty for anonymous requests.
type Request struct {
	Host   string // lower-case, without port
	Method string // upper-case
	Path   string // canonical (see Canonical)
	// IP is the client address, as ClientAddr or Usable return it. The zero
	// Addr (or a zoned one) means the address is unknown or unusable: such a
	// request is in no network that allows or grants a role, and in every
	// network of a rule that denies, so not knowing an address never opens
	// more than knowing it would.
	IP     netip.Addr
	User   string
	Groups []string
}

type rule struct {
	Rule
	roles uint64 // bit set of role indexes
}

type network struct {
	prefixes []netip.Prefix
	role     uint64
}

// Rules is an immutable, ordered rule set.
type Rules struct {
	rules    []rule
	networks []network
	roles    []string // index → role name
	needsIP  bool
}

// New checks and copies rules. An empty rule set is an error: it would deny
// everything. Roles that rules name must be given to some network.
func New(rules []Rule, networks []Network) (*Rules, error) {
	if len(rules) == 0 {
		return nil, fmt.Errorf("no rules: every request would be denied")
	}
	rs := &Rules{}
	roleBit := func(name string) (uint64, bool) {
		i := slices.Index(rs.roles, name)
		return 1 << uint(i), i >= 0
	}
	for _, n := range networks {
		var bit uint64
		if n.Role != "" {
			if _, ok := roleBit(n.Role); !ok {
				if len(rs.roles) == 64 {
					return nil, fmt.Errorf("network %s: more than 64 roles", n.Name)
				}
				rs.roles = append(rs.roles, n.Role)
			}
			bit, _ = roleBit(n.Role)
		}
		if err := checkPrefixes(n.Prefixes); err != nil {
			return nil, fmt.Errorf("network %s: %w", n.Name, err)
		}
		rs.networks = append(rs.networks, network{prefixes: slices.Clone(n.Prefixes), role: bit})
	}
	for i, r := range rules {
		if r.Label == "" {
			r.Label = fmt.Sprintf("rule %d", i+1)
		}
		if p, ok := Canonical(r.Path); !ok || p != r.Path {
			return nil, fmt.Errorf("%s: path %q is not canonical", r.Label, r.Path)
		}
		if r.Access != Authenticated && r.Factor.Two {
			return nil, fmt.Errorf("%s: a second factor applies only to authenticated rules", r.Label)
		}
		if r.Access != Authenticated && (len(r.Groups) > 0 || len(r.Users) > 0 || len(r.Roles) > 0) {
			return nil, fmt.Errorf("%s: groups, users and roles apply only to authenticated rules", r.Label)
		}
		for _, m := range r.Methods {
			if !validMethod(m) {
				return nil, fmt.Errorf("%s: method %q must be an upper-case token", r.Label, m)
			}
		}
		if err := checkPrefixes(r.Networks); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Label, err)
		}
		r.Host = strings.ToLower(r.Host)
		cr := rule{Rule: r}
		for _, role := range r.Roles {
			bit, ok := roleBit(role)
			if !ok {
				return nil, fmt.Errorf("%s: role %q is given by no network", r.Label, role)
			}
			cr.roles |= bit
		}
		rs.rules = append(rs.rules, cr)
		rs.needsIP = rs.needsIP || len(r.Networks) > 0 || cr.roles != 0
	}
	return rs, nil
}

// checkPrefixes refuses ranges no client address can ever be in. Addresses
// are unmapped before matching (see ClientAddr), so a range inside
// ::ffff:0:0/96 would silently never match — a deny rule with it would deny
// no one. Such ranges must be written as IPv4.
func checkPrefixes(ps []netip.Prefix) error {
	for _, p := range ps {
		switch {
		case !p.IsValid():
			return fmt.Errorf("invalid network %v", p)
		case p.Bits() >= 96 && p.Masked().Addr().Is4In6():
			return fmt.Errorf("network %v is IPv4-mapped: write it as IPv4 (%v)", p, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked())
		}
	}
	return nil
}

func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 'A' || m[i] > 'Z' {
			return false
		}
	}
	return true
}

// ValidMethod reports whether m is an upper-case method token rules can match.
func ValidMethod(m string) bool { return validMethod(m) }

// Decide evaluates req. It returns the index of the deciding rule, or -1
// when no rule matched (default deny).
func (rs *Rules) Decide(req *Request) (Decision, int) {
	roles, rolesDone := uint64(0), false
	for i := range rs.rules {
		r := &rs.rules[i]
		if !r.matches(req) {
			continue
		}
		if r.roles != 0 && !rolesDone {
			roles, rolesDone = rs.rolesOf(req.IP), true
		}
		return r.decide(req, roles), i
	}
	if req.User == "" {
		return Login, -1
	}
	return Deny, -1
}

func (r *rule) matches(req *Request) bool {
	return HasPrefix(req.Path, r.Path) && hostMatches(req.Host, r.Host) &&
		(len(r.Methods) == 0 || slices.Contains(r.Methods, req.Method)) &&
		r.inNetworks(req.IP)
}

// inNetworks reports whether ip meets the rule's networks condition. An
// unknown or unusable address meets it only for a rule that denies: such a
// rule is there to keep someone out, and an address we cannot read may be
// theirs.
func (r *rule) inNetworks(ip netip.Addr) bool {
	if len(r.Networks) == 0 {
		return true
	}
	if ip = Usable(ip); !ip.IsValid() {
		return r.Access == Denied
	}
	return inAny(ip, r.Networks)
}

func (r *rule) decide(req *Request, roles uint64) Decision {
	switch {
	case r.Access == Public:
		return Allow
	case r.roles&roles != 0:
		return Allow // a network role grants access with or without a login
	case req.User == "":
		return Login
	case r.Access == Denied:
		return Deny
	case len(r.Groups) == 0 && len(r.Users) == 0:
		return Allow // roles only add access without a login; they restrict no one
	case slices.Contains(r.Users, req.User):
		return Allow
	}
	for _, g := range req.Groups {
		if slices.Contains(r.Groups, g) {
			return Allow
		}
	}
	return Deny
}

func (rs *Rules) rolesOf(ip netip.Addr) uint64 {
	var roles uint64
	for _, n := range rs.networks {
		if n.role != 0 && inAny(ip, n.prefixes) {
			roles |= n.role
		}
	}
	return roles
}

func hostMatches(host, pattern string) bool {
	switch {
	case pattern == "":
		return true
	case strings.HasPrefix(pattern, "*."):
		return len(host) > len(pattern)-1 && strings.HasSuffix(host, pattern[1:])
	default:
		return host == pattern
	}
}

// inAny reports whether ip lies in one of prefixes; an unknown or unusable
// address lies in none.
func inAny(ip netip.Addr, prefixes []netip.Prefix) bool {
	if ip = Usable(ip); !ip.IsValid() {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// FactorFor returns what the rule at index i (as Decide returned it) asks of
// req's session beyond the login it allowed: nothing for a public rule, a
// request let in by a network role, or no rule.
func (rs *Rules) FactorFor(req *Request, i int) Factor {
	if i < 0 || i >= len(rs.rules) {
		return Factor{}
	}
	r := &rs.rules[i]
	if r.Access != Authenticated || !r.Factor.Two || (r.roles != 0 && r.roles&rs.rolesOf(req.IP) != 0) {
		return Factor{}
	}
	return r.Factor
}

// Groups lists every group the rules name, so callers can check they exist.
func (rs *Rules) Groups() []string {
	var gs []string
	for _, r := range rs.rules {
		for _, g := range r.Groups {
			if !slices.Contains(gs, g) {
				gs = append(gs, g)
			}
		}
	}
	return gs
}

// Roles returns the role names the request's client address carries.
func (rs *Rules) Roles(ip netip.Addr) []string {
	var out []string
	mask := rs.rolesOf(ip)
	for i, name := range rs.roles {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// NeedsIP reports whether any rule looks at the client address, so callers
// can skip working it out when none does.
func (rs *Rules) NeedsIP() bool { return rs.needsIP }

// Len is the number of rules.
func (rs *Rules) Len() int { return len(rs.rules) }
