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

	"github.com/BurntSushi/toml"

	"github.com/authd/authd/authd/internal/fsutil"
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
// file is an empty list), calls fn, validates fn's result with Parse's rules and lim, and
// replaces the file atomically: temporary file in the same directory, fsync, rename, fsync
// of the directory. The file keeps its mode and, where permitted, owner; a new file gets 0600.
// On any error, including fn's, the file is left as it was. lim should be the bounds the
// daemon loads the file with, so an edit never writes a file the daemon would refuse; a zero
// field takes its DefaultLimits value.
func Edit(path string, lim Limits, fn func([]User) ([]User, error)) error {
	return edit(path, lim.withDefaults(), fn)
}

func edit(path string, lim Limits, fn func([]User) ([]User, error)) error {
	path, err := resolveLinks(path)
	if err != nil {
		return err
	}
	lock, err := fsutil.Lock(path + ".lock")
	if err != nil {
		return err
	}
	defer lock.Close()

	mode := fs.FileMode(0o600)
	var owner *fsutil.Owner
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
		owner = fsutil.OwnerOf(st)
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
	if err := fsutil.WriteFile(path, buf.Bytes(), fsutil.Options{Perm: mode, Owner: owner}); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	return nil
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
