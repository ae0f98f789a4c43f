package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/authd/authd/authd/internal/config"
)

// explainRedisTLS turns a failed check of Redis's certificate into a message
// that names the [redis] setting to fix: Go's own text ("certificate signed
// by unknown authority") says what is wrong but not where authd took the CA
// or the name from. Other errors are returned as they are.
func explainRedisTLS(err error, r config.Redis) error {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	switch {
	case !r.TLS:
		return err
	case errors.As(err, &ua) && r.CAFile != "":
		return fmt.Errorf("redis.ca_file: Redis's certificate is not signed by the CA in %s; set ca_file to the PEM file of the CA that signed it: %w", r.CAFile, err)
	case errors.As(err, &ua):
		return fmt.Errorf("redis.ca_file: Redis's certificate is not signed by a CA this system trusts; set ca_file to the PEM file of the CA that signed it: %w", err)
	case errors.As(err, &he) && he.Certificate != nil:
		names := certNames(he.Certificate)
		if r.ServerName != "" {
			return fmt.Errorf("redis.server_name: Redis's certificate is for %s, not %q; set server_name to one of those names: %w", names, r.ServerName, err)
		}
		return fmt.Errorf("redis.server_name: Redis's certificate is for %s, not %q from redis.addrs; set server_name to one of those names: %w", names, he.Host, err)
	}
	return err
}

// certNames lists the names and addresses a certificate is valid for.
func certNames(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no name (it has no subject alternative names)"
	}
	return strings.Join(names, ", ")
}
