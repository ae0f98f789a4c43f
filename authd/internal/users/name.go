package users

import (
	"errors"
	"fmt"
	"strings"
)

// MaxNameBytes is the longest username accepted.
const MaxNameBytes = 64

// Canonical returns the one canonical form of a username: surrounding white space trimmed,
// ASCII lower-cased, 1–64 bytes of [a-z0-9._@-] starting with [a-z0-9]. Anything else is an
// error, so spelling variants such as "Alice " and "alice" are one account and buy no extra
// login attempts. Non-ASCII input is refused rather than folded, so look-alike letters (the
// Kelvin sign lower-cases to "k") cannot name an existing account.
func Canonical(name string) (string, error) {
	s := strings.TrimSpace(name)
	if s == "" {
		return "", errors.New("username is empty")
	}
	if len(s) > MaxNameBytes {
		return "", fmt.Errorf("username is longer than %d bytes", MaxNameBytes)
	}
	var b []byte // allocated only when s has an upper-case letter
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			if b == nil {
				b = []byte(s)
			}
			c += 'a' - 'A'
			b[i] = c
		}
		if !nameByte(c) {
			return "", fmt.Errorf("username may contain only letters a-z, digits and . _ @ - (got %q)", s)
		}
		if i == 0 && !alnum(c) {
			return "", fmt.Errorf("username must start with a letter or digit (got %q)", s)
		}
	}
	if b != nil {
		return string(b), nil
	}
	return s, nil
}

func alnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func nameByte(c byte) bool {
	return alnum(c) || c == '.' || c == '_' || c == '@' || c == '-'
}

// groupByte reports whether c may appear in a group name: like usernames but without '@'.
func groupByte(c byte) bool { return alnum(c) || c == '.' || c == '_' || c == '-' }

// checkGroup validates one group name.
func checkGroup(g string) error {
	if g == "" {
		return errors.New("empty group name")
	}
	if len(g) > MaxNameBytes {
		return fmt.Errorf("group name longer than %d bytes", MaxNameBytes)
	}
	for i := 0; i < len(g); i++ {
		if !groupByte(g[i]) {
			return fmt.Errorf("group %q may contain only a-z, 0-9, '.', '_' and '-'", g)
		}
	}
	return nil
}

// ValidGroup reports whether g is a group name a user record may hold: 1 to MaxNameBytes
// bytes of a-z, 0-9, '.', '_' and '-'. Groups from a directory are checked with it.
func ValidGroup(g string) bool { return checkGroup(g) == nil }
