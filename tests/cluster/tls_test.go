package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made by the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a server certificate for dnsName (and no IP address), signed by ca, and its key.
func (ca *testCA) issue(t testing.TB, dnsName, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: dnsName},
		DNSNames:  []string{dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	must(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
}

// TestRedisTLS: redis-server listening only on its TLS port, with a certificate for redis.test
// from a CA the test makes. authd with tls = true, that CA in ca_file and server_name = redis.test
// works across two instances (login on one, verify and logout seen by the other). Started with
// another CA, or with a server name the certificate does not hold (or none, so that the address
// 127.0.0.1 is checked), authd refuses to start, and its message names the setting to fix.
func TestRedisTLS(t *testing.T) {
	requireCluster(t)
	var port int
	var caFile, otherCA string
	c := newTopology(t, func(c *cluster) string {
		dir := filepath.Join(c.dir, "tls")
		must(t, os.MkdirAll(dir, 0o700))
		ca := newTestCA(t, "authd test Redis CA")
		caFile = filepath.Join(dir, "ca.pem")
		must(t, os.WriteFile(caFile, ca.pem, 0o644))
		otherCA = filepath.Join(dir, "other-ca.pem")
		must(t, os.WriteFile(otherCA, newTestCA(t, "some other CA").pem, 0o644))
		ca.issue(t, "redis.test", filepath.Join(dir, "redis.pem"), filepath.Join(dir, "redis.key"))
		port = freePort(t, "127.0.0.1")
		c.redisServer("redis", port, "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", filepath.Join(dir, "redis.pem"), "--tls-key-file", filepath.Join(dir, "redis.key"),
			"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no")
		return fmt.Sprintf("addrs = [\"127.0.0.1:%d\"]\ntls = true\nca_file = %q\nserver_name = \"redis.test\"\nkey_prefix = \"authd:\"", port, caFile)
	})

	t.Run("login on one instance, verify and logout seen by the other", func(t *testing.T) {
		cookie, resp := c.login("http://"+c.authdAddrs[0], "ada", password)
		if cookie == "" {
			t.Fatalf("login over TLS to Redis: got %s", resp.Status)
		}
		if got := c.verify(1, cookie); got != 200 {
			t.Fatalf("verify on authd-1: got %d, want 200", got)
		}
		c.logout(1, cookie)
		if got := c.verify(0, cookie); got != 401 {
			t.Fatalf("verify on authd-0 after logout on authd-1: got %d, want 401", got)
		}
	})
	plain, err := tryCLI(port, "PING")
	if err == nil && strings.Contains(plain, "PONG") {
		t.Fatalf("redis answered PING in plain text on its TLS port: the test's Redis is not using TLS")
	}

	for _, tt := range []struct {
		name, block string
		want        []string
	}{
		{"another CA", fmt.Sprintf("addrs = [\"127.0.0.1:%d\"]\ntls = true\nca_file = %q\nserver_name = \"redis.test\"", port, otherCA),
			[]string{"redis.ca_file", otherCA, "unknown authority"}},
		{"another server name", fmt.Sprintf("addrs = [\"127.0.0.1:%d\"]\ntls = true\nca_file = %q\nserver_name = \"other.test\"", port, caFile),
			[]string{"redis.server_name", "other.test", "redis.test"}},
		{"no server name, address not in the certificate", fmt.Sprintf("addrs = [\"127.0.0.1:%d\"]\ntls = true\nca_file = %q", port, caFile),
			[]string{"redis.server_name", "127.0.0.1", "redis.test"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(c.dir, "refused-"+strings.ReplaceAll(tt.name, " ", "-"))
			must(t, os.MkdirAll(dir, 0o700))
			conf := filepath.Join(dir, "authd.toml")
			must(t, os.WriteFile(conf, []byte(fmt.Sprintf("listen = \"127.0.0.1:%d\"\npublic_url = \"https://localhost\"\ndata_dir = %q\nstore = \"redis\"\n\n[redis]\n%s\n",
				freePort(t, "127.0.0.1"), dir, tt.block)), 0o600))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, c.bin, "serve", "-config", conf).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("authd serve: got %v, want exit status 1 (refused at start)\n%s", err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("authd serve's message does not mention %q:\n%s", w, out)
				}
			}
			t.Logf("refused with: %s", strings.TrimSpace(string(out)))
		})
	}
}
