package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ldapConfig() Config {
	c := valid()
	c.LDAP.URL = "ldaps://ldap.example.com"
	c.LDAP.BindDN = "cn=authd,ou=services,dc=example,dc=com"
	c.LDAP.BindPasswordEnv = "AUTHD_LDAP_PASSWORD"
	c.LDAP.UserBase = "ou=people,dc=example,dc=com"
	c.LDAP.GroupBase = "ou=groups,dc=example,dc=com"
	return c
}

func TestLDAPValid(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*LDAP)
	}{
		{"ldaps", func(*LDAP) {}},
		{"start_tls with a CA", func(l *LDAP) {
			l.URL, l.StartTLS, l.CAFile = "ldap://ldap.example.com:389", true, "/etc/authd/ldap-ca.pem"
		}},
		{"plain ldap on loopback", func(l *LDAP) { l.URL = "ldap://127.0.0.1:3389" }},
		{"anonymous search", func(l *LDAP) { l.BindDN, l.BindPasswordEnv = "", "" }},
		{"memberof without group_base", func(l *LDAP) { l.GroupSource, l.GroupBase = "memberof", "" }},
		{"lock filter and allowed groups", func(l *LDAP) {
			l.UserFilter = "(&(uid={name})(!(nsAccountLock=TRUE)))"
			l.AllowedGroups = []string{"staff", "admins"}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ldapConfig()
			tt.set(&c.LDAP)
			if err := c.Validate(); err != nil {
				t.Fatalf("got %v, want nil", err)
			}
		})
	}
}

func TestLDAPRejects(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*LDAP)
		want string
	}{
		{"http url", func(l *LDAP) { l.URL = "http://ldap.example.com" }, "ldap.url"},
		{"url with base dn", func(l *LDAP) { l.URL = "ldap://ldap.example.com/dc=example,dc=com"; l.StartTLS = true }, "ldap.url"},
		{"url bad port", func(l *LDAP) { l.URL = "ldaps://ldap.example.com:0" }, "ldap.url"},
		{"clear text to another host", func(l *LDAP) { l.URL = "ldap://ldap.example.com" }, "ldap.start_tls"},
		{"start_tls with ldaps", func(l *LDAP) { l.StartTLS = true }, "ldap.start_tls"},
		{"relative ca", func(l *LDAP) { l.CAFile = "ca.pem" }, "ldap.ca_file"},
		{"no user_base", func(l *LDAP) { l.UserBase = "" }, "ldap.user_base"},
		{"bad user_base", func(l *LDAP) { l.UserBase = "people" }, "ldap.user_base"},
		{"bind_dn without password", func(l *LDAP) { l.BindPasswordEnv = "" }, "ldap.bind_password_file"},
		{"password without bind_dn", func(l *LDAP) { l.BindDN = "" }, "ldap.bind_dn"},
		{"both passwords", func(l *LDAP) { l.BindPasswordFile = "/etc/authd/ldap.pw" }, "ldap.bind_password_file"},
		{"bad env name", func(l *LDAP) { l.BindPasswordEnv = "1X" }, "ldap.bind_password_env"},
		{"filter without name", func(l *LDAP) { l.UserFilter = "(uid=*)" }, "ldap.user_filter"},
		{"filter unbalanced", func(l *LDAP) { l.UserFilter = "(uid={name}" }, "ldap.user_filter"},
		{"group filter for everyone", func(l *LDAP) { l.GroupFilter = "(objectClass=groupOfNames)" }, "ldap.group_filter"},
		{"search without group_base", func(l *LDAP) { l.GroupBase = "" }, "ldap.group_base"},
		{"unknown group source", func(l *LDAP) { l.GroupSource = "posix" }, "ldap.group_source"},
		{"bad attribute", func(l *LDAP) { l.EmailAttr = "e mail" }, "ldap.email_attr"},
		{"bad allowed group", func(l *LDAP) { l.AllowedGroups = []string{"Domain Admins"} }, "ldap.allowed_groups[0]"},
		{"zero timeout", func(l *LDAP) { l.Timeout = dur("0s") }, "ldap.timeout"},
		{"slow dial", func(l *LDAP) { l.DialTimeout = dur("1m") }, "ldap.dial_timeout"},
		{"zero pool", func(l *LDAP) { l.PoolSize = 0 }, "ldap.pool_size"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ldapConfig()
			tt.set(&c.LDAP)
			e := problems(t, c.Validate())
			if got := keys(e); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("got %q, want [%s]", got, tt.want)
			}
		})
	}
}

func TestLDAPBindPassword(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := (LDAP{BindPasswordFile: good}).BindPassword(); p != "s3cret" || err != nil {
		t.Errorf("file: got %q, %v; want s3cret", p, err)
	}
	if _, err := (LDAP{BindPasswordFile: open}).BindPassword(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable file: got %v, want a chmod hint", err)
	}
	t.Setenv("AUTHD_TEST_LDAP_PW", "from-env")
	if p, err := (LDAP{BindPasswordEnv: "AUTHD_TEST_LDAP_PW"}).BindPassword(); p != "from-env" || err != nil {
		t.Errorf("env: got %q, %v; want from-env", p, err)
	}
	if _, err := (LDAP{BindPasswordEnv: "AUTHD_TEST_LDAP_UNSET"}).BindPassword(); err == nil {
		t.Error("unset env: got no error")
	}
}

func TestLDAPQuietsUnknownGroupWarnings(t *testing.T) {
	c := ldapConfig()
	c.Rules = []Rule{{Path: "/analysts", Allow: "authenticated", Groups: []string{"analysts"}}, {Path: "/", Allow: "authenticated"}}
	if w := Warnings(c, noAccounts{}); len(w) != 0 {
		t.Errorf("with a directory: got %q, want no warning for a group only the directory may hold", w)
	}
	c.LDAP.URL = ""
	if w := Warnings(c, noAccounts{}); len(w) != 1 {
		t.Errorf("without a directory: got %q, want the warning for a group nobody holds", w)
	}
}

type noAccounts struct{}

func (noAccounts) HasUser(string) bool  { return false }
func (noAccounts) HasGroup(string) bool { return false }
