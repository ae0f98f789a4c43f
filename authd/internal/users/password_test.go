package users

import (
	"strings"
	"testing"
)

func TestCheckNewPassword(t *testing.T) {
	tests := []struct {
		name     string
		password string
		wantErr  string // substring; "" for no error
	}{
		{"passphrase", "purple elephant sings opera", ""},
		{"eight characters", "zq7#Kp2!", ""},
		{"eight runes, more bytes", "ñandú✓çé", ""},
		{"long passphrase", strings.Repeat("long passphrase ", 60), ""},
		{"exactly MaxPasswordBytes", strings.Repeat("q", MaxPasswordBytes-3) + "xyz", ""},
		{"no composition rules", "lowercaseonlybutlong", ""},
		{"empty", "", "too short"},
		{"seven characters", "zq7#Kp2", "too short"},
		{"seven runes, many bytes", "ñandú✓ç", "too short"},
		{"too long", strings.Repeat("q", MaxPasswordBytes+1), "too long"},
		{"common", "password", "too common"},
		{"common, other case", "PassWord1", "too common"},
		{"common with digits", "password123", "too common"},
		{"common leet", "P@ssw0rd", "too common"},
		{"keyboard walk", "qwertyuiop", "too common"},
		{"digits", "12345678", "too common"},
		{"repeated", "11111111", "too common"},
		{"iloveyou", "iloveyou", "too common"},
		{"supplement", "Streamlit123", "too common"},
		{"surrounding space", " password1 ", "too common"},
		{"not UTF-8", "abc\xffdefgh", "UTF-8"},
		{"comment line is not a password", "# common passwords refused by authd for new passwords (compared lower-cased).", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckNewPassword(tt.password)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCommonPasswordList(t *testing.T) {
	n := 0
	for line := range strings.SplitSeq(commonPasswords, "\n") {
		if line == "" || line == "#" || strings.HasPrefix(line, "# ") {
			continue
		}
		n++
		if line != strings.ToLower(line) {
			t.Errorf("entry %q is not lower-case, so it can never match", line)
		}
	}
	if n < 1000 {
		t.Errorf("got %d entries, want at least 1000", n)
	}
}
