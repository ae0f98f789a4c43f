package main

import (
	"context"
	"time"

	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/server"
)

// consoleCredentials gives the admin console the token and key commands'
// own code paths (createCredential, revokeCredential), so a token made in
// the browser is made exactly as one made at the shell.
type consoleCredentials struct{ c *credentials }

var _ server.ConsoleCredentials = consoleCredentials{}

func (cc consoleCredentials) Records() machine.Records { return cc.c.records() }

func (cc consoleCredentials) Create(ctx context.Context, kind, user string, gen uint64, label string, lifetime time.Duration) (string, string, time.Time, error) {
	shown, id, exp, err := createCredential(ctx, kind, cc.c, user, gen, label, time.Now(), lifetime)
	if err == nil {
		_, _ = cc.c.reload(ctx)
	}
	return shown, id, exp, err
}

func (cc consoleCredentials) Revoke(ctx context.Context, kind, id string) error {
	_, err := revokeCredential(ctx, kind, cc.c, id)
	if err == nil {
		_, _ = cc.c.reload(ctx)
	}
	return err
}
