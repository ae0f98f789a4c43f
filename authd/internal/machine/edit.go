package machine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Edit changes the records file at path under an exclusive lock on path+".lock",
// so concurrent CLI runs serialise. It reads the records (a missing file is
// empty), calls fn, validates the result, and replaces the file atomically:
// temporary file in the same directory, fsync, rename, fsync of the directory.
// The file keeps its mode (tightened to 0600 if group or others had access) and,
// where permitted, its owner; a new file gets 0600 and the directory's owner, so
// root running the CLI leaves a file the authd service user can read. On any
// error, including fn's, the file is left as it was.
func Edit(path string, fn func(*Records) error) error {
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()

	data, err := readFileForEdit(path)
	if err != nil {
		return err
	}
	recs, err := decode(data)
	if err != nil {
		return fmt.Errorf("machine file %s: %w", path, err)
	}
	if err := fn(&recs); err != nil {
		return err
	}
	if err := recs.validate(); err != nil {
		return fmt.Errorf("machine file %s: %w", path, err)
	}
	if recs.Tokens == nil {
		recs.Tokens = []Token{}
	}
	if recs.Keys == nil {
		recs.Keys = []Key{}
	}
	out, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return fmt.Errorf("encode machine file: %w", err)
	}
	out = append(out, '\n')
	if _, err := decode(out); err != nil {
		return fmt.Errorf("encoded machine file does not load: %w", err)
	}

	mode := fs.FileMode(0o600)
	var owner *syscall.Stat_t
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm() &^ 0o077
		owner, _ = fi.Sys().(*syscall.Stat_t)
	} else if fi, err := os.Stat(filepath.Dir(path)); err == nil {
		owner, _ = fi.Sys().(*syscall.Stat_t)
	}
	return writeAtomic(path, out, mode, owner)
}

// readFileForEdit reads the file like readFile but accepts a file whose mode is
// too open: the edit writes it back as 0600.
func readFileForEdit(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read machine file: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("machine file %s is larger than %d bytes", path, maxFileBytes)
	}
	return data, nil
}

// lockFile takes an exclusive flock on path, creating it if needed. The lock
// file is never removed: removing it would let two processes lock different inodes.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// writeAtomic replaces path with data so that readers see either the old or the new file.
func writeAtomic(path string, data []byte, mode fs.FileMode, owner *syscall.Stat_t) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary machine file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod temporary machine file: %w", err)
	}
	if owner != nil && int(owner.Uid) != os.Geteuid() {
		// Best effort: only root may give the file to another user.
		if err := tmp.Chown(int(owner.Uid), int(owner.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("chown temporary machine file: %w", err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write temporary machine file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync temporary machine file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temporary machine file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace machine file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open machine file directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync machine file directory: %w", err)
	}
	return nil
}
