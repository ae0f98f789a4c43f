package fsutil

import (
	"context"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
)

// Version identifies one version of a file cheaply, from its metadata: device and inode
// change when the file is replaced by a rename, size and modification time when it is
// edited in place. The zero Version means no file.
type Version struct {
	exists   bool
	dev, ino uint64
	size     int64
	mtime    time.Time
}

// VersionOf returns the version of the file fi describes.
func VersionOf(fi fs.FileInfo) Version {
	v := Version{exists: true, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		v.dev, v.ino = uint64(st.Dev), st.Ino
	}
	return v
}

// Missing says what Watch does when it cannot stat the file, most often because it was deleted.
type Missing int

const (
	// MissingReloads treats a missing file as one more version: once it has held still for
	// an interval, Watch calls reload, which reads it (as an empty file, say).
	MissingReloads Missing = iota
	// MissingIsError reports the failed stat to onReload at once, once per disappearance,
	// and does not call reload, so the owner keeps what it has.
	MissingIsError
)

// Watched is a file its owner reads whole with Read and reads again when Watch sees it
// change on disk.
type Watched struct {
	path string

	mu   sync.Mutex // guards seen
	seen Version    // the version Read last read, loaded by the owner or not
}

// NewWatched returns a Watched for the file at path; nothing is read yet.
func NewWatched(path string) *Watched { return &Watched{path: path} }

// Path returns the file's path.
func (w *Watched) Path() string { return w.path }

// Read reads the file, at most limit+1 bytes so the caller can tell a file over its limit,
// and remembers the version it read, so Watch does not report it again whether the owner
// loads it or not. Content, fi and version come from the same open file, so they belong
// together even when the file is replaced meanwhile. A file that cannot be opened counts as
// the zero version; fi is nil when the error came before the file could be stat'ed.
func (w *Watched) Read(limit int64) (data []byte, fi fs.FileInfo, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = Version{}
	fh, err := os.Open(w.path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	fi, err = fh.Stat()
	if err != nil {
		return nil, nil, err
	}
	w.seen = VersionOf(fi)
	data, err = io.ReadAll(io.LimitReader(fh, limit+1))
	return data, fi, err
}

// Watch polls the file's metadata every interval until ctx ends, and calls reload when it
// differs from the version last read. A change is reloaded once the metadata has held still
// for one interval, so a write in progress (truncated, half-written) is not loaded; since
// reload reads the file, a version that fails to load is reported once, not at every poll.
// missing says what a file Watch cannot stat means. onReload, if not nil, gets each result.
// every ≤ 0 means one second.
func (w *Watched) Watch(ctx context.Context, every time.Duration, missing Missing, reload func() (changed bool, err error), onReload func(changed bool, err error)) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last Version // metadata at the previous poll
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var now Version
		fi, statErr := os.Stat(w.path)
		if statErr == nil {
			now = VersionOf(fi)
		}
		settled := now == last
		last = now
		w.mu.Lock()
		same := now == w.seen
		gone := statErr != nil && !same && missing == MissingIsError
		if gone {
			w.seen = Version{}
		}
		w.mu.Unlock()
		var changed bool
		var err error
		switch {
		case same:
			continue
		case gone:
			err = statErr
		case !settled:
			continue
		default:
			changed, err = reload()
		}
		if onReload != nil {
			onReload(changed, err)
		}
	}
}
