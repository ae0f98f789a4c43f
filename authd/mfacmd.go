package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/mfa"
	"github.com/authd/authd/authd/internal/users"
)

// cmdUserMFA is "authd user mfa list|reset": who has which second factor,
// and the way back for a user (the last admin included) who lost theirs.
func cmdUserMFA(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("user mfa: missing subcommand (list, reset NAME)")
	}
	sub, args := args[0], args[1:]
	fs, cfgPath := newFlags("user mfa "+sub, stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	var rs *redisState
	if cfg.Store == "redis" {
		if rs, err = openRedisState(ctx, cfg); err != nil {
			return err
		}
		defer rs.Close()
	}
	var rc redis.UniversalClient
	if rs != nil {
		rc = rs.client
	}
	st, err := openMFA(cfg, rc)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		if len(pos) != 0 {
			return usagef("user mfa list takes no arguments")
		}
		all, err := st.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tFACTORS\tPASSKEYS\tRECOVERY CODES")
		for _, name := range slices.Sorted(maps.Keys(all)) {
			f := all[name]
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", name, strings.Join(f.Kinds(), ","), len(f.Passkeys), len(f.Recovery))
		}
		return tw.Flush()
	case "reset":
		if len(pos) != 1 {
			return usagef("user mfa reset NAME")
		}
		name, err := users.Canonical(pos[0])
		if err != nil {
			return fmt.Errorf("user name %q: %w", pos[0], err)
		}
		// The audit log opens first: a reset it cannot record is not made.
		a, err := openCLIAudit(ctx, cfg)
		if err != nil {
			return err
		}
		defer a.Close()
		had, err := mfa.Reset(ctx, st, name)
		if err != nil {
			return fmt.Errorf("reset second factors of %s: %w", name, err)
		}
		// Sessions that proved a factor now gone end too: a reset usually
		// means a lost or stolen device.
		if rs != nil {
			if _, err := rs.sessions.DeleteUser(ctx, name); err != nil {
				return fmt.Errorf("revoke sessions of %s: %w", name, err)
			}
		} else if _, err := revoke(ctx, cfg, name, false); err != nil && !errors.Is(err, errUnknownUser) {
			fmt.Fprintf(stderr, "authd: warning: revoke sessions of %s: %v\n", name, err)
		}
		if err := a.record(ctx, audit.Event{Event: "mfa_reset", Target: name, Detail: fmt.Sprintf("had factors: %v", had)}); err != nil {
			return err
		}
		if had {
			fmt.Fprintf(stdout, "second factors of %s removed; their sessions ended. They sign in with their password and enrol again.\n", name)
		} else {
			fmt.Fprintf(stdout, "%s had no second factor\n", name)
		}
		return nil
	}
	return usagef("user mfa: unknown subcommand %q", sub)
}
