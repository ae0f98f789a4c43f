// Package session creates session identifiers and keeps session records in
// stores: Embedded for a single server (memory, persisted to a data directory).
//
// A cookie value is 32 random bytes in base64url; stores know a session only by
// the SHA-256 of those bytes (Key), so a store dump holds no usable cookie.
package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// CookieLen is the length of a cookie value: 32 bytes in unpadded base64url.
const CookieLen = 43

// rawLen is the number of random bytes behind a cookie value.
const rawLen = 32

// Key identifies a session in a store: the SHA-256 of the cookie's 32 random
// bytes, so a store dump holds no usable cookie.
type Key [32]byte

// New returns a fresh cookie value (256 bits from crypto/rand, base64url, 43
// characters) and the key it is stored under.
func New() (cookie string, key Key, err error) {
	var raw [rawLen]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", Key{}, fmt.Errorf("read random session id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), Key(sha256.Sum256(raw[:])), nil
}

// Parse returns the key for a cookie value. It accepts exactly what New
// produces: 43 characters of unpadded base64url in canonical form (the unused
// low bits of the last character are zero). It does not allocate, so a flood of
// malformed cookies costs nothing on the heap.
func Parse(cookie string) (Key, bool) {
	if len(cookie) != CookieLen {
		return Key{}, false
	}
	var raw [rawLen]byte
	// 43 characters carry 258 bits: ten full 4-character groups (30 bytes)
	// and a final group of 3 characters (2 bytes + 2 spare bits).
	var acc uint32
	for i := 0; i < 40; i += 4 {
		acc = 0
		for j := 0; j < 4; j++ {
			v := decodeChar(cookie[i+j])
			if v < 0 {
				return Key{}, false
			}
			acc = acc<<6 | uint32(v)
		}
		o := i / 4 * 3
		raw[o], raw[o+1], raw[o+2] = byte(acc>>16), byte(acc>>8), byte(acc)
	}
	acc = 0
	for j := 40; j < 43; j++ {
		v := decodeChar(cookie[j])
		if v < 0 {
			return Key{}, false
		}
		acc = acc<<6 | uint32(v)
	}
	if acc&0x3 != 0 {
		// Non-canonical: another spelling of the same bytes would be accepted.
		return Key{}, false
	}
	raw[30], raw[31] = byte(acc>>10), byte(acc>>2)
	return Key(sha256.Sum256(raw[:])), true
}

// decodeChar returns the 6-bit value of a base64url character, or -1.
func decodeChar(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// Short returns the first 8 hex characters of the key: enough to tell sessions
// apart in logs and listings, useless for finding the cookie.
func (k Key) Short() string {
	return hex.EncodeToString(k[:4])
}

// Session is a login session as stores keep it. Stores return its times in
// UTC.
type Session struct {
	User     string
	Created  time.Time
	LastSeen time.Time
	// Expires is the absolute deadline; activity never moves it.
	Expires time.Time
	// Idle is this session's idle timeout (remember-me sessions have a longer one).
	Idle     time.Duration
	Remember bool
	// IP is the client IP at login, for listings only; stores cap its length.
	IP string
	// UserAgent is for listings only; stores cap it at MaxUserAgent bytes.
	UserAgent string
	// Fingerprint is the user's credential fingerprint at login; verify compares
	// it with the current one, so a password change or disable ends the session.
	Fingerprint uint64
	// SecondFactor is when the user last proved a second factor (TOTP,
	// recovery code or passkey) in this session; zero means password only.
	SecondFactor time.Time
	// External, when set, is the identity an external provider vouched for
	// at sign-in, carried by the session alone: there is no local user
	// record (an OIDC provider with create_users = false). Nil means User
	// names a local user record. Stores refuse one past the limits (see
	// MaxGroups) and share it read-only with every reader: never change it.
	External *External
}

// External is a header-only identity: what a provider said about the user
// at sign-in, fixed until the session ends.
type External struct {
	// Source names the provider ("oidc:<id>"); never empty.
	Source      string
	Email       string
	DisplayName string
	Groups      []string
}

// Valid reports whether the session may be used at now: before its absolute
// deadline and within its idle timeout since it was last seen.
func (s *Session) Valid(now time.Time) bool {
	return now.Before(s.Expires) && now.Before(s.LastSeen.Add(s.Idle))
}

// Entry is a session with its key, as List returns it.
type Entry struct {
	Key     Key
	Session Session
}
