package account

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"strconv"
	"strings"
	"time"
)

// TLS modes of a Mailer, as config.SMTP.StartTLS names them.
const (
	TLSStartTLS = "starttls"
	TLSNone     = "none"
	TLSImplicit = "implicit"
)

// Mailer sends plain-text mail through one SMTP server.
type Mailer struct {
	Host string
	Port int
	From string
	// Username and Password, if Username is set, authenticate with AUTH
	// PLAIN, which net/smtp sends only over TLS or to localhost.
	Username, Password string
	// TLS is TLSStartTLS (required), TLSNone or TLSImplicit.
	TLS string
	// Timeout bounds one delivery; zero means 10s.
	Timeout time.Duration
	// RootCAs verifies the server's certificate; nil means the system's.
	RootCAs *x509.CertPool
}

// Message is one mail.
type Message struct {
	To, Subject, Body string
}

// Send delivers m. The recipient must be one plain address; header fields
// are built here, so nothing a user typed can add a header.
func (mr *Mailer) Send(ctx context.Context, m Message) error {
	to, err := mail.ParseAddress(m.To)
	if err != nil || strings.ContainsAny(m.To, "\r\n") {
		return fmt.Errorf("mail to %q: not one address", m.To)
	}
	from, err := mail.ParseAddress(mr.From)
	if err != nil {
		return fmt.Errorf("smtp.from: %w", err)
	}
	timeout := mr.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	addr := net.JoinHostPort(mr.Host, strconv.Itoa(mr.Port))
	tc := &tls.Config{ServerName: mr.Host, RootCAs: mr.RootCAs, MinVersion: tls.VersionTLS12}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if mr.TLS == TLSImplicit {
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("smtp %s: tls: %w", addr, err)
		}
		conn = tconn
	}
	c, err := smtp.NewClient(conn, mr.Host)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Hello(helloName(from.Address)); err != nil {
		return fmt.Errorf("smtp %s: hello: %w", addr, err)
	}
	if mr.TLS == TLSStartTLS || mr.TLS == "" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("smtp %s: the server does not offer STARTTLS (set smtp.starttls = false only for a relay on this host)", addr)
		}
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("smtp %s: starttls: %w", addr, err)
		}
	}
	if mr.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", mr.Username, mr.Password, mr.Host)); err != nil {
			return fmt.Errorf("smtp %s: auth: %w", addr, err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("smtp %s: mail from: %w", addr, err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return fmt.Errorf("smtp %s: rcpt to: %w", addr, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: data: %w", addr, err)
	}
	if _, err := w.Write(format(mr.From, to.Address, m, time.Now())); err != nil {
		return fmt.Errorf("smtp %s: data: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: data: %w", addr, err)
	}
	if err := c.Quit(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("smtp %s: quit: %w", addr, err)
	}
	return nil
}

// helloName is the name authd greets with: the sender's domain.
func helloName(from string) string {
	if _, d, ok := strings.Cut(from, "@"); ok && d != "" && !strings.ContainsAny(d, " \r\n[]") {
		return d
	}
	return "localhost"
}

// format renders m as an RFC 5322 message with CRLF line ends.
func format(from, to string, m Message, now time.Time) []byte {
	var id [12]byte
	_, _ = rand.Read(id[:])
	var b bytes.Buffer
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	h("From", from)
	h("To", to)
	h("Subject", mime.QEncoding.Encode("utf-8", oneLine(m.Subject)))
	h("Date", now.Format(time.RFC1123Z))
	domain := "localhost"
	if a, err := mail.ParseAddress(from); err == nil {
		domain = helloName(a.Address)
	}
	h("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "8bit")
	h("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	b.WriteString(body)
	if !strings.HasSuffix(body, "\r\n") {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// InviteMessage is the mail carrying an invite link.
func InviteMessage(to, site, link string, expires time.Time) Message {
	return Message{To: to, Subject: "Your invitation to " + site, Body: fmt.Sprintf(
		"You have been invited to %s.\n\nOpen this link to choose your password and sign in:\n\n%s\n\n"+
			"The link works once and expires %s.\nIf you did not expect this mail, ignore it.\n",
		site, link, expires.UTC().Format("2006-01-02 15:04 MST"))}
}

// ResetMessage is the mail carrying a password-reset link.
func ResetMessage(to, site, user, link string, expires time.Time) Message {
	return Message{To: to, Subject: "Reset your password for " + site, Body: fmt.Sprintf(
		"Someone asked to reset the password of the account %q on %s.\n\nOpen this link to choose a new password:\n\n%s\n\n"+
			"The link works once and expires %s. Using it signs the account out everywhere.\n"+
			"If you did not ask for this, ignore this mail: your password stays as it is.\n",
		user, site, link, expires.UTC().Format("2006-01-02 15:04 MST"))}
}

// EmailAllowed reports whether addr is one plain address whose domain is
// one of domains (exactly, case-insensitively).
func EmailAllowed(addr string, domains []string) bool {
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != strings.TrimSpace(addr) {
		return false
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 {
		return false
	}
	d := strings.ToLower(a.Address[at+1:])
	for _, ok := range domains {
		if d == strings.ToLower(ok) {
			return true
		}
	}
	return false
}
