package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/mfa"
)

// The admin console's hooks into second factors: who has which factor,
// and a reset for a user who lost theirs. The console re-authenticates the
// admin and ends the user's sessions itself.

// FactorSummary is what the admin console shows of one user's factors.
type FactorSummary struct {
	TOTP     bool
	Passkeys int
	Recovery int // unused recovery codes
}

// Enrolled reports whether the user has a second factor (app or passkey).
func (f FactorSummary) Enrolled() bool { return f.TOTP || f.Passkeys > 0 }

// ErrNoFactors is returned when second factors are not configured.
var ErrNoFactors = errors.New("second factors are not available")

// FactorSummaries returns the factors of every user who has any; users
// missing from the map have none.
func (s *Server) FactorSummaries(ctx context.Context) (map[string]FactorSummary, error) {
	if s.mfa == nil {
		return nil, ErrNoFactors
	}
	all, err := s.mfa.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]FactorSummary, len(all))
	for name, f := range all {
		if sum := (FactorSummary{TOTP: f.TOTP != nil, Passkeys: len(f.Passkeys), Recovery: len(f.Recovery)}); sum.Enrolled() || sum.Recovery > 0 {
			out[name] = sum
		}
	}
	return out, nil
}

// ResetFactors removes every second factor of user and records the
// mfa_reset audit event with actor (the admin) and r's client address. It
// reports whether there was anything to remove.
func (s *Server) ResetFactors(ctx context.Context, r *http.Request, actor, user string) (bool, error) {
	if s.mfa == nil {
		return false, ErrNoFactors
	}
	had, err := mfa.Reset(ctx, s.mfa, user)
	if err != nil {
		return false, err
	}
	s.record(ctx, r, audit.Event{Event: "mfa_reset", Actor: actor, Target: user})
	return had, nil
}

// needsStepUp reports whether p's session must prove a second factor
// before the admin console: an admin who has one (or must have one) cannot
// use the console with a password alone, or the factor would protect the
// apps but not the console that manages them. An unreadable factor store
// counts as "has one".
func (s *Server) needsStepUp(o *settings, r *http.Request, p *pageUser) bool {
	if !p.Session.SecondFactor.IsZero() || s.mfa == nil {
		return false
	}
	if o.inRequiredGroup(p.User) {
		return true
	}
	f, err := s.mfa.Get(r.Context(), p.User.Name)
	return err != nil || f.Enrolled()
}
