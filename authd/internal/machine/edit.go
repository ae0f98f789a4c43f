package machine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/authd/authd/authd/internal/fsutil"
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
	lock, err := fsutil.Lock(path + ".lock")
	if err != nil {
		return err
	}
	defer lock.Close()

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
	var owner *fsutil.Owner
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm() &^ 0o077
		owner = fsutil.OwnerOf(fi)
	} else if fi, err := os.Stat(filepath.Dir(path)); err == nil {
		owner = fsutil.OwnerOf(fi)
	}
	if err := fsutil.WriteFile(path, out, fsutil.Options{Perm: mode, Owner: owner}); err != nil {
		return fmt.Errorf("write machine file: %w", err)
	}
	return nil
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
