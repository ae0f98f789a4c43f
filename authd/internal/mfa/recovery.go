package mfa

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// RecoveryCount is how many recovery codes a user gets at a time.
const RecoveryCount = 10

// recoveryAlphabet leaves out 0/O and 1/I/L, which people misread.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// NewRecoveryCodes returns RecoveryCount fresh codes (shown to the user once)
// and their hashes (stored). Each code has 12 characters from a 31-letter
// alphabet (about 59 bits), written as xxxx-xxxx-xxxx.
func NewRecoveryCodes() (codes, hashes []string, err error) {
	for range RecoveryCount {
		var raw [12]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, nil, err
		}
		var b strings.Builder
		for i, r := range raw {
			if i > 0 && i%4 == 0 {
				b.WriteByte('-')
			}
			// 256 % 31 != 0: the bias (at most 1/256 per character) costs
			// well under a bit of the code's strength.
			b.WriteByte(recoveryAlphabet[int(r)%len(recoveryAlphabet)])
		}
		c := b.String()
		codes = append(codes, c)
		hashes = append(hashes, hashRecovery(c))
	}
	return codes, hashes, nil
}

// normalRecovery lower-cases a typed code and drops spaces and dashes.
func normalRecovery(code string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		if r == '-' || r == ' ' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func hashRecovery(code string) string {
	s := sha256.Sum256([]byte(normalRecovery(code)))
	return hex.EncodeToString(s[:])
}

// UseRecovery removes code from f if it is one of its unused recovery codes
// and reports whether it was. Every stored hash is compared.
func UseRecovery(f *Factors, code string) bool {
	n := normalRecovery(code)
	if len(n) != 12 {
		return false
	}
	h := hashRecovery(n)
	idx := -1
	for i, s := range f.Recovery {
		if subtle.ConstantTimeCompare([]byte(s), []byte(h)) == 1 {
			idx = i
		}
	}
	if idx < 0 {
		return false
	}
	f.Recovery = append(f.Recovery[:idx:idx], f.Recovery[idx+1:]...)
	return true
}
