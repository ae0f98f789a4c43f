package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/authd/authd/tests/internal/authdtest"
)

// smtpServer is a real SMTP server (aiosmtpd from PyPI) with a
// certificate for localhost that stores each mail it receives in a Maildir.
type smtpServer struct {
	port    int
	maildir string
	cert    string
}

// startSMTP starts aiosmtpd, its files and log in dir, with the Python
// that has it: $AIOSMTPD_PYTHON, else the Streamlit venv's, where
// tests/run.sh installs it. It stops when the test ends.
// tls is "starttls" (STARTTLS offered and required), "implicit" (TLS from
// the first byte) or "none".
func startSMTP(t *testing.T, dir, tls string) *smtpServer {
	t.Helper()
	s := &stack{dir: dir, procs: map[string]*proc{}}
	must(t, os.MkdirAll(filepath.Join(dir, "logs"), 0o755))
	py := os.Getenv("AIOSMTPD_PYTHON")
	if py == "" {
		py = filepath.Join(filepath.Dir(lookTool(t, "STREAMLIT", "/opt/streamlit/venv/bin/streamlit", "streamlit")), "python")
	}
	if out, err := exec.Command(py, "-c", "import aiosmtpd").CombinedOutput(); err != nil {
		t.Fatalf("aiosmtpd is not installed for %s (tests/run.sh installs it): %v\n%s", py, err, out)
	}
	must(t, authdtest.WriteCert(dir))
	m := &smtpServer{port: freePort(t), maildir: filepath.Join(dir, "maildir"), cert: filepath.Join(dir, "cert.pem")}
	args := []string{"-m", "aiosmtpd", "-n", "-l", fmt.Sprintf("127.0.0.1:%d", m.port)}
	switch tls {
	case "starttls":
		args = append(args, "--tlscert", m.cert, "--tlskey", filepath.Join(dir, "key.pem"))
	case "implicit":
		args = append(args, "--smtpscert", m.cert, "--smtpskey", filepath.Join(dir, "key.pem"))
	}
	cmd := exec.Command(py, append(args, "-c", "aiosmtpd.handlers.Mailbox", m.maildir)...)
	p := s.start(t, "smtp", cmd)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("---- smtp log (tail) ----\n%s", tail(filepath.Join(dir, "logs", "smtp.log"), 40))
		}
	})
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", m.port), 15*time.Second)
	return m
}

// mails returns the delivered mails, oldest first.
func (m *smtpServer) mails(t testing.TB) []*mail.Message {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(m.maildir, "new", "*"))
	type item struct {
		mod time.Time
		msg *mail.Message
	}
	var items []item
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("mail %s: %v", f, err)
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, item{fi.ModTime(), msg})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].mod.Before(items[j].mod) })
	out := make([]*mail.Message, len(items))
	for i, it := range items {
		out[i] = it.msg
	}
	return out
}

// waitMail waits for the n-th mail (from 1) and returns its recipient, subject and body.
func (m *smtpServer) waitMail(t testing.TB, n int) (to, subject, body string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if got := m.mails(t); len(got) >= n {
			msg := got[n-1]
			b := new(strings.Builder)
			_, _ = bufio.NewReader(msg.Body).WriteTo(b)
			return msg.Header.Get("To"), msg.Header.Get("Subject"), b.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail #%d within 15s (have %d)", n, len(m.mails(t)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after %s: %v", addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// linkIn returns the path of the one link to this site's prefix+kind in body.
func linkIn(t testing.TB, s *stack, body, kind string) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(s.origin()) + `(/authd/` + kind + `/[A-Za-z0-9_-]{43})\r?\n`)
	m := re.FindAllStringSubmatch(body, -1)
	if len(m) != 1 {
		t.Fatalf("want one %s link to %s in the mail, got %d:\n%s", kind, s.origin(), len(m), body)
	}
	return m[0][1]
}

// fill types into the inputs named by CSS selectors.
func (b *browser) fillFields(pairs ...string) {
	b.t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		b.do(chromedp.Clear(chromedp.CSS(pairs[i])), chromedp.SendKeys(chromedp.CSS(pairs[i]), pairs[i+1]))
	}
}

// TestAccountByMail drives the account flows through nginx with Chromium
// and a real SMTP server that requires STARTTLS: an invite made with the
// CLI arrives by mail, the invitee follows it, picks a name and password
// and lands in the Streamlit app; changes the password on the account
// page; signs out; asks "Forgot password?" and gets a reset link by mail,
// which works once; signs in with the new password. An unknown address
// gets the same answer and no mail.
func TestAccountByMail(t *testing.T) {
	requireE2E(t)
	smtp := startSMTP(t, t.TempDir(), "starttls")
	// authd (serve and the CLI) trusts the SMTP server's certificate as a system root.
	t.Setenv("SSL_CERT_FILE", smtp.cert)
	s := newStackOpts(t, "", stackOpts{authdTOML: fmt.Sprintf(`
[smtp]
host = "localhost"
port = %d
from = "Example sign-in <signin@example.com>"
starttls = true

[account]
tokens = true
`, smtp.port)})
	b := newBrowser(t, s)

	out := s.authd(t, "", []string{"invite", "create"}, "-email", "bea@example.com", "-groups", "staff", "-expires", "2h")
	if !strings.Contains(out, "mailed to bea@example.com") {
		t.Fatalf("invite create: %s", out)
	}
	to, subject, body := smtp.waitMail(t, 1)
	if to != "bea@example.com" || !strings.Contains(subject, "invitation") {
		t.Fatalf("invite mail: to %q subject %q", to, subject)
	}
	invite := linkIn(t, s, body, "invite")
	if !strings.Contains(out, s.origin()+invite) {
		t.Fatalf("the CLI printed another link than it mailed: %s", out)
	}

	b.navigate(s.origin() + invite)
	b.waitText("Create your account", 15*time.Second)
	b.screenshot("invite")
	b.fillFields(`#username`, "bea", `#password`, "first long passphrase", `#password2`, "first long passphrase")
	b.submitAndWait(`form button[type="submit"]`)
	b.waitPath("/", 15*time.Second)
	b.waitText("Hello, bea!", 30*time.Second)

	b.navigate(s.origin() + invite)
	b.waitText("This link is not valid", 15*time.Second)

	b.navigate(s.origin() + "/authd/account")
	b.waitText("Change password", 15*time.Second)
	b.fillFields(`#current`, "first long passphrase", `#password`, "second long passphrase", `#password2`, "second long passphrase")
	b.submitAndWait(`form[action="/authd/account/password"] button[type="submit"]`)
	b.waitText("Your password was changed", 15*time.Second)
	b.fillFields(`#label`, "nightly export")
	b.submitAndWait(`form[action="/authd/account/tokens"]:not(.inline) button[type="submit"]`)
	b.waitText("Copy it now", 15*time.Second)
	// The screenshot is committed: it shows no usable token.
	if _, err := eval[bool](b, `(document.getElementById("newtoken").value = "authd_tok_…", true)`); err != nil {
		t.Fatal(err)
	}
	b.screenshot("account")
	b.do(chromedp.EmulateViewport(375, 800))
	b.screenshot("account-375")
	wide, err := eval[bool](b, "document.documentElement.scrollWidth > 375")
	if err != nil || wide {
		t.Errorf("the account page is wider than a 375px phone (%v)", err)
	}
	b.do(chromedp.EmulateViewport(1280, 1100))

	b.navigate(s.origin() + "/authd/logout")
	b.submitAndWait(`form button[type="submit"]`)
	b.waitPath("/authd/login", 15*time.Second)
	b.screenshot("login-forgot")
	b.do(chromedp.Click(chromedp.Search(`//a[normalize-space(.)="Forgot password?"]`)))
	b.waitPath("/authd/forgot", 15*time.Second)
	b.fillFields(`#address`, "nobody@example.com")
	b.submitAndWait(`form button[type="submit"]`)
	unknown := b.text()
	b.navigate(s.origin() + "/authd/forgot")
	b.waitText("Forgot your password?", 15*time.Second)
	b.fillFields(`#address`, "BEA@example.com")
	b.submitAndWait(`form button[type="submit"]`)
	if known := b.text(); known != unknown || !strings.Contains(known, "If an account matches") {
		t.Fatalf("the answers differ for a known and an unknown address:\n%s\n---\n%s", known, unknown)
	}
	to, subject, body = smtp.waitMail(t, 2)
	if to != "bea@example.com" || !strings.Contains(subject, "Reset your password") || !strings.Contains(body, "expires") {
		t.Fatalf("reset mail: to %q subject %q\n%s", to, subject, body)
	}
	time.Sleep(time.Second)
	if n := len(smtp.mails(t)); n != 2 {
		t.Fatalf("got %d mails, want 2 (none for the unknown address)", n)
	}
	reset := linkIn(t, s, body, "reset")
	b.navigate(s.origin() + reset)
	b.waitText("Choose a new password for the account bea", 15*time.Second)
	b.screenshot("reset")
	b.fillFields(`#password`, "third long passphrase", `#password2`, "third long passphrase")
	b.submitAndWait(`form button[type="submit"]`)
	b.waitText("Your password was changed", 15*time.Second)
	b.navigate(s.origin() + reset)
	b.waitText("This link is not valid", 15*time.Second)

	b.navigate(s.origin() + "/")
	b.waitPath("/authd/login", 15*time.Second)
	b.login("bea", "second long passphrase")
	b.waitText("Incorrect username or password", 15*time.Second)
	b.login("bea", "third long passphrase")
	b.waitPath("/", 15*time.Second)
	b.waitText("Hello, bea!", 30*time.Second)
}

// TestMailTLSModes sends invite mails with the CLI through real SMTP
// servers in each [smtp] starttls mode, and checks that authd refuses to
// send where the mode's protection is missing: starttls = true against a
// server without STARTTLS, and a certificate authd does not trust.
func TestMailTLSModes(t *testing.T) {
	requireE2E(t)
	bin := os.Getenv("AUTHD_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "authd")
		must(t, authdtest.Build(bin))
	}
	for _, tc := range []struct {
		name, server, setting string
		trust, delivered      bool
		refusal               string
	}{
		{"starttls", "starttls", "true", true, true, ""},
		{"implicit", "implicit", `"implicit"`, true, true, ""},
		{"plain relay", "none", "false", false, true, ""},
		{"starttls required but not offered", "none", "true", true, false, "does not offer STARTTLS"},
		{"untrusted certificate", "starttls", "true", false, false, "certificate"},
		{"implicit, untrusted certificate", "implicit", `"implicit"`, false, false, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			smtp := startSMTP(t, filepath.Join(dir, "smtp"), tc.server)
			conf := filepath.Join(dir, "authd.toml")
			must(t, os.WriteFile(filepath.Join(dir, "users.toml"), nil, 0o600))
			must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`public_url = "https://app.example.com"
data_dir = %q
users_file = %q
[smtp]
host = "localhost"
port = %d
from = "signin@example.com"
starttls = %s
timeout = "5s"
`, filepath.Join(dir, "data"), filepath.Join(dir, "users.toml"), smtp.port, tc.setting)), 0o600))
			cmd := exec.Command(bin, "invite", "create", "-config", conf, "-email", "dan@example.com")
			cmd.Env = os.Environ()
			if tc.trust {
				cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+smtp.cert)
			} else {
				cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+filepath.Join(dir, "none.pem"))
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if tc.delivered {
				if err != nil {
					t.Fatalf("invite create: %v\n%s", err, stderr.String())
				}
				to, _, body := smtp.waitMail(t, 1)
				if to != "dan@example.com" || !strings.Contains(body, strings.TrimSpace(stdout.String())) {
					t.Fatalf("mail to %q lacks the printed link %q:\n%s", to, stdout.String(), body)
				}
				return
			}
			if err == nil || !strings.Contains(stderr.String(), "mailing it failed") || !strings.Contains(stderr.String(), tc.refusal) {
				t.Fatalf("invite create: got %v, stderr %q; want a refusal naming %q", err, stderr.String(), tc.refusal)
			}
			time.Sleep(300 * time.Millisecond)
			if n := len(smtp.mails(t)); n != 0 {
				t.Fatalf("got %d mails, want none", n)
			}
		})
	}
}
