package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/account"
	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/users"
)

// Default lifetimes of links made without -expires.
const (
	defaultInviteTTL = 72 * time.Hour
	defaultResetTTL  = time.Hour
	maxLinkTTL       = 30 * 24 * time.Hour
)

// openAccounts opens the invites, reset links and registration requests:
// data_dir's account file, or Redis on rc with store = "redis". Both the
// CLI and the daemon change them at once safely.
func openAccounts(cfg config.Config, rc redis.UniversalClient) *account.Store {
	if rc != nil {
		return account.New(account.NewRedis(rc, cfg.Redis.KeyPrefix, time.Now), time.Now)
	}
	return account.New(account.NewFile(filepath.Join(cfg.DataDir, account.FileName), time.Now), time.Now)
}

// newMailer returns the configured SMTP sender, or nil when [smtp] has no host.
func newMailer(cfg config.Config) (*account.Mailer, error) {
	s := cfg.SMTP
	if !s.Enabled() {
		return nil, nil
	}
	pw, err := s.Password()
	if err != nil {
		return nil, err
	}
	return &account.Mailer{Host: s.Host, Port: s.Port, From: s.From, Username: s.Username, Password: pw,
		TLS: string(s.StartTLS), Timeout: s.Timeout.Duration}, nil
}

// linkURL is the absolute link to a page of authd's: public_url + prefix + path.
func linkURL(cfg config.Config, path string) string {
	return strings.TrimSuffix(cfg.PublicURL, "/") + cfg.Prefix + path
}

// recordCLI writes a CLI change to the audit log, naming the unix user.
// The link a change made is printed only after its event is recorded, so
// a change the log did not take is one nobody can use.
func recordCLI(ctx context.Context, au *cliAudit, event, target, detail string) error {
	return au.record(ctx, audit.Event{Event: event, Target: target, Detail: detail})
}

// cmdInvite runs "authd invite create|list|revoke".
func cmdInvite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("invite: missing subcommand (create, list, revoke)")
	}
	sub, args := args[0], args[1:]
	fs, cfgPath := newFlags("invite "+sub, stderr)
	var name, groups, email, expires *string
	var noMail *bool
	switch sub {
	case "create":
		name = fs.String("user", "", "the username the invitee gets (default: they choose)")
		groups = fs.String("groups", "", "comma-separated groups the new user gets")
		email = fs.String("email", "", "the invitee's email address (the link is mailed there when [smtp] is set)")
		expires = fs.String("expires", "72h", "how long the link works, e.g. 72h or 7d (at most 30d)")
		noMail = fs.Bool("no-mail", false, "only print the link, even with -email and [smtp] set")
	case "list", "revoke":
	default:
		return usagef("invite: unknown subcommand %q", sub)
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case sub == "revoke" && len(pos) != 1:
		return usagef("invite revoke ID")
	case sub != "revoke" && len(pos) != 0:
		return usagef("invite %s takes flags only", sub)
	}
	var inv account.Invite
	var ttl time.Duration
	if sub == "create" {
		if ttl, err = parseLinkTTL(*expires); err != nil {
			return usagef("-expires %q: %v", *expires, err)
		}
		if inv, err = inviteFromFlags(*name, *groups, *email); err != nil {
			return usagef("%v", err)
		}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	rc, err := openRedis(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeRedis(rc)
	au, err := openCLIAudit(ctx, cfg)
	if err != nil {
		return err
	}
	defer au.Close()
	st := openAccounts(cfg, rc)
	switch sub {
	case "list":
		return listInvites(ctx, st, stdout)
	case "revoke":
		if err := st.RevokeInvite(ctx, pos[0]); errors.Is(err, account.ErrNotFound) {
			return fmt.Errorf("no open invite with that id; see 'authd invite list'")
		} else if err != nil {
			return err
		}
		if err := recordCLI(ctx, au, "invite_revoked", "", "invite "+strings.ToLower(pos[0])); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "invite %s revoked\n", strings.ToLower(pos[0]))
		return nil
	}
	if inv.User != "" {
		us, err := openUsers(ctx, cfg, rc, *cfgPath)
		if err == nil && us.DB().HasUser(inv.User) {
			return fmt.Errorf("user %s exists already", inv.User)
		}
	}
	var mailer *account.Mailer
	if inv.Email != "" && !*noMail {
		if mailer, err = newMailer(cfg); err != nil {
			return err
		}
	}
	inv.By = au.actor
	token, inv, err := st.CreateInvite(ctx, inv, ttl)
	if err != nil {
		return err
	}
	link := linkURL(cfg, "invite/"+token)
	if err := recordCLI(ctx, au, "invite_created", inv.User, "invite "+inv.ID); err != nil {
		return err
	}
	fmt.Fprintln(stdout, link)
	fmt.Fprintf(stderr, "invite %s expires %s; the link works once and is shown only this once\n", inv.ID, inv.Expires.Format(time.RFC3339))
	if mailer != nil {
		if err := mailer.Send(ctx, account.InviteMessage(inv.Email, siteName(cfg), link, inv.Expires)); err != nil {
			return fmt.Errorf("invite %s made, but mailing it failed: %w", inv.ID, err)
		}
		fmt.Fprintf(stderr, "mailed to %s\n", inv.Email)
	}
	return nil
}

// siteName names the site in mails: the host of public_url.
func siteName(cfg config.Config) string {
	s := strings.TrimPrefix(strings.TrimPrefix(cfg.PublicURL, "https://"), "http://")
	return strings.TrimSuffix(s, "/")
}

func inviteFromFlags(name, groups, email string) (account.Invite, error) {
	var inv account.Invite
	if name != "" {
		c, err := users.Canonical(name)
		if err != nil {
			return inv, fmt.Errorf("-user %q: %v", name, err)
		}
		inv.User = c
	}
	for _, g := range strings.Split(groups, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		if !users.ValidGroup(g) {
			return inv, fmt.Errorf("-groups: %q is not a group name: use 1-64 characters of a-z, 0-9, '.', '_' and '-'", g)
		}
		inv.Groups = append(inv.Groups, g)
	}
	if email != "" {
		a, err := mail.ParseAddress(email)
		if err != nil || a.Address != email {
			return inv, fmt.Errorf("-email %q: want one plain address such as bob@example.com", email)
		}
		inv.Email = email
	}
	return inv, nil
}

// parseLinkTTL is parseLifetime bounded to 30 days.
func parseLinkTTL(s string) (time.Duration, error) {
	d, err := parseLifetime(s)
	if err != nil {
		return 0, err
	}
	if d > maxLinkTTL {
		return 0, errors.New("at most 30d")
	}
	return d, nil
}

func listInvites(ctx context.Context, st *account.Store, stdout io.Writer) error {
	list, err := st.Invites(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, inv := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", inv.ID, dash(inv.User), dash(inv.Email), dash(strings.Join(inv.Groups, ",")),
			inv.Created.Format(time.RFC3339), inv.Expires.Format(time.RFC3339), dash(inv.By))
	}
	return tw.Flush()
}

// cmdResetLink runs "authd user reset-link NAME [-expires 1h]": it prints a
// single-use link that sets a new password for NAME and ends the user's
// sessions. With [smtp] set and an email on the user, it mails it too.
func cmdResetLink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("user reset-link", stderr)
	expires := fs.String("expires", "1h", "how long the link works, e.g. 1h or 2d (at most 30d)")
	noMail := fs.Bool("no-mail", false, "only print the link, even with [smtp] set")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("user reset-link [-expires 1h] NAME")
	}
	ttl, err := parseLinkTTL(*expires)
	if err != nil {
		return usagef("-expires %q: %v", *expires, err)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	rc, err := openRedis(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeRedis(rc)
	name, err := users.Canonical(pos[0])
	if err != nil {
		return fmt.Errorf("user name %q: %w", pos[0], err)
	}
	us, err := openUsers(ctx, cfg, rc, *cfgPath)
	if err != nil {
		return err
	}
	e, ok := us.DB().Lookup(name)
	if !ok {
		return fmt.Errorf("no user %s in %s", name, usersSource(cfg))
	}
	var mailer *account.Mailer
	if e.Email != "" && !*noMail {
		if mailer, err = newMailer(cfg); err != nil {
			return err
		}
	}
	au, err := openCLIAudit(ctx, cfg)
	if err != nil {
		return err
	}
	defer au.Close()
	token, r, err := openAccounts(cfg, rc).CreateReset(ctx, name, au.actor, ttl)
	if err != nil {
		return err
	}
	link := linkURL(cfg, "reset/"+token)
	if err := recordCLI(ctx, au, "reset_issued", name, "reset "+r.ID); err != nil {
		return err
	}
	fmt.Fprintln(stdout, link)
	fmt.Fprintf(stderr, "reset link for %s expires %s; it works once, ends the user's sessions, and is shown only this once\n", name, r.Expires.Format(time.RFC3339))
	if e.Disabled {
		fmt.Fprintf(stderr, "authd: warning: user %s is locked; a new password does not unlock it\n", name)
	}
	if mailer != nil {
		if err := mailer.Send(ctx, account.ResetMessage(e.Email, siteName(cfg), name, link, r.Expires)); err != nil {
			return fmt.Errorf("reset link made, but mailing it failed: %w", err)
		}
		fmt.Fprintf(stderr, "mailed to %s\n", e.Email)
	}
	return nil
}
