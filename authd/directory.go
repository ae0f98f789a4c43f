package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/idp"
)

// openDirectory builds the LDAP client of [ldap], or returns nil when
// ldap.url is empty. It reads the CA file and the service account's
// password, so that a mistake there stops authd before it serves, but it
// does not contact the directory: a directory that is down at start only
// stops directory sign-ins, as it does later.
func openDirectory(c config.LDAP) (*idp.LDAP, error) {
	if !c.Enabled() {
		return nil, nil
	}
	pw, err := c.BindPassword()
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldap.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap.ca_file: %s holds no PEM certificate", c.CAFile)
		}
		tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return idp.NewLDAP(idp.LDAPConfig{
		URL: c.URL, StartTLS: c.StartTLS, TLS: tc,
		BindDN: c.BindDN, BindPassword: pw,
		UserBase: c.UserBase, UserFilter: c.UserFilter,
		NameAttr: c.NameAttr, EmailAttr: c.EmailAttr, DisplayNameAttr: c.DisplayNameAttr,
		GroupSource: c.GroupSource, MemberOfAttr: c.MemberOfAttr,
		GroupBase: c.GroupBase, GroupFilter: c.GroupFilter, GroupNameAttr: c.GroupNameAttr,
		AllowedGroups: c.AllowedGroups,
		DialTimeout:   c.DialTimeout.Duration, Timeout: c.Timeout.Duration,
		PoolSize: c.PoolSize,
	})
}
