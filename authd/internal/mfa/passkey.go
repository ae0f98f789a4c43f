package mfa

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// Passkey is one registered WebAuthn credential with the name its owner
// gave it.
type Passkey struct {
	Name       string              `json:"name"`
	Added      time.Time           `json:"added"`
	Credential webauthn.Credential `json:"credential"`
}

// MaxPasskeys bounds how many credentials one user may register.
const MaxPasskeys = 20

// NewWebAuthn returns the relying party for publicURL: its ID is the URL's
// host and its only origin the URL's origin. Attestation is "none" (we trust
// no authenticator vendor list) and user verification "preferred".
func NewWebAuthn(publicURL, name string) (*webauthn.WebAuthn, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("public_url %q: not an absolute URL", publicURL)
	}
	origin := u.Scheme + "://" + u.Host
	return webauthn.New(&webauthn.Config{
		RPID:                  u.Hostname(),
		RPDisplayName:         name,
		RPOrigins:             []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
	})
}

// WebUser adapts a user and their factors to webauthn.User.
type WebUser struct {
	Name, Display string
	F             *Factors
}

// WebAuthnID implements webauthn.User.
func (u *WebUser) WebAuthnID() []byte { return u.F.Handle }

// WebAuthnName implements webauthn.User.
func (u *WebUser) WebAuthnName() string { return u.Name }

// WebAuthnDisplayName implements webauthn.User.
func (u *WebUser) WebAuthnDisplayName() string {
	if u.Display != "" {
		return u.Display
	}
	return u.Name
}

// WebAuthnCredentials implements webauthn.User.
func (u *WebUser) WebAuthnCredentials() []webauthn.Credential {
	cs := make([]webauthn.Credential, len(u.F.Passkeys))
	for i, p := range u.F.Passkeys {
		cs[i] = p.Credential
	}
	return cs
}

// EnsureHandle gives f a random 32-byte user handle if it has none.
func EnsureHandle(f *Factors) error {
	if len(f.Handle) > 0 {
		return nil
	}
	h := make([]byte, 32)
	if _, err := rand.Read(h); err != nil {
		return err
	}
	f.Handle = h
	return nil
}

// AddPasskey appends c under name, refusing a duplicate credential ID or
// too many credentials.
func AddPasskey(f *Factors, name string, c webauthn.Credential, now time.Time) error {
	if len(f.Passkeys) >= MaxPasskeys {
		return fmt.Errorf("at most %d passkeys", MaxPasskeys)
	}
	for _, p := range f.Passkeys {
		if bytes.Equal(p.Credential.ID, c.ID) {
			return errors.New("passkey already registered")
		}
	}
	f.Passkeys = append(f.Passkeys, Passkey{Name: name, Added: now, Credential: c})
	return nil
}

// UpdatePasskey stores what a successful assertion changed (sign count,
// clone warning, backup state) on the credential with c's ID.
func UpdatePasskey(f *Factors, c *webauthn.Credential) bool {
	for i := range f.Passkeys {
		if bytes.Equal(f.Passkeys[i].Credential.ID, c.ID) {
			f.Passkeys[i].Credential.Authenticator = c.Authenticator
			f.Passkeys[i].Credential.Flags = c.Flags
			return true
		}
	}
	return false
}

// RemovePasskey removes the credential at index i.
func RemovePasskey(f *Factors, i int) bool {
	if i < 0 || i >= len(f.Passkeys) {
		return false
	}
	f.Passkeys = append(f.Passkeys[:i:i], f.Passkeys[i+1:]...)
	return true
}
