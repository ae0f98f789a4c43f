package idp

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func testLDAP(t *testing.T) *LDAP {
	t.Helper()
	l, err := NewLDAP(LDAPConfig{
		URL: "ldap://127.0.0.1:1", UserBase: "ou=people,dc=example,dc=com", UserFilter: "(uid={name})",
		NameAttr: "uid", GroupSource: "search", GroupBase: "ou=groups,dc=example,dc=com",
		GroupFilter: "(member={dn})", GroupNameAttr: "cn", Timeout: 50 * time.Millisecond, DialTimeout: 50 * time.Millisecond, PoolSize: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNewLDAPRefusesBadFilter(t *testing.T) {
	_, err := NewLDAP(LDAPConfig{UserFilter: "(uid={name}", GroupSource: "none"})
	if err == nil {
		t.Fatal("got no error for an unbalanced filter")
	}
}

func TestEmptyPasswordAsksNobody(t *testing.T) {
	l := testLDAP(t)
	l.dial = func() (*ldap.Conn, error) {
		t.Error("dialled the directory for an empty password")
		return nil, errors.New("no")
	}
	_, err := l.Authenticate(context.Background(), "dora", "")
	var f *Failure
	if !errors.As(err, &f) || !errors.Is(err, ErrInvalidCredentials) || f.Reason != "empty_password" {
		t.Fatalf("got %v, want an invalid-credentials failure, reason empty_password", err)
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	l := testLDAP(t)
	_, err := l.Authenticate(context.Background(), "dora", "pw")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if err := l.Ping(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping: got %v, want ErrUnavailable", err)
	}
	if len(l.slots) != 0 {
		t.Fatalf("%d slots still taken after failed dials", len(l.slots))
	}
}

func TestFullPoolWaitsAtMostTimeout(t *testing.T) {
	l := testLDAP(t)
	l.slots <- struct{}{} // the only connection is in use
	start := time.Now()
	_, err := l.Authenticate(context.Background(), "dora", "pw")
	if took := time.Since(start); !errors.Is(err, ErrUnavailable) || took > time.Second {
		t.Fatalf("got %v after %v, want ErrUnavailable within about the 50ms timeout", err, took)
	}
}

func TestBindFailure(t *testing.T) {
	locked := &ldap.SimpleBindResult{Controls: []ldap.Control{&ldap.ControlBeheraPasswordPolicy{Error: 1, Expire: -1, Grace: -1}}}
	for _, tt := range []struct {
		name   string
		br     *ldap.SimpleBindResult
		err    error
		kind   error
		reason string
	}{
		{"wrong password", nil, ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New("x")), ErrInvalidCredentials, "bad_password"},
		{"locked by ppolicy", locked, ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New("x")), ErrInvalidCredentials, "locked"},
		{"disabled (AD)", nil, ldap.NewError(ldap.LDAPResultUnwillingToPerform, errors.New("x")), ErrInvalidCredentials, "refused_by_directory"},
		{"network", nil, ldap.NewError(ldap.ErrorNetwork, errors.New("x")), ErrUnavailable, "directory_unavailable"},
		{"busy", nil, ldap.NewError(ldap.LDAPResultBusy, errors.New("x")), ErrUnavailable, "directory_unavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := bindFailure(tt.br, tt.err)
			var f *Failure
			if !errors.As(err, &f) || !errors.Is(err, tt.kind) || f.Reason != tt.reason {
				t.Fatalf("got %v, want %v with reason %s", err, tt.kind, tt.reason)
			}
		})
	}
}

func TestGroupsFromDNs(t *testing.T) {
	got := groupsFromDNs([]string{
		"cn=Admins,ou=groups,dc=example,dc=com",
		"CN=Analysts,OU=Groups,DC=example,DC=com",
		"cn=admins,ou=other,dc=example,dc=com", // the same name twice
		"not a dn",
		"ou=Team+cn=Ops,dc=example,dc=com", // multi-valued RDN: the cn
	}, "cn")
	if want := []string{"admins", "analysts", "ops"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"ldap://ldap.example.com":      "ldap.example.com",
		"ldap://ldap.example.com:389/": "ldap.example.com",
		"ldaps://[::1]:636":            "::1",
		"ldap://127.0.0.1":             "127.0.0.1",
	} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q): got %q, want %q", in, got, want)
		}
	}
}
