package mfa

import (
	"context"
	"crypto/subtle"
	"fmt"
	"strconv"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: what every authenticator app understands.
const (
	Period = 30 // seconds
	Digits = 6
	// Skew is how many steps either side of now a code may be from.
	Skew = 1
)

var totpOpts = totp.ValidateOpts{Period: Period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// NewSecret makes a fresh TOTP key for user at issuer and returns its base32
// secret and the otpauth:// URI an authenticator app scans.
func NewSecret(issuer, user string) (secret, uri string, err error) {
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: user, Period: Period, SecretSize: 20,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return "", "", fmt.Errorf("generate totp secret: %w", err)
	}
	return k.Secret(), k.URL(), nil
}

// Code returns the code for secret at t (tests and the CLI use it).
func Code(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totpOpts)
}

// MatchStep returns the time step (Unix time / Period) whose code is code,
// looking Skew steps either side of now, and whether one matched. Every
// candidate is computed and compared in constant time.
func MatchStep(secret, code string, now time.Time) (int64, bool) {
	if len(code) != Digits {
		return 0, false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	step := now.Unix() / Period
	var found int64
	ok := 0
	for d := int64(-Skew); d <= Skew; d++ {
		s := step + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*Period, 0), totpOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && ok == 0 {
			found, ok = s, 1
		}
	}
	return found, ok == 1
}

// CheckTOTP checks code against the user's secret and claims its time step
// in rp, so a code that was accepted once is refused for the rest of its
// window (on every node sharing rp). It returns false for a wrong code, a
// reused one, or a user without TOTP.
func CheckTOTP(ctx context.Context, rp Replay, user string, f *Factors, code string, now time.Time) (bool, error) {
	if f == nil || f.TOTP == nil {
		return false, nil
	}
	step, ok := MatchStep(f.TOTP.Secret, code, now)
	if !ok {
		return false, nil
	}
	// A step is valid for (2*Skew+1) periods; keep its claim a little longer.
	fresh, err := rp.Claim(ctx, "totp:"+user+":"+strconv.FormatInt(step, 10), time.Duration(2*Skew+2)*Period*time.Second)
	if err != nil {
		return false, fmt.Errorf("record totp step: %w", err)
	}
	return fresh, nil
}
