package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/authd/authd/authd/internal/config"
)

func TestExplainRedisTLS(t *testing.T) {
	cert := &x509.Certificate{DNSNames: []string{"redis.internal"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.20")}}
	unknownCA := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{Cert: cert}}
	wrongName := func(host string) error {
		return &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: cert, Host: host}}
	}
	refused := errors.New("dial tcp 10.0.0.20:6379: connect: connection refused")
	withCA := config.Redis{TLS: true, CAFile: "/etc/authd/redis-ca.pem", ServerName: "redis.other"}
	tests := []struct {
		name string
		r    config.Redis
		err  error
		want []string // in the message; nil means err unchanged
	}{
		{"unknown CA with ca_file", withCA, unknownCA,
			[]string{"redis.ca_file", "/etc/authd/redis-ca.pem", "set ca_file", "unknown authority"}},
		{"unknown CA with the system roots", config.Redis{TLS: true}, unknownCA,
			[]string{"redis.ca_file", "this system trusts", "set ca_file"}},
		{"wrong server_name", withCA, wrongName("redis.other"),
			[]string{"redis.server_name", "redis.internal, 10.0.0.20", `"redis.other"`, "set server_name"}},
		{"address not in the certificate", config.Redis{TLS: true}, wrongName("10.0.0.99"),
			[]string{"redis.server_name", `"10.0.0.99" from redis.addrs`, "set server_name"}},
		{"not a certificate problem", withCA, refused, nil},
		{"tls off", config.Redis{}, unknownCA, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explainRedisTLS(tt.err, tt.r)
			if !errors.Is(got, tt.err) {
				t.Fatalf("got %v, want it to wrap %v", got, tt.err)
			}
			if tt.want == nil {
				if got != tt.err {
					t.Fatalf("got %q, want the error unchanged", got)
				}
				return
			}
			for _, w := range tt.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("got %q, want it to mention %q", got, w)
				}
			}
		})
	}
}
