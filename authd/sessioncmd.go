package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/server"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

func cmdSession(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("session: missing subcommand (list, revoke)")
	}
	sub, args := args[0], args[1:]
	if sub != "list" && sub != "revoke" {
		return usagef("session: unknown subcommand %q", sub)
	}
	fs, cfgPath := newFlags("session "+sub, stderr)
	user := fs.String("user", "", "only this user's sessions")
	all := fs.Bool("all", false, "every session (revoke)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("session %s takes flags only", sub)
	}
	if sub == "revoke" && (*user == "") == !*all {
		return usagef("session revoke needs exactly one of -user NAME or -all")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	var au *cliAudit
	if sub == "revoke" {
		if au, err = openCLIAudit(ctx, cfg); err != nil {
			return err
		}
		defer au.Close()
	}
	if cfg.Store == "redis" {
		return redisSessionCmd(ctx, cfg, *cfgPath, sub, *user, *all, au, stdout, stderr)
	}
	var unknown error
	if *user != "" {
		if *user, unknown, err = knownUser(ctx, cfg, nil, *cfgPath, *user); err != nil {
			return err
		}
	}
	if sub == "list" {
		var list []server.SessionInfo
		q := url.Values{"user": {*user}}
		if err := adminCall(ctx, cfg, "GET", "/sessions?"+q.Encode(), &list); err != nil {
			if unknown != nil && errors.Is(err, errUnknownUser) {
				return unknown
			}
			if !errors.Is(err, errNotRunning) {
				return err
			}
			if list, err = listOffline(ctx, cfg, *user); err != nil {
				return err
			}
		}
		if unknown != nil && len(list) == 0 {
			return unknown
		}
		return printSessions(list, stdout)
	}
	n, err := revoke(ctx, cfg, *user, *all)
	if unknown != nil && (errors.Is(err, errUnknownUser) || err == nil && n == 0) {
		return unknown
	}
	if err != nil {
		return err
	}
	recordRevoke(ctx, au, stderr, *user, n)
	printRevoked(stdout, n, *user)
	return nil
}

// knownUser returns the canonical form of a -user name, as login spells
// it. A name without a user record may still have sessions (header-only
// identities from an OIDC provider with create_users = false): then
// unknown is the error to report if it has none, so that a typo or another
// spelling never revokes nothing and reports "0" as if that were the
// answer. rs, when not nil, holds the users in Redis; otherwise the
// configured users are opened as serve opens them.
func knownUser(ctx context.Context, cfg config.Config, rs *redisState, cfgPath, raw string) (name string, unknown, err error) {
	name, err = users.Canonical(raw)
	if err != nil {
		return "", nil, fmt.Errorf("-user: %w", err)
	}
	var db *users.DB
	if rs != nil {
		db = rs.users.DB()
	} else {
		us, err := openUsers(ctx, cfg, nil, cfgPath)
		if err != nil {
			return "", nil, err
		}
		db = us.DB()
	}
	if !db.HasUser(name) {
		return name, fmt.Errorf("-user: no user %q in %s, and no session of that name", name, usersSource(cfg)), nil
	}
	return name, nil, nil
}

// recordRevoke records a "session revoke" in the audit log; the revocation
// has happened, so a failure to record it is a warning.
func recordRevoke(ctx context.Context, au *cliAudit, stderr io.Writer, user string, n int) {
	e := audit.Event{Event: "sessions_revoked", Target: user, Detail: fmt.Sprintf("%d sessions", n)}
	if user == "" {
		e.Event = "all_sessions_revoked"
	}
	if err := au.record(ctx, e); err != nil {
		fmt.Fprintf(stderr, "authd: warning: %v\n", err)
	}
}

func printRevoked(w io.Writer, n int, user string) {
	if user == "" {
		fmt.Fprintf(w, "revoked %d sessions\n", n)
		return
	}
	fmt.Fprintf(w, "revoked %d sessions for %s\n", n, user)
}

func printSessions(list []server.SessionInfo, stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, s := range list {
		user := s.User
		if s.HeaderOnly != "" {
			// No user record: say where the identity came from.
			user += " (" + printable(s.HeaderOnly) + ", header-only)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, user, s.Created.Format(time.RFC3339),
			s.LastSeen.Format(time.RFC3339), s.Expires.Format(time.RFC3339), dash(s.IP), dash(printable(s.UserAgent)))
	}
	return tw.Flush()
}

// printable replaces what is not a visible character or a plain space with
// U+FFFD. The user agent is the browser's to choose (nginx and Go pass C1
// controls such as U+009B, a terminal's CSI, and bidi overrides such as
// U+202E), and the listing goes to an operator's terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || unicode.IsGraphic(r) && !unicode.IsSpace(r) {
			return r
		}
		return utf8.RuneError
	}, s)
}

// redisSessionCmd lists or revokes sessions in Redis directly: every
// instance reads sessions from Redis on each request, so no running authd
// needs telling.
func redisSessionCmd(ctx context.Context, cfg config.Config, cfgPath, sub, user string, all bool, au *cliAudit, stdout, stderr io.Writer) error {
	rs, err := openRedisState(ctx, cfg)
	if err != nil {
		return err
	}
	defer rs.Close()
	// -user is checked against the users in Redis, on the same client.
	var unknown error
	if user != "" {
		if user, unknown, err = knownUser(ctx, cfg, rs, cfgPath, user); err != nil {
			return err
		}
	}
	st := rs.sessions
	if sub == "revoke" {
		var n int
		if all {
			n, err = st.DeleteAll(ctx)
		} else {
			n, err = st.DeleteUser(ctx, user)
		}
		if err != nil {
			return err
		}
		if unknown != nil && n == 0 {
			return unknown
		}
		recordRevoke(ctx, au, stderr, user, n)
		printRevoked(stdout, n, user)
		return nil
	}
	entries, err := st.List(ctx, user)
	if err != nil {
		return err
	}
	list := sessionInfos(entries, time.Now())
	if unknown != nil && len(list) == 0 {
		return unknown
	}
	return printSessions(list, stdout)
}

func sessionInfos(entries []session.Entry, now time.Time) []server.SessionInfo {
	var out []server.SessionInfo
	for _, e := range entries {
		if e.Session.Valid(now) {
			s := e.Session
			out = append(out, server.SessionInfo{ID: e.Key.Short(), User: s.User, Created: s.Created, LastSeen: s.LastSeen,
				Expires: s.Expires, Remember: s.Remember, IP: s.IP, UserAgent: s.UserAgent, HeaderOnly: server.HeaderOnlySource(&s)})
		}
	}
	return out
}

var (
	errNotRunning  = errors.New("authd is not running")
	errUnknownUser = errors.New("no such user")
)

// adminCall talks to a running authd over its admin socket in data_dir.
func adminCall(ctx context.Context, cfg config.Config, method, path string, out any) error {
	sock := filepath.Join(cfg.DataDir, "admin.sock")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, method, "http://authd"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return errNotRunning
		}
		return fmt.Errorf("admin socket %s: %w", sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("authd: %s: %w", e.Error, errUnknownUser)
		}
		return fmt.Errorf("authd: %s", e.Error)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func revoke(ctx context.Context, cfg config.Config, user string, all bool) (int, error) {
	q := url.Values{}
	if all {
		q.Set("all", "1")
	} else {
		q.Set("user", user)
	}
	var res struct{ Revoked int }
	err := adminCall(ctx, cfg, "POST", "/sessions/revoke?"+q.Encode(), &res)
	if err == nil {
		return res.Revoked, nil
	}
	if !errors.Is(err, errNotRunning) {
		return 0, err
	}
	st, err := openEmbeddedSessions(cfg)
	if err != nil {
		return 0, err
	}
	defer closeOffline(st, cfg.DataDir)
	if all {
		return st.DeleteAll(ctx)
	}
	return st.DeleteUser(ctx, user)
}

// closeOffline closes a store the CLI opened itself and hands any file it
// created back to the data directory's owner, so that an authd running as an
// unprivileged user can still open them after root used the CLI.
func closeOffline(st *session.Embedded, dir string) {
	_ = st.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		return
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.Lchown(filepath.Join(dir, e.Name()), int(sys.Uid), int(sys.Gid))
	}
}

func listOffline(ctx context.Context, cfg config.Config, user string) ([]server.SessionInfo, error) {
	st, err := openEmbeddedSessions(cfg)
	if err != nil {
		return nil, err
	}
	defer closeOffline(st, cfg.DataDir)
	entries, err := st.List(ctx, user)
	if err != nil {
		return nil, err
	}
	return sessionInfos(entries, time.Now()), nil
}

// notifyUserChange makes a running authd reload users now and, when the
// change ends sessions, deletes them; without a running authd the session
// store is cleaned directly.
func notifyUserChange(ctx context.Context, cfg config.Config, user string, revokeSessions bool) error {
	err := adminCall(ctx, cfg, "POST", "/reload", nil)
	if err != nil && !errors.Is(err, errNotRunning) {
		return fmt.Errorf("running authd did not reload: %w", err)
	}
	if !revokeSessions || user == "" {
		return nil
	}
	if errors.Is(err, errNotRunning) {
		if _, statErr := os.Stat(cfg.DataDir); statErr != nil {
			return nil // never started: no sessions to end
		}
	}
	if _, err := revoke(ctx, cfg, user, false); err != nil && !errors.Is(err, errUnknownUser) {
		// A deleted user is unknown to the running authd by now; with no
		// sessions left there is nothing to end.
		return fmt.Errorf("revoke sessions of %s: %w", user, err)
	}
	return nil
}
