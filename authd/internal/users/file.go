package users

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authd/authd/authd/internal/fsutil"
)

// File is the live users file: a snapshot readers take without locks, replaced on Reload.
type File struct {
	file *fsutil.Watched
	lim  atomic.Pointer[Limits] // set under mu, read anywhere
	db   atomic.Pointer[DB]

	mu  sync.Mutex // serialises Reload; guards sum
	sum [32]byte   // SHA-256 of the content of the current snapshot
}

// OpenFile loads the users file at path. A missing or invalid file is an error: authd must
// not start without its users.
func OpenFile(path string, lim Limits) (*File, error) {
	f := &File{file: fsutil.NewWatched(path)}
	if _, err := f.ReloadWithin(lim); err != nil {
		return nil, err
	}
	return f, nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.file.Path() }

// DB returns the current snapshot without locking.
func (f *File) DB() *DB { return f.db.Load() }

// EnsureCurrent returns nil: the file on this host is the only copy of its users and the
// snapshot is it as last loaded, so there is nothing to catch up with. It lets File stand
// wherever a users.Redis may, whose EnsureCurrent reads one user's version from Redis.
func (f *File) EnsureCurrent(context.Context, string) error { return nil }

// Reload reads the file again and replaces the snapshot if it loads. changed reports whether
// the content differs from the current snapshot's. On error the last good snapshot stays.
func (f *File) Reload() (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloadLocked(*f.lim.Load())
}

// ReloadWithin is Reload under new bounds for stored hashes (a reload of [hash]): the file is
// read and checked against lim even if its content is unchanged, and lim becomes the bounds
// of later reloads and edits only if it loads. On error the last good snapshot and the old
// bounds stay.
func (f *File) ReloadWithin(lim Limits) (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloadLocked(lim)
}

func (f *File) reloadLocked(lim Limits) (bool, error) {
	data, _, err := f.file.Read(maxFileBytes)
	if err != nil {
		return false, fmt.Errorf("read users file: %w", err)
	}
	sum := sha256.Sum256(data)
	if cur := f.lim.Load(); f.db.Load() != nil && sum == f.sum && cur != nil && *cur == lim {
		return false, nil
	}
	_, db, err := parse(data, f.Path(), lim)
	if err != nil {
		return false, err
	}
	changed := sum != f.sum
	f.sum = sum
	f.lim.Store(&lim)
	f.db.Store(db)
	return changed, nil
}

// Watch polls the file's metadata (mtime, size, inode) every interval and reloads when it
// changed, until ctx ends. A change is loaded once the metadata has held still for one
// interval, so an editor's write in progress (truncated, half-written) is not loaded.
// onReload, if not nil, gets each reload's result, including a file that disappeared (reported
// at once; the last good snapshot stays); a broken version is reported once, not at every
// poll. every ≤ 0 means one second.
func (f *File) Watch(ctx context.Context, every time.Duration, onReload func(changed bool, err error)) {
	f.file.Watch(ctx, every, fsutil.MissingIsError, f.Reload, onReload)
}

// SetHash replaces the hash of the named user, keeping its Generation, and reloads. Login uses
// it to upgrade a bcrypt or weak argon2id hash after a successful verification. The user's
// Fingerprint changes with the hash, so sessions issued afterwards must take it from the new
// snapshot.
func (f *File) SetHash(name, hash string) error {
	err := edit(f.Path(), *f.lim.Load(), func(us []User) ([]User, error) {
		i := slices.IndexFunc(us, func(u User) bool { return u.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("set hash: user %q not found", name)
		}
		us[i].Hash = hash
		return us, nil
	})
	if err != nil {
		return err
	}
	if _, err := f.Reload(); err != nil {
		return fmt.Errorf("reload after setting hash: %w", err)
	}
	return nil
}

// Update passes user name (exists false: no such user) to fn and writes what
// fn returns, under the file's edit lock, then reloads; del true deletes the
// user. It is users.Redis.Update for the file, so the CLI, the admin console
// and the account pages change users through one path. fn's user must be
// valid and keep the name; on any error the file is left as it was.
func (f *File) Update(ctx context.Context, name string, fn func(u User, exists bool) (nu User, del bool, err error)) error {
	return f.UpdateGuarded(ctx, name, nil, fn)
}

// UpdateGuarded is Update that refuses, with an error wrapping ErrLastAdmin,
// a change that would leave no enabled member of adminGroups (see
// CheckAdminsLeft), checked against the file as read under the edit lock.
func (f *File) UpdateGuarded(_ context.Context, name string, adminGroups []string, fn func(u User, exists bool) (nu User, del bool, err error)) error {
	err := edit(f.Path(), *f.lim.Load(), func(us []User) ([]User, error) {
		i := slices.IndexFunc(us, func(u User) bool { return u.Name == name })
		var cur User
		if i >= 0 {
			cur = us[i]
			cur.Groups = slices.Clone(cur.Groups)
		}
		nu, del, err := fn(cur, i >= 0)
		if err != nil {
			return nil, err
		}
		if i >= 0 {
			if err := CheckAdminsLeft(us, adminGroups, name, nu, del); err != nil {
				return nil, err
			}
		}
		switch {
		case del && i >= 0:
			return slices.Delete(us, i, i+1), nil
		case del:
			return us, nil
		case nu.Name != name:
			return nil, fmt.Errorf("user %s: name cannot change", printableName(name))
		case i >= 0:
			us[i] = nu
			return us, nil
		default:
			return append(us, nu), nil
		}
	})
	if err != nil {
		return err
	}
	if _, err := f.Reload(); err != nil {
		return fmt.Errorf("reload after update: %w", err)
	}
	return nil
}
