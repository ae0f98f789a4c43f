package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/authd/authd/authd/internal/fsutil"
)

// FileName is the audit log's name in data_dir; the previous generation is
// FileName+".1" and the lock FileName+".lock".
const FileName = "audit.log"

// DefaultMaxBytes is the size at which File rotates: the current file becomes
// FileName+".1" (replacing the one before), so the log stays under twice it.
const DefaultMaxBytes = 8 << 20

// maxLine bounds one event's JSON line; longer Detail is cut.
const maxLine = 4 << 10

// File is the embedded store's Log: JSON lines appended to a file in
// data_dir, fsync'd before Record returns, rotated at a size bound. Several
// processes may write it at once (the daemon and a CLI run): each Record is
// one O_APPEND write under an flock on FileName+".lock", which also orders
// rotation, and a writer whose file was rotated away reopens the new one.
type File struct {
	path string
	max  int64

	mu sync.Mutex
	f  *os.File
}

// OpenFile opens (creating) the audit log at path; maxBytes <= 0 is DefaultMaxBytes.
func OpenFile(path string, maxBytes int64) (*File, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	l := &File{path: path, max: maxBytes}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) reopen() error {
	f, err := fsutil.OpenShared(l.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f = f
	return nil
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// encode returns e as one JSON line of at most maxLine bytes.
func encode(e Event) ([]byte, error) {
	for {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode audit event: %w", err)
		}
		if len(b) < maxLine || e.Detail == "" {
			return append(b, '\n'), nil
		}
		e.Detail = e.Detail[:len(e.Detail)/2] + "…"
	}
}

// Record appends e and syncs it to disk.
func (l *File) Record(_ context.Context, e Event) error {
	line, err := encode(e)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("audit log closed")
	}
	lock, err := fsutil.Lock(l.path + ".lock")
	if err != nil {
		return err
	}
	defer lock.Close()
	// Another writer may have rotated the file since we opened it.
	if cur, err := os.Stat(l.path); err != nil || !sameFile(l.f, cur) {
		if err := l.reopen(); err != nil {
			return err
		}
	}
	st, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("stat audit log: %w", err)
	}
	if st.Size() > 0 && st.Size()+int64(len(line)) > l.max {
		if err := os.Rename(l.path, l.path+".1"); err != nil {
			return fmt.Errorf("rotate audit log: %w", err)
		}
		if err := l.reopen(); err != nil {
			return err
		}
		_ = fsutil.SyncDir(filepath.Dir(l.path))
	} else if st.Size() > 0 {
		// A crash mid-write leaves a line without its newline: end it, so
		// this event starts a line of its own.
		var last [1]byte
		if _, err := l.f.ReadAt(last[:], st.Size()-1); err == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	if err := unix.Fdatasync(int(l.f.Fd())); err != nil {
		return fmt.Errorf("sync audit log: %w", err)
	}
	return nil
}

func sameFile(f *os.File, cur fs.FileInfo) bool {
	st, err := f.Stat()
	return err == nil && os.SameFile(st, cur)
}

// Recent reads the log (the current file, then the rotated one) from the
// end and returns the newest events matching f. Lines that do not decode (a
// torn write from a crash) are skipped.
func (l *File) Recent(_ context.Context, f Filter) ([]Event, error) {
	var out []Event
	for _, p := range []string{l.path, l.path + ".1"} {
		data, err := readBounded(p, 2*l.max)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		for len(data) > 0 && len(out) < f.limit() {
			data = bytes.TrimRight(data, "\n")
			i := bytes.LastIndexByte(data, '\n')
			line := data[i+1:]
			data = data[:i+1]
			var e Event
			if json.Unmarshal(line, &e) != nil {
				continue
			}
			if f.Match(e) {
				out = append(out, e)
			}
		}
		if len(out) >= f.limit() {
			break
		}
	}
	return out, nil
}

// readBounded reads at most the last max bytes of the file at path.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		if _, err := f.Seek(st.Size()-max, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(io.LimitReader(f, max))
}
