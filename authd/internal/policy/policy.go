// Package policy decides whether a request may pass: ordered access rules
// over canonical paths, first match wins, default deny.
package policy

import (
	"fmt"
	"slices"
)

// Decision is the outcome of evaluating a request.
type Decision uint8

// The zero Decision is Login, so a forgotten branch never allows.
const (
	Login Decision = iota // no acceptable credentials: 401
	Deny                  // credentials present but refused: 403
	Allow                 // 200
)

// Access says whom a rule admits.
type Access uint8

const (
	Authenticated Access = iota
	Public
	Denied
)

// Rule admits requests under Path. A Rule with Groups or Users admits only
// authenticated members of either list.
type Rule struct {
	Path   string
	Access Access
	Groups []string
	Users  []string
}

// Identity is who a request comes from; the zero Identity is anonymous.
type Identity struct {
	User   string
	Groups []string
}

// Rules is an immutable, ordered rule set.
type Rules struct{ rules []Rule }

// New checks and copies rules. An empty rule set is an error: it would deny everything.
func New(rules []Rule) (*Rules, error) {
	if len(rules) == 0 {
		return nil, fmt.Errorf("no rules: every request would be denied")
	}
	for i, r := range rules {
		if p, ok := Canonical(r.Path); !ok || p != r.Path {
			return nil, fmt.Errorf("rule %d: path %q is not canonical", i+1, r.Path)
		}
		if r.Access != Authenticated && (len(r.Groups) > 0 || len(r.Users) > 0) {
			return nil, fmt.Errorf("rule %d: groups and users apply only to authenticated rules", i+1)
		}
	}
	return &Rules{rules: slices.Clone(rules)}, nil
}

// Decide evaluates the canonical path for id. It returns the index of the
// deciding rule, or -1 when no rule matched (default deny).
func (rs *Rules) Decide(path string, id Identity) (Decision, int) {
	for i := range rs.rules {
		r := &rs.rules[i]
		if !HasPrefix(path, r.Path) {
			continue
		}
		switch {
		case r.Access == Public:
			return Allow, i
		case id.User == "":
			return Login, i
		case r.Access == Denied:
			return Deny, i
		case admits(r, id):
			return Allow, i
		default:
			return Deny, i
		}
	}
	if id.User == "" {
		return Login, -1
	}
	return Deny, -1
}

func admits(r *Rule, id Identity) bool {
	if len(r.Groups) == 0 && len(r.Users) == 0 {
		return true
	}
	if slices.Contains(r.Users, id.User) {
		return true
	}
	for _, g := range id.Groups {
		if slices.Contains(r.Groups, g) {
			return true
		}
	}
	return false
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
