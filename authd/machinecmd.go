package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/machine"
	"github.com/authd/authd/authd/internal/users"
)

// cmdToken runs "authd token create|list|revoke".
func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return credentialCmd(ctx, "token", args, stdout, stderr)
}

// cmdKey runs "authd key create|list|revoke".
func cmdKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return credentialCmd(ctx, "key", args, stdout, stderr)
}

func credentialCmd(ctx context.Context, kind string, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("%s: missing subcommand (create, list, revoke)", kind)
	}
	sub, args := args[0], args[1:]
	fs, cfgPath := newFlags(kind+" "+sub, stderr)
	var user, label, expires *string
	switch sub {
	case "create":
		user = fs.String("user", "", "the user the "+kind+" acts as")
		label = fs.String("name", "", "what the "+kind+" is for")
		expires = fs.String("expires", "", "lifetime, e.g. 30d or 12h (default 90d, at most 366d)")
	case "list":
		user = fs.String("user", "", "only this user's "+kind+"s")
	case "revoke":
	default:
		return usagef("%s: unknown subcommand %q", kind, sub)
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case sub == "revoke" && len(pos) != 1:
		return usagef("%s revoke ID", kind)
	case sub != "revoke" && len(pos) != 0:
		return usagef("%s %s takes flags only", kind, sub)
	case sub == "create" && (*user == "" || *label == ""):
		return usagef("%s create needs -user NAME and -name LABEL", kind)
	}
	var lifetime time.Duration
	if sub == "create" && *expires != "" {
		if lifetime, err = parseLifetime(*expires); err != nil {
			return usagef("-expires %q: %v", *expires, err)
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
	creds, err := openCredentials(ctx, cfg, rc)
	if err != nil {
		return err
	}
	var au *cliAudit
	if sub != "list" {
		if au, err = openCLIAudit(ctx, cfg); err != nil {
			return err
		}
		defer au.Close()
	}
	switch sub {
	case "list":
		return listCredentials(kind, creds, *user, time.Now(), stdout)
	case "revoke":
		id, err := revokeCredential(ctx, kind, creds, pos[0])
		if err != nil {
			return err
		}
		if err := au.record(ctx, audit.Event{Event: kind + "_revoked", Target: id}); err != nil {
			fmt.Fprintf(stderr, "authd: warning: %v\n", err)
		}
		if err := notifyUserChange(ctx, cfg, "", false); err != nil {
			fmt.Fprintf(stderr, "authd: warning: %v\n", err)
		}
		fmt.Fprintf(stdout, "%s %s revoked\n", kind, id)
		return nil
	}

	name, locked, gen, err := checkUser(ctx, cfg, rc, *user)
	if err != nil {
		return err
	}
	shown, id, exp, err := createCredential(ctx, kind, creds, name, gen, *label, time.Now(), lifetime)
	if err != nil {
		return err
	}
	if err := au.record(ctx, audit.Event{Event: kind + "_created", Target: name, Detail: id + " " + strconv.Quote(*label)}); err != nil {
		fmt.Fprintf(stderr, "authd: warning: %v\n", err)
	}
	if err := notifyUserChange(ctx, cfg, "", false); err != nil {
		fmt.Fprintf(stderr, "authd: warning: %v\n", err)
	}
	fmt.Fprintln(stdout, shown)
	what := "the token"
	if kind == "key" {
		what = "the secret"
	}
	fmt.Fprintf(stderr, "%s %s for %s expires %s; %s is shown only this once\n", kind, id, name, exp.Format(time.RFC3339), what)
	if locked {
		fmt.Fprintf(stderr, "authd: warning: user %s is locked; the %s will never work (unlocking ends every credential issued before it): unlock first, then create one\n", name, kind)
	}
	return nil
}

// createCredential adds a token or key for user, bound to the user's
// credential generation gen, and returns what to show once (the token, or
// "KEY_ID SECRET"), its id and its expiry.
func createCredential(ctx context.Context, kind string, creds *credentials, user string, gen uint64, label string, now time.Time, lifetime time.Duration) (shown, id string, exp time.Time, err error) {
	err = creds.edit(ctx, func(r *machine.Records) error {
		if kind == "token" {
			tok, rec, err := machine.NewToken(user, label, now, lifetime)
			if err != nil {
				return err
			}
			rec.UserGeneration = gen
			r.Tokens = append(r.Tokens, rec)
			shown, id, exp = tok, rec.ID, rec.Expires
			return nil
		}
		secret, rec, err := machine.NewKey(user, label, now, lifetime)
		if err != nil {
			return err
		}
		rec.UserGeneration = gen
		r.Keys = append(r.Keys, rec)
		shown, id, exp = rec.ID+" "+secret, rec.ID, rec.Expires
		return nil
	})
	return shown, id, exp, err
}

// checkUser returns the canonical name, lock state and credential generation
// of a user that exists in the configured user store (users file or Redis). A
// new token or key is bound to that generation.
func checkUser(ctx context.Context, cfg config.Config, rc redis.UniversalClient, name string) (canonical string, locked bool, generation uint64, err error) {
	canonical, err = users.Canonical(name)
	if err != nil {
		return "", false, 0, fmt.Errorf("user name %q: %w", name, err)
	}
	us, err := openUsers(ctx, cfg, rc, "")
	if err != nil {
		return "", false, 0, err
	}
	u, ok := us.DB().Lookup(canonical)
	if !ok {
		return "", false, 0, fmt.Errorf("no user %s in %s", canonical, usersSource(cfg))
	}
	return canonical, u.Disabled, u.Generation, nil
}

func listCredentials(kind string, creds *credentials, user string, now time.Time, stdout io.Writer) error {
	recs := creds.records()
	var err error
	if user != "" {
		if user, err = users.Canonical(user); err != nil {
			return fmt.Errorf("user name: %w", err)
		}
	}
	type row struct {
		id, user, label  string
		created, expires time.Time
	}
	var rows []row
	if kind == "token" {
		for _, t := range recs.Tokens {
			rows = append(rows, row{t.ID, t.User, t.Label, t.Created, t.Expires})
		}
	} else {
		for _, k := range recs.Keys {
			rows = append(rows, row{k.ID, k.User, k.Label, k.Created, k.Expires})
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		if user != "" && r.user != user {
			continue
		}
		state := "active"
		if !now.Before(r.expires) {
			state = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.id, r.user, state, r.created.Format(time.RFC3339), r.expires.Format(time.RFC3339), r.label)
	}
	return tw.Flush()
}

// revokeCredential deletes a token or key by id; a whole token is accepted
// in place of its id. Messages never echo an argument that may be a secret.
func revokeCredential(ctx context.Context, kind string, creds *credentials, arg string) (id string, err error) {
	id = arg
	if tid, ok := machine.TokenID(arg); ok && kind == "token" {
		id = tid
	}
	if !idShaped(id) {
		return "", fmt.Errorf("%s revoke: that is not a %s id; see 'authd %s list'", kind, kind, kind)
	}
	err = creds.edit(ctx, func(r *machine.Records) error {
		n := len(r.Tokens) + len(r.Keys)
		if kind == "token" {
			r.Tokens = slices.DeleteFunc(r.Tokens, func(t machine.Token) bool { return t.ID == id })
		} else {
			r.Keys = slices.DeleteFunc(r.Keys, func(k machine.Key) bool { return k.ID == id })
		}
		if len(r.Tokens)+len(r.Keys) == n {
			return fmt.Errorf("no %s %s; see 'authd %s list'", kind, id, kind)
		}
		return nil
	})
	return id, err
}

// idShaped reports whether s looks like a token or key id (short, no secret prefix),
// and so may appear in messages.
func idShaped(s string) bool {
	if len(s) == 0 || len(s) > 32 || strings.HasPrefix(s, "authd_") {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// parseLifetime accepts Go durations ("12h", "90m") and whole days ("30d").
func parseLifetime(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, errors.New("want a positive number of days, e.g. 30d")
		}
		if n > int(machine.MaxLifetime/(24*time.Hour)) {
			return 0, fmt.Errorf("at most %dd", machine.MaxLifetime/(24*time.Hour))
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errors.New("want a duration such as 30d or 12h")
	}
	if d > machine.MaxLifetime {
		return 0, fmt.Errorf("at most %dd", machine.MaxLifetime/(24*time.Hour))
	}
	return d, nil
}

// cmdSign prints the Authorization header line for one signed request, ready
// for curl -H. It needs no config: it runs wherever the client runs.
func cmdSign(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyID := fs.String("key", "", "key id (ak_…)")
	secretFile := fs.String("secret-file", "", "file holding the key's secret (default: one line on stdin)")
	method := fs.String("method", "GET", "request method")
	debug := fs.Bool("debug", false, "also print the string to sign on stderr")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *keyID == "" {
		return usagef("sign -key ID [-secret-file FILE] [-method GET] URL")
	}
	secret, err := readSecret(*secretFile, stdin)
	if err != nil {
		return err
	}
	now, nonce := time.Now(), machine.NewNonce()
	auth, err := machine.Sign(*method, pos[0], *keyID, secret, now, nonce)
	if err != nil {
		return fmt.Errorf("sign %s: %w", pos[0], err)
	}
	if *debug {
		sts, _ := machine.StringToSign(*method, pos[0], *keyID, now, nonce)
		fmt.Fprintf(stderr, "string to sign:\n%s\n", sts)
	}
	fmt.Fprintf(stdout, "Authorization: %s\n", auth)
	return nil
}

// readSecret reads a secret from a file or, without one, one line of stdin.
func readSecret(path string, stdin io.Reader) ([]byte, error) {
	var line string
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("secret file: %w", err)
		}
		line = string(b)
	} else {
		s, err := bufio.NewReaderSize(stdin, 256).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read secret from stdin: %w", err)
		}
		line = s
	}
	secret := strings.TrimSpace(line)
	if secret == "" {
		return nil, errors.New("no secret: give -secret-file FILE or pipe the secret on stdin")
	}
	if strings.ContainsAny(secret, " \t\r\n") {
		return nil, errors.New("the secret is one line without spaces, as 'authd key create' printed it")
	}
	return []byte(secret), nil
}
