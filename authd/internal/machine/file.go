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
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxFileBytes bounds the records file: about 25,000 records.
const maxFileBytes = 8 << 20

// File is the live records file: a snapshot readers take without locks, replaced on Reload.
type File struct {
	path string
	snap atomic.Pointer[snapshot]

	mu   sync.Mutex // serialises Reload; guards the fields below
	seen stamp      // the file version last read, loaded or not
	sum  [32]byte   // SHA-256 of the content of the current snapshot
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

// stamp identifies a version of the file cheaply, from os.Stat.
type stamp struct {
	ok       bool
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

// OpenFile loads the records file at path. A missing file holds no records; a
// broken one, or one that group or others may read, is an error.
func OpenFile(path string) (*File, error) {
	f := &File{path: path}
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
func (f *File) Path() string { return f.path }

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
	data, st, err := readFile(f.path)
	f.seen = st
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(data)
	if f.snap.Load() != nil && sum == f.sum {
		return false, nil
	}
	recs, err := decode(data)
	if err != nil {
		return false, fmt.Errorf("machine file %s: %w", f.path, err)
	}
	f.sum = sum
	f.snap.Store(index(recs))
	return true, nil
}

// readFile reads path and stats the opened file, so content and stamp belong
// together even when the file is replaced meanwhile. A missing file reads as empty.
func readFile(path string) ([]byte, stamp, error) {
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, stamp{}, nil
	}
	if err != nil {
		return nil, stamp{}, fmt.Errorf("open machine file: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, stamp{}, fmt.Errorf("stat machine file: %w", err)
	}
	st := stampOf(fi)
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, st, fmt.Errorf("machine file %s holds signing secrets but is open to group or others (mode %04o); run chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return nil, st, fmt.Errorf("read machine file: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, st, fmt.Errorf("machine file %s is larger than %d bytes", path, maxFileBytes)
	}
	return data, st, nil
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
// still for one interval, so a write in progress is not loaded. onReload, if not
// nil, gets each reload's result; a broken version is reported once, not at every
// poll. every ≤ 0 means one second.
func (f *File) Watch(ctx context.Context, every time.Duration, onReload func(changed bool, err error)) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last stamp
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var now stamp
		if fi, err := os.Stat(f.path); err == nil {
			now = stampOf(fi)
		}
		settled := now == last
		last = now
		f.mu.Lock()
		same := now == f.seen
		f.mu.Unlock()
		if same || !settled {
			continue
		}
		changed, err := f.Reload()
		if onReload != nil {
			onReload(changed, err)
		}
	}
}
