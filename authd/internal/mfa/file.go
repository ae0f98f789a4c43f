package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/authd/authd/authd/internal/fsutil"
)

// FileName is the factor file's name in the data directory.
const FileName = "mfa.json"

// maxFile bounds what File reads.
const maxFile = 16 << 20

// File keeps every user's factors in one JSON file (mode 0600) in the data
// directory. Each operation reads the file under an exclusive lock and
// replaces it atomically, so the server and the CLI can both change it
// while authd runs; second factors are checked at sign-in, not on every
// request, so nothing is cached.
type File struct {
	path string
	mu   sync.Mutex
}

// OpenFile returns the factor store in dir, creating nothing until the
// first change.
func OpenFile(dir string) (*File, error) {
	if dir == "" {
		return nil, errors.New("mfa: no data directory")
	}
	return &File{path: filepath.Join(dir, FileName)}, nil
}

// Path is the file's path.
func (s *File) Path() string { return s.path }

func (s *File) read() (map[string]Factors, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Factors{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.path, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("read %s: larger than %d bytes", s.path, maxFile)
	}
	m := map[string]Factors{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("parse %s: %w", s.path, err)
		}
	}
	return m, nil
}

func (s *File) lock() (func(), error) {
	s.mu.Lock()
	l, err := fsutil.Lock(s.path + ".lock")
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("lock %s: %w", s.path, err)
	}
	// root running the CLI must not leave a lock file (or, in Update, a
	// factor file) the service user cannot open: both take the data
	// directory's owner. A refused chown (not root) changes nothing.
	if o := s.dirOwner(); o != nil {
		_ = l.Chown(o.UID, o.GID)
	}
	return func() { l.Close(); s.mu.Unlock() }, nil
}

func (s *File) dirOwner() *fsutil.Owner {
	fi, err := os.Stat(filepath.Dir(s.path))
	if err != nil {
		return nil
	}
	return fsutil.OwnerOf(fi)
}

// Get implements Store.
func (s *File) Get(_ context.Context, user string) (Factors, error) {
	unlock, err := s.lock()
	if err != nil {
		return Factors{}, err
	}
	defer unlock()
	m, err := s.read()
	if err != nil {
		return Factors{}, err
	}
	return m[user], nil
}

// Users implements Store.
func (s *File) Users(context.Context) (map[string]Factors, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.read()
}

// Update implements Store.
func (s *File) Update(_ context.Context, user string, fn func(f *Factors) error) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	m, err := s.read()
	if err != nil {
		return err
	}
	f := m[user]
	before, _ := json.Marshal(f)
	if err := fn(&f); err != nil {
		return err
	}
	if after, _ := json.Marshal(f); string(after) == string(before) {
		return nil // nothing changed: no write (and no file created)
	}
	if f.empty() {
		delete(m, user)
	} else {
		m[user] = f
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	owner := s.dirOwner()
	if fi, err := os.Stat(s.path); err == nil {
		owner = fsutil.OwnerOf(fi)
	}
	return fsutil.WriteFile(s.path, append(b, '\n'), fsutil.Options{Perm: 0o600, Owner: owner})
}

// ReplayFile is the embedded replay record: in memory, and written to a
// small file in the data directory on every claim so a restart does not
// reopen a used code's window. Claims are rare (one per code typed).
type ReplayFile struct {
	path string
	now  func() time.Time
	mu   sync.Mutex
	seen map[string]time.Time // key → expiry
}

// ReplayFileName is the replay record's name in the data directory.
const ReplayFileName = "mfa-replay.json"

// OpenReplayFile loads the replay record in dir (now nil = time.Now).
func OpenReplayFile(dir string, now func() time.Time) (*ReplayFile, error) {
	if now == nil {
		now = time.Now
	}
	r := &ReplayFile{path: filepath.Join(dir, ReplayFileName), now: now, seen: map[string]time.Time{}}
	b, err := os.ReadFile(r.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", r.path, err)
	case len(b) > 0:
		if err := json.Unmarshal(b, &r.seen); err != nil {
			return nil, fmt.Errorf("parse %s: %w", r.path, err)
		}
	}
	return r, nil
}

// Claim implements Replay.
func (r *ReplayFile) Claim(_ context.Context, key string, ttl time.Duration) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for k, exp := range r.seen {
		if !now.Before(exp) {
			delete(r.seen, k)
		}
	}
	if _, used := r.seen[key]; used {
		return false, nil
	}
	r.seen[key] = now.Add(ttl)
	b, err := json.Marshal(r.seen)
	if err == nil {
		err = fsutil.WriteFile(r.path, b, fsutil.Options{Perm: 0o600})
	}
	if err != nil {
		delete(r.seen, key) // fail closed: the caller refuses the code
		return false, fmt.Errorf("write %s: %w", r.path, err)
	}
	return true, nil
}
