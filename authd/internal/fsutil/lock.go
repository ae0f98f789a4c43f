package fsutil

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrLocked is wrapped by the error TryLock returns when another open file holds the lock.
var ErrLocked = errors.New("locked")

// Lock takes an exclusive advisory lock (flock) on the file at path, creating it with mode
// 0600 if needed (owned like its directory, see OpenShared), and waits while another open file (in this process or another) holds it.
// The lock is held until the returned file is closed; the kernel also drops it when the
// process dies, so a crash leaves no stale lock. Callers never remove the lock file: that
// would let two processes hold locks on different inodes of the same name.
func Lock(path string) (*os.File, error) {
	return lock(path, unix.LOCK_EX)
}

// TryLock is Lock without the wait: when the lock is held elsewhere it fails at once with
// an error wrapping ErrLocked.
func TryLock(path string) (*os.File, error) {
	return lock(path, unix.LOCK_EX|unix.LOCK_NB)
}

func lock(path string, how int) (*os.File, error) {
	f, err := OpenShared(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
