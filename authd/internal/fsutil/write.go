// Package fsutil holds the file handling that several stores share: replacing a file
// atomically and durably, advisory locks, and files that are reloaded when they change on disk.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Options says how WriteFile and Write create the new file.
type Options struct {
	// Perm is the new file's permission bits, set explicitly so the umask does not matter.
	Perm fs.FileMode
	// Owner, if not nil, is given the new file where permitted: root running the CLI on a
	// file owned by the service user leaves it owned by that user; anyone else keeps their
	// own ownership (a refused chown is not an error). Nil leaves the writer as owner.
	Owner *Owner
	// Temp, if not empty, names the temporary file (in path's directory) instead of a fresh
	// random name. Only for a writer that holds a lock excluding every other writer of path:
	// a temporary file left by a crash is then truncated and reused rather than left behind.
	Temp string
}

// Owner is a file's owning user and group.
type Owner struct{ UID, GID int }

// OwnerOf returns the owner of the file fi describes, or nil where the platform does not say.
func OwnerOf(fi fs.FileInfo) *Owner {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return &Owner{UID: int(st.Uid), GID: int(st.Gid)}
}

// WriteFile replaces path with data atomically and durably; see Write.
func WriteFile(path string, data []byte, o Options) error {
	return Write(path, o, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces the file at path with what write writes, so that readers see either the
// old file or the new one and, once Write returns nil, the new one survives a crash or power
// loss: it writes a temporary file in path's directory, fsyncs it, renames it over path and
// fsyncs the directory (without that last step the rename itself may be lost). On any error,
// including write's, the temporary file is removed and path is left as it was, except when
// only the final directory sync failed: then the new file is in place but not yet durable.
func Write(path string, o Options, write func(io.Writer) error) error {
	return replace(path, o, write, SyncDir)
}

// replace is Write with the directory sync passed in, so a test can see it happen.
func replace(path string, o Options, write func(io.Writer) error, syncDir func(string) error) (err error) {
	dir := filepath.Dir(path)
	var tmp *os.File
	if o.Temp != "" {
		tmp, err = os.OpenFile(filepath.Join(dir, o.Temp), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	} else {
		tmp, err = os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	}
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(o.Perm); err != nil {
		return fmt.Errorf("chmod temporary file: %w", err)
	}
	if err := chown(tmp, o.Owner); err != nil {
		return err
	}
	if err := write(tmp); err != nil {
		return fmt.Errorf("write temporary file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync temporary file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temporary file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return syncDir(dir)
}

// chown gives f to o, best effort: only root may give a file away, and a user may change the
// group only to one of their own. A file already owned as wanted is left alone.
func chown(f *os.File, o *Owner) error {
	if o == nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat temporary file: %w", err)
	}
	if cur := OwnerOf(fi); cur != nil && *cur == *o {
		return nil
	}
	if err := f.Chown(o.UID, o.GID); err != nil && !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("chown temporary file: %w", err)
	}
	return nil
}

// SyncDir fsyncs the directory dir, making a rename, a new file or a removal in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// OpenShared opens path with flag (O_CREATE is added), creating it with perm. A file this
// call creates is given to the owner of its directory where permitted, so root running the
// CLI never leaves a file (a lock, a log) in authd's data directory that the service user
// cannot open. An existing file keeps its owner.
func OpenShared(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return os.OpenFile(path, flag&^os.O_EXCL, perm)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(filepath.Dir(path)); err == nil {
		if err := chown(f, OwnerOf(fi)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}
