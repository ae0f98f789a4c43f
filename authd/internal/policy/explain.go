package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Step is one rule's part in a decision.
type Step struct {
	Label   string
	Rule    string // the rule's conditions, as configured
	Matched bool
	Why     string // why it did not match, or why it decided as it did
}

// Explain walks the rules as Decide does and says, for each rule up to the
// deciding one, why it matched or not. The Decision equals Decide's.
func (rs *Rules) Explain(req *Request) ([]Step, Decision, int) {
	var steps []Step
	roles := rs.rolesOf(req.IP)
	for i := range rs.rules {
		r := &rs.rules[i]
		st := Step{Label: r.Label, Rule: r.describe()}
		switch {
		case !HasPrefix(req.Path, r.Path):
			st.Why = fmt.Sprintf("path %s is not under %s", req.Path, r.Path)
		case !hostMatches(req.Host, r.Host):
			st.Why = fmt.Sprintf("host %q does not match %q", req.Host, r.Host)
		case len(r.Methods) > 0 && !slices.Contains(r.Methods, req.Method):
			st.Why = fmt.Sprintf("method %s is not one of %s", req.Method, strings.Join(r.Methods, ", "))
		case !r.inNetworks(req.IP):
			st.Why = fmt.Sprintf("client %s is in none of its networks", addrOrNone(req))
		default:
			st.Matched = true
			d := r.decide(req, roles)
			st.Why = rs.reason(r, req, roles, d)
			if len(r.Networks) > 0 && !Usable(req.IP).IsValid() {
				st.Why += " (the client address is unknown, and every deny rule with networks applies to an unknown address)"
			}
			steps = append(steps, st)
			return steps, d, i
		}
		steps = append(steps, st)
	}
	d, _ := rs.Decide(req)
	return steps, d, -1
}

func (rs *Rules) reason(r *rule, req *Request, roles uint64, d Decision) string {
	who := req.User
	if who == "" {
		who = "an anonymous request"
	}
	switch {
	case r.Access == Public:
		return "public: anyone may pass"
	case r.roles&roles != 0:
		return fmt.Sprintf("client %s carries role %s", addrOrNone(req), strings.Join(rs.namesOf(r.roles&roles), ", "))
	case req.User == "":
		return "needs a login"
	case r.Access == Denied:
		return "deny rule"
	case d == Allow && len(r.Groups) == 0 && len(r.Users) == 0:
		return "any logged-in user may pass"
	case d == Allow && slices.Contains(r.Users, req.User):
		return who + " is listed in users"
	case d == Allow:
		return who + " is in an allowed group"
	default:
		return fmt.Sprintf("%s (groups: %s) is not in its users, groups or roles", who, noneIfEmpty(req.Groups))
	}
}

func (rs *Rules) namesOf(mask uint64) []string {
	var out []string
	for i, n := range rs.roles {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func (r *rule) describe() string {
	parts := []string{"path " + r.Path}
	if r.Host != "" {
		parts = append(parts, "host "+r.Host)
	}
	if len(r.Methods) > 0 {
		parts = append(parts, "methods "+strings.Join(r.Methods, ","))
	}
	if len(r.Networks) > 0 {
		ns := make([]string, len(r.Networks))
		for i, n := range r.Networks {
			ns[i] = n.String()
		}
		parts = append(parts, "networks "+strings.Join(ns, ","))
	}
	switch r.Access {
	case Public:
		parts = append(parts, "allow public")
	case Denied:
		parts = append(parts, "deny")
	default:
		parts = append(parts, "allow authenticated")
		if len(r.Users) > 0 {
			parts = append(parts, "users "+strings.Join(r.Users, ","))
		}
		if len(r.Groups) > 0 {
			parts = append(parts, "groups "+strings.Join(r.Groups, ","))
		}
		if len(r.Roles) > 0 {
			parts = append(parts, "roles "+strings.Join(r.Roles, ","))
		}
		if r.Factor.Two {
			parts = append(parts, "factor two")
			if r.Factor.MaxAge > 0 {
				parts = append(parts, "factor_max_age "+r.Factor.MaxAge.String())
			}
		}
	}
	return strings.Join(parts, "; ")
}

func addrOrNone(req *Request) string {
	if ip := Usable(req.IP); ip.IsValid() {
		return ip.String()
	}
	return "(unknown address)"
}

func noneIfEmpty(gs []string) string {
	if len(gs) == 0 {
		return "none"
	}
	return strings.Join(gs, ",")
}
