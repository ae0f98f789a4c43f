// Package mfa keeps users' second factors and checks them: TOTP secrets
// (RFC 6238), single-use recovery codes and WebAuthn credentials, with a
// replay record so a code works once. It has no HTTP in it: the server's
// pages call it.
//
// Per-user factor data lives in a Store: File (a JSON file in the data
// directory, the default) or Redis (shared by several authd instances).
package mfa

import (
	"context"
	"errors"
	"time"
)

// Factors is one user's second-factor data. The zero Factors means none
// enrolled.
type Factors struct {
	// TOTP is the enrolled authenticator app; nil when none.
	TOTP *TOTP `json:"totp,omitempty"`
	// Recovery holds the SHA-256 (hex) of each unused recovery code.
	Recovery []string `json:"recovery,omitempty"`
	// Passkeys are the user's WebAuthn credentials.
	Passkeys []Passkey `json:"passkeys,omitempty"`
	// Handle is the user's WebAuthn user handle (random, 32 bytes), made at
	// the first passkey registration.
	Handle []byte `json:"handle,omitempty"`
}

// TOTP is an enrolled authenticator app.
type TOTP struct {
	// Secret is the shared secret in base32 (needed to check codes, so it
	// cannot be hashed; the store file is mode 0600).
	Secret string    `json:"secret"`
	Added  time.Time `json:"added"`
}

// Enrolled reports whether the user has a second factor they can use:
// an authenticator app or a passkey. Recovery codes alone do not count.
func (f *Factors) Enrolled() bool {
	return f != nil && (f.TOTP != nil || len(f.Passkeys) > 0)
}

// Kinds names the factors enrolled, for listings: "totp", "passkey",
// "recovery".
func (f *Factors) Kinds() []string {
	var k []string
	if f == nil {
		return k
	}
	if f.TOTP != nil {
		k = append(k, "totp")
	}
	if len(f.Passkeys) > 0 {
		k = append(k, "passkey")
	}
	if len(f.Recovery) > 0 {
		k = append(k, "recovery")
	}
	return k
}

// ErrNotFound is returned by Update's function to say "nothing to change";
// Update then writes nothing and returns it.
var ErrNotFound = errors.New("not found")

// Store keeps Factors per user name.
type Store interface {
	// Get returns the user's factors; the zero Factors when none.
	Get(ctx context.Context, user string) (Factors, error)
	// Update applies fn to the user's factors atomically and stores the
	// result (zero Factors deletes the entry). An error from fn aborts
	// without writing and is returned.
	Update(ctx context.Context, user string, fn func(f *Factors) error) error
	// Users lists every user with stored factors.
	Users(ctx context.Context) (map[string]Factors, error)
}

// Replay records that a one-time value (a TOTP code's time step, a WebAuthn
// challenge) was used.
type Replay interface {
	// Claim records key for ttl and reports whether it was new: false means
	// it was used before and must be refused.
	Claim(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// Reset removes every factor of user from st. It reports whether there was
// anything to remove.
func Reset(ctx context.Context, st Store, user string) (bool, error) {
	had := false
	err := st.Update(ctx, user, func(f *Factors) error {
		had = f.Enrolled() || len(f.Recovery) > 0
		*f = Factors{}
		return nil
	})
	return had, err
}

func (f *Factors) empty() bool {
	return f.TOTP == nil && len(f.Recovery) == 0 && len(f.Passkeys) == 0 && len(f.Handle) == 0
}
