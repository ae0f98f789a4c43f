// Package authdtest holds what the black-box suites under tests/ share:
// building the authd binary and a self-signed certificate for nginx.
package authdtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Build compiles authd into dst, stamped with the checkout's commit.
func Build(dst string) error {
	args := []string{"build", "-o", dst}
	if c := Commit(); c != "" {
		// go build records no VCS data here: this machine sets
		// GOFLAGS=-buildvcs=false, and a git worktree (its .git is a file)
		// is not stamped anyway.
		args = append(args, "-ldflags", "-X main.commit="+c)
	}
	cmd := exec.Command("go", append(args, "./authd")...)
	cmd.Dir = Root()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./authd: %v\n%s", err, out)
	}
	return nil
}

// Commit is the checkout's HEAD, with "-dirty" when the tree has changes;
// "" when git cannot tell.
func Commit() string {
	out, err := exec.Command("git", "-C", Root(), "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", Root(), "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += "-dirty"
	}
	return c
}

// BuildOnce builds authd into a temporary directory and points AUTHD_BIN at
// it, unless AUTHD_BIN is already set; for a suite's TestMain. cleanup
// removes what it built.
func BuildOnce() (cleanup func(), err error) {
	if os.Getenv("AUTHD_BIN") != "" {
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "authd-bin-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "authd")
	if err := Build(bin); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	os.Setenv("AUTHD_BIN", bin)
	return func() { os.RemoveAll(dir) }, nil
}

// WriteCert writes cert.pem and key.pem for localhost and 127.0.0.1 into dir,
// valid for a day.
func WriteCert(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}
