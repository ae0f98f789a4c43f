package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/authd/authd/authd/internal/fsutil"
)

// FileName is the file in data_dir that File keeps.
const FileName = "account.json"

// maxFileBytes bounds what File reads: a few thousand open links.
const maxFileBytes = 8 << 20

// File is a Backend in one JSON file. Every change runs under an exclusive
// lock on path+".lock" and replaces the file atomically, so the CLI and the
// daemon may change it at once; Take reads and removes under that lock.
// Expired records are dropped at every change.
type File struct {
	path string
	now  func() time.Time
}

// NewFile returns a File at path (which need not exist yet); now is the clock.
func NewFile(path string, now func() time.Time) *File {
	if now == nil {
		now = time.Now
	}
	return &File{path: path, now: now}
}

type fileRecord struct {
	Expires time.Time       `json:"expires"`
	Rec     json.RawMessage `json:"rec"`
}

type fileDoc map[string]map[string]fileRecord

func (f *File) read() (fileDoc, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileDoc{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.path, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", f.path, maxFileBytes)
	}
	doc := fileDoc{}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	return doc, nil
}

// edit runs fn on the file's records under the lock and writes them back
// if fn reports a change (or expired records were dropped).
func (f *File) edit(fn func(doc fileDoc) (changed bool, err error)) error {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	lock, err := fsutil.Lock(f.path + ".lock")
	if err != nil {
		return err
	}
	defer lock.Close()
	doc, err := f.read()
	if err != nil {
		return err
	}
	pruned := false
	now := f.now()
	for _, m := range doc {
		for k, r := range m {
			if !now.Before(r.Expires) {
				delete(m, k)
				pruned = true
			}
		}
	}
	changed, err := fn(doc)
	if err != nil {
		return err
	}
	if !changed && !pruned {
		return nil
	}
	out, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o600)
	var owner *fsutil.Owner
	if fi, err := os.Stat(f.path); err == nil {
		mode = fi.Mode().Perm() &^ 0o077
		owner = fsutil.OwnerOf(fi)
	} else if fi, err := os.Stat(filepath.Dir(f.path)); err == nil {
		owner = fsutil.OwnerOf(fi)
	}
	if err := fsutil.WriteFile(f.path, append(out, '\n'), fsutil.Options{Perm: mode, Owner: owner}); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

// Put implements Backend.
func (f *File) Put(_ context.Context, kind, key string, rec []byte, expires time.Time) error {
	return f.edit(func(doc fileDoc) (bool, error) {
		if doc[kind] == nil {
			doc[kind] = map[string]fileRecord{}
		}
		doc[kind][key] = fileRecord{Expires: expires, Rec: rec}
		return true, nil
	})
}

// Get implements Backend. It reads without the lock: writers replace the
// file whole, so a reader sees the old file or the new one.
func (f *File) Get(_ context.Context, kind, key string) ([]byte, error) {
	doc, err := f.read()
	if err != nil {
		return nil, err
	}
	r, ok := doc[kind][key]
	if !ok || !f.now().Before(r.Expires) {
		return nil, errMissing
	}
	return r.Rec, nil
}

// Take implements Backend.
func (f *File) Take(_ context.Context, kind, key string) ([]byte, error) {
	var out []byte
	err := f.edit(func(doc fileDoc) (bool, error) {
		r, ok := doc[kind][key]
		if !ok {
			return false, errMissing
		}
		delete(doc[kind], key)
		out = r.Rec
		return true, nil
	})
	return out, err
}

// Delete implements Backend; a missing key is not an error.
func (f *File) Delete(_ context.Context, kind, key string) error {
	return f.edit(func(doc fileDoc) (bool, error) {
		if _, ok := doc[kind][key]; !ok {
			return false, nil
		}
		delete(doc[kind], key)
		return true, nil
	})
}

// List implements Backend.
func (f *File) List(_ context.Context, kind string) (map[string][]byte, error) {
	doc, err := f.read()
	if err != nil {
		return nil, err
	}
	now := f.now()
	out := map[string][]byte{}
	for k, r := range doc[kind] {
		if now.Before(r.Expires) {
			out[k] = r.Rec
		}
	}
	return out, nil
}
