package config

import (
	"fmt"
	"net/mail"
	"os"
	"strings"
	"time"
)

// SMTP configures the mail server invite and reset links are sent through.
// An empty Host sends no mail: links are then only printed (CLI) or shown
// (admin console), and the login page offers no "Forgot password?".
type SMTP struct {
	Host string `toml:"host"`
	Port int    `toml:"port"`
	// From is the sender address ("authd@example.com" or "Example <authd@example.com>").
	From string `toml:"from"`
	// Username and PasswordFile, when Username is set, authenticate with AUTH PLAIN
	// (only over TLS, or to a loopback server).
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	// StartTLS is true (upgrade with STARTTLS, refusing a server without it),
	// false (plain SMTP: only for a relay on this host) or "implicit" (TLS from
	// the first byte, usually port 465).
	StartTLS TLSMode `toml:"starttls"`
	// Timeout bounds one whole delivery: connect, TLS, and the SMTP dialogue.
	Timeout Duration `toml:"timeout"`
}

// TLSMode is how the SMTP connection is protected: "starttls", "none" or
// "implicit", written in TOML as true, false or "implicit".
type TLSMode string

// TLS modes of SMTP.StartTLS.
const (
	TLSStartTLS TLSMode = "starttls"
	TLSNone     TLSMode = "none"
	TLSImplicit TLSMode = "implicit"
)

// UnmarshalTOML accepts true, false or "implicit".
func (m *TLSMode) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case bool:
		if v {
			*m = TLSStartTLS
		} else {
			*m = TLSNone
		}
		return nil
	case string:
		if v == "implicit" {
			*m = TLSImplicit
			return nil
		}
	}
	return fmt.Errorf(`smtp.starttls: must be true, false or "implicit" (got %v)`, v)
}

// MarshalText writes the mode back as TOML accepts it.
func (m TLSMode) MarshalText() ([]byte, error) {
	switch m {
	case TLSNone:
		return []byte("false"), nil
	case TLSImplicit:
		return []byte("implicit"), nil
	}
	return []byte("true"), nil
}

// Enabled reports whether mail can be sent.
func (s SMTP) Enabled() bool { return s.Host != "" }

// Password reads PasswordFile ("" when none is set), refusing a file others can read.
func (s SMTP) Password() (string, error) {
	if s.PasswordFile == "" {
		return "", nil
	}
	fi, err := os.Stat(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("smtp.password_file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return "", fmt.Errorf("smtp.password_file: %s is %s by others (mode %04o); run chmod 600 %s",
			s.PasswordFile, access(perm), perm, s.PasswordFile)
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("smtp.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Registration says who may create their own account.
type Registration struct {
	// Mode is "off" (only the CLI and admins create users), "invite" (an
	// invite link is needed), "open" (anyone with an address in
	// AllowedEmailDomains) or "approval" (anyone may ask; an admin approves).
	Mode string `toml:"mode"`
	// Open registration mails an invite link to the address given, so only
	// someone who reads mail there can make the account.
	// AllowedEmailDomains are the email domains open registration accepts
	// ("example.com" matches only that domain, not its subdomains).
	AllowedEmailDomains []string `toml:"allowed_email_domains"`
	// DefaultGroups are given to users who register (not to invitees, who get the invite's groups).
	DefaultGroups []string `toml:"default_groups"`
}

// Account configures what signed-in users may do on their account page.
type Account struct {
	// Tokens lets users create and revoke their own API tokens.
	Tokens bool `toml:"tokens"`
}

func defaultSMTP() SMTP {
	return SMTP{Port: 587, StartTLS: TLSStartTLS, Timeout: Duration{10 * time.Second}}
}

func defaultRegistration() Registration {
	return Registration{Mode: "off", AllowedEmailDomains: []string{}, DefaultGroups: []string{}}
}

func (c Config) checkAccount(e *Errors) {
	s := c.SMTP
	if s.Port < 1 || s.Port > 65535 {
		e.add("smtp.port", "must be a port from 1 to 65535 (got %d)", s.Port)
	}
	switch s.StartTLS {
	case TLSStartTLS, TLSNone, TLSImplicit:
	default:
		e.add("smtp.starttls", `must be true, false or "implicit" (got %q)`, s.StartTLS)
	}
	if s.Timeout.Duration <= 0 || s.Timeout.Duration > 5*time.Minute {
		e.add("smtp.timeout", "must be between 1ms and 5m (got %s)", fmtDuration(s.Timeout.Duration))
	}
	if strings.ContainsFunc(s.Host, unsafeInURL) || strings.ContainsAny(s.Host, "/:@") {
		e.add("smtp.host", "must be a host name or IP address without port (got %q)", s.Host)
	}
	if s.Host != "" {
		if a, err := mail.ParseAddress(s.From); err != nil || strings.ContainsAny(s.From, "\r\n") {
			e.add("smtp.from", `must be an address such as "authd@example.com" when smtp.host is set (got %q)`, s.From)
		} else if !strings.Contains(a.Address, "@") {
			e.add("smtp.from", "must be a full address (got %q)", s.From)
		}
	}
	if s.Username != "" && s.PasswordFile == "" {
		e.add("smtp.password_file", "must be set when smtp.username is set (got \"\")")
	}
	if s.PasswordFile != "" && s.Username == "" {
		e.add("smtp.username", "must be set when smtp.password_file is set (got \"\")")
	}
	r := c.Registration
	switch r.Mode {
	case "off", "invite", "open", "approval":
	default:
		e.add("registration.mode", `must be one of "off", "invite", "open", "approval" (got %q)`, r.Mode)
	}
	for i, d := range r.AllowedEmailDomains {
		if !validDomain(d) {
			e.add(index("registration.allowed_email_domains", i), `must be a lower-case domain such as "example.com" (got %q)`, d)
		}
	}
	if r.Mode == "open" && len(r.AllowedEmailDomains) == 0 {
		e.add("registration.allowed_email_domains", `must name at least one domain with mode = "open": anyone on the internet could make an account (got [])`)
	}
	if r.Mode == "open" && s.Host == "" {
		e.add("registration.mode", `"open" mails a confirmation link to the address given, so smtp.host must be set (got "open")`)
	}
	for i, g := range r.DefaultGroups {
		if !validName(g) {
			e.add(index("registration.default_groups", i), "must be a non-empty name of [a-z0-9._@-] (got %q)", g)
		}
	}
}

// validDomain accepts a lower-case DNS name with at least one dot.
func validDomain(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
