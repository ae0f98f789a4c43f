package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/idp"
	"github.com/authd/authd/authd/internal/users"
)

// Directory checks a name and password against a directory (LDAP) for
// names that have no local account. Authenticate's errors wrap one of
// idp.ErrInvalidCredentials, idp.ErrNotAllowed or idp.ErrUnavailable.
type Directory interface {
	Authenticate(ctx context.Context, name, password string) (idp.Identity, error)
	Ping(ctx context.Context) error
}

var _ Directory = (*idp.LDAP)(nil)

// sourceLDAP is the Source of users who sign in against the directory.
const sourceLDAP = "ldap"

// Messages of the directory path that differ from a local login's.
const (
	msgDirectoryDown = "Sign-in is unavailable right now: the directory cannot be reached. Please try again later."
	msgNotAllowed    = "Your account may not sign in here. Ask an administrator for access."
)

var (
	errLocalAccount = errors.New("a local account has this name")
	errLockedHere   = errors.New("locked in authd")
)

// toDirectory reports whether a login for the canonical name goes to the
// directory: there is one, and the name has no local account (no record, or
// a record the directory made). A local account always signs in locally.
func (s *Server) toDirectory(name string) bool {
	if s.dir == nil {
		return false
	}
	u, ok := s.users.DB().Lookup(name)
	return !ok || u.Source == sourceLDAP
}

// loginDirectory is handleLogin's path for a directory user, after the
// CSRF, throttle and size checks. A bind is I/O, not hashing: it takes no
// hashing slot, and failures are padded to the same floor as a local
// user's, so the reply time does not tell which names exist where.
func (s *Server) loginDirectory(o *settings, w http.ResponseWriter, r *http.Request, view loginView, name, password, ip string, remember bool, rd string) {
	ctx := r.Context()
	start := time.Now()
	id, err := s.dir.Authenticate(ctx, name, password)
	var f *idp.Failure
	errors.As(err, &f)
	switch {
	case errors.Is(err, idp.ErrUnavailable):
		// Nothing was checked: neither the name nor the password.
		s.refund(ctx, name, ip)
		s.dirErrors.log(s.log, time.Now(), err)
		s.directoryOutcome("directory_unavailable", name, ip)
		w.Header().Set("Retry-After", "10")
		view.Error = msgDirectoryDown
		o.renderLogin(w, r, http.StatusServiceUnavailable, view)
		return
	case errors.Is(err, idp.ErrNotAllowed):
		// The password was right, so the answer tells nothing a guesser
		// could use; it still waits for the floor like a failure.
		if !s.pace.pad(ctx, start) {
			s.directoryOutcome("overloaded", name, ip)
			o.renderBusy(w, r, view)
			return
		}
		s.directoryOutcome("not_allowed", name, ip)
		view.Error = msgNotAllowed
		o.renderLogin(w, r, http.StatusForbidden, view)
		return
	case err != nil:
		reason := "bad_password"
		if f != nil {
			reason = f.Reason
		}
		if f != nil && f.Err != nil && reason != "bad_password" {
			s.log.Info("directory refused sign-in", zap.String("user", name), zap.String("reason", reason), zap.Error(f.Err))
		}
		s.failDirectory(o, w, r, view, name, ip, reason, start)
		return
	}

	u, reason, err := s.recordDirectoryUser(ctx, r, id)
	if err != nil {
		if reason == "unavailable" {
			s.log.Error("directory user not recorded", zap.String("user", name), zap.Error(err))
			s.refund(ctx, name, ip)
			s.directoryOutcome("unavailable", name, ip)
			o.renderBusy(w, r, view)
			return
		}
		s.log.Info("directory sign-in refused", zap.String("user", name), zap.String("reason", reason), zap.Error(err))
		s.failDirectory(o, w, r, view, name, ip, reason, start)
		return
	}
	if err := s.thr.Success(ctx, name, ip); err != nil {
		s.log.Warn("throttle reset failed", zap.Error(err))
	}
	s.refund(ctx, name, ip)
	cookie, key, err := s.startSession(o, r, u, remember, ip)
	if err != nil {
		s.log.Error("session create failed", zap.String("user", u.Name), zap.Error(err))
		s.directoryOutcome("unavailable", u.Name, ip)
		o.renderBusy(w, r, view)
		return
	}
	s.metrics.login("success")
	s.log.Info("login succeeded", zap.String("event", "login_succeeded"), zap.String("user", u.Name),
		zap.String("source", sourceLDAP), zap.Strings("groups", u.Groups),
		zap.String("client_ip", ip), zap.Bool("remember", remember), zap.String("session", key.Short()))
	s.record(ctx, r, audit.Event{Event: "login_succeeded", Actor: u.Name, Source: sourceLDAP, Detail: "session " + key.Short()})
	maxAge := 0
	if remember {
		maxAge = int(o.RememberLifetime / time.Second)
	}
	o.setCookie(w, o.CookieName, cookie, maxAge)
	o.setCookie(w, o.preName, "", -1)
	s.redirect(w, s.afterLogin(ctx, o, u, rd))
}

// failDirectory answers a refused directory sign-in exactly as a local one
// (fail), logged with its source.
func (s *Server) failDirectory(o *settings, w http.ResponseWriter, r *http.Request, view loginView, name, ip, reason string, start time.Time) {
	if !s.pace.pad(r.Context(), start) {
		s.directoryOutcome("overloaded", name, ip)
		o.renderBusy(w, r, view)
		return
	}
	s.directoryOutcome(reason, name, ip)
	view.Error = "Incorrect username or password."
	o.renderLogin(w, r, http.StatusUnauthorized, view)
}

func (s *Server) directoryOutcome(reason, user, ip string) {
	s.metrics.login(reason)
	if reason == "success" {
		return
	}
	s.log.Info("login failed", zap.String("event", "login_failed"), zap.String("reason", reason),
		zap.String("source", sourceLDAP), zap.String("user", user), zap.String("client_ip", ip))
}

// recordDirectoryUser creates or refreshes the local record of a directory
// user (email, display name and groups from the directory; a new
// Generation only when created, so a refresh ends no session) and returns
// it. It refuses a name held by a local account or locked in authd; reason
// is the log word for a refusal, "unavailable" when the store failed.
func (s *Server) recordDirectoryUser(ctx context.Context, r *http.Request, id idp.Identity) (*users.Entry, string, error) {
	name, err := users.Canonical(id.Name)
	if err != nil {
		return nil, "bad_directory_name", err
	}
	want := users.User{Name: name, Source: sourceLDAP, Groups: directoryGroups(id.Groups),
		Email: directoryText(id.Email), DisplayName: directoryText(id.DisplayName)}
	same := func(u users.User) bool {
		return u.Email == want.Email && u.DisplayName == want.DisplayName && slices.Equal(u.Groups, want.Groups)
	}
	refuse := func(u users.User) (string, error) {
		switch {
		case u.Source != sourceLDAP:
			return "local_account_conflict", errLocalAccount
		case u.Disabled:
			return "disabled", errLockedHere
		}
		return "", nil
	}
	// Most sign-ins change nothing: then nothing is written.
	if e, ok := s.users.DB().Lookup(name); ok {
		if reason, err := refuse(e.User); err != nil {
			return nil, reason, err
		}
		if same(e.User) {
			return e, "", nil
		}
	}
	var reason string
	created := false
	err = s.users.Update(ctx, name, func(u users.User, exists bool) (users.User, bool, error) {
		created = !exists
		if !exists {
			want.Generation = users.NewGeneration()
			return want, false, nil
		}
		var err error
		if reason, err = refuse(u); err != nil {
			return u, false, err
		}
		u.Email, u.DisplayName, u.Groups = want.Email, want.DisplayName, want.Groups
		return u, false, nil
	})
	if err != nil {
		if reason == "" {
			reason = "unavailable"
		}
		return nil, reason, err
	}
	ev := audit.Event{Event: "user_updated", Target: name, Source: sourceLDAP,
		Detail: "refreshed from the directory; groups: " + strings.Join(want.Groups, ",")}
	if created {
		ev.Event, ev.Detail = "user_created", "first sign-in from the directory; groups: "+strings.Join(want.Groups, ",")
	}
	s.record(ctx, r, ev)
	e, ok := s.users.DB().Lookup(name)
	if !ok {
		return nil, "unavailable", errors.New("user missing after update")
	}
	return e, "", nil
}

// directoryGroups keeps the directory's groups that authd can hold (already
// lowercase), sorted, so that an unchanged membership compares equal.
func directoryGroups(gs []string) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		if users.ValidGroup(g) && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// directoryText drops a directory value the users store would refuse
// (too long, not UTF-8, control characters) rather than refusing the user.
func directoryText(s string) string {
	if len(s) > 256 || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return ""
	}
	return s
}
