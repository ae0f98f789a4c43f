package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

func cmdUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("user: missing subcommand (add, passwd, del, lock, unlock, set, list, reset-link, mfa, import-htpasswd, import)")
	}
	sub, args := args[0], args[1:]
	if sub == "mfa" {
		return cmdUserMFA(ctx, args, stdout, stderr)
	}
	if sub == "reset-link" {
		return cmdResetLink(ctx, args, stdout, stderr)
	}
	fs, cfgPath := newFlags("user "+sub, stderr)
	var groups, email, display, from, to *string
	var overwrite *bool
	force := new(bool)
	if sub == "del" || sub == "lock" || sub == "set" {
		force = fs.Bool("force", false, "allow removing the last enabled member of the admin groups")
	}
	if sub == "import" {
		from = fs.String("from", "file", "store to copy users from: file or redis")
		to = fs.String("to", "redis", "store to copy users to: redis or file")
		overwrite = fs.Bool("overwrite", false, "replace users that exist in the target")
	}
	if sub == "add" || sub == "set" {
		groups = fs.String("groups", "", "comma-separated groups")
		email = fs.String("email", "", "email address")
		display = fs.String("name", "", "display name")
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		if len(pos) != 0 {
			return usagef("user list takes no arguments")
		}
		return userList(ctx, cfg, stdout)
	case "import-htpasswd":
		if len(pos) != 1 {
			return usagef("user import-htpasswd FILE")
		}
		return auditedImport(ctx, cfg, stderr, "import-htpasswd "+pos[0], func() error {
			if cfg.Store == "redis" {
				return redisImportHTPasswd(ctx, cfg, pos[0], stdout)
			}
			return userImport(ctx, cfg, pos[0], stdout)
		})
	case "import":
		if len(pos) != 0 {
			return usagef("user import -from file|redis -to redis|file [-overwrite]")
		}
		return auditedImport(ctx, cfg, stderr, "import -from "+*from+" -to "+*to, func() error {
			return copyUsers(ctx, cfg, *from, *to, *overwrite, stdout)
		})
	case "add", "passwd", "del", "lock", "unlock", "set":
	default:
		return usagef("user: unknown subcommand %q", sub)
	}
	if len(pos) != 1 {
		return usagef("user %s NAME", sub)
	}
	name, err := users.Canonical(pos[0])
	if err != nil {
		return fmt.Errorf("user name %q: %w", pos[0], err)
	}

	var hash string
	if sub == "add" || sub == "passwd" {
		pw, err := readNewPassword(stdin, stderr)
		if err != nil {
			return err
		}
		if hash, err = users.Hash(pw, hashParams(cfg)); err != nil {
			return fmt.Errorf("hash password: %w", err)
		}
	}
	au, err := openCLIAudit(ctx, cfg)
	if err != nil {
		return err
	}
	defer au.Close()
	change := userChange(cfg, sub, name, hash, groups, email, display)
	var detail string
	apply := func(u users.User, exists bool) (users.User, bool, error) {
		nu, del, err := change(u, exists)
		if err == nil && sub == "set" {
			detail = describeChange(u, nu)
		}
		return nu, del, err
	}
	// Unless -force, the last enabled admin cannot be locked, deleted or demoted.
	admins := cfg.Admin.Groups
	if *force {
		admins = nil
	}
	if cfg.Store == "redis" {
		err = redisUserEdit(ctx, cfg, sub, name, admins, apply)
	} else {
		err = fileUserEdit(cfg, name, admins, apply)
	}
	if errors.Is(err, users.ErrLastAdmin) {
		return fmt.Errorf("%w; add or unlock another admin first, or pass -force", err)
	}
	if err != nil {
		return err
	}
	if err := au.record(ctx, audit.Event{Event: userEvents[sub], Target: name, Detail: detail}); err != nil {
		fmt.Fprintf(stderr, "authd: warning: %v\n", err)
	}
	if cfg.Store != "redis" {
		// Make a running authd see the change now, and drop the sessions it
		// ends with the reason the login page shows.
		if err := notifyUserChange(ctx, cfg, name, endReason(sub)); err != nil {
			fmt.Fprintf(stderr, "authd: warning: %v\n", err)
		}
	}
	printUserDone(stdout, sub, name)
	return nil
}

// auditedImport runs an import and records it as one users_imported event.
func auditedImport(ctx context.Context, cfg config.Config, stderr io.Writer, what string, run func() error) error {
	au, err := openCLIAudit(ctx, cfg)
	if err != nil {
		return err
	}
	defer au.Close()
	if err := run(); err != nil {
		return err
	}
	if err := au.record(ctx, audit.Event{Event: "users_imported", Detail: what}); err != nil {
		fmt.Fprintf(stderr, "authd: warning: %v\n", err)
	}
	return nil
}

// userEvents are the audit events of the user subcommands.
var userEvents = map[string]string{"add": "user_added", "passwd": "password_changed", "del": "user_deleted",
	"lock": "user_locked", "unlock": "user_unlocked", "set": "user_updated"}

// userEdit is one change to one user, as users.Redis.Update takes it.
type userEdit func(u users.User, exists bool) (nu users.User, del bool, err error)

// userChange returns the change a user subcommand makes.
func userChange(cfg config.Config, sub, name, hash string, groups, email, display *string) userEdit {
	return func(u users.User, exists bool) (users.User, bool, error) {
		if sub == "add" {
			if exists {
				return u, false, fmt.Errorf("user %s exists; use 'authd user passwd %s' to change the password", name, name)
			}
			u = users.User{Name: name, Hash: hash, Generation: users.NewGeneration(), Created: time.Now().UTC().Truncate(time.Second)}
			setFields(&u, groups, email, display)
			return u, false, nil
		}
		if !exists {
			return u, false, fmt.Errorf("no user %s in %s", name, usersSource(cfg))
		}
		del := false
		switch sub {
		case "passwd":
			u.Hash, u.Generation = hash, users.NewGeneration()
		case "lock":
			u.Disabled, u.Generation = true, users.NewGeneration()
		case "unlock":
			u.Disabled, u.Generation = false, users.NewGeneration()
		case "set":
			u.Groups = slices.Clone(u.Groups)
			setFields(&u, groups, email, display)
		case "del":
			del = true
		}
		return u, del, nil
	}
}

// describeChange says what "user set" changed, for the audit log.
func describeChange(old, nu users.User) string {
	var parts []string
	if !slices.Equal(old.Groups, nu.Groups) {
		parts = append(parts, fmt.Sprintf("groups %q -> %q", strings.Join(old.Groups, ","), strings.Join(nu.Groups, ",")))
	}
	if old.Email != nu.Email {
		parts = append(parts, fmt.Sprintf("email %q -> %q", old.Email, nu.Email))
	}
	if old.DisplayName != nu.DisplayName {
		parts = append(parts, fmt.Sprintf("display name %q -> %q", old.DisplayName, nu.DisplayName))
	}
	return strings.Join(parts, "; ")
}

// fileUserEdit applies fn to user name in the users file, atomically, as
// users.Redis.UpdateGuarded does in Redis: a change that would leave no
// enabled member of admins fails with users.ErrLastAdmin.
func fileUserEdit(cfg config.Config, name string, admins []string, fn userEdit) error {
	return users.Edit(cfg.UsersFile, userLimits(cfg), func(list []users.User) ([]users.User, error) {
		i := slices.IndexFunc(list, func(u users.User) bool { return u.Name == name })
		var u users.User
		if i >= 0 {
			u = list[i]
		}
		nu, del, err := fn(u, i >= 0)
		if err == nil && i >= 0 {
			err = users.CheckAdminsLeft(list, admins, name, nu, del)
		}
		switch {
		case err != nil:
			return nil, err
		case del && i >= 0:
			return slices.Delete(list, i, i+1), nil
		case del:
			return list, nil
		case i >= 0:
			list[i] = nu
			return list, nil
		}
		return append(list, nu), nil
	})
}

func printUserDone(stdout io.Writer, sub, name string) {
	verb := map[string]string{"add": "added", "passwd": "password changed", "del": "deleted", "lock": "locked", "unlock": "unlocked", "set": "updated"}[sub]
	fmt.Fprintf(stdout, "user %s %s\n", name, verb)
}

// setFields applies the flags that were given; an empty -groups clears groups.
func setFields(u *users.User, groups, email, display *string) {
	if groups != nil && (*groups != "" || u.Groups != nil) {
		u.Groups = nil
		for _, g := range strings.Split(*groups, ",") {
			if g = strings.TrimSpace(g); g != "" {
				u.Groups = append(u.Groups, g)
			}
		}
	}
	if email != nil && *email != "" {
		u.Email = *email
	}
	if display != nil && *display != "" {
		u.DisplayName = *display
	}
}

func userList(ctx context.Context, cfg config.Config, stdout io.Writer) error {
	rc, err := openRedis(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeRedis(rc)
	u, err := openUsers(ctx, cfg, rc, "")
	if err != nil {
		return err
	}
	return printUsers(u.DB(), stdout)
}

func printUsers(db *users.DB, stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, u := range db.Users() {
		state := "active"
		if u.Disabled {
			state = "locked"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, state, dash(strings.Join(u.Groups, ",")), dash(u.Email), dash(u.DisplayName))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func userImport(ctx context.Context, cfg config.Config, path string, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	imported, err := users.ParseHTPasswd(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	err = users.Edit(cfg.UsersFile, userLimits(cfg), func(list []users.User) ([]users.User, error) {
		var clash []string
		for _, u := range imported {
			if slices.ContainsFunc(list, func(x users.User) bool { return x.Name == u.Name }) {
				clash = append(clash, u.Name)
			}
		}
		if len(clash) > 0 {
			return nil, fmt.Errorf("users already exist: %s; delete them first or remove them from %s", strings.Join(clash, ", "), path)
		}
		for _, u := range imported {
			u.Generation = users.NewGeneration()
			list = append(list, u)
		}
		return list, nil
	})
	if err != nil {
		return err
	}
	_ = notifyUserChange(ctx, cfg, "", session.NotEnded)
	fmt.Fprintf(stdout, "imported %d users (bcrypt hashes are upgraded to argon2id at each user's next login)\n", len(imported))
	return nil
}

func cmdHash(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("hash", stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	p := users.Params{MemoryKiB: 19456, Time: 2, Threads: 1}
	if cfg, err := config.Load(*cfgPath); err == nil {
		p = hashParams(cfg)
	}
	pw, err := readNewPassword(stdin, stderr)
	if err != nil {
		return err
	}
	h, err := users.Hash(pw, p)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, h)
	return nil
}

// readNewPassword prompts twice without echo on a terminal, or reads one
// line from stdin otherwise, and applies the password policy.
func readNewPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	var pw string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "New password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Repeat password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("passwords do not match")
		}
		pw = string(a)
	} else {
		line, err := bufio.NewReaderSize(stdin, users.MaxPasswordBytes+2).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("no password on stdin; pipe one line, e.g. printf '%s\\n' \"$PW\" | authd user add NAME")
		}
	}
	if err := users.CheckNewPassword(pw); err != nil {
		return "", err
	}
	return pw, nil
}

// redisUserEdit applies fn to user name in the Redis user store, refusing
// to leave no enabled member of admins (checked against Redis, see
// users.Redis.UpdateGuarded). Every instance sees it at its next request:
// the user's version changes with the record, in one step. Sessions a
// change ends are deleted as well.
func redisUserEdit(ctx context.Context, cfg config.Config, sub, name string, admins []string, fn userEdit) error {
	rs, err := openRedisState(ctx, cfg)
	if err != nil {
		return err
	}
	defer rs.Close()
	if err := rs.users.UpdateGuarded(ctx, name, admins, fn); err != nil {
		return err
	}
	if why := endReason(sub); why != session.NotEnded {
		if _, err := rs.sessions.EndUser(ctx, name, why); err != nil {
			return fmt.Errorf("revoke sessions of %s: %w", name, err)
		}
	}
	return nil
}

func redisImportHTPasswd(ctx context.Context, cfg config.Config, path string, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	imported, err := users.ParseHTPasswd(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for i := range imported {
		imported[i].Generation = users.NewGeneration()
	}
	n, err := putRedisUsers(ctx, cfg, imported, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d users (bcrypt hashes are upgraded to argon2id at each user's next login)\n", n)
	return nil
}

// putRedisUsers writes list to Redis; unless overwrite, it refuses to start
// when any of the names exists there.
func putRedisUsers(ctx context.Context, cfg config.Config, list []users.User, overwrite bool) (int, error) {
	rs, err := openRedisState(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	ru := rs.users
	if !overwrite {
		var clash []string
		for _, u := range list {
			if _, ok := ru.DB().Lookup(u.Name); ok {
				clash = append(clash, u.Name)
			}
		}
		if len(clash) > 0 {
			return 0, fmt.Errorf("users already exist in redis: %s; use -overwrite to replace them", strings.Join(clash, ", "))
		}
	}
	for i, u := range list {
		put := ru.Put
		if !overwrite {
			// The check above read a snapshot: a user added since must not be
			// clobbered, so the write itself refuses an existing name.
			put = ru.Add
		}
		if err := put(ctx, u); err != nil {
			if errors.Is(err, users.ErrExists) {
				err = fmt.Errorf("%w; use -overwrite to replace it (%d users were imported before it)", err, i)
			}
			return i, err
		}
	}
	return len(list), nil
}

// copyUsers copies every user between the users file and Redis, hashes and
// generations included, so sessions and passwords carry over unchanged.
func copyUsers(ctx context.Context, cfg config.Config, from, to string, overwrite bool, stdout io.Writer) error {
	switch {
	case from == "file" && to == "redis":
		u, err := openUsers(ctx, cfg, nil, "")
		if err != nil {
			return err
		}
		n, err := putRedisUsers(ctx, cfg, u.DB().Users(), overwrite)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "copied %d users from %s to redis\n", n, cfg.UsersFile)
		return nil
	case from == "redis" && to == "file":
		rs, err := openRedisState(ctx, cfg)
		if err != nil {
			return err
		}
		defer rs.Close()
		src := rs.users.DB().Users()
		err = users.Edit(cfg.UsersFile, userLimits(cfg), func(list []users.User) ([]users.User, error) {
			for _, u := range src {
				i := slices.IndexFunc(list, func(x users.User) bool { return x.Name == u.Name })
				switch {
				case i < 0:
					list = append(list, u)
				case overwrite:
					list[i] = u
				default:
					return nil, fmt.Errorf("user %s already exists in %s; use -overwrite to replace it", u.Name, cfg.UsersFile)
				}
			}
			return list, nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "copied %d users from redis to %s\n", len(src), cfg.UsersFile)
		return nil
	}
	return usagef("user import: -from file -to redis, or -from redis -to file (got -from %s -to %s)", from, to)
}

// endReason is why a user command ends the user's sessions, as the login
// page will tell them; session.NotEnded for a command that keeps them.
func endReason(sub string) session.Reason {
	switch sub {
	case "passwd":
		return session.PasswordChanged
	case "lock":
		return session.Locked
	case "del":
		return session.Revoked
	}
	return session.NotEnded
}
