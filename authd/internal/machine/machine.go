// Package machine authenticates machine clients: per-user API tokens sent as
// "Authorization: Bearer …" and HMAC-SHA256 signed requests with a timestamp
// window and a nonce replay cache. Its records live in one JSON file that the
// CLI edits atomically and the daemon reloads while running.
package machine

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FileName is the records file's name inside authd's data directory.
const FileName = "machine.json"

const (
	// DefaultLifetime is how long a token or key lives when its creator names no expiry.
	DefaultLifetime = 90 * 24 * time.Hour
	// MaxLifetime is the longest lifetime a token or key may have. There is no
	// "never expires": a forgotten credential ends on its own.
	MaxLifetime = 366 * 24 * time.Hour
)

// Credential formats. Each part has a fixed length and alphabet, so a token
// parses one way only.
const (
	tokenPrefix  = "authd_tok_"
	secretPrefix = "authd_sk_"
	keyIDPrefix  = "ak_"
	idHexLen     = 16                                             // 64 random bits, hex
	secretB64Len = 43                                             // 256 random bits, base64url without padding
	tokenLen     = len(tokenPrefix) + idHexLen + 1 + secretB64Len // authd_tok_<id>_<secret>
	secretLen    = len(secretPrefix) + secretB64Len
	keyIDLen     = len(keyIDPrefix) + idHexLen
	maxLabel     = 100
	maxUser      = 64
)

// Token is one API token as stored: never the token itself, only its SHA-256.
type Token struct {
	// ID identifies the token in listings and revocation; it is also part of the token.
	ID string `json:"id"`
	// User is the canonical name of the user the token acts as.
	User string `json:"user"`
	// Label says what the token is for ("ci deploy").
	Label string `json:"label"`
	// SHA256 is the lower-case hex SHA-256 of the whole token string. A fast hash is
	// right here: the token carries 256 random bits, so there is nothing to guess.
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// UserGeneration is the user's credential generation (users.User.Generation) when
	// the token was issued. authd accepts the token only while the user still has that
	// generation: a password change, lock, unlock or delete ends it, as it ends sessions.
	// Records written before the field existed read as 0 and so fit only users whose
	// generation is 0 too (never set by the CLI).
	UserGeneration uint64 `json:"user_generation"`
}

// Key is one request-signing key. Its secret is stored as issued, because
// checking an HMAC needs it: the records file must stay readable by authd only.
type Key struct {
	// ID is the KeyId clients send.
	ID string `json:"id"`
	// User is the canonical name of the user the key acts as.
	User string `json:"user"`
	// Label says what the key is for.
	Label string `json:"label"`
	// Secret is the HMAC key, used as the ASCII bytes of this string.
	Secret  string    `json:"secret"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// UserGeneration binds the key to the user's credential generation, as for Token.
	UserGeneration uint64 `json:"user_generation"`
}

// Records is the content of the records file.
type Records struct {
	Tokens []Token `json:"tokens"`
	Keys   []Key   `json:"keys"`
}

// NewToken issues a token for user. It returns the token, to show once, and the
// record to store. lifetime 0 means DefaultLifetime.
func NewToken(user, label string, now time.Time, lifetime time.Duration) (string, Token, error) {
	exp, err := expiry(now, lifetime)
	if err != nil {
		return "", Token{}, err
	}
	id := randomHex(idHexLen / 2)
	tok := tokenPrefix + id + "_" + randomB64(32)
	sum := sha256.Sum256([]byte(tok))
	t := Token{ID: id, User: user, Label: label, SHA256: hex.EncodeToString(sum[:]),
		Created: now.UTC().Truncate(time.Second), Expires: exp}
	if err := t.check(); err != nil {
		return "", Token{}, err
	}
	return tok, t, nil
}

// NewKey issues a signing key for user. It returns the secret, to show once, and
// the record to store. lifetime 0 means DefaultLifetime.
func NewKey(user, label string, now time.Time, lifetime time.Duration) (string, Key, error) {
	exp, err := expiry(now, lifetime)
	if err != nil {
		return "", Key{}, err
	}
	k := Key{ID: keyIDPrefix + randomHex(idHexLen/2), User: user, Label: label,
		Secret: secretPrefix + randomB64(32), Created: now.UTC().Truncate(time.Second), Expires: exp}
	if err := k.check(); err != nil {
		return "", Key{}, err
	}
	return k.Secret, k, nil
}

func expiry(now time.Time, lifetime time.Duration) (time.Time, error) {
	switch {
	case lifetime == 0:
		lifetime = DefaultLifetime
	case lifetime < 0:
		return time.Time{}, errors.New("lifetime must be positive")
	case lifetime > MaxLifetime:
		return time.Time{}, fmt.Errorf("lifetime may be at most %d days", MaxLifetime/(24*time.Hour))
	}
	return now.UTC().Truncate(time.Second).Add(lifetime), nil
}

// NewNonce returns a fresh random nonce (22 characters of base64url).
func NewNonce() string { return randomB64(16) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // crypto/rand does not fail on supported systems
	}
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
func randomB64(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }

// check validates a token record. Messages never include the hash.
func (t *Token) check() error {
	var p []string
	if !isHexID(t.ID) {
		p = append(p, "id must be 16 lower-case hex digits")
	}
	p = append(p, checkCommon(t.User, t.Label, t.Created, t.Expires)...)
	if len(t.SHA256) != 64 || !isLowerHex(t.SHA256) {
		p = append(p, "sha256 must be 64 lower-case hex digits")
	}
	return joinProblems(p)
}

// check validates a key record. Messages never include the secret.
func (k *Key) check() error {
	var p []string
	if !validKeyID(k.ID) {
		p = append(p, `id must be "ak_" and 16 lower-case hex digits`)
	}
	p = append(p, checkCommon(k.User, k.Label, k.Created, k.Expires)...)
	if !validSecret(k.Secret) {
		p = append(p, `secret must be "authd_sk_" and 43 base64url characters`)
	}
	return joinProblems(p)
}

func checkCommon(user, label string, created, expires time.Time) []string {
	var p []string
	if user == "" || len(user) > maxUser || !printable(user) || strings.ContainsRune(user, ' ') {
		p = append(p, "user must be 1-64 printable characters without spaces")
	}
	if label == "" || len(label) > maxLabel || !printable(label) {
		p = append(p, "label must be 1-100 printable characters")
	}
	if created.IsZero() || expires.IsZero() {
		p = append(p, "created and expires are required")
	} else if !expires.After(created) {
		p = append(p, "expires must be after created")
	}
	return p
}

func joinProblems(p []string) error {
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "; "))
}

// validate checks a whole file's records: each record, and ids unique across tokens and keys.
func (r *Records) validate() error {
	var p []string
	seen := make(map[string]bool, len(r.Tokens)+len(r.Keys))
	for i := range r.Tokens {
		t := &r.Tokens[i]
		if err := t.check(); err != nil {
			p = append(p, fmt.Sprintf("tokens[%d]%s: %v", i, idNote(t.ID, isHexID), err))
		}
		if seen[t.ID] {
			p = append(p, fmt.Sprintf("tokens[%d]: duplicate id", i))
		}
		seen[t.ID] = true
	}
	for i := range r.Keys {
		k := &r.Keys[i]
		if err := k.check(); err != nil {
			p = append(p, fmt.Sprintf("keys[%d]%s: %v", i, idNote(k.ID, validKeyID), err))
		}
		if seen[k.ID] {
			p = append(p, fmt.Sprintf("keys[%d]: duplicate id", i))
		}
		seen[k.ID] = true
	}
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "\n"))
}

// idNote names a record by id in a message, but only an id of the right shape,
// so a secret pasted into the id field is never echoed.
func idNote(id string, ok func(string) bool) string {
	if ok(id) {
		return " (id " + id + ")"
	}
	return ""
}

func isHexID(s string) bool { return len(s) == idHexLen && isLowerHex(s) }

func validKeyID(s string) bool {
	return len(s) == keyIDLen && strings.HasPrefix(s, keyIDPrefix) && isLowerHex(s[len(keyIDPrefix):])
}

func validSecret(s string) bool {
	return len(s) == secretLen && strings.HasPrefix(s, secretPrefix) && isB64URL(s[len(secretPrefix):])
}

// TokenID returns the id of a well-formed token, so that an operator holding
// the token can revoke it without looking its id up.
func TokenID(token string) (id string, ok bool) { return splitToken(token) }

// splitToken returns the id of a well-formed token.
func splitToken(tok string) (id string, ok bool) {
	if len(tok) != tokenLen || !strings.HasPrefix(tok, tokenPrefix) {
		return "", false
	}
	rest := tok[len(tokenPrefix):]
	id, sec := rest[:idHexLen], rest[idHexLen+1:]
	if rest[idHexLen] != '_' || !isLowerHex(id) || !isB64URL(sec) {
		return "", false
	}
	return id, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isB64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			return false
		}
	}
	return true
}

// idByte reports whether c is in [A-Za-z0-9_-], the alphabet of key ids and nonces.
func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffd {
			return false
		}
	}
	return true
}
