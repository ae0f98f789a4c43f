package users

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// File is the live users file: a snapshot readers take without locks, replaced on Reload.
type File struct {
	path string
	lim  Limits
	db   atomic.Pointer[DB]

	mu   sync.Mutex // serialises Reload; guards the fields below
	seen stamp      // the file version last read, loaded or not
	sum  [32]byte   // SHA-256 of the content of the current snapshot
}

// stamp identifies a version of the file cheaply, from os.Stat.
type stamp struct {
	ok       bool // the file existed
	dev, ino uint64
	size     int64
	mtime    time.Time
}

func stampOf(fi os.FileInfo) stamp {
	s := stamp{ok: true, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
	}
	return s
}

// OpenFile loads the users file at path. A missing or invalid file is an error: authd must
// not start without its users.
func OpenFile(path string, lim Limits) (*File, error) {
	f := &File{path: path, lim: lim}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// DB returns the current snapshot without locking.
func (f *File) DB() *DB { return f.db.Load() }

// Reload reads the file again and replaces the snapshot if it loads. changed reports whether
// the content differs from the current snapshot's. On error the last good snapshot stays.
func (f *File) Reload() (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, st, err := readFile(f.path)
	f.seen = st
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(data)
	if f.db.Load() != nil && sum == f.sum {
		return false, nil
	}
	_, db, err := parse(data, f.path, f.lim)
	if err != nil {
		return false, err
	}
	f.sum = sum
	f.db.Store(db)
	return true, nil
}

// readFile reads path and stats the opened file, so content and stamp belong together even
// when the file is replaced meanwhile.
func readFile(path string) ([]byte, stamp, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, stamp{}, fmt.Errorf("open users file: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, stamp{}, fmt.Errorf("stat users file: %w", err)
	}
	st := stampOf(fi)
	data, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return nil, st, fmt.Errorf("read users file: %w", err)
	}
	return data, st, nil
}

// Watch polls the file's metadata (mtime, size, inode) every interval and reloads when it
// changed, until ctx ends. A change is loaded once the metadata has held still for one
// interval, so an editor's write in progress (truncated, half-written) is not loaded.
// onReload, if not nil, gets each reload's result, including a file that disappeared; a broken
// version is reported once, not at every poll. every ≤ 0 means one second.
func (f *File) Watch(ctx context.Context, every time.Duration, onReload func(changed bool, err error)) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last stamp // metadata at the previous poll
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var now stamp
		fi, statErr := os.Stat(f.path)
		if statErr == nil {
			now = stampOf(fi)
		}
		settled := now == last
		last = now
		f.mu.Lock()
		same := now == f.seen
		if statErr != nil && !same {
			f.seen = stamp{}
		}
		f.mu.Unlock()
		if same || (statErr == nil && !settled) {
			continue
		}
		var changed bool
		err := fmt.Errorf("stat users file: %w", statErr)
		if statErr == nil {
			changed, err = f.Reload()
		}
		if onReload != nil {
			onReload(changed, err)
		}
	}
}

// SetHash replaces the hash of the named user, keeping its Generation, and reloads. Login uses
// it to upgrade a bcrypt or weak argon2id hash after a successful verification. The user's
// Fingerprint changes with the hash, so sessions issued afterwards must take it from the new
// snapshot.
func (f *File) SetHash(name, hash string) error {
	err := edit(f.path, f.lim, func(us []User) ([]User, error) {
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
