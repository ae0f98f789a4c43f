package machine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authd/authd/authd/internal/fsutil"
)

// maxFileBytes bounds the records file: about 25,000 records.
const maxFileBytes = 8 << 20

// File is the live records file: a snapshot readers take without locks, replaced on Reload.
type File struct {
	file *fsutil.Watched
	snap atomic.Pointer[snapshot]

	mu  sync.Mutex // serialises Reload; guards sum
	sum [32]byte   // SHA-256 of the content of the current snapshot
}

// snapshot is one loaded version of the file, indexed for the verify path.
type snapshot struct {
	tokens map[string]tokenEntry
	keys   map[string]keyEntry
	recs   Records
}

type tokenEntry struct {
	id      Identity
	sum     [32]byte
	expires time.Time
}

type keyEntry struct {
	id      Identity
	secret  []byte
	expires time.Time
}

// OpenFile loads the records file at path. A missing file holds no records; a
// broken one, or one that group or others may read, is an error.
func OpenFile(path string) (*File, error) {
	f := &File{file: fsutil.NewWatched(path)}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// current returns the snapshot with a zero confirmation time: the file is
// local, so there is no store it could have lost contact with.
func (f *File) current() (*snapshot, time.Time) {
	if f == nil {
		return nil, time.Time{}
	}
	return f.snap.Load(), time.Time{}
}

// Path returns the file's path.
func (f *File) Path() string { return f.file.Path() }

// Records returns a copy of the current records.
func (f *File) Records() Records {
	s := f.snap.Load()
	return Records{Tokens: append([]Token(nil), s.recs.Tokens...), Keys: append([]Key(nil), s.recs.Keys...)}
}

// Reload reads the file again and replaces the snapshot if it loads. changed
// reports whether the content differs from the current snapshot's. A file that
// disappeared loads as empty: every credential is then revoked. On error the last
// good snapshot stays.
func (f *File) Reload() (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := f.read()
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(data)
	if f.snap.Load() != nil && sum == f.sum {
		return false, nil
	}
	recs, err := decode(data)
	if err != nil {
		return false, fmt.Errorf("machine file %s: %w", f.Path(), err)
	}
	f.sum = sum
	f.snap.Store(index(recs))
	return true, nil
}

// read reads the file; a missing file reads as empty.
func (f *File) read() ([]byte, error) {
	data, fi, err := f.file.Read(maxFileBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read machine file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("machine file %s holds signing secrets but is open to group or others (mode %04o); run chmod 600 %s", f.Path(), perm, f.Path())
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("machine file %s is larger than %d bytes", f.Path(), maxFileBytes)
	}
	return data, nil
}

// decode parses and validates the file's content; empty content is no records.
// Unknown keys and trailing data are errors. json's messages name keys and
// types, never values, so no secret or hash reaches an error.
func decode(data []byte) (Records, error) {
	var r Records
	if len(bytes.TrimSpace(data)) == 0 {
		return r, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Records{}, redactJSON(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Records{}, errors.New("trailing data after the JSON object")
	}
	if err := r.validate(); err != nil {
		return Records{}, err
	}
	return r, nil
}

// redactJSON keeps what a reader needs from a JSON error (where, what kind)
// and drops anything that could quote content.
func redactJSON(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("JSON syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Errorf("JSON field %s: expected %s", te.Field, te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("JSON ends early")
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return errors.New("a time is not in RFC 3339 format")
	}
	// Unknown fields: json names the key, which is not secret.
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

func index(r Records) *snapshot {
	s := &snapshot{recs: r, tokens: make(map[string]tokenEntry, len(r.Tokens)), keys: make(map[string]keyEntry, len(r.Keys))}
	for _, t := range r.Tokens {
		var sum [32]byte
		hex.Decode(sum[:], []byte(t.SHA256)) // validated: 64 hex digits
		s.tokens[t.ID] = tokenEntry{id: Identity{User: t.User, Generation: t.UserGeneration}, sum: sum, expires: t.Expires}
	}
	for _, k := range r.Keys {
		s.keys[k.ID] = keyEntry{id: Identity{User: k.User, Generation: k.UserGeneration}, secret: []byte(k.Secret), expires: k.Expires}
	}
	return s
}

// Watch polls the file's metadata (mtime, size, inode) every interval and reloads
// when it changed, until ctx ends. A change is loaded once the metadata has held
// still for one interval, so a write in progress is not loaded; a file that
// disappeared is such a change, and loads as empty. onReload, if not nil, gets
// each reload's result; a broken version is reported once, not at every poll.
// every ≤ 0 means one second.
func (f *File) Watch(ctx context.Context, every time.Duration, onReload func(changed bool, err error)) {
	f.file.Watch(ctx, every, fsutil.MissingReloads, f.Reload, onReload)
}
