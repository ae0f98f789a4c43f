package server

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/audit"
	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

// editUser makes a change to one user through the store's Update, the path
// the CLI takes too: the users file or Redis, where every node sees it at
// its next verify. The last enabled admin cannot be locked, deleted or
// demoted: UpdateGuarded checks that against the store, atomically.
func (s *Server) editUser(o *settings, w http.ResponseWriter, r *http.Request, p *pageUser, op, name, back string, done func(event, detail, notice string)) {
	f := r.PostForm
	ctx := r.Context()
	var hash string
	if op == "add" || op == "password" {
		pw := f.Get("password")
		if err := users.CheckNewPassword(pw); err != nil {
			s.consoleError(o, w, p, http.StatusBadRequest, shown("The password was refused: %v.", err), back)
			return
		}
		if !o.gate.acquire(ctx) {
			s.consoleError(o, w, p, http.StatusServiceUnavailable, shown("Too busy to hash a password right now; try again."), back)
			return
		}
		var err error
		hash, err = s.hash.Hash(ctx, pw, o.HashParams)
		o.gate.release()
		if err != nil {
			s.consoleError(o, w, p, http.StatusInternalServerError, err, back)
			return
		}
	}
	if op == "delete" && f.Get("confirm") != "yes" {
		s.consoleError(o, w, p, http.StatusBadRequest, shown("Tick the box to confirm that %s is to be deleted.", name), back)
		return
	}
	email, display := strings.TrimSpace(f.Get("email")), strings.TrimSpace(f.Get("display_name"))
	groups := splitGroups(f.Get("groups"))
	var detail string
	err := s.users.UpdateGuarded(ctx, name, o.AdminGroups, func(u users.User, exists bool) (users.User, bool, error) {
		if op == "add" {
			if exists {
				return u, false, shown("A user %s exists already.", name)
			}
			return users.User{Name: name, Hash: hash, Groups: groups, Email: email, DisplayName: display,
				Generation: users.NewGeneration(), Created: s.now().UTC().Truncate(1e9)}, false, nil
		}
		if !exists {
			return u, false, shown("There is no user %s.", name)
		}
		old := u
		u.Groups = slices.Clone(u.Groups)
		del := false
		switch op {
		case "set":
			u.Groups, u.Email, u.DisplayName = groups, email, display
			detail = describeUserChange(old, u)
		case "lock":
			u.Disabled, u.Generation = true, users.NewGeneration()
		case "unlock":
			u.Disabled, u.Generation = false, users.NewGeneration()
		case "password":
			if u.Source != "" {
				return u, false, shown("%s signs in through %s; their password is not kept here.", name, u.Source)
			}
			u.Hash, u.Generation = hash, users.NewGeneration()
		case "delete":
			del = true
		}
		return u, del, nil
	})
	if errors.Is(err, users.ErrLastAdmin) {
		err = shown("%s is the last enabled member of the admin groups (%s); make someone else an admin first.",
			name, strings.Join(o.AdminGroups, ", "))
	}
	if err != nil {
		var se errShown
		if !errors.As(err, &se) && !errors.Is(err, users.ErrConflict) {
			// Validation of the new record (a bad email or group) is worth showing.
			err = shown("The change was refused: %v.", err)
		}
		s.consoleError(o, w, p, http.StatusBadRequest, err, back)
		return
	}
	// A lock, delete or new password ends the user's sessions at the next
	// verify on every node (the credential fingerprint changed); delete
	// them now as well, as the CLI does.
	// The login page tells the user why (locked, password changed, ended).
	why := map[string]session.Reason{"lock": session.Locked, "delete": session.Revoked, "password": session.PasswordChanged}[op]
	if why != session.NotEnded && s.adminSessions != nil {
		if _, err := s.adminSessions.EndUser(ctx, name, why); err != nil {
			s.log.Warn("revoke sessions after admin change failed", zap.String("user", name), zap.Error(err))
		}
	}
	switch op {
	case "add":
		done("user_added", fmt.Sprintf("groups %q", strings.Join(groups, ",")), "added")
	case "set":
		done("user_updated", detail, "updated")
	case "lock":
		done("user_locked", "", "locked")
	case "unlock":
		done("user_unlocked", "", "unlocked")
	case "password":
		done("password_changed", "set by an admin", "password")
	case "delete":
		s.record(ctx, r, audit.Event{Event: "user_deleted", Actor: p.User.Name, Target: name, Source: "web"})
		s.redirect(w, o.Prefix+"admin/?done=deleted")
	}
}

// describeUserChange says what a "set" changed, for the audit log.
func describeUserChange(old, nu users.User) string {
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
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, "; ")
}
