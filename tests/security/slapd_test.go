package security

import (
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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The directory every slapd of the suite holds (dc=example,dc=com): the service account authd
// searches with, and people in ou=people with groups (groupOfNames, and memberOf from the
// memberof overlay) in ou=groups:
//   - dora: Analysts; signs in.
//   - max: Admins and Analysts.
//   - lena: Analysts, locked with the ppolicy overlay (pwdAccountLockedTime) by lockInDirectory.
//   - olga: in no group that allowed_groups admits.
//   - ada: a directory entry with the same name as the stack's local user ada, another password.
const (
	ldapSuffix   = "dc=example,dc=com"
	ldapAdminDN  = "cn=admin,dc=example,dc=com"
	ldapAdminPW  = "directory-admin-secret"
	ldapServiceD = "cn=authd,ou=services,dc=example,dc=com"
	ldapServicPW = "service-account-secret"
	doraPassword = "dora directory password"
	maxPassword  = "max directory password"
	lenaPassword = "lena directory password"
	olgaPassword = "olga directory password"
	adaDirPW     = "ada's directory password"
)

const slapdConf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath %[2]s
moduleload back_mdb
moduleload ppolicy
moduleload memberof
pidfile %[1]s/slapd.pid
TLSCACertificateFile %[1]s/ca.pem
TLSCertificateFile %[1]s/server.pem
TLSCertificateKeyFile %[1]s/server.key
database mdb
maxsize 16777216
suffix "dc=example,dc=com"
rootdn "cn=admin,dc=example,dc=com"
rootpw %[3]s
directory %[1]s/db
overlay memberof
overlay ppolicy
ppolicy_default "cn=default,ou=policies,dc=example,dc=com"
ppolicy_use_lockout
access to attrs=userPassword by anonymous auth by self write by * none
access to * by dn.exact="cn=authd,ou=services,dc=example,dc=com" read by self read by * none
`

func directoryLDIF() string {
	person := func(uid, cn, mail, pw string) string {
		s := fmt.Sprintf("dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s\n",
			uid, ldapSuffix, uid, cn, uid, pw)
		if mail != "" {
			s += "mail: " + mail + "\n"
		}
		return s
	}
	group := func(cn string, uids ...string) string {
		s := fmt.Sprintf("dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\n", cn, ldapSuffix, cn)
		for _, u := range uids {
			s += fmt.Sprintf("member: uid=%s,ou=people,%s\n", u, ldapSuffix)
		}
		return s
	}
	ou := func(name string) string {
		return fmt.Sprintf("dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n", name, ldapSuffix, name)
	}
	return strings.Join([]string{
		fmt.Sprintf("dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n", ldapSuffix),
		ou("people"), ou("groups"), ou("services"), ou("policies"),
		fmt.Sprintf("dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: authd\nuserPassword: %s\n", ldapServiceD, ldapServicPW),
		// The ppolicy overlay enforces pwdAccountLockedTime only for entries a policy covers.
		fmt.Sprintf("dn: cn=default,ou=policies,%s\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\npwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 0\n", ldapSuffix),
		person("dora", "Dora Directory", "dora@example.com", doraPassword),
		person("max", "Max Admin", "max@example.com", maxPassword),
		person("lena", "Lena Locked", "", lenaPassword),
		person("olga", "Olga Outside", "", olgaPassword),
		person("ada", "Ada in the Directory", "ada@directory.example.com", adaDirPW),
		group("Analysts", "dora", "max", "lena"),
		group("Admins", "max"),
		group("Visitors", "olga"),
	}, "\n")
}

// slapd is a real OpenLDAP server on loopback (plain LDAP with StartTLS, and LDAPS), configured
// by the test in a temporary directory, run as the test's user, stopped when the test ends.
type slapd struct {
	bin, dir         string
	port, tlsPort    int
	caFile, otherCA  string // the CA that signed slapd's certificate, and one that did not
	cmd              *exec.Cmd
	done             chan struct{}
	ldapadd, ldapmod string
	ldapwhoami       string
}

func requireSlapd(t *testing.T) *slapd {
	t.Helper()
	requireE2E(t)
	bin, err := lookTool("SLAPD", "slapd", "/usr/sbin/slapd")
	if err != nil {
		t.Fatalf("LDAP tests need slapd and ldap-utils (tests/run.sh installs them): %v", err)
	}
	d := &slapd{bin: bin, dir: t.TempDir()}
	for _, tool := range []struct {
		dst  *string
		name string
	}{{&d.ldapadd, "ldapadd"}, {&d.ldapmod, "ldapmodify"}, {&d.ldapwhoami, "ldapwhoami"}} {
		if *tool.dst, err = exec.LookPath(tool.name); err != nil {
			t.Fatalf("LDAP tests need ldap-utils: %v", err)
		}
	}
	if d.port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if d.tlsPort, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if err := d.writeTLS(); err != nil {
		t.Fatal(err)
	}
	modules := "/usr/lib/ldap"
	if _, err := os.Stat(filepath.Join(modules, "back_mdb.la")); err != nil {
		t.Fatalf("slapd modules not in %s: %v", modules, err)
	}
	if err := os.MkdirAll(filepath.Join(d.dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(slapdConf, d.dir, modules, ldapAdminPW)
	if err := os.WriteFile(filepath.Join(d.dir, "slapd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	t.Cleanup(d.stop)
	d.modify(t, "-a", directoryLDIF())
	return d
}

// start runs slapd in the foreground (-d 0) in its own process group and waits until it answers.
func (d *slapd) start(t *testing.T) {
	t.Helper()
	urls := fmt.Sprintf("ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", d.port, d.tlsPort)
	cmd := exec.Command(d.bin, "-h", urls, "-f", filepath.Join(d.dir, "slapd.conf"), "-d", "0")
	logf, err := os.OpenFile(filepath.Join(d.dir, "slapd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start slapd: %v", err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(d.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := exec.Command(d.ldapwhoami, "-x", "-H", d.url(), "-D", ldapAdminDN, "-w", ldapAdminPW).CombinedOutput()
		if err == nil {
			return
		}
		select {
		case <-d.done:
			t.Fatalf("slapd exited: %s", d.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd not answering after 15s: %v %s\n%s", err, out, d.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills slapd (SIGKILL: the directory going away, not a shutdown) and waits for it.
func (d *slapd) stop() {
	if d.cmd == nil {
		return
	}
	select {
	case <-d.done:
	default:
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
	d.cmd = nil
}

func (d *slapd) url() string    { return "ldap://127.0.0.1:" + strconv.Itoa(d.port) }
func (d *slapd) tlsURL() string { return "ldaps://127.0.0.1:" + strconv.Itoa(d.tlsPort) }

func (d *slapd) log() string { return tail(filepath.Join(d.dir, "slapd.log"), 20) }

// modify runs ldapmodify as the directory's admin with the LDIF on stdin; "-a" adds entries.
func (d *slapd) modify(t *testing.T, mode, ldif string) {
	t.Helper()
	args := []string{"-x", "-H", d.url(), "-D", ldapAdminDN, "-w", ldapAdminPW}
	if mode != "" {
		args = append(args, mode)
	}
	cmd := exec.Command(d.ldapmod, args...)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ldapmodify: %v\n%s\n%s", err, out, ldif)
	}
}

// lockInDirectory locks an account the way OpenLDAP's ppolicy overlay does after too many
// failures, permanently (pwdAccountLockedTime 000001010000Z).
func (d *slapd) lockInDirectory(t *testing.T, uid string) {
	t.Helper()
	d.modify(t, "", fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n", uid, ldapSuffix))
}

// ldapConfig is the [ldap] block for this directory; tweak is appended inside the block.
func (d *slapd) ldapConfig(url string, tweak string) string {
	return fmt.Sprintf(`
[ldap]
url = %q
bind_dn = %q
bind_password_file = %q
user_base = "ou=people,dc=example,dc=com"
group_base = "ou=groups,dc=example,dc=com"
allowed_groups = ["analysts", "admins"]
dial_timeout = "1s"
timeout = "2s"
%s
`, url, ldapServiceD, filepath.Join(d.dir, "service.pw"), tweak)
}

// writeTLS makes a CA, slapd's certificate for 127.0.0.1 signed by it, a second CA that signed
// nothing, and the service account's password file (0600).
func (d *slapd) writeTLS() error {
	caKey, caCert, caDER, err := newCA("authd test directory CA")
	if err != nil {
		return err
	}
	_, _, otherDER, err := newCA("some other CA")
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	d.caFile, d.otherCA = filepath.Join(d.dir, "ca.pem"), filepath.Join(d.dir, "other-ca.pem")
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.pem", pemBlock("CERTIFICATE", caDER), 0o644},
		{"other-ca.pem", pemBlock("CERTIFICATE", otherDER), 0o644},
		{"server.pem", pemBlock("CERTIFICATE", der), 0o644},
		{"server.key", pemBlock("PRIVATE KEY", kder), 0o600},
		{"service.pw", []byte(ldapServicPW + "\n"), 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(d.dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func newCA(name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, der, err
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
