package session

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The data directory holds:
//
//	sessions.lock           flock held while a store is open; holds its pid
//	sessions.snap           snapshot: magic, generation G, create frames, end frame
//	sessions-<gen>.log      logs: magic, frames; those with gen >= G are replayed in order
//
// Compaction starts log G+1, writes a snapshot naming G+1 from memory, then
// deletes older logs. A crash at any point leaves a snapshot plus logs whose
// replay gives the right state, because replaying a record is idempotent
// against a state that already includes it (create overwrites, touch keeps
// the later time, deletes delete).
const (
	snapName     = "sessions.snap"
	logPrefix    = "sessions-"
	logSuffix    = ".log"
	magicLen     = 8
	snapMagic    = "AUTHDSS1"
	logMagic     = "AUTHDSL1"
	snapHeader   = magicLen + 8
	readBufSize  = 1 << 20
	writeBufSize = 1 << 20
	// approxCreateSize is a create frame with a short user name and a
	// typical user agent, for sizing the live data in the compaction trigger.
	approxCreateSize = 150
)

func defaultOptions() options {
	return options{
		maxSessions: DefaultMaxSessions,
		flushEvery:  time.Second,
		sweepEvery:  time.Minute,
		compactMin:  8 << 20,
	}
}

// OpenEmbedded opens the session store in dir, creating dir (mode 0700) if
// needed. It takes an exclusive lock on the directory, failing with an error
// that wraps ErrLocked and names the holder's pid if another store has it;
// loads the snapshot and replays the log, truncating a torn log tail left by a
// crash; and drops expired sessions. A corrupt snapshot is an error, not an
// empty store. now is the clock for sweeping; nil means time.Now.
func OpenEmbedded(dir string, now func() time.Time, opts ...Option) (*Embedded, error) {
	if now == nil {
		now = time.Now
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Embedded{dir: dir, now: now, opts: o, lock: lock, stop: make(chan struct{})}
	if err := s.load(); err != nil {
		_ = unlockDir(lock)
		return nil, fmt.Errorf("open session store in %s: %w", dir, err)
	}
	s.sweep(now())
	s.wg.Add(1)
	go s.background()
	return s, nil
}

// load reads the snapshot and logs and opens the newest log for appending.
func (s *Embedded) load() error {
	snapGen, err := s.loadSnapshot()
	if err != nil {
		return err
	}
	gens, err := listLogs(s.dir)
	if err != nil {
		return err
	}
	var replay []uint64
	for _, g := range gens {
		if g < snapGen {
			// Left over from a compaction interrupted after its snapshot.
			if err := os.Remove(logPath(s.dir, g)); err != nil {
				return fmt.Errorf("remove old session log: %w", err)
			}
			continue
		}
		replay = append(replay, g)
	}
	var size int64
	for i, g := range replay {
		if size, err = s.replayLog(logPath(s.dir, g), i == len(replay)-1); err != nil {
			return err
		}
	}
	var f *os.File
	if len(replay) == 0 {
		s.gen = max(snapGen, 1)
		f, err = createLog(s.dir, s.gen)
		size = magicLen
	} else {
		s.gen = replay[len(replay)-1]
		f, err = os.OpenFile(logPath(s.dir, s.gen), os.O_WRONLY|os.O_APPEND, 0o600)
	}
	if err != nil {
		return fmt.Errorf("open session log: %w", err)
	}
	s.wal = newWAL(f, size)
	return nil
}

// loadSnapshot loads the snapshot, if any, and returns the generation of the
// first log to replay after it.
func (s *Embedded) loadSnapshot() (uint64, error) {
	name := filepath.Join(s.dir, snapName)
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open session snapshot: %w", err)
	}
	defer f.Close()
	corrupt := func(what string) error {
		return fmt.Errorf("session snapshot %s is corrupt (%s); move it away to start with no sessions", name, what)
	}
	r := bufio.NewReaderSize(f, readBufSize)
	var h [snapHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil || string(h[:magicLen]) != snapMagic {
		return 0, corrupt("bad header")
	}
	gen := binary.LittleEndian.Uint64(h[magicLen:])
	fr := frameReader{r: r}
	var n uint64
	for {
		p, err := fr.next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, errTorn) {
				return 0, corrupt("truncated or damaged data")
			}
			return 0, fmt.Errorf("read session snapshot: %w", err)
		}
		o, err := decodeOp(p)
		if err != nil {
			return 0, corrupt("undecodable record")
		}
		switch o.kind {
		case opCreate:
			s.insert(o.rec)
			n++
		case opEnd:
			if o.n != n {
				return 0, corrupt(fmt.Sprintf("end record counts %d sessions, read %d", o.n, n))
			}
			if _, err := r.ReadByte(); err != io.EOF {
				return 0, corrupt("data after end record")
			}
			return gen, nil
		default:
			return 0, corrupt("unexpected record")
		}
	}
}

// replayLog applies a log's records. In the newest log a torn tail is the
// normal result of a crash mid-write and is cut off; in an older one, which was
// fsynced before the next began, it is corruption and an error.
func (s *Embedded) replayLog(name string, newest bool) (int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, fmt.Errorf("open session log: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, readBufSize)
	var m [magicLen]byte
	n, err := io.ReadFull(r, m[:])
	switch {
	case err != nil && n < magicLen && newest && strings.HasPrefix(logMagic, string(m[:n])):
		// Crashed while creating the file.
		return magicLen, rewriteLog(name)
	case err != nil || string(m[:]) != logMagic:
		return 0, fmt.Errorf("%s is not an authd session log (bad header)", name)
	}
	fr := frameReader{r: r, off: magicLen}
	for {
		p, err := fr.next()
		if errors.Is(err, io.EOF) {
			return fr.off, nil
		}
		if errors.Is(err, errTorn) {
			if !newest {
				return 0, fmt.Errorf("session log %s is corrupt at offset %d; it was complete when the next log began", name, fr.off)
			}
			if err := truncateFile(name, fr.off); err != nil {
				return 0, err
			}
			return fr.off, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read session log: %w", err)
		}
		o, err := decodeOp(p)
		if err != nil {
			return 0, fmt.Errorf("session log %s: undecodable record at offset %d", name, fr.off)
		}
		s.apply(&o)
	}
}

// insert puts a record in memory without logging it (load and tests).
func (s *Embedded) insert(r record) {
	if s.shard(&r.key).t.put(r) {
		s.count.Add(1)
	}
}

// apply replays one logged change.
func (s *Embedded) apply(o *op) {
	switch o.kind {
	case opCreate:
		s.insert(o.rec)
	case opTouch:
		if r := s.shard(&o.key).t.get(&o.key); r != nil && o.t > r.lastSeen {
			r.lastSeen = o.t
		}
	case opDelete:
		if s.shard(&o.key).t.del(&o.key) {
			s.count.Add(-1)
		}
	case opDeleteUsr:
		for i := range s.shards {
			n := s.shards[i].t.deleteIf(func(r *record) bool { return r.user.Value() == o.user })
			s.count.Add(int64(-n))
		}
	case opDeleteAll:
		for i := range s.shards {
			s.shards[i].t.reset()
		}
		s.count.Store(0)
	}
}
