package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAP configures sign-in against an LDAP directory (search-then-bind). An
// empty URL turns it off; the other keys are still checked.
type LDAP struct {
	// URL is "ldap://host[:port]" or "ldaps://host[:port]"; empty disables LDAP.
	URL string `toml:"url"`
	// StartTLS upgrades an ldap:// connection to TLS before anything is sent.
	StartTLS bool `toml:"start_tls"`
	// CAFile (PEM) replaces the system roots for ldaps:// and StartTLS.
	CAFile string `toml:"ca_file"`
	// BindDN is the service account that searches for users; empty searches anonymously.
	BindDN string `toml:"bind_dn"`
	// BindPasswordFile and BindPasswordEnv name where the service account's
	// password is read from; never the config itself. Exactly one is needed with BindDN.
	BindPasswordFile string `toml:"bind_password_file"`
	BindPasswordEnv  string `toml:"bind_password_env"`
	// UserBase is the subtree searched for users.
	UserBase string `toml:"user_base"`
	// UserFilter finds the one entry of the name typed on the login form;
	// {name} is replaced by the name, escaped for a filter.
	UserFilter string `toml:"user_filter"`
	// NameAttr, EmailAttr and DisplayNameAttr are the entry's attributes for
	// the user's name in authd, email and display name.
	NameAttr        string `toml:"name_attr"`
	EmailAttr       string `toml:"email_attr"`
	DisplayNameAttr string `toml:"display_name_attr"`
	// GroupSource is where groups come from: "search" (GroupBase,
	// GroupFilter, GroupNameAttr), "memberof" (the entry's MemberOfAttr
	// values, DNs whose first RDN value names the group) or "none".
	GroupSource  string `toml:"group_source"`
	MemberOfAttr string `toml:"member_of_attr"`
	// GroupBase is the subtree searched for groups; GroupFilter finds the
	// user's groups with {dn} (the user's DN) and {name} replaced, escaped.
	GroupBase     string `toml:"group_base"`
	GroupFilter   string `toml:"group_filter"`
	GroupNameAttr string `toml:"group_name_attr"`
	// AllowedGroups, when set, admits only members of at least one of these
	// groups (names as authd sees them: lowercase).
	AllowedGroups []string `toml:"allowed_groups"`
	// DialTimeout bounds one connection attempt (TCP and TLS); Timeout one
	// request, and a sign-in's wait for a pooled connection.
	DialTimeout Duration `toml:"dial_timeout"`
	Timeout     Duration `toml:"timeout"`
	// PoolSize bounds the connections kept open to the directory, and so the
	// directory sign-ins in flight.
	PoolSize int `toml:"pool_size"`
}

// DefaultLDAP returns the [ldap] defaults: off, with an inetOrgPerson and
// groupOfNames layout ready for a url and user_base.
func DefaultLDAP() LDAP {
	return LDAP{
		UserFilter:      "(&(objectClass=inetOrgPerson)(uid={name}))",
		NameAttr:        "uid",
		EmailAttr:       "mail",
		DisplayNameAttr: "cn",
		GroupSource:     "search",
		MemberOfAttr:    "memberOf",
		GroupFilter:     "(&(objectClass=groupOfNames)(member={dn}))",
		GroupNameAttr:   "cn",
		AllowedGroups:   []string{},
		DialTimeout:     Duration{2 * time.Second},
		Timeout:         Duration{5 * time.Second},
		PoolSize:        4,
	}
}

// Enabled reports whether sign-in against the directory is on.
func (l LDAP) Enabled() bool { return l.URL != "" }

// BindPassword returns the service account's password from BindPasswordFile
// or BindPasswordEnv, or "" when neither is set. The file must not be
// accessible to other users; one trailing newline is dropped.
func (l LDAP) BindPassword() (string, error) {
	switch {
	case l.BindPasswordFile != "":
		fi, err := os.Stat(l.BindPasswordFile)
		if err != nil {
			return "", fmt.Errorf("ldap.bind_password_file: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o007 != 0 {
			return "", fmt.Errorf("ldap.bind_password_file: %s is %s by others (mode %04o); run chmod 600 %s",
				l.BindPasswordFile, access(perm), perm, l.BindPasswordFile)
		}
		b, err := os.ReadFile(l.BindPasswordFile)
		if err != nil {
			return "", fmt.Errorf("ldap.bind_password_file: %w", err)
		}
		p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if p == "" {
			return "", fmt.Errorf("ldap.bind_password_file: %s is empty", l.BindPasswordFile)
		}
		return p, nil
	case l.BindPasswordEnv != "":
		p, ok := os.LookupEnv(l.BindPasswordEnv)
		if !ok || p == "" {
			return "", fmt.Errorf("ldap.bind_password_env: environment variable %s is not set", l.BindPasswordEnv)
		}
		return p, nil
	}
	return "", nil
}

// checkLDAP validates the [ldap] block. Keys are checked even when url is
// empty, so a block prepared before it is turned on is already right.
func (c Config) checkLDAP(e *Errors) {
	l := c.LDAP
	if l.URL != "" {
		checkLDAPURL(e, l)
		if l.UserBase == "" {
			e.add("ldap.user_base", `required with ldap.url: the subtree users are searched in, e.g. "ou=people,dc=example,dc=com" (got "")`)
		}
	}
	if l.StartTLS && strings.HasPrefix(strings.ToLower(l.URL), "ldaps:") {
		e.add("ldap.start_tls", "must be false with an ldaps:// url, which is TLS from the start (got true)")
	}
	if l.CAFile != "" && !filepath.IsAbs(l.CAFile) {
		e.add("ldap.ca_file", "must be an absolute path (got %q)", l.CAFile)
	}
	if l.BindDN != "" {
		if _, err := ldap.ParseDN(l.BindDN); err != nil {
			e.add("ldap.bind_dn", "must be a DN such as \"cn=authd,ou=services,dc=example,dc=com\" (got %q)", l.BindDN)
		}
		if l.BindPasswordFile == "" && l.BindPasswordEnv == "" {
			e.add("ldap.bind_password_file", "set bind_password_file or bind_password_env with bind_dn")
		}
	} else if l.BindPasswordFile != "" || l.BindPasswordEnv != "" {
		e.add("ldap.bind_dn", `must be set when a bind password is (got "")`)
	}
	if l.BindPasswordFile != "" && l.BindPasswordEnv != "" {
		e.add("ldap.bind_password_file", "set bind_password_file or bind_password_env, not both")
	}
	if l.BindPasswordFile != "" && !filepath.IsAbs(l.BindPasswordFile) {
		e.add("ldap.bind_password_file", "must be an absolute path (got %q)", l.BindPasswordFile)
	}
	if l.BindPasswordEnv != "" && !validEnvName(l.BindPasswordEnv) {
		e.add("ldap.bind_password_env", "must be an environment variable name such as AUTHD_LDAP_PASSWORD (got %q)", l.BindPasswordEnv)
	}
	checkDN(e, "ldap.user_base", l.UserBase)
	checkFilter(e, "ldap.user_filter", l.UserFilter, true, "{name}")
	for _, a := range []struct{ key, v string }{
		{"ldap.name_attr", l.NameAttr}, {"ldap.email_attr", l.EmailAttr},
		{"ldap.display_name_attr", l.DisplayNameAttr}, {"ldap.member_of_attr", l.MemberOfAttr},
		{"ldap.group_name_attr", l.GroupNameAttr},
	} {
		if !attrName(a.v) {
			e.add(a.key, "must be an attribute name such as \"uid\" (got %q)", a.v)
		}
	}
	switch l.GroupSource {
	case "search":
		if l.URL != "" && l.GroupBase == "" {
			e.add("ldap.group_base", `required with group_source = "search": the subtree groups are searched in (got "")`)
		}
	case "memberof", "none":
	default:
		e.add("ldap.group_source", `must be "search", "memberof" or "none" (got %q)`, l.GroupSource)
	}
	checkDN(e, "ldap.group_base", l.GroupBase)
	checkFilter(e, "ldap.group_filter", l.GroupFilter, false, "{dn}", "{name}")
	for i, g := range l.AllowedGroups {
		if !groupName(g) {
			e.add(index("ldap.allowed_groups", i), "must be a group name of a-z, 0-9, '.', '_' and '-' (got %q)", g)
		}
	}
	if l.AllowedGroups == nil {
		e.add("ldap.allowed_groups", "must be a list; [] admits every directory user (got nothing)")
	}
	within(e, "ldap.dial_timeout", l.DialTimeout, 10*time.Millisecond, 30*time.Second)
	within(e, "ldap.timeout", l.Timeout, 10*time.Millisecond, 30*time.Second)
	if l.PoolSize < 1 || l.PoolSize > 256 {
		e.add("ldap.pool_size", "must be from 1 to 256 (got %d)", l.PoolSize)
	}
}

func checkLDAPURL(e *Errors, l LDAP) {
	u, err := url.Parse(l.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		e.add("ldap.url", `must be "ldap://host[:port]" or "ldaps://host[:port]" (got %q)`, l.URL)
		return
	}
	if p := u.Port(); p != "" && !validPort(p) {
		e.add("ldap.url", "port must be a number from 1 to 65535 (got %q)", l.URL)
		return
	}
	// Users' passwords cross this connection: in clear only to this machine.
	if u.Scheme == "ldap" && !l.StartTLS && !loopbackHost(u.Hostname()) {
		e.add("ldap.start_tls", "must be true for an ldap:// url that is not on this machine, or passwords cross the network in clear; or use ldaps:// (got false)")
	}
	if u.Scheme == "ldap" && !l.StartTLS && l.CAFile != "" {
		e.add("ldap.ca_file", "is used only with ldaps:// or start_tls = true (got %q)", l.CAFile)
	}
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func checkDN(e *Errors, key, dn string) {
	if dn == "" {
		return
	}
	if _, err := ldap.ParseDN(dn); err != nil {
		e.add(key, "must be a DN such as \"ou=people,dc=example,dc=com\" (got %q)", dn)
	}
}

// checkFilter checks that f compiles with its placeholders filled in and,
// when one is required, that it holds at least one of them.
func checkFilter(e *Errors, key, f string, required bool, placeholders ...string) {
	filled, found := f, false
	for _, p := range placeholders {
		found = found || strings.Contains(f, p)
		filled = strings.ReplaceAll(filled, p, "x")
	}
	if required && !found {
		e.add(key, "must contain %s, where the name typed on the login form goes (got %q)", strings.Join(placeholders, " or "), f)
		return
	}
	if !found {
		e.add(key, "must contain %s, or it would match the same groups for every user (got %q)", strings.Join(placeholders, " or "), f)
		return
	}
	if _, err := ldap.CompileFilter(filled); err != nil {
		e.add(key, "must be an LDAP filter such as \"(uid={name})\": %v (got %q)", err, f)
	}
}

// attrName reports whether s is an LDAP attribute description: a name of
// letters, digits and hyphens starting with a letter, or a numeric OID.
func attrName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == ';') {
			return false
		}
	}
	return true
}

// groupName mirrors the users file's group names, so an allowed group can match.
func groupName(g string) bool {
	if g == "" || len(g) > 64 {
		return false
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
