package session

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authd/authd/authd/internal/fsutil"
)

// compact moves appends to a new log, writes a snapshot of memory that names
// it, and deletes the older logs. Get and the writers keep running meanwhile;
// writers pause only for the fsync that closes the old log.
func (s *Embedded) compact() error {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	next := s.gen + 1
	f, err := createLog(s.dir, next)
	if err != nil {
		return fmt.Errorf("compact sessions: %w", err)
	}
	old, err := s.wal.rotate(f, magicLen)
	if err != nil {
		f.Close()
		_ = os.Remove(logPath(s.dir, next))
		return fmt.Errorf("compact sessions: %w", err)
	}
	_ = old.Close() // fsynced by rotate
	s.gen = next
	if err := s.writeSnapshot(next); err != nil {
		return fmt.Errorf("compact sessions: %w", err)
	}
	gens, err := listLogs(s.dir)
	if err != nil {
		return fmt.Errorf("compact sessions: %w", err)
	}
	for _, g := range gens {
		if g < next {
			if err := os.Remove(logPath(s.dir, g)); err != nil {
				return fmt.Errorf("compact sessions: %w", err)
			}
		}
	}
	return nil
}

// writeSnapshot writes memory to a new snapshot atomically: temp file, fsync,
// rename, fsync of the directory. The temporary file has a fixed name: the
// directory lock makes this the only writer, and a crash's leftover is reused.
func (s *Embedded) writeSnapshot(gen uint64) error {
	name := filepath.Join(s.dir, snapName)
	o := fsutil.Options{Perm: 0o600, Temp: snapName + ".tmp"}
	return fsutil.Write(name, o, func(f io.Writer) error { return s.encodeSnapshot(f, gen) })
}

// encodeSnapshot writes memory to f. Each shard is copied under its read lock
// and encoded outside it.
func (s *Embedded) encodeSnapshot(f io.Writer, gen uint64) error {
	w := bufio.NewWriterSize(f, writeBufSize)
	b := make([]byte, 0, 64<<10)
	b = append(b, snapMagic...)
	b = binary.LittleEndian.AppendUint64(b, gen)
	var batch []record
	var n uint64
	for i := range s.shards {
		sh := &s.shards[i]
		batch = batch[:0]
		sh.mu.RLock()
		for j := range sh.t.n {
			batch = append(batch, *sh.t.rec(j))
		}
		sh.mu.RUnlock()
		for j := range batch {
			b = appendCreate(b, &batch[j])
			if len(b) > 60<<10 {
				if _, err := w.Write(b); err != nil {
					return fmt.Errorf("write snapshot: %w", err)
				}
				b = b[:0]
			}
		}
		n += uint64(len(batch))
	}
	// Tombstones after the sessions, grouped by ending (an EndUser's share
	// one reason and time). An old snapshot without them reads as none.
	var keys []Key
	var why Reason
	var at int64
	var werr error
	flushTombs := func() {
		b = appendTombs(b, why, at, keys)
		keys = keys[:0]
		if len(b) > 60<<10 && werr == nil {
			_, werr = w.Write(b)
			b = b[:0]
		}
	}
	s.ends.each(s.now(), func(k Key, w Reason, t time.Time) {
		if tn := t.UnixNano(); len(keys) == 0 || w != why || tn != at || len(keys) == tombsPerFrame {
			flushTombs()
			why, at = w, tn
		}
		keys = append(keys, k)
	})
	flushTombs()
	if werr != nil {
		return fmt.Errorf("write snapshot: %w", werr)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	b = appendEnd(b[:0], n)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

func logPath(dir string, gen uint64) string {
	return filepath.Join(dir, logPrefix+strconv.FormatUint(gen, 10)+logSuffix)
}

// listLogs returns the generations of the logs in dir, ascending.
func listLogs(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read data directory: %w", err)
	}
	var gens []uint64
	for _, e := range ents {
		name := e.Name()
		mid, ok := strings.CutPrefix(name, logPrefix)
		if !ok {
			continue
		}
		if mid, ok = strings.CutSuffix(mid, logSuffix); !ok {
			continue
		}
		g, err := strconv.ParseUint(mid, 10, 64)
		if err != nil || strconv.FormatUint(g, 10) != mid {
			continue
		}
		gens = append(gens, g)
	}
	slices.Sort(gens)
	return gens, nil
}

// createLog creates an empty log for gen, durable in the directory.
func createLog(dir string, gen uint64) (*os.File, error) {
	f, err := os.OpenFile(logPath(dir, gen), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create session log: %w", err)
	}
	if _, err := f.Write([]byte(logMagic)); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = fsutil.SyncDir(dir)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create session log: %w", err)
	}
	return f, nil
}

// rewriteLog replaces a log torn inside its header with an empty one.
func rewriteLog(name string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("repair session log: %w", err)
	}
	defer f.Close()
	if _, err := f.Write([]byte(logMagic)); err != nil {
		return fmt.Errorf("repair session log: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("repair session log: %w", err)
	}
	return nil
}

// truncateFile cuts a torn tail off a log, durably.
func truncateFile(name string, size int64) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("truncate torn session log: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncate torn session log: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("truncate torn session log: %w", err)
	}
	return nil
}
