package users

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"syscall"

	"github.com/BurntSushi/toml"
	"golang.org/x/sys/unix"
)

// fileHeader opens every file Edit writes.
const fileHeader = `# authd users file. Change it with "authd user …"; careful hand edits are fine too:
# authd reloads it on change and keeps the last good version if a new one is broken.

`

// NewGeneration returns a random, non-zero generation that fits a TOML integer.
func NewGeneration() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err)) // crypto/rand does not fail on supported systems
		}
		if g := binary.LittleEndian.Uint64(b[:]) & math.MaxInt64; g != 0 {
			return g
		}
	}
}

// Edit changes the users file at path under an exclusive lock on path+".lock", so concurrent
// edits (two CLI runs, a login upgrading a hash) serialise. It reads the users (a missing
// file is an empty list), calls fn, validates fn's result with Parse's rules and DefaultLimits,
// and replaces the file atomically: temporary file in the same directory, fsync, rename, fsync
// of the directory. The file keeps its mode and, where permitted, owner; a new file gets 0600.
// On any error, including fn's, the file is left as it was.
func Edit(path string, fn func([]User) ([]User, error)) error {
	return edit(path, DefaultLimits(), fn)
}

func edit(path string, lim Limits, fn func([]User) ([]User, error)) error {
	path, err := resolveLinks(path)
	if err != nil {
		return err
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()

	mode := fs.FileMode(0o600)
	var owner *syscall.Stat_t
	var users []User
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read users file: %w", err)
	default:
		if users, _, err = parse(data, path, lim); err != nil {
			return err
		}
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("stat users file: %w", err)
		}
		mode = st.Mode().Perm()
		owner, _ = st.Sys().(*syscall.Stat_t)
	}

	users, err = fn(users)
	if err != nil {
		return err
	}
	if _, err := build(users, nil, path, lim); err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(fileHeader)
	enc := toml.NewEncoder(&buf)
	enc.Indent = ""
	if err := enc.Encode(fileDoc{Users: users}); err != nil {
		return fmt.Errorf("encode users: %w", err)
	}
	// The file must load as written; refuse rather than leave one the daemon rejects.
	if _, _, err := parse(buf.Bytes(), path, lim); err != nil {
		return fmt.Errorf("encoded users file does not load: %w", err)
	}
	return writeAtomic(path, buf.Bytes(), mode, owner)
}

// resolveLinks follows symlinks at the end of path, even to a target that does not exist yet,
// so that an edit replaces the file a link points to rather than the link.
func resolveLinks(path string) (string, error) {
	for range 40 {
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return path, nil
		}
		target, err := os.Readlink(path)
		if err != nil {
			return "", fmt.Errorf("read users file link: %w", err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		path = target
	}
	return "", fmt.Errorf("users file %s: too many levels of symbolic links", path)
}

// lockFile takes an exclusive flock on path, creating it if needed. The lock file is never
// removed: removing it would let two processes hold locks on different inodes.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// writeAtomic replaces path with data so that readers see either the old or the new file.
func writeAtomic(path string, data []byte, mode fs.FileMode, owner *syscall.Stat_t) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary users file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod temporary users file: %w", err)
	}
	if owner != nil {
		// Best effort: only root may give the file to another user (e.g. root running the
		// CLI on a file owned by the authd service user); others keep their own ownership.
		if err := tmp.Chown(int(owner.Uid), int(owner.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("chown temporary users file: %w", err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write temporary users file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync temporary users file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temporary users file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace users file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open users file directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync users file directory: %w", err)
	}
	return nil
}
