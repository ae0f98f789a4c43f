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
//	sessions.snap           snapshot: magic, generation G, create frames, tombstone frames, end frame
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
// crash; and drops expired sessions. Damage anywhere else (a bad record with
// intact ones after it, a bad older log or snapshot) loses only the damaged
// records: the file is copied aside, every intact record is loaded, the
// recovered state is compacted into a fresh snapshot, and Damage reports it.
// A snapshot or log with an unreadable header is an error, not an empty
// store. now is the clock for sweeping; nil means time.Now.
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
	s := &Embedded{dir: dir, now: now, opts: o, lock: lock, stop: make(chan struct{}), ends: newTombs(MaxTombstones)}
	err = s.load()
	if err == nil {
		err = s.recover()
	}
	if err != nil {
		if s.wal != nil {
			_ = s.wal.close()
		}
		_ = unlockDir(lock)
		return nil, fmt.Errorf("open session store in %s: %w", dir, err)
	}
	s.ends.prune(now())
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

// recover finishes an open that found damage: it writes a snapshot of what
// was recovered and starts a new log, so the damaged files (kept aside
// already) leave the replay path, and it lists every copy kept aside, those
// of earlier opens included.
func (s *Embedded) recover() error {
	if s.damage.Records > 0 || s.damage.Bytes > 0 {
		if err := s.compact(); err != nil {
			return fmt.Errorf("rewrite recovered sessions: %w", err)
		}
	}
	files, err := listAside(s.dir)
	if err != nil {
		return err
	}
	s.damage.Files = files
	return nil
}

// loadSnapshot loads the snapshot, if any, and returns the generation of the
// first log to replay after it. A snapshot is written whole and renamed into
// place, so any damage in it (a bad record, a short file, a wrong count) is
// corruption: the file is kept aside and every intact record is loaded. Only
// a snapshot whose header is unreadable is an error.
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
	r := bufio.NewReaderSize(f, readBufSize)
	var h [snapHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil || string(h[:magicLen]) != snapMagic {
		return 0, fmt.Errorf("session snapshot %s is corrupt (bad header); move it away to start with no sessions", name)
	}
	gen := binary.LittleEndian.Uint64(h[magicLen:])
	fr := frameReader{r: r, off: snapHeader}
	var n, want uint64
	ended := false
	sc, err := scanFrames(&fr, func(o *op) bool {
		switch {
		case ended:
			return false // nothing follows the end record
		case o.kind == opCreate:
			s.insert(o.rec)
			n++
			return true
		case o.kind == opEnd:
			ended, want = true, o.n
			return true
		case o.kind == opTombs:
			s.addTombs(o)
			return true
		}
		return false
	})
	if err != nil {
		return 0, fmt.Errorf("session snapshot %s: %w", name, err)
	}
	lost := sc.damaged
	bytes := sc.skipped
	if sc.tail >= 0 {
		lost++
		bytes += sc.end - sc.tail
	}
	if ended && want > n {
		lost = max(lost, int64(want-n))
	}
	if lost == 0 && (!ended || want != n) {
		lost = 1 // the end record itself, or a count that does not add up
	}
	if lost > 0 {
		if err := s.noteDamage(name, int64(n), lost, bytes); err != nil {
			return 0, err
		}
	}
	return gen, nil
}

// replayLog applies a log's records. In the newest log a torn tail (bytes
// with no intact frame after them) is the normal result of a crash mid-write
// and is cut off. Anything else that does not read is damage: an older log
// was fsynced before the next began, and intact frames after a bad one prove
// it was not a torn write. Then the file is kept aside and every intact record
// is replayed; the caller compacts so the damaged file leaves the replay path.
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
	sc, err := scanFrames(&fr, func(o *op) bool {
		if o.kind == opEnd {
			return false // snapshots only
		}
		s.apply(o)
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("session log %s: %w", name, err)
	}
	torn := sc.tail >= 0 && newest
	lost, bytes := sc.damaged, sc.skipped
	if sc.tail >= 0 && !newest {
		lost++
		bytes += sc.end - sc.tail
	}
	if lost > 0 {
		if err := s.noteDamage(name, sc.records, lost, bytes); err != nil {
			return 0, err
		}
	}
	if torn {
		if err := truncateFile(name, sc.tail); err != nil {
			return 0, err
		}
		return sc.tail, nil
	}
	return sc.end, nil
}

// noteDamage keeps the damaged file name aside and adds to the damage found.
func (s *Embedded) noteDamage(name string, recovered, lost, bytes int64) error {
	aside, err := keepAside(name, time.Now())
	if err != nil {
		return err
	}
	s.damage.Recovered += recovered
	s.damage.Records += lost
	s.damage.Bytes += bytes
	s.damage.Files = append(s.damage.Files, aside)
	return nil
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
	case opTombs:
		s.addTombs(o)
	}
}

// addTombs loads tombstones; one with a reason this version does not know
// (written by a newer authd) is dropped and counted in Damage.Tombstones.
func (s *Embedded) addTombs(o *op) {
	if o.why == NotEnded || o.why >= numReasons {
		s.damage.Tombstones += int64(len(o.keys))
		return
	}
	s.ends.add(time.Unix(0, o.t), o.why, o.keys...)
}
