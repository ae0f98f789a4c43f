package users

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MinPasswordRunes is the shortest new password accepted, counted in characters.
const MinPasswordRunes = 8

//go:embed common-passwords.txt
var commonPasswords string

// CheckNewPassword refuses a new password that is shorter than 8 characters, longer than
// MaxPasswordBytes, not UTF-8, or on the embedded list of common passwords (compared
// case-insensitively). It sets no composition rules: long passphrases are the best choice.
func CheckNewPassword(password string) error {
	if !utf8.ValidString(password) {
		return errors.New("password is not valid UTF-8: type it again in a UTF-8 terminal")
	}
	if n := utf8.RuneCountInString(password); n < MinPasswordRunes {
		return fmt.Errorf("password is too short (%d characters): use at least %d, a passphrase of a few words is best", n, MinPasswordRunes)
	}
	if len(password) > MaxPasswordBytes {
		return fmt.Errorf("password is too long (%d bytes): use at most %d bytes", len(password), MaxPasswordBytes)
	}
	if isCommon(password) {
		return errors.New("password is too common (it is on a list of leaked passwords): choose a passphrase of a few unrelated words or a password manager's random password")
	}
	return nil
}

// isCommon scans the embedded list. New passwords are set rarely, by the CLI, so a linear
// scan of ~9000 lines beats keeping a map in memory for the daemon's lifetime.
func isCommon(password string) bool {
	p := strings.ToLower(strings.TrimSpace(password))
	for line := range strings.SplitSeq(commonPasswords, "\n") {
		if line == p && line != "" && line != "#" && !strings.HasPrefix(line, "# ") {
			return true
		}
	}
	return false
}
