package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/throttle"
	"github.com/authd/authd/authd/internal/users"
)

// stores are the state authd keeps: sessions, users and login throttles.
type stores struct {
	sessions *session.Embedded
	users    *users.File
	throttle *throttle.Memory
}

// openStores opens the configured stores; it fails before serving if one
// cannot be reached, so nothing is initialised lazily on a request.
func openStores(_ context.Context, cfg config.Config) (*stores, error) {
	sessions, err := session.OpenEmbedded(cfg.DataDir, time.Now)
	if err != nil {
		return nil, fmt.Errorf("open session store: %w", err)
	}
	u, err := users.OpenFile(cfg.UsersFile, users.DefaultLimits())
	if err != nil {
		sessions.Close()
		return nil, fmt.Errorf("users file: %w", err)
	}
	thr := throttle.NewMemory(throttle.Config{
		AccountFailures: cfg.Throttle.AccountFailures, IPFailures: cfg.Throttle.IPFailures,
		BaseDelay: cfg.Throttle.BaseDelay.Duration, MaxDelay: cfg.Throttle.MaxDelay.Duration,
		Window: cfg.Throttle.Window.Duration, MaxEntries: cfg.Throttle.MaxEntries,
	}, time.Now)
	return &stores{sessions: sessions, users: u, throttle: thr}, nil
}

// watchUsers reloads users when their source changes, until ctx ends.
func (s *stores) watchUsers(ctx context.Context, onReload func(changed bool, err error)) {
	s.users.Watch(ctx, time.Second, onReload)
}

// Close releases the stores.
func (s *stores) Close() error {
	return errors.Join(s.sessions.Close())
}
