package session

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/authd/authd/authd/internal/fsutil"
)

// ErrLocked is wrapped by the error OpenEmbedded returns when another process
// (or another store in this one) holds the data directory.
var ErrLocked = errors.New("store locked")

// lockedError names the directory and the holder's pid, so the operator knows
// what to stop.
type lockedError struct {
	dir string
	pid int // 0 when the lock file held no readable pid
}

func (e *lockedError) Error() string {
	holder := "another authd"
	if e.pid > 0 {
		holder = fmt.Sprintf("another authd (pid %d)", e.pid)
	}
	return fmt.Sprintf("data directory %s is in use by %s; stop it or use another data_dir", e.dir, holder)
}

func (e *lockedError) Unwrap() error { return ErrLocked }

// lockDir takes an exclusive, non-blocking flock on dir/sessions.lock and
// writes our pid into it. The kernel drops the lock when the process dies, so
// a kill -9 leaves no stale lock behind; the pid is only for the message.
func lockDir(dir string) (*os.File, error) {
	name := filepath.Join(dir, "sessions.lock")
	f, err := fsutil.TryLock(name)
	if errors.Is(err, fsutil.ErrLocked) {
		b, _ := os.ReadFile(name)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return nil, &lockedError{dir: dir, pid: pid}
	}
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	return f, nil
}

// unlockDir releases the lock. The pid is cleared first so a reader never
// blames a process that has let go.
func unlockDir(f *os.File) error {
	_ = f.Truncate(0)
	return f.Close()
}
