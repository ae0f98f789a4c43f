package users

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrLastAdmin is wrapped by CheckAdminsLeft's error.
var ErrLastAdmin = errors.New("it would leave no enabled member of the admin groups")

// IsAdmin reports whether u is enabled and a member of one of groups.
func IsAdmin(u User, groups []string) bool {
	if u.Disabled {
		return false
	}
	for _, g := range u.Groups {
		if slices.Contains(groups, g) {
			return true
		}
	}
	return false
}

// CheckAdminsLeft returns an error wrapping ErrLastAdmin when all (the users
// before a change) holds an enabled member of groups but replacing the user
// name with nu, or deleting it (del), would leave none: the admin console
// would have no one left to use it. A change that leaves admins, or a set
// of users that had none, passes.
func CheckAdminsLeft(all []User, groups []string, name string, nu User, del bool) error {
	before, after := 0, 0
	for _, u := range all {
		if IsAdmin(u, groups) {
			before++
			if u.Name != name {
				after++
			}
		}
	}
	if !del && IsAdmin(nu, groups) {
		after++
	}
	if before > 0 && after == 0 {
		return fmt.Errorf("user %s is the last enabled member of the admin groups (%s): %w", printableName(name), strings.Join(groups, ", "), ErrLastAdmin)
	}
	return nil
}
