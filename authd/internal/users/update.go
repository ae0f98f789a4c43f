package users

import (
	"context"
	"fmt"
	"slices"
)

// Update reads user name from the file, passes it to fn (exists false: no
// such user), and writes what fn returns under the file's edit lock, then
// reloads; del true deletes the user. fn's user must keep the name. It is
// the same operation as Redis.Update, so callers can take either store.
func (f *File) Update(_ context.Context, name string, fn func(u User, exists bool) (nu User, del bool, err error)) error {
	err := edit(f.Path(), *f.lim.Load(), func(us []User) ([]User, error) {
		i := slices.IndexFunc(us, func(u User) bool { return u.Name == name })
		var cur User
		if i >= 0 {
			cur = us[i]
			cur.Groups = slices.Clone(cur.Groups)
		}
		nu, del, err := fn(cur, i >= 0)
		switch {
		case err != nil:
			return nil, err
		case del && i >= 0:
			return slices.Delete(us, i, i+1), nil
		case del:
			return us, nil
		case nu.Name != name:
			return nil, fmt.Errorf("user %s: name cannot change", printableName(name))
		case i >= 0:
			us[i] = nu
			return us, nil
		}
		return append(us, nu), nil
	})
	if err != nil {
		return err
	}
	if _, err := f.Reload(); err != nil {
		return fmt.Errorf("reload after update: %w", err)
	}
	return nil
}

// CheckGroup reports what is wrong with a group name, as the users file's
// validation sees it, or nil.
func CheckGroup(g string) error { return checkGroup(g) }

// CheckText reports what is wrong with an email or display name, as the
// users file's validation sees it, or nil.
func CheckText(s string) error { return checkText(s) }
