package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/server"
)

// accountDeps wires the account pages, invites, registration and reset
// into the server: the account store of the configured kind, the mailer,
// and, with [account] tokens = true, the user's own API tokens through the
// same records the token command edits.
func accountDeps(cfg config.Config, st *stores) (*server.AccountDeps, error) {
	d := &server.AccountDeps{
		Store:    openAccounts(cfg, st.redis),
		Sessions: st.sessions,
		Registration: server.Registration{Mode: cfg.Registration.Mode,
			AllowedDomains: cfg.Registration.AllowedEmailDomains, DefaultGroups: cfg.Registration.DefaultGroups},
		Site: siteName(cfg),
	}
	mailer, err := newMailer(cfg)
	if err != nil {
		return nil, err
	}
	if mailer != nil {
		d.Mailer = mailer
	}
	if cfg.Account.Tokens {
		d.Tokens = ownTokens{creds: st.credentials}
	}
	return d, nil
}

// ownTokens are a user's API tokens for the account page: created by
// createCredential, as "authd token create" does, and reloaded into the
// verifier at once so the new token works on this node immediately (others
// pick it up from the file watch or Redis).
type ownTokens struct{ creds *credentials }

func (t ownTokens) Tokens(user string) []machine.Token {
	var out []machine.Token
	for _, tok := range t.creds.records().Tokens {
		if tok.User == user {
			out = append(out, tok)
		}
	}
	return out
}

func (t ownTokens) Create(ctx context.Context, user string, generation uint64, label string, lifetime time.Duration) (string, machine.Token, error) {
	shown, id, _, err := createCredential(ctx, "token", t.creds, user, generation, label, time.Now(), lifetime)
	if err != nil {
		return "", machine.Token{}, err
	}
	if _, err := t.creds.reload(ctx); err != nil {
		return "", machine.Token{}, fmt.Errorf("reload credentials: %w", err)
	}
	for _, tok := range t.creds.records().Tokens {
		if tok.ID == id {
			return shown, tok, nil
		}
	}
	return shown, machine.Token{ID: id, User: user, Label: label}, nil
}

func (t ownTokens) Revoke(ctx context.Context, user, id string) error {
	err := t.creds.edit(ctx, func(r *machine.Records) error {
		n := len(r.Tokens)
		r.Tokens = slices.DeleteFunc(r.Tokens, func(tok machine.Token) bool { return tok.ID == id && tok.User == user })
		if len(r.Tokens) == n {
			return fmt.Errorf("no token %s of %s", id, user)
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = t.creds.reload(ctx)
	return err
}
