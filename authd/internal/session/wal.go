package session

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// wal is the append-only log. Appends go to a memory buffer under mu; sync
// writes the buffer out and fsyncs, and concurrent callers share one fsync
// (group commit), so a burst of logins costs a few fsyncs, not one each.
//
// Offsets are logical (bytes appended since open, across rotations), so a
// caller can wait for "everything up to my record" whatever file it went to.
type wal struct {
	mu       sync.Mutex
	f        *os.File
	buf      []byte
	appended uint64 // logical end of buf
	written  uint64 // logical offset written to f
	fileSize int64  // bytes in f, for the compaction trigger
	err      error  // first write or fsync error; the log accepts nothing after it

	syncMu sync.Mutex    // serialises fsync and rotation
	synced atomic.Uint64 // logical offset known to be on disk
}

// errClosed is returned after Close.
var errClosed = errors.New("session store closed")

func newWAL(f *os.File, size int64) *wal {
	return &wal{f: f, fileSize: size}
}

// begin locks the log for an append and returns the buffer to append frames
// to; end must follow when err is nil. Holding the lock across the caller's
// map update keeps the log in the same order as memory.
func (w *wal) begin() ([]byte, error) {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return nil, err
	}
	return w.buf, nil
}

// end stores the extended buffer, unlocks, and returns the logical offset to
// wait for with sync.
func (w *wal) end(b []byte) uint64 {
	w.buf = b
	w.appended = w.written + uint64(len(b))
	off := w.appended
	w.mu.Unlock()
	return off
}

// writeLocked hands the buffer to the file. w.mu must be held.
func (w *wal) writeLocked() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.f.Write(w.buf)
	w.fileSize += int64(n)
	if err != nil {
		w.err = fmt.Errorf("write session log: %w", err)
		return w.err
	}
	w.written += uint64(n)
	if cap(w.buf) > 1<<20 {
		w.buf = nil // a burst (say a mass revocation) should not pin its buffer forever
	} else {
		w.buf = w.buf[:0]
	}
	return nil
}

// sync returns once everything up to the logical offset upTo is on disk.
func (w *wal) sync(upTo uint64) error {
	if w.synced.Load() >= upTo {
		return nil
	}
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.synced.Load() >= upTo {
		return nil // another caller's fsync covered us
	}
	w.mu.Lock()
	err := w.writeLocked()
	end, f := w.written, w.f
	w.mu.Unlock()
	if err != nil {
		return err
	}
	// fsync without w.mu, so appends continue meanwhile.
	if err := f.Sync(); err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = fmt.Errorf("sync session log: %w", err)
		}
		err = w.err
		w.mu.Unlock()
		return err
	}
	w.synced.Store(end)
	return nil
}

// flush writes and fsyncs everything appended so far.
func (w *wal) flush() error {
	w.mu.Lock()
	end, err := w.appended, w.err
	w.mu.Unlock()
	if err != nil {
		return err
	}
	return w.sync(end)
}

// rotate makes everything appended so far durable in the current file, then
// switches appends to next and returns the old file for the caller to close.
// Appends wait for the length of one fsync.
func (w *wal) rotate(next *os.File, nextSize int64) (*os.File, error) {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.writeLocked(); err != nil {
		return nil, err
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("sync session log: %w", err)
		return nil, w.err
	}
	w.synced.Store(w.written)
	old := w.f
	w.f, w.fileSize = next, nextSize
	return old, nil
}

// size returns the current file's size including buffered bytes.
func (w *wal) size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fileSize + int64(len(w.buf))
}

// health returns the log's sticky error, if any.
func (w *wal) health() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// close flushes and closes the file; later appends fail.
func (w *wal) close() error {
	err := w.flush()
	w.mu.Lock()
	defer w.mu.Unlock()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close session log: %w", cerr)
	}
	if w.err == nil {
		w.err = errClosed
	}
	return err
}
