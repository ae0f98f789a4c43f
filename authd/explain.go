package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/users"
)

// cmdExplain prints which rule decides a request and why: the tool for
// "I can't get in".
func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("explain", stderr)
	user := fs.String("user", "", "user name (empty: a request without a login)")
	path := fs.String("path", "", "request path, as the browser sends it (query allowed)")
	method := fs.String("method", "GET", "request method")
	ip := fs.String("ip", "", "client address as nginx forwards it (empty: unknown)")
	host := fs.String("host", "", "request host")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *path == "" {
		return usagef("explain -path P [-user NAME] [-method M] [-ip ADDR] [-host H]")
	}
	cfg, db, rules, err := loadAll(ctx, *cfgPath)
	if err != nil {
		return err
	}
	// The host is read exactly as verify reads a forwarded one.
	req := policy.Request{Host: policy.HostOnly(*host), Method: *method}
	if !policy.ValidMethod(req.Method) {
		return usagef("-method %q: methods are upper-case tokens such as GET", *method)
	}
	// The address is read exactly as verify reads a forwarded one, so an
	// operator can ask what a port, a zone or garbage would get.
	req.IP = policy.ClientAddr(*ip)
	who := "without a login"
	if *user != "" {
		name, err := users.Canonical(*user)
		if err != nil {
			return fmt.Errorf("user %q: %w", *user, err)
		}
		u, ok := db.Lookup(name)
		switch {
		case !ok:
			fmt.Fprintf(stdout, "decision: login required (401): no user %s, so no session can exist\n", name)
			return nil
		case u.Disabled:
			fmt.Fprintf(stdout, "decision: login required (401): user %s is locked, so every session of theirs is refused\n", name)
			return nil
		}
		req.User, req.Groups = u.Name, u.Groups
		who = fmt.Sprintf("as %s (groups: %s; %s)", u.Name, orNone(u.Groups), sourceOf(u.Source))
	}
	var ok bool
	if req.Path, ok = policy.Canonical(*path); !ok {
		d := "login required (401)"
		if req.User != "" {
			d = "deny (403)"
		}
		fmt.Fprintf(stdout, "decision: %s: path %q can be read two ways (encoded slash, dot or backslash, control byte, \";\" parameter, bad escape, or a \".\" or \"..\" segment), so it is refused before any rule\n", d, *path)
		return nil
	}
	from := "an unknown address (of rules with networks, only those that deny apply)"
	switch {
	case req.IP.IsValid():
		from = req.IP.String()
		if a, err := netip.ParseAddr(strings.TrimSpace(*ip)); err == nil && a.Is4In6() {
			from += " (IPv4-mapped " + a.String() + ", matched as IPv4)"
		}
		if roles := rules.Roles(req.IP); len(roles) > 0 {
			from += " (network roles: " + strings.Join(roles, ", ") + ")"
		}
	case *ip != "":
		from = fmt.Sprintf("%q, which is not one plain IP, so: %s", *ip, from)
	}
	fmt.Fprintf(stdout, "request: %s %s%s from %s %s\n", req.Method, req.Host, req.Path, from, who)
	steps, d, idx := rules.Explain(&req)
	for _, st := range steps {
		verdict := "skip"
		if st.Matched {
			verdict = "MATCH"
		}
		fmt.Fprintf(stdout, "  %-9s %-5s %s\n            %s\n", st.Label, verdict, st.Rule, st.Why)
	}
	if idx < 0 {
		fmt.Fprintf(stdout, "decision: %s: no rule matches (default deny)\n", d)
		return nil
	}
	fmt.Fprintf(stdout, "decision: %s by %s\n", d, steps[len(steps)-1].Label)
	if d == policy.Allow && req.User != "" {
		f := rules.FactorFor(&req, idx)
		if g := requiredGroup(cfg.MFA.RequiredGroups, req.Groups); g != "" && !f.Two {
			f.Two = true
			fmt.Fprintf(stdout, "second factor: required (group %s is in mfa.required_groups)\n", g)
		} else if f.Two {
			fmt.Fprintf(stdout, "second factor: required by %s: %s\n", steps[len(steps)-1].Label, f)
		} else {
			fmt.Fprintf(stdout, "second factor: not required (a password is enough)\n")
		}
		if f.Two {
			fmt.Fprintf(stdout, "  a session without it is sent to the step-up page (401 for fetch and WebSocket)\n")
		}
	}
	return nil
}

// requiredGroup returns the first of groups that is in required, or "".
func requiredGroup(required, groups []string) string {
	for _, g := range groups {
		if slices.Contains(required, g) {
			return g
		}
	}
	return ""
}

func orNone(gs []string) string {
	if len(gs) == 0 {
		return "none"
	}
	return strings.Join(gs, ",")
}

// sourceOf says where a user's record comes from, for explain.
func sourceOf(source string) string {
	switch source {
	case "":
		return "local account"
	case "ldap":
		return "from the LDAP directory, groups as of their last sign-in"
	}
	return "from " + source + ", groups as of their last sign-in"
}
